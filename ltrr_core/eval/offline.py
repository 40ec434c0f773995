"""Evaluate every strategy and the static fusion on labelled queries.

Metrics come from ranx (well-tested TREC-style implementations, numba-fast) rather than
hand-written code. Output shape: {"n_queries": N, "strategies": {name: {metric: value}}}.
"""

from __future__ import annotations

from typing import Any

from ..config import FusionConfig
from ..labelled.datasets import LabelledQueries
from ..retrieval.base import Candidates
from ..retrieval.fusion import fuse

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
    diagnostics: dict[str, list[Candidates]] | None = None,
    baselines: dict[str, FusionConfig] | None = None,
) -> dict[str, Any]:
    """Every strategy, their fusion (``hybrid``), other fusions of the same strategies to compare it
    with (``baselines``, e.g. equal-weight RRF), and diagnostic runs that are scored but not fused."""
    import warnings

    from numba.core.errors import NumbaTypeSafetyWarning
    from ranx import Qrels, Run, evaluate

    warnings.filterwarnings("ignore", category=NumbaTypeSafetyWarning)  # ranx's internal int cast

    qids = list(labelled.queries)
    qrels = Qrels.from_dict(labelled.qrels)
    ranked: dict[str, list[list[tuple[str, float]]]] = {
        name: [list(zip(c.ids, c.scores))[:depth] for c in candidates] for name, candidates in per_strategy.items()
    }
    ranked[HYBRID] = [
        [(f.entity_id, f.score) for f in fuse([per_strategy[n][i] for n in per_strategy], fusion, depth)]
        for i in range(len(qids))
    ]
    for name, baseline in (baselines or {}).items():
        ranked[name] = [
            [(f.entity_id, f.score) for f in fuse([per_strategy[n][i] for n in per_strategy], baseline, depth)]
            for i in range(len(qids))
        ]
    for name, candidates in (diagnostics or {}).items():
        ranked[name] = [list(zip(c.ids, c.scores))[:depth] for c in candidates]
    scores: dict[str, dict[str, float]] = {}
    for name, results in ranked.items():
        values = evaluate(qrels, Run.from_dict(_run_dict(qids, results)), metrics, make_comparable=True)
        values = values if isinstance(values, dict) else {metrics[0]: values}
        scores[name] = {m: round(float(values[m]), 4) for m in metrics}
    return {"n_queries": len(qids), "strategies": scores}


COLD_START = "memory_predicted_only"


def evaluate_searcher(
    searcher,
    labelled: LabelledQueries,
    metrics: list[str],
    depth: int,
    baselines: dict[str, FusionConfig] | None = None,
) -> dict[str, Any]:
    """All strategies, their fusion and the ``baselines`` fusions; with a memory index, also its
    cold start: the same lookup scored by predicted Q2E alone, as if no engagement had been observed."""
    queries = [searcher.query(labelled.queries[q]) for q in labelled.queries]
    per_strategy = searcher.retrieve_queries(queries, depth)
    diagnostics = {}
    memory = searcher.strategies.get("memory")
    if memory is not None:
        from ..retrieval.memory import MemoryStrategy

        cold = MemoryStrategy(memory.index, predicted_only=True, name=COLD_START)
        diagnostics[COLD_START] = [cold.retrieve(q, depth) for q in queries]
    fusion = searcher.settings.retrieval.fusion
    result = evaluate_runs(labelled, per_strategy, fusion, metrics, depth, diagnostics, baselines)
    if searcher.understander is not None:
        intents = [_main_intent(q.understanding) for q in queries]
        result["by_intent"] = {
            intent: evaluate_runs(*_subset(labelled, per_strategy, intents, intent), fusion, metrics, depth)
            for intent in sorted(set(intents))
        }
    if memory is not None:
        result["cold_start"] = _cold_start(labelled, diagnostics[COLD_START], per_strategy["memory"], depth)
    return result


def _main_intent(understanding) -> str:
    return max(understanding.intent, key=understanding.intent.get)


def _subset(
    labelled: LabelledQueries, per_strategy: dict[str, list[Candidates]], intents: list[str], intent: str
) -> tuple[LabelledQueries, dict[str, list[Candidates]]]:
    """The queries QU reads as ``intent`` (most likely intent), for a per-intent breakdown."""
    qids = list(labelled.queries)
    keep = [i for i, value in enumerate(intents) if value == intent]
    part = LabelledQueries(
        {qids[i]: labelled.queries[qids[i]] for i in keep}, {qids[i]: labelled.qrels[qids[i]] for i in keep}
    )
    return part, {n: [c[i] for i in keep] for n, c in per_strategy.items()}


def _cold_start(
    labelled: LabelledQueries, predicted_only: list[Candidates], blended: list[Candidates], depth: int
) -> dict[str, Any]:
    """Share of queries whose relevant entity the memory index reaches (within depth)."""

    def reached(runs: list[Candidates]) -> float:
        hits = [bool(set(c.ids[:depth]) & set(labelled.qrels[q])) for q, c in zip(labelled.queries, runs)]
        return round(sum(hits) / max(len(hits), 1), 4)

    exact = sum(c.meta.get("match") == "exact" for c in blended)
    fuzzy = sum(c.meta.get("match") == "fuzzy" for c in blended)
    return {
        "share_reached_predicted_only": reached(predicted_only),
        "share_reached_blended": reached(blended),
        "query_match": {"exact": exact, "fuzzy": fuzzy, "none": len(blended) - exact - fuzzy},
    }
