"""Hybrid search over a published index build: every strategy, then the union with fusion.

This is the first-search path of the CLI and of offline evaluation; the query runtime builds
on the same strategies once the bundle exists.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .. import schema as S
from ..config import Settings
from ..index.bm25 import BM25Index
from ..index.build import current_build
from ..index.encoder import serving_encoder
from ..index.graph import GRAPH_DIR, VectorGraph
from ..index.vector import LanceVectors, VectorSearch, open_vectors
from .base import Candidates, Query, RetrievalStrategy, SupportsBatchRetrieve
from .fusion import FusedCandidate, fuse
from .lexical import LexicalStrategy
from .semantic import SemanticStrategy

_log = logging.getLogger("ltrr.search")


@dataclass
class SearchResult:
    query: Query
    per_strategy: dict[str, Candidates]
    fused: list[FusedCandidate]


class HybridSearcher:
    def __init__(self, strategies: list[RetrievalStrategy], settings: Settings, understander=None):
        self.strategies = {s.name: s for s in strategies}
        self.settings = settings
        self.understander = understander

    def query(self, text: str, context: dict[str, Any] | None = None) -> Query:
        """A Query with its understanding computed once; InvalidQuery for unsearchable input."""
        understanding = self.understander.understand(text) if self.understander else None
        return Query(text, context or {}, understanding)

    def search(self, text: str, k: int | None = None, context: dict[str, Any] | None = None) -> SearchResult:
        k = k or self.settings.retrieval.k
        query = self.query(text, context)
        per_strategy = {name: s.retrieve(query, k) for name, s in self.strategies.items()}
        return SearchResult(query, per_strategy, fuse(list(per_strategy.values()), self.settings.retrieval.fusion, k))

    def retrieve_all(self, texts: list[str], k: int) -> dict[str, list[Candidates]]:
        """Every strategy on every query (batched where a strategy supports it)."""
        return self.retrieve_queries([self.query(t) for t in texts], k)

    def retrieve_queries(self, queries: list[Query], k: int) -> dict[str, list[Candidates]]:
        """As retrieve_all, for queries already understood (evaluation reuses their QU)."""
        out = {}
        for name, strategy in self.strategies.items():
            if isinstance(strategy, SupportsBatchRetrieve):
                out[name] = strategy.retrieve_batch(queries, k)
            else:
                out[name] = [strategy.retrieve(q, k) for q in queries]
        return out


@dataclass(frozen=True)
class ServingPaths:
    """Where each strategy's index lives: an index build + Q2E version, or a bundle."""

    bm25: Path
    qu: Path
    q2e: Path | None  # None: no Q2E table yet (memory is not loaded)
    lance_dir: Path
    lance_table: str
    lance_version: int
    query_encoder: Path | None = None  # None or missing: queries are encoded by the torch model
    vector_graph: Path | None = None  # None or missing: Lance's own index answers ``semantic``

    @classmethod
    def of_current_build(cls, settings: Settings) -> ServingPaths:
        from ..memory import Q2ENotBuilt
        from ..memory.build import q2e_store

        build_dir, manifest = current_build(settings)
        q2e = None
        if "memory" in settings.retrieval.strategies:
            try:
                q2e = q2e_store(settings).path() / "q2e.parquet"
            except Q2ENotBuilt as missing:
                _log.warning("no memory index: %s", missing)
        vectors = manifest["vectors"]
        return cls(
            build_dir / "bm25",
            build_dir / "qu",
            q2e,
            settings.data_dir / "indexes" / "lance",
            vectors["table"],
            int(vectors["table_version"]),
            build_dir / "query_encoder",
            build_dir / GRAPH_DIR,
        )


def _lexical(settings: Settings, paths: ServingPaths, understander) -> RetrievalStrategy:
    return LexicalStrategy(BM25Index.load(paths.bm25))


def _semantic(settings: Settings, paths: ServingPaths, understander) -> RetrievalStrategy:
    return SemanticStrategy(
        vector_search(settings, paths), serving_encoder(settings.embedding, settings.runtime, paths.query_encoder)
    )


def vector_search(settings: Settings, paths: ServingPaths) -> VectorSearch:
    """The build's or bundle's HNSW graphs (``vector.serving_index: graph``), else Lance's index; a
    build from before the graphs existed is served by Lance."""
    graph = paths.vector_graph
    if settings.vector.serving_index == "graph" and graph is not None and graph.is_dir():
        opened = VectorGraph.open(graph, settings.vector)
        if opened.spec.lance_table_version != paths.lance_version:
            raise ValueError(
                f"{graph}: the graphs were built from version {opened.spec.lance_table_version} of the vector "
                f"table, this build or bundle pins version {paths.lance_version}; rebuild the indexes"
            )
        return opened
    if settings.vector.serving_index == "graph":
        _log.warning("%s: no vector graph in this build; Lance's index answers semantic", graph)
    return LanceVectors(open_vectors(paths.lance_dir, paths.lance_table, paths.lance_version), settings.vector)


def _structured(settings: Settings, paths: ServingPaths, understander) -> RetrievalStrategy:
    from ..query.resources import read_resources
    from .structured import StructuredIndex, StructuredStrategy

    fields, _ = read_resources(paths.qu)
    return StructuredStrategy(StructuredIndex(fields), understander, settings.structured)


def _memory(settings: Settings, paths: ServingPaths, understander) -> RetrievalStrategy | None:
    from ..memory import MemoryIndex
    from .memory import MemoryStrategy

    if paths.q2e is None:
        return None
    return MemoryStrategy(MemoryIndex(pd.read_parquet(paths.q2e), settings.memory))


# Adding a strategy: write it behind RetrievalStrategy, register its loader here, name it in
# retrieval.strategies.
STRATEGY_LOADERS = {"lexical": _lexical, "semantic": _semantic, "structured": _structured, "memory": _memory}


def load_strategies(settings: Settings, paths: ServingPaths, understander=None) -> list[RetrievalStrategy]:
    loaded = [STRATEGY_LOADERS[name](settings, paths, understander) for name in settings.retrieval.strategies]
    return [strategy for strategy in loaded if strategy is not None]


def load_searcher(settings: Settings) -> HybridSearcher:
    paths = ServingPaths.of_current_build(settings)
    # A build without QU resources (a BEIR corpus, an older build) serves without QU.
    from ..query import load_understander

    understander = load_understander(paths.qu, settings) if paths.qu.is_dir() else None
    return HybridSearcher(load_strategies(settings, paths, understander), settings, understander)


def describe_result(candidate: FusedCandidate, row: Any) -> dict[str, Any]:
    """A fused result as shown to callers (CLI JSON, HTTP): the entity and who found it."""
    return {
        "entity_id": candidate.entity_id,
        "type": None if row is None else row["type"],
        "title": None if row is None else row["title"],
        "artists": [] if row is None or row["artists"] is None else list(row["artists"]),
        "strategies": [{"name": s, "rank": r, "score": round(sc, 6)} for s, (r, sc) in candidate.found_by.items()],
        "score": round(candidate.score, 6),
    }


def entity_lookup(settings: Settings, version: str | None = None) -> pd.DataFrame:
    """Catalog rows indexed by id, for showing results."""
    from ..catalog.store import CatalogStore

    columns = [S.ID, S.TYPE, S.TITLE, S.ARTISTS, S.ALBUM, S.GENRES, S.VERSION_TYPES, S.POPULARITY]
    table = CatalogStore(settings.data_dir / "catalog").load_table(version).select(columns)
    return table.to_pandas().set_index(S.ID)
