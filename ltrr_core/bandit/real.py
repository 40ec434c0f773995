"""Real engagement for the retrieval policy: which plan finds what people liked, on real queries.

For each CPCD ``train`` search with a like (``ltrr_core.learning_data``), every strategy of the
plan grid is run ``bandit.learner.replay_depth`` deep on the reference bundle and the best rank of
any liked track is recorded -- the same counterfactual replay as for logged requests, with the
liked set as the engaged entities. Every plan's label (do its candidates hold a liked track?)
then follows exactly, so these rows are full-information training rows beside the logged ones.
Their context is the query alone (no hour, no profile) with the memory probe, computed by the
serving feature function. The memory index was built from these very searches: cross-fitted
(``bandit.learner.real_memory``, ``ltrr_core.learning_data``), each query is one row per fold of the
conversations that liked something for it, replayed with the memory of the other folds -- what a
new conversation's query meets; ``excluded``, the memory strategy never hits on them. They train;
they never enter the off-policy estimate, which stays on logged requests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..config import Settings
from ..durable import write_json_atomic, write_parquet
from ..features.policy import FEATURE_VERSION, policy_features
from ..learning_data import (
    bundle_q2e_table,
    fold_services,
    folded_train_queries,
    memory_cross_fitted,
    prune,
    query_fold,
    retrieval_key,
    served_strategies,
    train_queries,
)
from ..retrieval.base import Query
from . import training


@dataclass
class RealPlanRows:
    """Per real train query: its policy features and each strategy's best rank of a liked track."""

    features: pd.DataFrame
    ranks: np.ndarray  # (queries, strategies); training.MISSED where none within the depth
    strategies: list[str]
    bundle_id: str

    def summary(self) -> dict[str, Any]:
        found = np.isfinite(self.ranks).any(axis=1) if len(self.ranks) else np.zeros(0, bool)
        return {
            "source": "CPCD train searches with a like",
            "bundle_id": self.bundle_id,
            "queries": len(self.ranks),
            "replayable": int(found.sum()),
        }


def real_plan_rows(
    settings: Settings, service: Any, strategies: list[str], q2e_table: pd.DataFrame | None = None
) -> RealPlanRows:
    """``q2e_table``: the bundle's, for the cross-fitted memory (read from the bundle when None)."""
    mode = settings.bandit.learner.real_memory
    folded = memory_cross_fitted(list(service.strategies), mode)
    queries = folded_train_queries(settings, service.display) if folded else train_queries(settings, service.display)
    services: dict[int | None, Any] = {None: service}
    if folded:
        table = q2e_table if q2e_table is not None else bundle_q2e_table(settings, service.bundle_id)
        services.update({fold: server for fold, server in fold_services(settings, service, table).items()})
    replayed = [s if s in served_strategies(strategies, mode) else "" for s in strategies]
    ids = list(queries.qrels)
    ranks = np.full((len(ids), len(strategies)), training.MISSED)
    features: list[dict[str, float]] = [{} for _ in ids]
    for fold, server in services.items():
        rows = [i for i, q in enumerate(ids) if query_fold(q) == fold]
        texts = [queries.queries[ids[i]] for i in rows]
        wanted = [{e for e, g in queries.qrels[ids[i]].items() if g >= settings.eval.liked_track_grade} for i in rows]
        ranks[rows] = training.replay_ranks(server, texts, wanted, replayed, settings.bandit.learner.replay_depth)
        for i, text in zip(rows, texts):
            understanding = server.understander.understand(text)
            probe = server.strategies["memory"].retrieve(Query(text, {}, understanding), 1) if folded else None
            features[i] = policy_features(understanding, {}, probe)
    return RealPlanRows(pd.DataFrame(features), ranks, strategies, service.bundle_id)


def cached_real_plan_rows(
    settings: Settings,
    bundle: Path,
    load_bundle: Callable[[str], Any],
    strategies: list[str],
    cache: Path,
    keep: int = 3,
) -> RealPlanRows:
    """``real_plan_rows`` over ``bundle``, cached under ``cache`` by ``learning_data.retrieval_key``."""
    key = retrieval_key(
        settings,
        bundle,
        settings.bandit.learner.real_memory,
        "policy replay",
        FEATURE_VERSION,
        strategies,
        settings.bandit.learner.replay_depth,
    )
    data_path, meta_path = cache / f"{key}.parquet", cache / f"{key}.json"
    if data_path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        frame = pd.read_parquet(data_path)
        return RealPlanRows(
            frame[meta["features"]],
            frame[[f"rank:{s}" for s in strategies]].to_numpy(float),
            strategies,
            meta["bundle_id"],
        )
    rows = real_plan_rows(settings, load_bundle(bundle.name), strategies, bundle_q2e_table(settings, bundle.name))
    frame = rows.features.assign(**{f"rank:{s}": rows.ranks[:, j] for j, s in enumerate(strategies)})
    write_parquet(pa.Table.from_pandas(frame, preserve_index=False), data_path)
    write_json_atomic(meta_path, {"features": list(rows.features.columns), "bundle_id": rows.bundle_id})
    prune(cache, keep)
    return rows
