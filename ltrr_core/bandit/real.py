"""Real engagement for the retrieval policy: which plan finds what people liked, on real queries.

For each CPCD ``train`` search with a like (``ltrr_core.learning_data``), every strategy of the
plan grid is run ``bandit.learner.replay_depth`` deep on the reference bundle and the best rank of
any liked track is recorded -- the same counterfactual replay as for logged requests, with the
liked set as the engaged entities. Every plan's label (do its candidates hold a liked track?)
then follows exactly, so these rows are full-information training rows beside the logged ones.
Their context is the query alone (no hour, no profile), computed by the serving feature function
without a memory probe, and the memory strategy, excluded (``ranker.real.exclude_strategies``:
it was built from these very searches), never hits on them. They train; they never enter the
off-policy estimate, which stays on logged requests.
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
from ..learning_data import prune, retrieval_key, served_strategies, train_queries
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


def real_plan_rows(settings: Settings, service: Any, strategies: list[str]) -> RealPlanRows:
    queries = train_queries(settings, service.display)
    texts = [queries.queries[q] for q in queries.qrels]
    wanted = [
        {e for e, g in grades.items() if g >= settings.eval.liked_track_grade} for grades in queries.qrels.values()
    ]
    replayed = [s if s in served_strategies(settings, strategies) else "" for s in strategies]
    ranks = training.replay_ranks(service, texts, wanted, replayed, settings.bandit.learner.replay_depth)
    features = pd.DataFrame([policy_features(service.understander.understand(t), {}, None) for t in texts])
    return RealPlanRows(features, ranks, strategies, service.bundle_id)


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
        settings, bundle, "policy replay", FEATURE_VERSION, strategies, settings.bandit.learner.replay_depth
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
    rows = real_plan_rows(settings, load_bundle(bundle.name), strategies)
    frame = rows.features.assign(**{f"rank:{s}": rows.ranks[:, j] for j, s in enumerate(strategies)})
    write_parquet(pa.Table.from_pandas(frame, preserve_index=False), data_path)
    write_json_atomic(meta_path, {"features": list(rows.features.columns), "bundle_id": rows.bundle_id})
    prune(cache, keep)
    return rows
