"""``semantic``: all-MiniLM-L6-v2 query embedding (ONNX int8 by default, see
``ltrr_core.index.query_encoder``), nearest entities by dot product with their blended name /
whole-text vectors (``ltrr_core.index.documents.EmbeddingText``), at most ``vector.max_per_type``
of each capped entity type. The vectors are searched through the build's HNSW graphs
(``ltrr_core.index.graph``) or Lance's own index (``vector.serving_index``)."""

from __future__ import annotations

from ..index.query_encoder import TextEncoder
from ..index.vector import VectorSearch
from .base import Candidates, Query


class SemanticStrategy:
    name = "semantic"

    def __init__(self, vectors: VectorSearch, encoder: TextEncoder):
        self.vectors = vectors
        self.encoder = encoder

    def retrieve(self, query: Query, k: int) -> Candidates:
        return self.retrieve_batch([query], k)[0]

    def retrieve_batch(self, queries: list[Query], k: int) -> list[Candidates]:
        vectors = self.encoder.encode([q.text for q in queries])
        return [Candidates.from_pairs(self.name, self.vectors.search(vector, k)) for vector in vectors]
