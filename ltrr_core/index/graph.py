"""The serving vector graph: HNSW graphs (usearch) over the Lance vector table, memory-mapped at
serving.

Lance stays the versioned store of the vectors (incremental upserts, time travel, the pinned
version in every build and bundle). Its ANN search costs 4-9 ms per query on 26k rows whatever
the probes, most of it per-scan overhead (docs/design.md, "Serving the vectors"); an HNSW graph
answers in under a millisecond at the same recall, opens without reading the file
(``Index.restore(view=True)``: pages are mapped, shared by every worker process), and so serves
the ``semantic`` strategy.

Layout of ``<build>/vector_graph/``::

    spec.json            what was built from what (GraphSpec): Lance table version, metric,
                         dtype, graph parameters, parts, recall against exact search
    entities.parquet     id, type, text_hash, key, part -- sorted by (part, key)
    <part>.usearch       one graph per part

Type caps (``vector.max_per_type``) are exact by construction: every capped type is a part of
its own, searched for at most its cap, and the other types share the part ``_rest`` searched for
k. Keys are a stable 63-bit hash of the entity id, so a build updates the previous build's graphs
in place of the rows that changed (a catalog with 1% churn re-inserts 1%), and rebuilds them
when the removals since the last full build pass ``graph.rebuild_fraction``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel
from usearch.index import Index

from ..config import VectorConfig
from ..durable import write_json_atomic
from .vector import ID, TEXT_HASH, TYPE, VECTOR, apply_type_caps, as_dataset

GRAPH_DIR = "vector_graph"
SPEC = "spec.json"
ENTITIES = "entities.parquet"
REST = "_rest"
GRAPH_FORMAT = "1"
KEY = "key"
PART = "part"
# usearch's metric names for the config's (Lance's) metrics; every one reports 1 - similarity
# (cos, ip) or the squared distance (l2sq), as Lance's ``_distance`` does.
# Brute force ranks this many rows per row wanted before applying the caps (all of them when
# the caps leave fewer than k).
EXACT_SHORTLIST = 50
USEARCH_METRIC = {"cosine": "cos", "dot": "ip", "l2": "l2sq"}


class GraphPart(BaseModel):
    """One graph: the types it holds (empty: every uncapped type) and how many rows it may
    give one answer (None: k)."""

    name: str
    types: list[str]
    cap: int | None
    n_vectors: int


class GraphSpec(BaseModel):
    format: str = GRAPH_FORMAT
    lance_table_version: int
    metric: str
    dtype: str
    dim: int
    connectivity: int
    expansion_add: int
    parts: list[GraphPart]
    n_vectors: int
    rebuilt: bool
    n_inserted: int
    n_removed: int
    n_removed_since_rebuild: int
    seconds: float
    recall: dict[str, float | int]

    def layout(self) -> tuple[Any, ...]:
        """What an update must share with the graphs it updates."""
        return (
            self.format,
            self.metric,
            self.dtype,
            self.dim,
            self.connectivity,
            self.expansion_add,
            [(p.name, p.types, p.cap) for p in self.parts],
        )


def entity_keys(ids: list[str]) -> np.ndarray:
    """A stable 63-bit key per entity id (blake2b); a collision is refused, naming both ids."""
    keys = np.fromiter(
        (int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8).digest(), "little") >> 1 for i in ids),
        dtype=np.uint64,
        count=len(ids),
    )
    unique, first, counts = np.unique(keys, return_index=True, return_counts=True)
    if len(unique) != len(keys):
        clash = unique[counts > 1][0]
        named = [ids[i] for i in np.flatnonzero(keys == clash)]
        raise ValueError(f"vector graph: entity ids {named} share one key (a duplicated id or a hash collision)")
    return keys


def graph_parts(config: VectorConfig, types: set[str]) -> list[tuple[str, list[str], int | None]]:
    """(part name, types, cap): one part per capped type present (a cap of 0 is left out: it can
    never be answered), the rest together."""
    caps = {t: n for t, n in config.max_per_type.items() if n >= 0}
    parts: list[tuple[str, list[str], int | None]] = [
        (t, [t], n) for t, n in sorted(caps.items()) if n > 0 and t in types
    ]
    return [*parts, (REST, [], None)]


def part_of(types: pd.Series, parts: list[tuple[str, list[str], int | None]], caps: dict[str, int]) -> pd.Series:
    """Each row's part name; rows of a type capped at 0 get none (NaN) and are left out."""
    own = {t: name for name, ts, _ in parts for t in ts}
    return types.map(lambda t: own.get(t, None if t in caps else REST))


