"""Retrieval policies: which strategies to run for a query, and how many candidates from each.

An action is a *plan* from a configured library (strategy -> depth, depth 0 = not run). A
library of plans keeps the exact propensity of every logged action trivially computable,
which off-policy learning needs; factorised per-strategy choices are the bandit issue's to
weigh. Until a learned policy exists, ``EpsilonDefaultPolicy`` serves the configured default
plan with probability 1 - epsilon + epsilon/n and every other plan with epsilon/n -- the
apprentice start of the bandit, with a propensity floor of epsilon/n.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..config import PolicyConfig


@dataclass(frozen=True)
class Decision:
    plan: str
    depths: dict[str, int]
    probability: float                       # joint propensity of the chosen plan
    strategy_probabilities: dict[str, float]  # per strategy: P(this strategy gets this depth)
    probabilities: dict[str, float]           # the whole distribution over plans


class RetrievalPolicy(Protocol):
    def decide(self, context: dict, rng: np.random.Generator) -> Decision: ...


class EpsilonDefaultPolicy:
    def __init__(self, config: PolicyConfig):
        self.config = config
        self.names = list(config.plans)
        n = len(self.names)
        base = config.epsilon / n
        self._probabilities = {name: base + (1.0 - config.epsilon) * (name == config.default_plan) for name in self.names}

    def probabilities(self, context: dict | None = None) -> dict[str, float]:
        return dict(self._probabilities)

    def decide(self, context: dict, rng: np.random.Generator) -> Decision:
        probabilities = self.probabilities(context)
        names = self.names
        choice = names[int(rng.choice(len(names), p=np.array([probabilities[n] for n in names])))]
        depths = dict(self.config.plans[choice])
        per_strategy = {
            strategy: sum(p for n, p in probabilities.items() if self.config.plans[n].get(strategy, 0) == depth)
            for strategy, depth in depths.items()
        }
        return Decision(choice, depths, probabilities[choice], per_strategy, probabilities)
