"""The retrieval policy as an estimator: ``PolicyEstimator(config).fit(rows)`` returns a
``FittedPolicy``; nothing else happens in it (no logs read, nothing published, no tracking).

``PlanRows`` are the replay-expanded rows ``bandit.learner.plan_rows`` builds: one per (engaged
request, plan of the library), the request's context features then the plan's per-strategy
depths, labelled by whether that plan's candidates hold the engaged entity. The model is one
CatBoost classifier of P(hit | context, depths); the held-out rows early-stop it when they hold
both labels. The policy it makes serves argmax_plan P(hit) minus the candidate and latency costs,
with epsilon-greedy exploration (``models.policy.LearnedPolicy``, loaded from what ``save``
writes).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..config import LearnerConfig
from ..durable import write_json_atomic
from ..features.policy import FEATURE_VERSION
from ..models.policy import LearnedPolicy
from .latency import StrategyLatency, plan_latencies

POLICY_FILE, MODEL_FILE = "policy.json", "model.cbm"


@dataclass(frozen=True)
class PlanRows:
    features: list[str]  # context feature names (the depth columns follow them in x)
    strategies: list[str]  # one depth column each, in this order
    plans: dict[str, dict[str, int]]  # the library the policy chooses from
    budget: int  # most candidates a plan may draw
    latency: StrategyLatency  # per strategy and depth, fitted on the training days' stage timings
    x_train: np.ndarray
    y_train: np.ndarray
    x_held: np.ndarray
    y_held: np.ndarray


@dataclass(frozen=True)
class FittedPolicy:
    model: Any  # CatBoostClassifier of P(hit | context, depths)
    rows: PlanRows
    config: LearnerConfig
    best_iteration: int

    def save(self, directory: Path, version: str, provenance: dict[str, Any] | None = None) -> LearnedPolicy:
        """Write the policy the runtime loads (``model.cbm`` + ``policy.json``) into ``directory``;
        returns it loaded."""
        rows, config = self.rows, self.config
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_model(str(directory / MODEL_FILE))
        spec = {
            "version": version,
            "feature_version": FEATURE_VERSION,
            "feature_names": rows.features,
            "strategies": rows.strategies,
            "plans": rows.plans,
            "cost_penalty": config.cost_penalty,
            "budget": rows.budget,
            "latency": rows.latency.to_dict(),
            "plan_latency_ms": {
                name: round(float(ms), 3) for name, ms in zip(rows.plans, plan_latencies(rows.latency, rows.plans))
            },
            "latency_penalty": config.latency_penalty,
            "latency_reference_ms": config.latency_reference_ms,
            "epsilon": config.epsilon,
            **(provenance or {}),
            "created_at": datetime.now(UTC).isoformat(),
        }
        write_json_atomic(directory / POLICY_FILE, spec)
        return LearnedPolicy(directory)


class PolicyEstimator:
    def __init__(self, config: LearnerConfig):
        self.config = config

    def fit(self, rows: PlanRows) -> FittedPolicy:
        from catboost import CatBoostClassifier

        config = self.config
        model = CatBoostClassifier(
            iterations=config.iterations,
            depth=config.depth,
            learning_rate=config.learning_rate,
            thread_count=config.threads,
            random_seed=config.seed,
            loss_function="Logloss",
            allow_writing_files=False,
            verbose=False,
        )
        # A held-out part without both labels cannot early-stop: train the full iterations.
        held = len(rows.y_held) > 0 and len(np.unique(rows.y_held)) > 1
        model.fit(
            rows.x_train,
            rows.y_train,
            eval_set=(rows.x_held, rows.y_held) if held else None,
            early_stopping_rounds=30 if held else None,
        )
        return FittedPolicy(model, rows, config, int(model.get_best_iteration() or config.iterations))
