"""Choose the static fusion by measurement, on two halves of the labelled queries.

Each query goes to half 0 or 1 by a hash of its text, so a weight picked on one half can be
checked on the other. Candidates are retrieved once; only the fusion varies. The sweep tunes
on the train part, which the memory index has learned by heart, so ``memory`` is left out of
every fusion here: with it, the train queries would reward whatever trusts memory most.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..config import FusionConfig
from ..labelled.datasets import LabelledQueries
from ..splits import require_train
from .offline import HYBRID, evaluate_runs

METHODS = ("rrf", "combsum")
MEMORISED = ("memory",)  # strategies that have seen the train part
SEMANTIC_WEIGHTS = (1.0, 0.5, 0.3, 0.2, 0.1)
STRUCTURED_WEIGHTS = (0.25, 0.5, 1.0, 1.5)  # with the configured method and semantic weight


def query_half(text: str) -> int:
    return int(hashlib.md5(text.encode("utf-8")).hexdigest(), 16) % 2


def sweep_fusion(searcher, labelled: LabelledQueries, metrics: list[str], depth: int) -> dict[str, Any]:
    require_train(labelled.split, "fusion-sweep")
    qids = list(labelled.queries)
    per_strategy = {
        name: found
        for name, found in searcher.retrieve_all([labelled.queries[q] for q in qids], depth).items()
        if name not in MEMORISED
    }
    report: dict[str, Any] = {}
    for half in (0, 1):
        rows = [i for i, q in enumerate(qids) if query_half(labelled.queries[q]) == half]
        subset = LabelledQueries(
            {qids[i]: labelled.queries[qids[i]] for i in rows}, {qids[i]: labelled.qrels[qids[i]] for i in rows}
        )
        candidates = {name: [results[i] for i in rows] for name, results in per_strategy.items()}
        scores: dict[str, Any] = {"n_queries": len(rows)}
        for method in METHODS:
            for weight in SEMANTIC_WEIGHTS:
                fusion = FusionConfig(
                    method=method,
                    rrf_k=searcher.settings.retrieval.fusion.rrf_k,
                    weights={"lexical": 1.0, "semantic": weight},
                )
                result = evaluate_runs(subset, candidates, fusion, metrics, depth)["strategies"]
                scores[f"{method} semantic={weight}"] = result[HYBRID]
                scores.setdefault("lexical", result["lexical"])
                scores.setdefault("semantic", result["semantic"])
        configured = searcher.settings.retrieval.fusion
        for weight in STRUCTURED_WEIGHTS:
            fusion = configured.model_copy(update={"weights": {**configured.weights, "structured": weight}})
            result = evaluate_runs(subset, candidates, fusion, metrics, depth)["strategies"]
            scores[f"{configured.method} semantic={configured.weights.get('semantic', 1.0)} structured={weight}"] = (
                result[HYBRID]
            )
        report[f"half_{half}"] = scores
    return report
