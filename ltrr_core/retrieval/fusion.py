"""Union of candidates from several strategies, with provenance, and a static fusion score.

Reciprocal-rank fusion (RRF) needs no score calibration between BM25 and cosine, which is why
it is the default; weighted CombSUM over min-max normalised scores is the alternative. This is
the one fusion code path for search and evaluation (ranx's ``fuse`` works on whole Run
objects, too heavy for a per-query serving path).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..config import FusionConfig
from .base import Candidates


@dataclass
class FusedCandidate:
    entity_id: str
    score: float
    # strategy -> (rank starting at 1, the strategy's own score)
    found_by: dict[str, tuple[int, float]] = field(default_factory=dict)


def fuse(results: list[Candidates], config: FusionConfig, k: int | None = None) -> list[FusedCandidate]:
    fused: dict[str, FusedCandidate] = {}
    for candidates in results:
        weight = config.weights.get(candidates.strategy, 1.0)
        if not len(candidates):
            continue
        if config.method == "combsum":
            top, bottom = max(candidates.scores), min(candidates.scores)
            span = (top - bottom) or 1.0
        for rank, (entity_id, score) in enumerate(zip(candidates.ids, candidates.scores), start=1):
            if config.method == "rrf":
                contribution = weight / (config.rrf_k + rank)
            else:
                contribution = weight * (score - bottom) / span
            entry = fused.setdefault(entity_id, FusedCandidate(entity_id, 0.0))
            entry.score += contribution
            entry.found_by[candidates.strategy] = (rank, score)
    ranked = sorted(fused.values(), key=lambda c: (-c.score, c.entity_id))
    return ranked[:k] if k else ranked
