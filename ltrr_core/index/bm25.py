"""BM25 index over entity fields with bm25s.

Fields are weighted by repeating their tokens (a BM25F approximation bm25s supports without
changes). Tokenisation is ``ltrr_core.text.normalize`` followed by bm25s's tokenizer with the
configured Snowball stemmer and stopword list; the same settings are saved with the index and
used for every query, so indexing and querying cannot drift apart.

The numba backend's scorer is compiled on its first query (about 5 s on 2 cores). bm25s does
not ask numba to cache that compilation, so ``cache_numba_scorer`` turns numba's own on-disk
cache on for bm25s's jitted functions (``Dispatcher.enable_caching``; the cache lives in
``NUMBA_CACHE_DIR``, ``<data_dir>/numba``): the first process compiles once, every later one --
a restarted runtime, a second worker -- loads the compiled code in a fraction of a second.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..config import BM25Config
from ..text import normalize

PARAMS_FILE = "ltrr_bm25.json"
IDS_FILE = "entity_ids.npy"


@dataclass(frozen=True)
class BM25Settings:
    method: str
    k1: float
    b: float
    stemmer: str | None
    stopwords: str | None
    field_weights: dict[str, int]
    backend: str

    @classmethod
    def from_config(cls, config: BM25Config) -> BM25Settings:
        return cls(
            config.method,
            config.k1,
            config.b,
            config.stemmer,
            config.stopwords,
            dict(config.field_weights),
            config.backend,
        )


_SCORER_CACHED = False


def cache_numba_scorer() -> None:
    """Numba's on-disk cache for bm25s's jitted retrieval functions (idempotent)."""
    global _SCORER_CACHED
    if _SCORER_CACHED:
        return
    import bm25s.numba.retrieve_utils as retrieve_utils
    import bm25s.numba.selection as selection
    from numba.core.registry import CPUDispatcher

    for module in (retrieve_utils, selection):
        for function in vars(module).values():
            if isinstance(function, CPUDispatcher):
                function.enable_caching()
    _SCORER_CACHED = True


def weighted_document(fields: dict[str, str], weights: dict[str, int]) -> str:
    return " ".join(" ".join([fields.get(name, "")] * weight) for name, weight in weights.items() if weight > 0)


class BM25Index:
    def __init__(self, settings: BM25Settings, retriever, entity_ids: np.ndarray):
        self.settings = settings
        self.retriever = retriever
        self.entity_ids = entity_ids
        self._stemmer = _make_stemmer(settings.stemmer)

    @classmethod
    def build(cls, entity_ids: list[str], documents: list[str], settings: BM25Settings) -> BM25Index:
        import bm25s

        stemmer = _make_stemmer(settings.stemmer)
        tokens = bm25s.tokenize(
            [normalize(d) for d in documents],
            stopwords=settings.stopwords or [],
            stemmer=stemmer,
            show_progress=False,
        )
        retriever = bm25s.BM25(method=settings.method, k1=settings.k1, b=settings.b, backend=settings.backend)
        retriever.index(tokens, show_progress=False)
        return cls(settings, retriever, np.asarray(entity_ids, dtype=str))

    def _tokenize_queries(self, queries: list[str]):
        import bm25s

        return bm25s.tokenize(
            [normalize(q) for q in queries],
            stopwords=self.settings.stopwords or [],
            stemmer=self._stemmer,
            return_ids=False,
            show_progress=False,
        )

    def search(self, queries: list[str], k: int) -> list[list[tuple[str, float]]]:
        """Top-k (entity id, score) per query; queries with no known token get no results."""
        k = min(k, len(self.entity_ids))
        if self.settings.backend == "numba":
            cache_numba_scorer()  # before the first query compiles the scorer (loaded or built)
        tokenized = self._tokenize_queries(queries)
        vocab = self.retriever.vocab_dict
        results: list[list[tuple[str, float]]] = [[] for _ in queries]
        known = [i for i, toks in enumerate(tokenized) if any(t in vocab for t in toks)]
        if not known or k == 0:
            return results
        docs, scores = self.retriever.retrieve(
            [[t for t in tokenized[i] if t in vocab] for i in known],
            k=k,
            show_progress=False,
            backend_selection=self.settings.backend,
            n_threads=1,
        )
        for row, query_index in enumerate(known):
            results[query_index] = [
                (str(self.entity_ids[d]), float(s)) for d, s in zip(docs[row], scores[row]) if s > 0
            ]
        return results

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.retriever.save(str(directory))
        np.save(directory / IDS_FILE, self.entity_ids, allow_pickle=False)
        (directory / PARAMS_FILE).write_text(json.dumps(asdict(self.settings), indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path, mmap: bool = True) -> BM25Index:
        import bm25s

        settings = BM25Settings(**json.loads((directory / PARAMS_FILE).read_text(encoding="utf-8")))
        retriever = bm25s.BM25.load(str(directory), mmap=mmap)
        retriever.backend = settings.backend
        if settings.backend == "numba":
            retriever.activate_numba_scorer()
        entity_ids = np.load(directory / IDS_FILE, allow_pickle=False)
        return cls(settings, retriever, entity_ids)


def _make_stemmer(language: str | None):
    if not language:
        return None
    import Stemmer

    return Stemmer.Stemmer(language)
