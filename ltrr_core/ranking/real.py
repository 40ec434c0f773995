"""Ranking data from real engagement: the CPCD ``train`` searches, the platform's own candidates
for them, and what the people liked as labels.

CPCD's ``search_results_labeled`` shows, for each search of a conversation, the tracks the person
saw and which they liked. For every distinct ``train`` query with a like, the candidates come from
the serving path itself (``SearchService.retrieve_plan`` with every strategy at
``ranker.real.depth``, fused, the top ``ranker.rerank_depth``), and their features from the one
feature function serving uses (``SearchService.ranking_features``), so a ranker fitted here sees
at training time exactly what it sees when it serves. Labels follow the rule of every labelled
evaluation (``ltrr_core.labelled.labels``): a liked track 2, its artist entity 1, anything else 0.

Only ``train`` conversations are read (``ltrr_core.splits``); a stable hash of the query text puts
``ranker.real.validation_share`` of them aside to validate (early stopping, loss choice and the
ranker gate). The memory index was built from these very searches and would be a perfect, and
misleading, feature: cross-fitted (``ranker.real.memory``), each query is one group per fold of
the conversations that liked something for it, labelled by that fold's likes and retrieved with
the memory of the other folds (``learning_data.fold_services``) -- what a held-out query meets.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from ..config import Settings
from ..durable import write_json_atomic, write_parquet
from ..features.policy import policy_features
from ..features.ranking import FEATURE_SPEC_VERSION, feature_names
from ..labelled.datasets import LabelledQueries
from ..learning_data import (
    bundle_q2e_table,
    fold_services,
    folded_train_queries,
    is_validation,
    memory_cross_fitted,
    prune,
    query_fold,
    query_text,
    retrieval_key,
    served_strategies,
    train_queries,
)
from ..models.policy import greedy_decision
from ..retrieval.base import Query
from .dataset import KEYS

DAY = "real:cpcd-train"  # the ``day`` key of real rows: they come from no logged day
POOL_MARK = "|pool="  # between a real query and the name of one of its pools in a group id


@dataclass
class RealEngagementSet:
    """Fused candidate pools of real train queries with features and graded labels."""

    fit: pd.DataFrame  # KEYS + randomized + features + grade + clicked + label
    validation: pd.DataFrame
    features: list[str]
    validation_qrels: dict[str, dict[str, int]]  # request id -> graded labels (the whole set, not the pool)
    plan: dict[str, int]
    bundle_id: str

    def summary(self) -> dict[str, Any]:
        def counts(frame: pd.DataFrame) -> dict[str, int]:
            return {
                "queries": int(query_ids(frame).nunique()),  # (text, memory fold) groups when cross-fitted
                "texts": int(query_ids(frame).map(query_text).nunique()),
                "pools": int(frame["request_id"].nunique()),
                "rows": len(frame),
            }

        return {
            "source": "CPCD train searches with a like",
            "bundle_id": self.bundle_id,
            "plan": self.plan,
            "fit": counts(self.fit),
            "validation": counts(self.validation),
        }


def query_ids(frame: pd.DataFrame) -> pd.Series:
    """The real query of each row (``cpcd:<query>``), whichever of its pools the row is in."""
    return frame["request_id"].str.replace(rf"{re.escape(POOL_MARK)}[a-z]+$", "", regex=True)


def candidate_plan(settings: Settings, strategies: list[str]) -> dict[str, int]:
    return {name: settings.ranker.real.depth for name in served_strategies(strategies, settings.ranker.real.memory)}


def query_rows(
    service: Any, query_id: str, text: str, graded: dict[str, int], plan: dict[str, int], pools: list[str]
) -> list[list[Any]]:
    """One query's pools through the serving path: rows of KEYS + randomized + features + grade.

    Each strategy of ``plan`` is run once; ``wide`` fuses them all at the plan's depth, ``served``
    cuts them to the greedy plan the bundle's policy picks for the query (its context is the query
    with the memory probe of ``service``, whose memory is the fold's when cross-fitted), so the
    ranker also learns on pools like the ones it re-orders when it serves. A strategy's top d is
    taken as the prefix of its top ``ranker.real.depth`` (exact for lexical and semantic;
    structured search may relax its filters differently at another depth)."""
    understanding = service.understander.understand(text)
    query = Query(text, {}, understanding)
    found = {
        name: service.strategies[name].retrieve(query, depth)
        for name, depth in plan.items()
        if name in service.strategies
    }
    depths = {"wide": plan}
    if "served" in pools:
        probe = found["memory"].prefix(1) if "memory" in found else None
        decision = greedy_decision(service.policy, policy_features(understanding, {}, probe))
        depths["served"] = {n: min(d, plan[n]) for n, d in decision.depths.items() if n in plan}
    rows = []
    for pool_name in pools:
        fused, per_strategy = service.fuse_plan(found, depths[pool_name])
        pool = fused[: service.settings.ranker.rerank_depth]
        values = service.ranking_features(understanding.to_dict(), {}, per_strategy, pool)
        request_id = request_of(query_id, pool_name)
        rows += [
            [request_id, DAY, position, c.entity_id, text, False, *row, float(graded.get(c.entity_id, 0))]
            for position, (c, row) in enumerate(zip(pool, values.tolist()), start=1)
        ]
    return rows


def request_of(query_id: str, pool: str) -> str:
    """The group id of one pool of one real query (``cpcd:<query>`` for the wide pool)."""
    return f"cpcd:{query_id}" if pool == "wide" else f"cpcd:{query_id}{POOL_MARK}{pool}"


def real_engagement_set(
    settings: Settings, service: Any, labelled: LabelledQueries | None = None, q2e_table: pd.DataFrame | None = None
) -> RealEngagementSet:
    """The real ranking data over ``service``'s bundle. ``labelled`` defaults to the project's CPCD
    ``train`` part; another part is refused (``splits.require_train``). Cross-fitting the memory
    needs the project's own conversations and the bundle's Q2E table (``q2e_table``, else read
    from the bundle); with ``labelled`` given the memory is left out."""
    folded = labelled is None and memory_cross_fitted(list(service.strategies), settings.ranker.real.memory)
    plan = candidate_plan(settings, list(service.strategies))
    if folded:
        queries = folded_train_queries(settings, service.display)
        table = q2e_table if q2e_table is not None else bundle_q2e_table(settings, service.bundle_id)
        services = fold_services(settings, service, table)
    else:
        queries = train_queries(settings, service.display, labelled)
        plan.pop("memory", None)
        services = {}
    graded = queries.qrels
    names = feature_names(sorted(settings.retrieval.strategies))
    pools: list[str] = list(settings.ranker.real.pools)
    records: list[list[Any]] = []
    for query_id, grades in graded.items():
        fold = query_fold(query_id)
        server = services[fold] if fold is not None else service
        records += query_rows(server, query_id, queries.queries[query_id], grades, plan, pools)
    frame = pd.DataFrame(records, columns=[*KEYS, "randomized", *names, "grade"])
    frame["clicked"] = (frame["grade"] >= settings.eval.liked_track_grade).astype(float)
    frame["label"] = frame["grade"]
    # The gate judges the pools the ranker will re-order: the served ones when they are built.
    judged = "served" if "served" in pools else "wide"
    held = {q for q in graded if is_validation(query_text(q), settings)}
    validation = {request_of(q, judged): graded[q] for q in held}
    validating = query_ids(frame).isin({f"cpcd:{q}" for q in held}).to_numpy()
    return RealEngagementSet(
        frame[~validating].reset_index(drop=True),
        frame[validating].reset_index(drop=True),
        names,
        validation,
        plan,
        service.bundle_id,
    )


def cached_real_engagement_set(
    settings: Settings, bundle: Path, load_bundle: Callable[[str], Any], cache: Path, keep: int = 3
) -> RealEngagementSet:
    """``real_engagement_set`` over ``bundle``, cached under ``cache`` by ``learning_data.retrieval_key``: a night whose
    retrieval did not change (a new policy or Q2E table only) reuses the pools instead of running
    every train query again. Written atomically; the newest ``keep`` sets are kept."""
    key = retrieval_key(
        settings,
        bundle,
        settings.ranker.real.memory,
        "ranker pools",
        FEATURE_SPEC_VERSION,
        settings.ranker.rerank_depth,
        *(_policy_files(bundle) if "served" in settings.ranker.real.pools else ()),
    )
    frame_path, meta_path = cache / f"{key}.parquet", cache / f"{key}.json"
    if frame_path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        frame = pd.read_parquet(frame_path)
        validation_queries = {r.split(POOL_MARK)[0] for r in meta["validation_qrels"]}
        validating = query_ids(frame).isin(validation_queries).to_numpy()
        return RealEngagementSet(
            frame[~validating].reset_index(drop=True),
            frame[validating].reset_index(drop=True),
            meta["features"],
            meta["validation_qrels"],
            meta["plan"],
            meta["bundle_id"],
        )
    real = real_engagement_set(settings, load_bundle(bundle.name), q2e_table=bundle_q2e_table(settings, bundle.name))
    write_parquet(
        pa.Table.from_pandas(pd.concat([real.fit, real.validation], ignore_index=True), preserve_index=False),
        frame_path,
    )
    write_json_atomic(
        meta_path,
        {
            "features": real.features,
            "validation_qrels": real.validation_qrels,
            "plan": real.plan,
            "bundle_id": real.bundle_id,
        },
    )
    prune(cache, keep)
    return real


def _policy_files(bundle: Path) -> list[tuple[str, str]]:
    """The served pools follow the bundle's policy: its files join the cache key."""
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    return sorted((n, d) for n, d in manifest["files"].items() if n.startswith("policy/"))
