"""The Lance vector table: incremental embeddings, ANN index when the table needs one.

Rows are (id, type, text_hash, vector). ``text_hash`` is the sha256 of what was encoded (the
``EmbeddingText``'s fingerprint: its texts and blend), so an entity is re-encoded only when that
changes (a popularity update changes the catalog's content hash but not the text, and costs no encoding). Lance keeps every
write as a table version; the build manifest records the version it produced, and readers open
that version, so a later build never changes what an earlier manifest points at.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from ..config import VectorConfig
from .documents import EmbeddingText

ID, TYPE, TEXT_HASH, VECTOR = "id", "type", "text_hash", "vector"


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def vector_schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field(ID, pa.string(), nullable=False),
            pa.field(TYPE, pa.string()),
            pa.field(TEXT_HASH, pa.string()),
            pa.field(VECTOR, pa.list_(pa.float32(), dim)),
        ]
    )


@dataclass
class VectorUpdate:
    n_total: int
    n_encoded: int
    n_removed: int
    n_unchanged: int
    encode_seconds: float
    table_version: int


def _quoted(ids: list[str]) -> str:
    return ", ".join("'" + i.replace("'", "''") + "'" for i in ids)


def open_db(path: Path):
    """The LanceDB database the builds write (create, update, index); serving opens the table
    read-only with pylance instead (``open_vectors``)."""
    import lancedb

    path.mkdir(parents=True, exist_ok=True)
    return lancedb.connect(str(path))


def open_vectors(path: Path, table: str, version: int) -> Any:
    """The vector table at a pinned version as a ``lance.LanceDataset``, for reading. pylance
    alone: ``import lancedb`` costs about a second of cold start (it imports its namespace REST
    client eagerly, which pylance defers), and a search through pylance runs the same scan with
    less per-query overhead (docs/design.md, "Serving the vectors")."""
    import lance

    return lance.dataset(str(Path(path) / f"{table}.lance"), version=int(version))


def as_dataset(table: Any) -> Any:
    """A LanceDB table (what the builds hold) as the pylance dataset of its checked-out version;
    a dataset as it is."""
    return table.to_lance() if hasattr(table, "to_lance") else table


@dataclass
class VectorPlan:
    """What an incremental vector update must do: encode ``todo`` (new or changed texts), delete
    ``removed``. Planned once, encoded in any number of partitions (on any task runner), applied once."""

    n_total: int
    todo_ids: list[str]
    todo_types: list[str]
    todo_texts: list[EmbeddingText]
    todo_hashes: list[str]
    removed: list[str]

    def partitions(self, n: int) -> list[list[EmbeddingText]]:
        """The texts to encode in ``n`` contiguous slices (order kept, so results concatenate)."""
        size = -(-len(self.todo_texts) // max(n, 1)) or 1
        return [self.todo_texts[i : i + size] for i in range(0, len(self.todo_texts), size)]


def plan_vector_update(db, table_name: str, ids: list[str], types: list[str], texts: list[EmbeddingText]) -> VectorPlan:
    """Compare the catalog's texts with the table's hashes: only new or changed texts are encoded."""
    hashes = [text_hash(t.fingerprint) for t in texts]
    before: dict[str, str] = {}
    if table_name in db.table_names():
        existing = db.open_table(table_name).to_arrow().select([ID, TEXT_HASH]).to_pydict()
        before = dict(zip(existing[ID], existing[TEXT_HASH]))
    current = set(ids)
    todo = [i for i, (entity_id, h) in enumerate(zip(ids, hashes)) if before.get(entity_id) != h]
    return VectorPlan(
        len(ids),
        [ids[i] for i in todo],
        [types[i] for i in todo],
        [texts[i] for i in todo],
        [hashes[i] for i in todo],
        [entity_id for entity_id in before if entity_id not in current],
    )


def apply_vector_update(
    db, table_name: str, plan: VectorPlan, vectors: np.ndarray, dim: int, encode_seconds: float
) -> VectorUpdate:
    """Upsert the encoded rows and delete the removed ones (Lance keeps the previous table version)."""
    if len(vectors) != len(plan.todo_ids):
        raise ValueError(f"{len(vectors)} vectors for {len(plan.todo_ids)} texts to encode")
    table = db.open_table(table_name) if table_name in db.table_names() else None
    if plan.todo_ids:
        batch = pa.Table.from_pydict(
            {ID: plan.todo_ids, TYPE: plan.todo_types, TEXT_HASH: plan.todo_hashes, VECTOR: list(vectors)},
            schema=vector_schema(dim),
        )
        if table is None:
            table = db.create_table(table_name, data=batch, schema=vector_schema(dim))
        else:
            table.merge_insert(ID).when_matched_update_all().when_not_matched_insert_all().execute(batch)
    elif table is None:
        table = db.create_table(table_name, schema=vector_schema(dim))
    for start in range(0, len(plan.removed), 1000):
        table.delete(f"{ID} IN ({_quoted(plan.removed[start : start + 1000])})")
    return VectorUpdate(
        n_total=plan.n_total,
        n_encoded=len(plan.todo_ids),
        n_removed=len(plan.removed),
        n_unchanged=plan.n_total - len(plan.todo_ids),
        encode_seconds=round(encode_seconds, 3),
        table_version=int(table.version),
    )


def build_ann_index(table, config: VectorConfig, force: bool = False) -> dict[str, Any]:
    """Build an ANN index when the table is large enough to need one; otherwise brute force."""
    from lancedb.index import IvfFlat, IvfHnswSq, IvfPq

    n_rows = table.count_rows()
    if n_rows < config.ann_min_rows:
        return {"kind": "brute_force", "reason": f"{n_rows} rows < ann_min_rows {config.ann_min_rows}"}
    existing = [i for i in table.list_indices() if VECTOR in i.columns]
    if existing and not force:
        return {"kind": config.index_type, "rebuilt": False, "seconds": 0.0}
    options: dict[str, Any] = {"distance_type": config.metric}
    if config.num_partitions:
        options["num_partitions"] = config.num_partitions
    index_class = {"IVF_HNSW_SQ": IvfHnswSq, "IVF_PQ": IvfPq, "IVF_FLAT": IvfFlat}[config.index_type]
    index_config = index_class(**options)
    started = time.perf_counter()
    table.create_index(VECTOR, config=index_config, replace=True)
    return {"kind": config.index_type, "rebuilt": True, "seconds": round(time.perf_counter() - started, 2)}


def search_vectors(
    table, query: np.ndarray, k: int, config: VectorConfig, exact: bool = False, where: str | None = None
) -> list[tuple[str, float]]:
    """(entity id, similarity) for the k nearest entities: the cosine (``metric: cosine``) or the
    dot product (``dot``: blended vectors are not unit length)."""
    return [(i, score) for i, _, score in _search(table, query, k, config, exact, where)]


def _search(
    table, query: np.ndarray, k: int, config: VectorConfig, exact: bool = False, where: str | None = None
) -> list[tuple[str, str, float]]:
    """(entity id, entity type, similarity), best first. ``table``: a pylance dataset
    (``open_vectors``) or a LanceDB table (``as_dataset``)."""
    nearest: dict[str, Any] = {"column": VECTOR, "q": query.astype(np.float32), "k": k, "metric": config.metric}
    if exact:
        nearest["use_index"] = False
    else:
        nearest["nprobes"] = config.nprobes
        if config.refine_factor:
            nearest["refine_factor"] = config.refine_factor
    # ``_distance`` named explicitly: Lance warns on every search (stderr) that leaves it implicit.
    result = (
        as_dataset(table)
        .to_table(columns=[ID, TYPE, "_distance"], nearest=nearest, filter=where, prefilter=bool(where))
        .to_pydict()
    )
    # cosine and dot distances are 1 - similarity; report similarity so larger is better everywhere.
    return [(i, t, 1.0 - float(d)) for i, t, d in zip(result[ID], result[TYPE], result["_distance"])]


def search_capped(table, query: np.ndarray, k: int, config: VectorConfig) -> list[tuple[str, float]]:
    """The k nearest entities with at most ``config.max_per_type[t]`` of each capped type (so that
    thousands of similar-sounding artist names cannot crowd the tracks out of a name query).

    One search of ``k x type_cap_overfetch`` rows answers almost every query; when the capped types
    filled so much of it that fewer than k rows remain, a second search excludes them outright."""
    caps = {t: n for t, n in config.max_per_type.items() if n >= 0}
    if not caps:
        return search_vectors(table, query, k, config)
    fetch = k * config.type_cap_overfetch
    found = _search(table, query, fetch, config)
    kept = apply_type_caps(found, caps, k)
    if len(kept) < k and len(found) == fetch:
        excluded = ", ".join("'" + t.replace("'", "''") + "'" for t in caps)
        rest = _search(table, query, k, config, where=f"{TYPE} NOT IN ({excluded})")
        capped = [row for row in found if row[1] in caps][: sum(caps.values())]
        kept = apply_type_caps(sorted(capped + rest, key=lambda row: -row[2]), caps, k)
    return [(i, score) for i, _, score in kept]


class VectorSearch(Protocol):
    """What answers ``semantic``: (entity id, similarity) of the k nearest entities under the
    type caps. ``graph.VectorGraph`` (the default) or ``LanceVectors``."""

    def search(self, query: np.ndarray, k: int) -> list[tuple[str, float]]: ...


class LanceVectors:
    """Lance's own search over the pinned table version (``vector.serving_index: lance``)."""

    def __init__(self, table: Any, config: VectorConfig):
        self.table = table
        self.config = config

    def search(self, query: np.ndarray, k: int) -> list[tuple[str, float]]:
        return search_capped(self.table, query, k, self.config)


