"""Per-query IR metrics from ranx (well-tested TREC-style implementations, numba-fast), so
every evaluation can pair queries for intervals instead of comparing two means."""

from __future__ import annotations

import warnings

import numpy as np

EMPTY_RUN = "__no_result__"


def per_query(qrels: dict[str, dict[str, int]], ranked: dict[str, list[str]], metric: str) -> dict[str, float]:
    """query id -> ``metric`` of its ranked list (best first) on graded qrels; queries without
    relevant entities are left out."""
    from numba.core.errors import NumbaTypeSafetyWarning
    from ranx import Qrels, Run, evaluate

    warnings.filterwarnings("ignore", category=NumbaTypeSafetyWarning)  # ranx's internal int cast
    qrels = {q: r for q, r in qrels.items() if r}
    if not qrels:
        return {}
    run = Run.from_dict(
        {q: {e: float(len(ranked[q]) - i) for i, e in enumerate(ranked[q])} or {EMPTY_RUN: 0.0} for q in qrels}
    )
    evaluate(Qrels.from_dict(qrels), run, [metric], make_comparable=True)
    return {q: float(v) for q, v in run.scores[metric].items()}


def per_query_array(
    qrels: dict[str, dict[str, int]], ranked: dict[str, list[str]], metric: str, qids: list[str]
) -> np.ndarray:
    """``per_query`` in the order of ``qids`` (every one must have relevant entities)."""
    values = per_query(qrels, ranked, metric)
    return np.array([values[q] for q in qids], dtype=float)
