"""Learned from the logs: the queries people used for entities like this one.

For each entity e and each logged query q (with the entities people engaged with for it):

    score(q, e) = (1 - s) * cos(q, e) + s * cos(centroid of q's engaged entities, e)

in the MiniLM space the vector index already holds (s = ``engagement_share``), times a
frequency weight 0.5 + 0.5 * log1p(n_engaged(q)) / log1p(max): a query engaged with once
keeps half its similarity, the most engaged query all of it. The first term proposes queries that
describe e; the second, queries whose engaged entities resemble e ("what they engaged
with"). The top ``queries_per_entity`` above ``min_score`` are kept. Entities are processed in
chunks so memory stays at chunk x n_queries floats.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import schema as S
from ..config import NeighbourConfig
from .base import COLUMNS, empty


class LoggedQueryNeighbourGenerator:
    name = "log_neighbours"

    def __init__(
        self,
        config: NeighbourConfig,
        queries: list[str],
        query_vectors: np.ndarray,
        engaged_centroids: np.ndarray,
        engagement: np.ndarray,
        entity_vectors,
    ):
        """``entity_vectors(ids) -> (n, d)`` unit vectors; rows of zeros for unknown ids."""
        self.config = config
        self.queries = np.asarray(queries, dtype=object)
        self.query_vectors = _unit(query_vectors)
        self.centroids = _unit(engaged_centroids)
        self.frequency = 0.5 + 0.5 * np.log1p(engagement) / max(np.log1p(engagement.max(initial=0.0)), 1e-9)
        self.entity_vectors = entity_vectors

    def generate(self, entities: pd.DataFrame) -> pd.DataFrame:
        if not len(self.queries) or entities.empty:
            return empty()
        ids = entities[S.ID].to_numpy(dtype=object)
        share, top_n = self.config.engagement_share, self.config.queries_per_entity
        frames = []
        for start in range(0, len(ids), self.config.chunk_size):
            chunk = ids[start : start + self.config.chunk_size]
            vectors = _unit(self.entity_vectors(list(chunk)))
            scores = (1 - share) * vectors @ self.query_vectors.T + share * vectors @ self.centroids.T
            scores *= self.frequency[None, :]
            best = np.argsort(-scores, axis=1)[:, :top_n]
            picked = np.take_along_axis(scores, best, axis=1)
            rows, cols = np.nonzero(picked >= self.config.min_score)
            frames.append(
                pd.DataFrame(
                    {
                        "entity_id": chunk[rows],
                        "query": self.queries[best[rows, cols]],
                        "score": np.clip(picked[rows, cols], 0.0, 1.0),
                        "generator": self.name,
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)[COLUMNS] if frames else empty()


def _unit(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)