def read_table(table: Any) -> tuple[pd.DataFrame, np.ndarray]:
    """(id, type, text_hash) rows and their vectors (float32, n x dim) from a Lance table."""
    arrow = as_dataset(table).to_table(columns=[ID, TYPE, TEXT_HASH, VECTOR])
    column = arrow.column(VECTOR).combine_chunks()
    dim = column.type.list_size
    vectors = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, dim)
    return arrow.select([ID, TYPE, TEXT_HASH]).to_pandas(), vectors


def _new_index(config: VectorConfig, dim: int) -> Any:
    return Index(
        ndim=dim,
        metric=USEARCH_METRIC[config.metric],
        dtype=config.graph.dtype,
        connectivity=config.graph.connectivity,
        expansion_add=config.graph.expansion_add,
        expansion_search=config.graph.expansion_search,
    )


def build_graph(
    table: Any, config: VectorConfig, out_dir: Path, previous: Path | None = None, threads: int = 0
) -> GraphSpec:
    """Write the graphs of ``table`` (at its checked-out version) into ``out_dir/vector_graph``:
    an update of ``previous`` (a build's ``vector_graph``) where its layout matches and its
    removals stay under ``graph.rebuild_fraction``, else built from scratch."""
    started = time.perf_counter()
    rows, vectors = read_table(table)
    caps = {t: n for t, n in config.max_per_type.items() if n >= 0}
    parts = graph_parts(config, set(rows[TYPE]))
    rows[KEY] = entity_keys(rows[ID].tolist())
    rows[PART] = part_of(rows[TYPE], parts, caps)
    rows["row"] = np.arange(len(rows))
    rows = rows[rows[PART].notna()]
    dim = int(vectors.shape[1]) if vectors.ndim == 2 and vectors.shape[1] else 0
    target = out_dir / GRAPH_DIR
    staging = out_dir / f".{GRAPH_DIR}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    old = _previous(previous, config, dim, parts, len(rows))
    before = pd.read_parquet(previous / ENTITIES) if old is not None and previous is not None else None
    inserted = removed = 0
    specs = []
    for name, types, cap in parts:
        mine = rows[rows[PART] == name]
        if before is None or previous is None:
            index, todo = _new_index(config, dim), mine
        else:
            index, todo, gone = _update(previous / f"{name}.usearch", before[before[PART] == name], mine, config, dim)
            removed += len(gone)
        if len(todo):
            index.add(todo[KEY].to_numpy(np.uint64), vectors[todo["row"].to_numpy()], threads=threads)
        inserted += len(todo)
        if len(mine):
            index.save(str(staging / f"{name}.usearch"))
        specs.append(GraphPart(name=name, types=types, cap=cap, n_vectors=len(mine)))
    rows.sort_values([PART, KEY]).drop(columns="row").to_parquet(staging / ENTITIES, index=False)
    spec = GraphSpec(
        lance_table_version=int(as_dataset(table).version),
        metric=config.metric,
        dtype=config.graph.dtype,
        dim=dim,
        connectivity=config.graph.connectivity,
        expansion_add=config.graph.expansion_add,
        parts=specs,
        n_vectors=len(rows),
        rebuilt=before is None,
        n_inserted=inserted,
        n_removed=removed,
        n_removed_since_rebuild=0 if old is None else old.n_removed_since_rebuild + removed,
        seconds=0.0,
        recall={},
    )
    write_json_atomic(staging / SPEC, spec.model_dump(mode="json"))
    spec.recall = measure_graph_recall(VectorGraph.open(staging, config), rows, vectors, config)
    spec.seconds = round(time.perf_counter() - started, 2)
    write_json_atomic(staging / SPEC, spec.model_dump(mode="json"))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return spec


