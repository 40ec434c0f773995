"""The one interface every retrieval strategy implements.

``retrieve(query, k) -> Candidates``: a strategy gets the query (raw text, its normalised form
and the request context) and returns at most k entity ids with scores, best first. Batch
retrieval is a separate optional capability (``SupportsBatchRetrieve``), used by offline
evaluation, never required from a strategy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..text import normalize

if TYPE_CHECKING:
    from ..query import QueryUnderstanding


@dataclass(frozen=True)
class Query:
    text: str
    context: dict[str, Any] = field(default_factory=dict)
    # Query understanding, computed once per request by whoever owns the request (searcher,
    # runtime) and shared by the strategies that read it; a strategy that needs it and finds
    # None computes it itself.
    understanding: QueryUnderstanding | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text.strip():
            raise ValueError(f"a query needs non-empty text, got {self.text!r}")

    @property
    def normalized(self) -> str:
        return normalize(self.text)


@dataclass(frozen=True)
class Candidates:
    """One strategy's answer to one query: ids and scores, best first (rank = position)."""

    strategy: str
    ids: tuple[str, ...]
    scores: tuple[float, ...]
    # Strategy-level facts worth logging and learning from (e.g. the memory index's match
    # quality, how many filters structured search had to relax).
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.scores):
            raise ValueError(f"{self.strategy}: {len(self.ids)} ids but {len(self.scores)} scores")

    @classmethod
    def from_pairs(
        cls, strategy: str, pairs: list[tuple[str, float]], meta: Mapping[str, Any] | None = None
    ) -> Candidates:
        return cls(strategy, tuple(p[0] for p in pairs), tuple(float(p[1]) for p in pairs), dict(meta or {}))

    def __len__(self) -> int:
        return len(self.ids)

    def prefix(self, depth: int) -> Candidates:
        """The answer at a smaller depth: a strategy's top ``d`` is the prefix of its top ``k >= d``."""
        return Candidates(self.strategy, self.ids[:depth], self.scores[:depth], self.meta)


@runtime_checkable
class RetrievalStrategy(Protocol):
    name: str

    def retrieve(self, query: Query, k: int) -> Candidates: ...


@runtime_checkable
class SupportsBatchRetrieve(Protocol):
    def retrieve_batch(self, queries: list[Query], k: int) -> list[Candidates]: ...
