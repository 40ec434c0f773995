"""``lexical``: BM25 over title, artists, album and tags (bm25s, numba backend).

When query understanding found spelling corrections, the corrected tokens are added to the
BM25 query beside the typed ones ("tayler love" searches "tayler love tyler taylor ayler"):
BM25 then matches the catalog's spelling while an exact typed token still scores.
"""

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
        hits = self.index.search([_expanded(q) for q in queries], k)
        return [Candidates.from_pairs(self.name, pairs) for pairs in hits]


def _expanded(query: Query) -> str:
    understanding = query.understanding
    if understanding is None or not understanding.corrections:
        return query.text
    extra = [c for alternatives in understanding.corrections.values() for c in alternatives]
    return " ".join([query.text, *extra])