def _previous(
    previous: Path | None, config: VectorConfig, dim: int, parts: list[tuple[str, list[str], int | None]], n: int
) -> GraphSpec | None:
    """The previous build's spec when its graphs can be updated in place: same layout, and its
    removals since the last full build under ``graph.rebuild_fraction`` of the rows."""
    if previous is None or not (previous / SPEC).is_file():
        return None
    old = GraphSpec.model_validate_json((previous / SPEC).read_text(encoding="utf-8"))
    wanted = (
        GRAPH_FORMAT,
        config.metric,
        config.graph.dtype,
        dim,
        config.graph.connectivity,
        config.graph.expansion_add,
        [(name, types, cap) for name, types, cap in parts],
    )
    if old.layout() != wanted or old.n_removed_since_rebuild > config.graph.rebuild_fraction * max(n, 1):
        return None
    return old


def _update(
    graph: Path, before: pd.DataFrame, now: pd.DataFrame, config: VectorConfig, dim: int
) -> tuple[Any, pd.DataFrame, np.ndarray]:
    """A previous part's graph loaded for writing with its removed and changed rows taken out:
    (graph, rows to insert, keys removed)."""
    index = Index.restore(str(graph), view=False) if len(before) else None
    if index is None:
        return _new_index(config, dim), now, np.zeros(0, dtype=np.uint64)
    todo, gone = _changes(before, now)
    if len(gone):
        index.remove(gone)
    return index, todo, gone