def apply_type_caps(rows: list[tuple[str, str, float]], caps: dict[str, int], k: int) -> list[tuple[str, str, float]]:
    """The first k of (id, type, score) rows, best first, with at most ``caps[t]`` rows of type t."""
    kept: list[tuple[str, str, float]] = []
    used: dict[str, int] = {}
    seen: set[str] = set()
    for row in rows:
        entity_id, entity_type, _ = row
        if entity_id in seen:
            continue
        if entity_type in caps:
            if used.get(entity_type, 0) >= caps[entity_type]:
                continue
            used[entity_type] = used.get(entity_type, 0) + 1
        seen.add(entity_id)
        kept.append(row)
        if len(kept) == k:
            break
    return kept


def measure_recall(table, config: VectorConfig, n_probes: int | None = None) -> dict[str, Any]:
    """ANN recall@k against brute force, on real entity vectors drawn as probe queries."""
    table = as_dataset(table)
    n_rows = table.count_rows()
    if n_rows == 0:
        return {"n_probes": 0}
    rng = np.random.default_rng(config.seed)
    n_probes = min(n_probes or config.recall_probe_queries, n_rows)
    vectors = table.to_table(columns=[VECTOR]).column(VECTOR)
    picks = rng.choice(n_rows, size=n_probes, replace=False)
    probes = [np.asarray(vectors[int(i)].as_py(), dtype=np.float32) for i in picks]
    recalls, ann_ms, exact_ms = [], [], []
    for probe in probes:
        t0 = time.perf_counter()
        approx = {i for i, _ in search_vectors(table, probe, config.recall_k, config)}
        t1 = time.perf_counter()
        truth = {i for i, _ in search_vectors(table, probe, config.recall_k, config, exact=True)}
        t2 = time.perf_counter()
        recalls.append(len(approx & truth) / max(len(truth), 1))
        ann_ms.append((t1 - t0) * 1000)
        exact_ms.append((t2 - t1) * 1000)
    return {
        "n_probes": n_probes,
        f"recall@{config.recall_k}": round(float(np.mean(recalls)), 4),
        "ann_ms_p50": round(float(np.percentile(ann_ms, 50)), 2),
        "exact_ms_p50": round(float(np.percentile(exact_ms, 50)), 2),
    }
