"""Retrieval policies: which strategies to run for a query, and how many candidates from each.

An action is a *plan* from the configured library (``runtime.policy``: named plans plus a grid
of per-strategy depths within a candidate budget; depth 0 = not run). A library keeps the
exact propensity of every logged action computable -- one categorical draw -- where a
factorised per-strategy choice would need the budget constraint folded into each factor.
Learning generalises across plans through their depth features, so a large library costs no
extra data.

* ``EpsilonDefaultPolicy`` (apprentice start): the configured default plan with probability
  1 - epsilon + epsilon/n, every other plan epsilon/n.
* ``LearnedPolicy``: the nightly-trained model scores every plan for the request's features
  (P(the engaged entity is among the candidates) - cost); the best plan gets 1 - epsilon +
  epsilon/n, the others epsilon/n, so off-policy estimates stay bounded (weights <= n/epsilon).

Both log the exact probability of the plan drawn (joint) and per strategy the probability of
the depth drawn (marginal).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..config import PolicyConfig, Settings
from ..store import VersionedStore


@dataclass(frozen=True)
class Decision:
    plan: str
    depths: dict[str, int]
    probability: float  # joint propensity of the chosen plan
    strategy_probabilities: dict[str, float]  # per strategy: P(this strategy gets this depth)
    probabilities: dict[str, float]  # the whole distribution over plans


class RetrievalPolicy(Protocol):
    name: str
    plans: dict[str, dict[str, int]]

    def probabilities(self, features: dict[str, float] | None = None) -> dict[str, float]: ...

    def decide(self, features: dict[str, float], rng: np.random.Generator) -> Decision: ...

    def greedy(self, features: dict[str, float]) -> str: ...


def epsilon_greedy(names: list[str], best: str, epsilon: float) -> dict[str, float]:
    base = epsilon / len(names)
    return {name: base + (1.0 - epsilon) * (name == best) for name in names}


def draw(plans: dict[str, dict[str, int]], probabilities: dict[str, float], rng: np.random.Generator) -> Decision:
    names = list(probabilities)
    weights = np.array([probabilities[n] for n in names])
    choice = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    depths = dict(plans[choice])
    per_strategy = {
        strategy: sum(p for n, p in probabilities.items() if plans[n].get(strategy, 0) == depth)
        for strategy, depth in depths.items()
    }
    return Decision(choice, depths, probabilities[choice], per_strategy, probabilities)


def greedy_decision(policy: RetrievalPolicy, features: dict[str, float]) -> Decision:
    """The plan the policy exploits, as a decision with probability 1 (no exploration draw)."""
    plan = policy.greedy(features)
    depths = dict(policy.plans[plan])
    return Decision(plan, depths, 1.0, {s: 1.0 for s in depths}, {plan: 1.0})


class EpsilonDefaultPolicy:
    name = "epsilon_default"

    def __init__(self, config: PolicyConfig):
        self.config = config
        self.plans = config.library()
        self._probabilities = epsilon_greedy(list(self.plans), config.default_plan, config.epsilon)

    def probabilities(self, features: dict[str, float] | None = None) -> dict[str, float]:
        return dict(self._probabilities)

    def decide(self, features: dict[str, float], rng: np.random.Generator) -> Decision:
        return draw(self.plans, self._probabilities, rng)

    def greedy(self, features: dict[str, float]) -> str:
        return self.config.default_plan


class LearnedPolicy:
    """A policy artifact: ``policy.json`` (plans, feature names, strategies, cost, epsilon) and
    ``model.cbm`` (CatBoost, native format: no pickles), loaded without the training stack."""

    name = "learned"

    def __init__(self, directory: Path):
        from catboost import CatBoostClassifier

        spec = json.loads((Path(directory) / "policy.json").read_text(encoding="utf-8"))
        self.version = spec["version"]
        self.plans: dict[str, dict[str, int]] = spec["plans"]
        self.feature_names: list[str] = spec["feature_names"]
        self.strategies: list[str] = spec["strategies"]
        self.cost_penalty, self.budget, self.epsilon = spec["cost_penalty"], spec["budget"], spec["epsilon"]
        self.model = CatBoostClassifier()
        self.model.load_model(str(Path(directory) / "model.cbm"))
        self._names = list(self.plans)
        self._depths = np.array([[self.plans[n].get(s, 0) for s in self.strategies] for n in self._names], dtype=float)
        self._cost = self._depths.sum(axis=1) / self.budget
        # Policies trained before latency entered the cost carry no plan latencies: 0 ms each.
        latency = spec.get("plan_latency_ms") or {}
        self.plan_latency_ms = np.array([float(latency.get(n, 0.0)) for n in self._names])
        self.latency_lines: dict[str, Any] = spec.get("latency") or {}  # ltrr_core.bandit.latency, as fitted
        self.latency_penalty = float(spec.get("latency_penalty", 0.0))
        self.latency_reference_ms = float(spec.get("latency_reference_ms", 1.0))
        self._penalty = (
            self.cost_penalty * self._cost + self.latency_penalty * self.plan_latency_ms / self.latency_reference_ms
        )

    @property
    def plan_names(self) -> list[str]:
        return list(self._names)

    @property
    def plan_costs(self) -> np.ndarray:
        """Per plan: candidates drawn / budget."""
        return self._cost.copy()

    @property
    def plan_penalties(self) -> np.ndarray:
        """Per plan, in reward units: cost_penalty * candidates / budget + latency_penalty *
        expected ms / latency_reference_ms."""
        return self._penalty.copy()

    def hit_matrix(self, contexts: np.ndarray) -> np.ndarray:
        """(n, n_plans) predicted P(the engaged entity is among the plan's candidates), for n
        requests' feature rows (columns in ``feature_names`` order)."""
        n, k = len(contexts), len(self._names)
        rows = np.hstack([np.repeat(contexts, k, axis=0), np.tile(self._depths, (n, 1))])
        return self.model.predict_proba(rows)[:, 1].reshape(n, k)

    def values(self, features: dict[str, float]) -> np.ndarray:
        """Per plan: predicted P(hit) minus its penalties (candidates and latency)."""
        context = np.array([[features.get(f, 0.0) for f in self.feature_names]], dtype=float)
        return self.hit_matrix(context)[0] - self._penalty

    def greedy(self, features: dict[str, float]) -> str:
        """The plan the policy exploits: what it would serve without exploration."""
        return self._names[int(np.argmax(self.values(features)))]

    def probabilities(self, features: dict[str, float] | None = None) -> dict[str, float]:
        return epsilon_greedy(self._names, self.greedy(features or {}), self.epsilon)

    def decide(self, features: dict[str, float], rng: np.random.Generator) -> Decision:
        return draw(self.plans, self.probabilities(features), rng)


def policy_store(settings: Settings) -> VersionedStore:
    """Learned policies (``P<stamp>/``: model.cbm, policy.json, report.json), ``LATEST`` the newest."""
    return VersionedStore(
        settings.data_dir / settings.bandit.out_dir, "policy", "P", hint="run `ltrr bandit train` first"
    )
