"""The versioned Q2E table and its lookup index.

Layout under ``<data_dir>/q2e``::

    versions/<version>/q2e.parquet        the blended table the ``memory`` strategy reads
    versions/<version>/predicted.parquet  generator output, reused for unchanged entities
    versions/<version>/manifest.json      counts, sources, the catalog version predicted from
    CURRENT

Parquet rather than Lance: the table is read whole into the lookup index at load, never
searched by vector, and Parquet keeps it a plain file the bundle can checksum.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..config import MemoryConfig
from ..durable import checksum_tree, write_json_atomic, write_parquet
from ..store import NotPublished, VersionedStore

Q2E_SCHEMA = pa.schema(
    [
        pa.field("query", pa.string(), nullable=False),
        pa.field("entity_id", pa.string(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("source", pa.string(), nullable=False),  # predicted | observed
        pa.field("predicted_score", pa.float64()),
        pa.field("n_impressions", pa.float64(), nullable=False),  # examination-weighted
        pa.field("n_engaged", pa.float64(), nullable=False),  # event-weighted
        pa.field("generator", pa.string(), nullable=False),
        pa.field("updated_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
PREDICTED_SCHEMA = pa.schema(
    [
        pa.field("query", pa.string(), nullable=False),
        pa.field("entity_id", pa.string(), nullable=False),
        pa.field("score", pa.float64(), nullable=False),
        pa.field("generator", pa.string(), nullable=False),
    ]
)


_BLOCKING_TOKENS = 2


class Q2ENotBuilt(NotPublished):
    pass


class Q2EStore:
    def __init__(self, root: Path):
        self.store = VersionedStore(
            Path(root),
            "Q2E version",
            "q",
            pointer="CURRENT",
            versions_dir="versions",
            hint="run `ltrr generate-q2e` first",
            missing=Q2ENotBuilt,
        )
        self.root = self.store.root

    def current_version(self) -> str | None:
        return self.store.read_pointer()

    def path(self, version: str | None = None) -> Path:
        return self.store.require(version)

    def manifest(self, version: str | None = None) -> dict[str, Any]:
        manifest: dict[str, Any] = self.store.manifest(version)
        return manifest

    def load(self, version: str | None = None) -> pd.DataFrame:
        return pd.read_parquet(self.path(version) / "q2e.parquet")

    def load_predicted(self, version: str | None = None) -> pd.DataFrame:
        return pd.read_parquet(self.path(version) / "predicted.parquet")

    def publish(self, q2e: pd.DataFrame, predicted: pd.DataFrame, report: dict[str, Any]) -> dict[str, Any]:
        version = self.store.new_version()
        with self.store.publish(version) as staging:
            write_parquet(pa.Table.from_pandas(q2e, schema=Q2E_SCHEMA, preserve_index=False), staging / "q2e.parquet")
            write_parquet(
                pa.Table.from_pandas(predicted, schema=PREDICTED_SCHEMA, preserve_index=False),
                staging / "predicted.parquet",
            )
            counts = q2e["source"].value_counts().to_dict()
            manifest = {
                "version": version,
                "created_at": datetime.now(UTC).isoformat(),
                "n_rows": len(q2e),
                "n_queries": int(q2e["query"].nunique()),
                "n_entities": int(q2e["entity_id"].nunique()),
                "rows_by_source": {k: int(v) for k, v in counts.items()},
                "rows_by_generator": {k: int(v) for k, v in q2e["generator"].value_counts().items()},
                **report,
            }
            manifest["checksums"] = checksum_tree(staging)
            write_json_atomic(staging / "manifest.json", manifest)
        return manifest


class MemoryIndex:
    """Exact lookup by normalised query, then near-duplicate queries (rapidfuzz token_sort_ratio).

    Near-duplicate candidates are blocked by token: only stored queries sharing one of the
    query's ``_BLOCKING_TOKENS`` rarest tokens are compared (a query within the similarity
    cutoff shares most tokens, so it shares a rare one unless the typo hit exactly those).
    rapidfuzz then scores the few hundred candidates in C++; scanning all 230k stored
    queries instead took ~90 ms per miss.
    """

    def __init__(self, table: pd.DataFrame, config: MemoryConfig):
        self.config = config
        table = table.sort_values(["query", "score"], ascending=[True, False], kind="stable").reset_index(drop=True)
        self.entity_ids = table["entity_id"].to_numpy(dtype=object)
        self.scores = table["score"].to_numpy(dtype=float)
        self.predicted = table["predicted_score"].to_numpy(dtype=float)
        queries = table["query"].to_numpy(dtype=object)
        starts = np.flatnonzero(np.r_[True, queries[1:] != queries[:-1]]) if len(queries) else np.empty(0, int)
        ends = np.r_[starts[1:], len(queries)]
        self.queries = [str(queries[s]) for s in starts]
        self._query_index = pd.Index(self.queries)  # distinct and sorted: a hashed lookup
        self._starts, self._ends = starts, ends
        # token -> positions of the stored queries holding it, in CSR form (array operations: a
        # loop per token took most of the load)
        self._tokens, self._token_starts, self._token_positions = _token_postings(self.queries)

    def __len__(self) -> int:
        return len(self.entity_ids)

    def lookup(
        self, normalised: str, k: int, predicted_only: bool = False
    ) -> tuple[list[tuple[str, float]], dict[str, Any]]:
        """Best entities for a query and how the query was matched (exact / fuzzy / none, quality)."""
        matches = self._matching_queries(normalised)
        if not matches:
            return [], {"match": "none", "match_quality": 0.0, "matched_queries": []}
        best: dict[str, float] = {}
        for query, quality in matches:
            position = int(self._query_index.get_loc(query))
            start, end = int(self._starts[position]), int(self._ends[position])
            scores = self.predicted[start:end] if predicted_only else self.scores[start:end]
            for entity, score in zip(self.entity_ids[start:end], scores):
                if np.isnan(score):
                    continue
                value = float(score) * quality
                if value > best.get(entity, 0.0):
                    best[entity] = value
        ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))[:k]
        kind = "exact" if matches[0][0] == normalised else "fuzzy"
        return ranked, {"match": kind, "match_quality": matches[0][1], "matched_queries": [q for q, _ in matches]}

    def _matching_queries(self, normalised: str) -> list[tuple[str, float]]:
        if normalised in self._query_index:
            return [(normalised, 1.0)]
        if not normalised or not self.queries:
            return []
        from rapidfuzz import fuzz, process

        holding = {t: self._holding(t) for t in set(normalised.split())}
        known = sorted((t for t, p in holding.items() if len(p)), key=lambda t: len(holding[t]))
        positions = sorted({int(p) for t in known[:_BLOCKING_TOKENS] for p in holding[t]})
        if not positions:
            return []
        candidates = [self.queries[p] for p in positions]
        found = process.extract(
            normalised,
            candidates,
            scorer=fuzz.token_sort_ratio,
            score_cutoff=self.config.fuzzy_min_similarity,
            limit=self.config.fuzzy_max_queries,
        )
        return [(query, score / 100.0) for query, score, _ in found]

    def _holding(self, token: str) -> np.ndarray:
        """Positions of the stored queries that hold ``token``, ascending."""
        try:
            at = int(self._tokens.get_loc(token))
        except KeyError:
            return np.empty(0, dtype=np.int64)
        return self._token_positions[self._token_starts[at] : self._token_starts[at + 1]]


def _token_postings(queries: list[str]) -> tuple[pd.Index, np.ndarray, np.ndarray]:
    """Distinct tokens (a hashed index), each one's start offset, and the positions of the queries
    holding it, ascending; split and encoded by Arrow in C++."""
    lists = pc.utf8_split_whitespace(pa.array(queries, type=pa.string()))
    encoded = pc.dictionary_encode(lists.flatten())
    codes = encoded.indices.to_numpy().astype(np.int64)
    positions = pc.list_parent_indices(lists).to_numpy().astype(np.int64)
    pairs = np.sort(codes * max(len(queries), 1) + positions)
    pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]] if len(pairs) else pairs  # a token twice in a query counts once
    codes, positions = pairs // max(len(queries), 1), pairs % max(len(queries), 1)
    distinct = encoded.dictionary.to_numpy(zero_copy_only=False)
    starts = np.r_[0, np.cumsum(np.bincount(codes, minlength=len(distinct)))].astype(np.int64)
    return pd.Index(distinct, dtype=object), starts, positions
