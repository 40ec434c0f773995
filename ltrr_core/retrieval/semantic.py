"""``semantic``: all-MiniLM-L6-v2 query embedding (ONNX int8 by default, see
``ltrr_core.index.query_encoder``), nearest entities in the Lance table by dot product with their
blended name / whole-text vectors (``ltrr_core.index.documents.EmbeddingText``), at most
``vector.max_per_type`` of each capped entity type."""

from __future__ import annotations

from ..config import VectorConfig
from ..index.query_encoder import TextEncoder
from ..index.vector import search_capped
from .base import Candidates, Query


class SemanticStrategy:
    name = "semantic"

    def __init__(self, table, encoder: TextEncoder, config: VectorConfig):
        self.table = table
        self.encoder = encoder
        self.config = config

    def retrieve(self, query: Query, k: int) -> Candidates:
        return self.retrieve_batch([query], k)[0]

    def retrieve_batch(self, queries: list[Query], k: int) -> list[Candidates]:
        vectors = self.encoder.encode([q.text for q in queries])
        return [
            Candidates.from_pairs(self.name, search_capped(self.table, vector, k, self.config)) for vector in vectors
        ]
