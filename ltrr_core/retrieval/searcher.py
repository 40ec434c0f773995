"""Hybrid search over a published index build: every strategy, then the union with fusion.

This is the first-search path of the CLI and of offline evaluation; the query runtime builds
on the same strategies once the bundle exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .. import schema as S
from ..config import Settings
from ..index.bm25 import BM25Index
from ..index.build import current_build
from ..index.vector import open_db
from .base import Candidates, Query, RetrievalStrategy, SupportsBatchRetrieve
from .fusion import FusedCandidate, fuse
from .lexical import LexicalStrategy
from .semantic import SemanticStrategy


@dataclass
class SearchResult:
    query: Query
    per_strategy: dict[str, Candidates]
    fused: list[FusedCandidate]


class HybridSearcher:
    def __init__(self, strategies: list[RetrievalStrategy], settings: Settings):
        self.strategies = {s.name: s for s in strategies}
        self.settings = settings

    def search(self, text: str, k: int | None = None, context: dict[str, Any] | None = None) -> SearchResult:
        k = k or self.settings.retrieval.k
        query = Query(text, context or {})
        per_strategy = {name: s.retrieve(query, k) for name, s in self.strategies.items()}
        return SearchResult(query, per_strategy, fuse(list(per_strategy.values()), self.settings.retrieval.fusion, k))

    def retrieve_all(self, texts: list[str], k: int) -> dict[str, list[Candidates]]:
        """Every strategy on every query (batched where a strategy supports it)."""
        queries = [Query(t) for t in texts]
        out = {}
        for name, strategy in self.strategies.items():
            if isinstance(strategy, SupportsBatchRetrieve):
                out[name] = strategy.retrieve_batch(queries, k)
            else:
                out[name] = [strategy.retrieve(q, k) for q in queries]
        return out


def load_strategies(settings: Settings, build_dir: Path, manifest: dict[str, Any]) -> list[RetrievalStrategy]:
    from ..index.encoder import Encoder

    lexical = LexicalStrategy(BM25Index.load(build_dir / "bm25"))
    vectors = manifest["vectors"]
    table = open_db(settings.data_dir / "indexes" / "lance").open_table(vectors["table"])
    table.checkout(vectors["table_version"])
    semantic = SemanticStrategy(table, Encoder(settings.embedding), settings.vector)
    return [lexical, semantic]


def load_searcher(settings: Settings) -> HybridSearcher:
    build_dir, manifest = current_build(settings)
    return HybridSearcher(load_strategies(settings, build_dir, manifest), settings)


def entity_lookup(settings: Settings, version: str | None = None) -> pd.DataFrame:
    """Catalog rows indexed by id, for showing results."""
    from ..catalog.store import CatalogStore

    columns = [S.ID, S.TYPE, S.TITLE, S.ARTISTS, S.ALBUM, S.GENRES, S.VERSION_TYPES, S.POPULARITY]
    table = CatalogStore(settings.data_dir / "catalog").load_table(version).select(columns)
    return table.to_pandas().set_index(S.ID)