def _changes(before: pd.DataFrame, now: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """(rows to insert, keys to remove) turning one part's ``before`` into ``now``: new and changed
    rows are inserted; removed and changed rows' old keys are removed."""
    merged = now.merge(before[[KEY, TEXT_HASH]], on=KEY, how="left", suffixes=("", "_before"))
    todo = now[(merged[f"{TEXT_HASH}_before"] != merged[TEXT_HASH]).to_numpy()]
    kept = set(now[KEY].tolist()) - set(todo[KEY].tolist())
    gone = before[~before[KEY].isin(kept)][KEY].to_numpy(np.uint64)
    return todo, gone


@dataclass
class _Part:
    index: Any
    keys: np.ndarray  # sorted uint64
    ids: pa.Array  # entity ids in key order
    cap: int | None


class VectorGraph:
    """The memory-mapped graphs of one build, searched with the type caps; searches are
    serialised (usearch's per-thread search contexts are not safe to share between Python
    threads; one search takes well under a millisecond)."""

    def __init__(self, spec: GraphSpec, parts: list[_Part], expansion_search: int):
        self.spec = spec
        self.parts = parts
        self.expansion_search = expansion_search
        self._lock = threading.Lock()

    @classmethod
    def open(cls, directory: Path, config: VectorConfig) -> VectorGraph:
        spec = GraphSpec.model_validate_json((directory / SPEC).read_text(encoding="utf-8"))
        rows = pq.read_table(directory / ENTITIES, columns=[ID, KEY, PART])
        part_names = rows.column(PART).to_numpy(zero_copy_only=False)
        parts = []
        for part in spec.parts:
            if not part.n_vectors:
                continue
            index = Index.restore(str(directory / f"{part.name}.usearch"), view=True)
            if index is None:
                raise FileNotFoundError(f"{directory / part.name}.usearch: the graph of part {part.name!r} is missing")
            index.expansion_search = config.graph.expansion_search  # type: ignore[misc]  # a setter mypy misses
            mask = pa.array(part_names == part.name)
            keys = rows.column(KEY).filter(mask).to_numpy()
            parts.append(_Part(index, keys, rows.column(ID).filter(mask).combine_chunks(), part.cap))
        return cls(spec, parts, config.graph.expansion_search)

    def search(self, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        """(entity id, similarity) of the k nearest entities, at most ``cap`` of each capped type."""
        query = np.asarray(query, dtype=np.float32)
        found: list[tuple[str, float]] = []
        with self._lock:
            for part in self.parts:
                n = k if part.cap is None else min(k, part.cap)
                matches = part.index.search(query, n, threads=1)
                positions = np.searchsorted(part.keys, matches.keys)
                ids = part.ids.take(pa.array(positions)).to_pylist()
                found.extend(zip(ids, (1.0 - matches.distances).tolist()))
        found.sort(key=lambda row: -row[1])
        return found[:k]


def exact_search(
    rows: pd.DataFrame, vectors: np.ndarray, query: np.ndarray, k: int, config: VectorConfig
) -> list[tuple[str, float]]:
    """Brute force with the same caps: the truth the graphs' recall is measured against."""
    scores = _similarity(vectors, query, config.metric)[rows["row"].to_numpy()]
    caps = {t: n for t, n in config.max_per_type.items() if n >= 0}
    ids, types = rows[ID].to_numpy(), rows[TYPE].to_numpy()
    shortlist = min(len(scores), k * EXACT_SHORTLIST)
    for order in (_top(scores, shortlist), np.argsort(-scores, kind="stable")):
        top = apply_type_caps([(ids[i], types[i], float(scores[i])) for i in order], caps, k)
        if len(top) == min(k, len(order)) or len(order) == len(scores):
            break
    return [(i, s) for i, _, s in top]


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    """Positions of the n largest scores, largest first."""
    head = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
    return head[np.argsort(-scores[head], kind="stable")]


def _similarity(vectors: np.ndarray, query: np.ndarray, metric: str) -> np.ndarray:
    if metric == "dot":
        return vectors @ query
    if metric == "cosine":
        norms = np.linalg.norm(vectors, axis=1) * max(float(np.linalg.norm(query)), 1e-12)
        return (vectors @ query) / np.maximum(norms, 1e-12)
    return 1.0 - ((vectors - query) ** 2).sum(axis=1)


def measure_graph_recall(
    graph: VectorGraph, rows: pd.DataFrame, vectors: np.ndarray, config: VectorConfig
) -> dict[str, float | int]:
    """Recall@k of the capped graph search against capped brute force, with real entity vectors
    as probe queries (as ``vector.measure_recall`` measures Lance's index)."""
    if rows.empty:
        return {"n_probes": 0}
    rng = np.random.default_rng(config.seed)
    n_probes = min(config.recall_probe_queries, len(rows))
    probes = vectors[rng.choice(rows["row"].to_numpy(), size=n_probes, replace=False)]
    recalls, graph_ms, exact_ms = [], [], []
    for probe in probes:
        t0 = time.perf_counter()
        approx = {i for i, _ in graph.search(probe, config.recall_k)}
        t1 = time.perf_counter()
        truth = {i for i, _ in exact_search(rows, vectors, probe, config.recall_k, config)}
        t2 = time.perf_counter()
        recalls.append(len(approx & truth) / max(len(truth), 1))
        graph_ms.append((t1 - t0) * 1000)
        exact_ms.append((t2 - t1) * 1000)
    return {
        "n_probes": n_probes,
        f"recall@{config.recall_k}": round(float(np.mean(recalls)), 4),
        "ann_ms_p50": round(float(np.percentile(graph_ms, 50)), 3),
        "exact_ms_p50": round(float(np.percentile(exact_ms, 50)), 2),
    }


def graph_report(spec: GraphSpec) -> dict[str, Any]:
    """The build manifest's record of the graphs (``kind`` and ``rebuilt`` as Lance's index reports)."""
    return {
        "kind": f"usearch HNSW {spec.dtype}",
        **json.loads(spec.model_dump_json(exclude={"parts", "recall"})),
        "parts": {p.name: p.n_vectors for p in spec.parts},
    }
