"""Evaluate every strategy and the static fusion on labelled queries.

Metrics come from ranx (well-tested TREC-style implementations, numba-fast) rather than
hand-written code. Output shape: {"n_queries": N, "strategies": {name: {metric: value}}}.
"""

from __future__ import annotations

from typing import Any

from ..config import FusionConfig
from ..retrieval.base import Candidates
from ..retrieval.fusion import fuse
from .datasets import LabelledQueries

HYBRID = "hybrid"
_EMPTY = "__no_result__"


def _run_dict(qids: list[str], results: list[list[tuple[str, float]]]) -> dict[str, dict[str, float]]:
    run = {}
    for qid, pairs in zip(qids, results):
        # ranx orders by score; strictly decreasing pseudo-scores keep each strategy's own order.
        run[qid] = {entity: float(len(pairs) - rank) for rank, (entity, _) in enumerate(pairs)} or {_EMPTY: 0.0}
    return run


def evaluate_runs(
    labelled: LabelledQueries,
    per_strategy: dict[str, list[Candidates]],
    fusion: FusionConfig,
    metrics: list[str],
    depth: int,
) -> dict[str, Any]:
    import warnings

    from numba.core.errors import NumbaTypeSafetyWarning
    from ranx import Qrels, Run, evaluate

    warnings.filterwarnings("ignore", category=NumbaTypeSafetyWarning)  # ranx's internal int cast

    qids = list(labelled.queries)
    qrels = Qrels.from_dict(labelled.qrels)
    ranked: dict[str, list[list[tuple[str, float]]]] = {
        name: [list(zip(c.ids, c.scores))[:depth] for c in candidates]
        for name, candidates in per_strategy.items()
    }
    ranked[HYBRID] = [
        [(f.entity_id, f.score) for f in fuse([per_strategy[n][i] for n in per_strategy], fusion, depth)]
        for i in range(len(qids))
    ]
    scores: dict[str, dict[str, float]] = {}
    for name, results in ranked.items():
        values = evaluate(qrels, Run.from_dict(_run_dict(qids, results)), metrics, make_comparable=True)
        values = values if isinstance(values, dict) else {metrics[0]: values}
        scores[name] = {m: round(float(values[m]), 4) for m in metrics}
    return {"n_queries": len(qids), "strategies": scores}


def evaluate_searcher(searcher, labelled: LabelledQueries, metrics: list[str], depth: int) -> dict[str, Any]:
    texts = [labelled.queries[q] for q in labelled.queries]
    per_strategy = searcher.retrieve_all(texts, depth)
    return evaluate_runs(labelled, per_strategy, searcher.settings.retrieval.fusion, metrics, depth)
