"""From logs to a training set: rewards per request, and counterfactual replay per plan.

**Rewards.** A request's engagement is its strongest feedback event (``bandit.learner.
event_weights``: like/stream 1, click 0.5, skip 0); the bandit's reward subtracts a cost,
``cost_penalty * candidates drawn / budget``. The engaged entity is the one with that event
(the best-placed one on ties).

**Counterfactual replay.** Retrieval is deterministic given the bundle, so for a request with
an engaged entity every strategy is re-run at ``replay_depth`` against the bundle that served
it, and its rank of the engaged entity is recorded. Whether any plan's candidates contain that
entity then follows exactly: some strategy ranks it within that strategy's depth. This is
sound for "would plan b have retrieved what the person engaged with". It is not sound for
requests without engagement -- they may have failed because the logged plan missed what the
person wanted, which we never observe -- so replay labels only engaged requests, and the
value of a plan there is P(hit | engaged). The selection is mildest when the logged plan is
wide (the apprentice's default runs every strategy 100 deep, a superset of every grid plan).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from ..config import LearnerConfig, Settings
from ..retrieval.base import Query

MISSED = np.inf


def action_strategies(settings: Settings) -> list[str]:
    """The strategies an action sets depths for: the plan grid's, else every served strategy."""
    grid = settings.runtime.policy.grid
    return list(grid.strategies) if grid else list(settings.retrieval.strategies)


def candidate_budget(settings: Settings) -> int:
    """Most candidates a learned plan may draw: the grid's budget, else the largest named plan."""
    grid = settings.runtime.policy.grid
    return grid.budget if grid else max(sum(p.values()) for p in settings.runtime.policy.plans.values())


def request_outcomes(impressions: pd.DataFrame, feedback: pd.DataFrame, config: LearnerConfig) -> pd.DataFrame:
    """Per impression: engagement (0..1), engaged entity (or None), candidates drawn."""
    weights = feedback["event"].map(config.event_weights).fillna(0.0)
    events = feedback.assign(weight=weights.to_numpy())
    events = events[events["weight"] > 0].sort_values(
        ["request_id", "weight", "position"], ascending=[True, False, True]
    )
    best = events.drop_duplicates("request_id").set_index("request_id")
    out = impressions[
        ["request_id", "timestamp", "raw_query", "plan", "depths", "propensity", "bundle_id", "policy_features"]
    ].copy()
    out["timings_ms"] = impressions["timings_ms"].to_numpy() if "timings_ms" in impressions.columns else None
    out["engagement"] = out["request_id"].map(best["weight"]).fillna(0.0).astype(float)
    out["engaged_entity"] = out["request_id"].map(best["entity_id"])
    out["candidates"] = out["depths"].map(lambda d: sum(json.loads(d).values()))
    return out.reset_index(drop=True)


def features_frame(outcomes: pd.DataFrame, feature_names: list[str] | None = None) -> pd.DataFrame:
    """The logged policy features as columns (names sorted; absent ones 0)."""
    parsed = [json.loads(f) if isinstance(f, str) and f else {} for f in outcomes["policy_features"]]
    names = feature_names or sorted({k for row in parsed for k in row})
    return pd.DataFrame([[row.get(n, 0.0) for n in names] for row in parsed], columns=names, dtype=float)


def replay_ranks(service, queries: list[str], targets: list[set[str]], strategies: list[str], depth: int) -> np.ndarray:
    """(n, n_strategies): the best rank (1-based) of any target entity in each strategy's answer,
    inf if none -- the engaged entity in training, the intended ones in evaluation."""
    ranks = np.full((len(queries), len(strategies)), MISSED)
    for i, (text, wanted) in enumerate(zip(queries, targets)):
        query = Query(text, {}, service.understander.understand(text))
        for j, name in enumerate(strategies):
            if name not in service.strategies:
                continue
            ids = service.strategies[name].retrieve(query, depth).ids
            found = next((rank for rank, e in enumerate(ids, start=1) if e in wanted), None)
            if found is not None:
                ranks[i, j] = found
    return ranks


def plan_hits(ranks: np.ndarray, plans: dict[str, dict[str, int]], strategies: list[str]) -> np.ndarray:
    """(n, n_plans) 1 if the plan's union of candidates contains the engaged entity."""
    depths = np.array([[plans[p].get(s, 0) for s in strategies] for p in plans], dtype=float)  # (plans, strategies)
    return np.asarray((ranks[:, None, :] <= depths[None, :, :]).any(axis=2), dtype=np.int8)


def expand(
    features: pd.DataFrame, hits: np.ndarray, plans: dict[str, dict[str, int]], strategies: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """One row per (request, plan): context features then per-strategy depths; label = hit."""
    depths = np.array([[plans[p].get(s, 0) for s in strategies] for p in plans], dtype=float)
    n, k = len(features), len(plans)
    context = np.repeat(features.to_numpy(dtype=float), k, axis=0)
    return np.hstack([context, np.tile(depths, (n, 1))]), hits.reshape(-1)


def training_report(outcomes: pd.DataFrame, hits: np.ndarray, plans: dict[str, Any]) -> dict[str, Any]:
    engaged = outcomes["engaged_entity"].notna()
    return {
        "requests": int(len(outcomes)),
        "engaged_requests": int(engaged.sum()),
        "engagement_rate": round(float(engaged.mean()), 4) if len(outcomes) else 0.0,
        "plans": len(plans),
        "rows": int(hits.size),
        "best_single_plan_hit_rate": round(float(hits.mean(axis=0).max()), 4) if hits.size else 0.0,
    }
