"""``memory``: the Q2E table as a retrieval strategy.

Looks the normalised query up exactly, then among near-duplicate logged/predicted queries;
scores are the blended Q2E scores times the match quality, which also goes into
``Candidates.meta`` as a feature for the bandit and the ranker.
"""

from __future__ import annotations

from ..memory import MemoryIndex
from .base import Candidates, Query


class MemoryStrategy:
    def __init__(self, index: MemoryIndex, predicted_only: bool = False, name: str = "memory"):
        self.index = index
        self.predicted_only = predicted_only
        self.name = name

    def retrieve(self, query: Query, k: int) -> Candidates:
        normalised = query.understanding.normalised if query.understanding else query.normalized
        pairs, meta = self.index.lookup(normalised, k, predicted_only=self.predicted_only)
        return Candidates.from_pairs(self.name, pairs, meta)
