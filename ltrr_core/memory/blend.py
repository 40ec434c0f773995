"""Observed statistics from engagement, and their Bayesian blend with the predicted prior.

The rule (Beta-Binomial): a pair's engagement rate has prior Beta(m*p, m*(1-p)), where p is
the predicted score (doc2query/templates; ``base_rate`` for a pair nobody predicted) and m is
``prior_strength`` -- the prediction counts as m pseudo-impressions. After N examined
impressions with E engagement (event-weighted, so a like counts 1 and a click 0.4), the
posterior mean is

    score = (m * p + E) / (m + N)

The prediction's weight m / (m + N) falls to zero as evidence grows, so observed behaviour
replaces predictions, and one lucky click cannot outrank a strong prior. Impressions are
position-aware: an impression at position k counts as examination_by_position[k] of an
impression (a result nobody looked at is weak evidence of irrelevance).
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd

from ..config import MemoryConfig
from ..text import normalize

_EVIDENCE_EPSILON = 1e-9  # impressions are sums of examination weights: below this, none are left


def posterior_score(
    predicted: np.ndarray | float, engaged: np.ndarray | float, examined: np.ndarray | float, prior_strength: float
) -> np.ndarray:
    return (prior_strength * np.asarray(predicted) + np.asarray(engaged)) / (prior_strength + np.asarray(examined))


def examination_weights(positions: pd.Series, config: MemoryConfig) -> np.ndarray:
    table = np.asarray(config.examination_by_position, dtype=float)
    pos = positions.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    index = np.clip(np.nan_to_num(pos, nan=1.0).astype(int) - 1, 0, len(table) - 1)
    return np.where(np.isnan(pos), 1.0, table[index])


def observed_statistics(engagement: pd.DataFrame, config: MemoryConfig) -> pd.DataFrame:
    """Per (normalised query, entity): examined impressions, weighted engagement, last seen."""
    if engagement.empty:
        return pd.DataFrame(columns=["query", "entity_id", "n_impressions", "n_engaged", "last_seen"])
    unknown = set(engagement["event"]) - set(config.event_weights)
    if unknown:
        raise ValueError(f"engagement events {sorted(unknown)} have no weight in memory.event_weights")
    frame = pd.DataFrame(
        {
            "request_id": engagement["request_id"].to_numpy(),
            "query": engagement["query"].map(normalize).to_numpy(),
            "entity_id": engagement["entity_id"].to_numpy(),
            "examined": examination_weights(engagement["position"], config),
            "engaged": engagement["event"].map(config.event_weights).to_numpy(dtype=float),
            "timestamp": engagement["timestamp"].to_numpy(),
        }
    )
    frame = frame[frame["query"] != ""]
    # One impression per (request, query, entity): the strongest event wins.
    per_impression = frame.groupby(["request_id", "query", "entity_id"], sort=False).agg(
        examined=("examined", "max"), engaged=("engaged", "max"), timestamp=("timestamp", "max")
    )
    return (
        per_impression.groupby(["query", "entity_id"], sort=True)
        .agg(n_impressions=("examined", "sum"), n_engaged=("engaged", "sum"), last_seen=("timestamp", "max"))
        .reset_index()
    )


def blend(predicted: pd.DataFrame, observed: pd.DataFrame, config: MemoryConfig, now: pd.Timestamp) -> pd.DataFrame:
    """The Q2E table: every predicted or observed (query, entity) pair with its blended score."""
    predicted = predicted[["query", "entity_id", "score", "generator"]].rename(columns={"score": "predicted_score"})
    merged = predicted.merge(observed, on=["query", "entity_id"], how="outer")
    merged["n_impressions"] = merged["n_impressions"].fillna(0.0).astype(float)
    merged["n_engaged"] = merged["n_engaged"].fillna(0.0).astype(float)
    prior = merged["predicted_score"].fillna(config.base_rate).to_numpy(dtype=float)
    merged["score"] = posterior_score(
        prior, merged["n_engaged"].to_numpy(), merged["n_impressions"].to_numpy(), config.prior_strength
    )
    merged["source"] = np.where(merged["n_impressions"] > 0, "observed", "predicted")
    merged["generator"] = merged["generator"].fillna("observed")
    merged["updated_at"] = now
    columns = [
        "query",
        "entity_id",
        "score",
        "source",
        "predicted_score",
        "n_impressions",
        "n_engaged",
        "generator",
        "updated_at",
    ]
    return merged[columns].sort_values(["query", "score"], ascending=[True, False]).reset_index(drop=True)


def without_observations(
    table: pd.DataFrame, removed: pd.DataFrame, config: MemoryConfig, learned_from_engagement: Collection[str] = ()
) -> pd.DataFrame:
    """The Q2E table as ``blend`` would have made it without the observations ``removed`` (an
    ``observed_statistics`` frame of requests the table's evidence included): their impressions and
    engagement are taken out of each pair and the posterior recomputed. Predictions by the
    generators named in ``learned_from_engagement`` (``log_neighbours``: made from the entities
    people engaged with for a query) are dropped for every query of ``removed``, which they may have
    learned from. A pair left with neither evidence nor a prediction is dropped. How a learner sees
    the memory of everyone but the people it is learning from (cross-fitting), without re-running
    the doc2query predictions."""
    if removed.empty:
        return table.copy()
    queries = removed["query"].map(normalize)
    taken = (
        removed.assign(query=queries)
        .groupby(["query", "entity_id"], sort=False)[["n_impressions", "n_engaged"]]
        .sum()
        .rename(columns={"n_impressions": "removed_impressions", "n_engaged": "removed_engaged"})
    )
    merged = table.merge(taken, left_on=["query", "entity_id"], right_index=True, how="left")
    impressions = np.clip(merged["n_impressions"].to_numpy(float) - merged["removed_impressions"].fillna(0.0), 0, None)
    engaged = np.clip(merged["n_engaged"].to_numpy(float) - merged["removed_engaged"].fillna(0.0), 0, None)
    learned = merged["generator"].isin(list(learned_from_engagement)) & merged["query"].isin(set(queries))
    predicted = merged["predicted_score"].mask(learned)
    merged = merged.assign(predicted_score=predicted, generator=merged["generator"].mask(learned, "observed"))
    kept = (impressions > _EVIDENCE_EPSILON) | predicted.notna().to_numpy()
    prior = predicted.fillna(config.base_rate).to_numpy(dtype=float)
    out = merged.assign(
        n_impressions=impressions,
        n_engaged=engaged,
        score=posterior_score(prior, engaged, impressions, config.prior_strength),
        source=np.where(impressions > _EVIDENCE_EPSILON, "observed", "predicted"),
    )[kept]
    return (
        out[table.columns]
        .sort_values(["query", "score"], ascending=[True, False], kind="stable")
        .reset_index(drop=True)
    )
