"""Predicted Q2E rows: run the configured generators, normalise, filter, deduplicate."""

from __future__ import annotations

import pandas as pd

from ..text import normalize
from .base import COLUMNS, Q2EGenerator, empty
from .filtering import RelevanceFilter


def predict_q2e(
    entities: pd.DataFrame, generators: list[Q2EGenerator], relevance: RelevanceFilter | None = None
) -> tuple[pd.DataFrame, dict]:
    """(entity_id, query, score, generator) rows, one per (query, entity) with its best score."""
    frames = [g.generate(entities) for g in generators]
    generated = pd.concat([f for f in frames if not f.empty] or [empty()], ignore_index=True)
    report: dict = {"generated": {g.name: int(len(f)) for g, f in zip(generators, frames)}}
    generated["query"] = generated["query"].map(normalize)
    generated = generated[generated["query"] != ""]
    if relevance is not None:
        generated, report["doc2query_minus"] = relevance.apply(generated)
    best = (
        generated.sort_values("score", ascending=False, kind="stable")
        .drop_duplicates(["query", "entity_id"])
        .reset_index(drop=True)
    )
    report["kept"] = int(len(best))
    return best[COLUMNS], report
