"""``lexical``: BM25 over title, artists, album and tags (bm25s, numba backend)."""

from __future__ import annotations

from ..index.bm25 import BM25Index
from .base import Candidates, Query


class LexicalStrategy:
    name = "lexical"

    def __init__(self, index: BM25Index):
        self.index = index

    def retrieve(self, query: Query, k: int) -> Candidates:
        return self.retrieve_batch([query], k)[0]

    def retrieve_batch(self, queries: list[Query], k: int) -> list[Candidates]:
        hits = self.index.search([q.text for q in queries], k)
        return [Candidates.from_pairs(self.name, pairs) for pairs in hits]
