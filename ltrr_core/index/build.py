"""Index builds from a published catalog version, and the build manifest.

Layout under ``<data_dir>/indexes``::

    lance/                       the Lance database (the vector table keeps its own versions)
    builds/<build_id>/bm25/      the bm25s index of this build
    builds/<build_id>/query_encoder/  the ONNX query encoder serving uses (``index.query_encoder``)
    builds/<build_id>/vector_graph/   the HNSW graphs that answer ``semantic`` (``index.graph``)
    query-encoders/<key>/        cached ONNX exports (query and document encoders), one per model
                                 weights x precision x libraries (``embedding.export_cache_dir``
                                 puts the cache elsewhere, e.g. shared by several data directories)
    builds/<build_id>/manifest.json
    CURRENT                      the build that search reads

A build is staged under ``builds/.staging-<build_id>`` by the (concurrent) BM25 and vector
steps, then renamed and pointed at by ``publish_build``; a failure before that leaves the
previous build serving. The manifest pins the Lance table version, so the vector table can
move on while an older build is still read.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import schema as S
from ..config import EmbeddingConfig, Settings
from ..durable import checksum_tree, read_json, write_json_atomic
from ..store import NotPublished, VersionedStore
from .bm25 import BM25Index, BM25Settings, weighted_document
from .documents import EmbeddingText, document_fields, embedding_input, query_like_sample
from .encoder import MODEL_IMPORT_LOCK, Encoder, OnnxDocumentEncoder
from .graph import GRAPH_DIR, build_graph, graph_report
from .query_encoder import TextEncoder, read_spec
from .vector import (
    VECTOR,
    VectorPlan,
    apply_vector_update,
    build_ann_index,
    measure_recall,
    open_db,
    plan_vector_update,
)

MANIFEST_VERSION = "1.0"


class IndexNotBuilt(NotPublished):
    pass


def indexes_root(settings: Settings) -> Path:
    return settings.data_dir / "indexes"


def build_store(settings: Settings) -> VersionedStore:
    """Index builds (BM25, QU resources, the query encoder, the manifest pinning the Lance
    table's version) under ``indexes/builds``, ``indexes/CURRENT`` naming the current one."""
    return VersionedStore(
        indexes_root(settings),
        "index build",
        "b",
        pointer="CURRENT",
        versions_dir="builds",
        hint="run `ltrr build-indexes` first",
        missing=IndexNotBuilt,
    )


def new_build_id(settings: Settings) -> str:
    return build_store(settings).new_version()


def staging_dir(settings: Settings, build_id: str) -> Path:
    return build_store(settings).versions_root / f".staging-{build_id}"


def start_build(settings: Settings, build_id: str) -> Path:
    """Create the staging directory; leftovers of crashed builds are removed first."""
    builds = build_store(settings).versions_root
    builds.mkdir(parents=True, exist_ok=True)
    for stale in builds.glob(".staging-*"):
        shutil.rmtree(stale, ignore_errors=True)
    path = staging_dir(settings, build_id)
    path.mkdir()
    return path


def build_bm25(settings: Settings, entities: pd.DataFrame, out_dir: Path) -> dict[str, Any]:
    started = time.perf_counter()
    bm25_settings = BM25Settings.from_config(settings.bm25)
    rows = entities.to_dict("records")
    documents = [
        weighted_document(document_fields(row, settings.embedding.max_tags_in_text), bm25_settings.field_weights)
        for row in rows
    ]
    index = BM25Index.build(entities[S.ID].tolist(), documents, bm25_settings)
    index.save(out_dir / "bm25")
    return {
        "n_documents": len(documents),
        "vocabulary_size": len(index.retriever.vocab_dict),
        "settings": bm25_settings.__dict__,
        "seconds": round(time.perf_counter() - started, 2),
    }


def build_query_resources(settings: Settings, entities: pd.DataFrame, out_dir: Path) -> dict[str, Any]:
    """Normalised entity fields and the name vocabulary for QU and structured search."""
    from ..query.resources import write_resources

    started = time.perf_counter()
    counts = write_resources(entities, out_dir / "qu", settings.query_understanding.min_tag_entities)
    return {**counts, "seconds": round(time.perf_counter() - started, 2)}


def build_query_encoder(settings: Settings, entities: pd.DataFrame, out_dir: Path) -> dict[str, Any]:
    """The query encoder serving uses, copied from the export cache (exported and gated the first
    time). ``embedding.query_encoder: torch``: none -- serving loads the torch model."""
    if settings.embedding.query_encoder == "torch":
        return {"kind": "torch"}
    started = time.perf_counter()
    source, reused = query_encoder_export(settings, entities)
    shutil.copytree(source, out_dir / "query_encoder")
    spec = read_spec(out_dir / "query_encoder")
    return {
        "kind": f"onnx_{spec.precision}",
        "export": source.name,
        "reused": reused,
        "agreement": spec.agreement.model_dump(),
        "seconds": round(time.perf_counter() - started, 2),
    }


def query_encoder_export(
    settings: Settings, entities: pd.DataFrame, embedding: EmbeddingConfig | None = None
) -> tuple[Path, bool]:
    """The cached ONNX export for ``embedding`` (default: the configured one) under
    ``indexes/query-encoders/``, exported and gated on ``entities``' texts when missing: (directory, reused)."""
    # Deferred: the exporter imports torch, onnx and the quantiser, which only a build needs.
    with MODEL_IMPORT_LOCK:
        from .onnx_export import cached_query_encoder

    config = embedding or settings.embedding
    sample = query_like_sample(entities, config.query_agreement_sample)
    return cached_query_encoder(config, export_cache(settings), sample)


def export_cache(settings: Settings) -> Path:
    """Where ONNX exports are cached: ``embedding.export_cache_dir``, else ``indexes/query-encoders``."""
    return settings.embedding.export_cache_dir or indexes_root(settings) / "query-encoders"


def document_encoder_export(settings: Settings, sample: list[str]) -> tuple[Path, bool]:
    """The cached fp32 ONNX export index builds embed with (``embedding.document_encoder``),
    exported and gated on ``sample`` when missing: (directory, reused). The flow prepares it
    before its encoding partitions, which then only load it."""
    with MODEL_IMPORT_LOCK:
        from .onnx_export import cached_document_encoder

    return cached_document_encoder(settings.embedding, export_cache(settings), sample)


def document_encoder(settings: Settings, sample: list[str]) -> TextEncoder:
    """What index builds and Q2E relevance embed texts with: the fp32 ONNX export (see
    ``document_encoder_export``; ``sample``: query-like texts for its gate if it must be
    exported), or the torch model (``embedding.document_encoder: torch``). One per process."""
    config = settings.embedding
    if config.document_encoder == "torch":
        return _torch_encoder(config)
    directory, _ = document_encoder_export(settings, sample)
    return _onnx_document_encoder(directory, config.torch_threads, config.document_batch_size)


def prepare_document_encoder(settings: Settings, plan: VectorPlan) -> dict[str, Any]:
    """Export (when missing) the document encoder the plan's partitions will load, so that
    parallel partitions do not each export it."""
    kind = settings.embedding.document_encoder
    if kind == "torch" or not plan.todo_texts:
        return {"kind": kind}
    started = time.perf_counter()
    directory, reused = document_encoder_export(
        settings, name_sample(plan.todo_texts, settings.embedding.query_agreement_sample)
    )
    spec = read_spec(directory)
    return {
        "kind": kind,
        "export": directory.name,
        "reused": reused,
        "agreement": spec.agreement.model_dump(),
        "seconds": round(time.perf_counter() - started, 2),
    }


@lru_cache(maxsize=2)
def _torch_encoder(config: EmbeddingConfig) -> Encoder:
    return Encoder(config)


@lru_cache(maxsize=2)
def _onnx_document_encoder(directory: Path, threads: int, batch_size: int) -> OnnxDocumentEncoder:
    return OnnxDocumentEncoder(directory, threads, batch_size)


def name_sample(texts: list[EmbeddingText], n: int) -> list[str]:
    """Every k-th name line ("title by artists from album"; the whole text where an entity has no
    name, as in a corpus without titles): query-like texts for an export gate."""
    step = max(1, len(texts) // max(1, n))
    picked = [t.name if t.name.strip() else t.full for t in texts[::step][:n]]
    return [text for text in picked if text.strip()]


def build_vectors(
    settings: Settings, entities: pd.DataFrame, out_dir: Path, show_progress: bool = False
) -> dict[str, Any]:
    """Incremental embeddings into the Lance table, the serving index, recall against brute force."""
    plan = plan_vectors(settings, entities)
    return finish_vectors(settings, plan, [encode_texts(settings, plan.todo_texts, show_progress)], out_dir)


def plan_vectors(settings: Settings, entities: pd.DataFrame) -> VectorPlan:
    """Which entities need encoding. The flow splits ``plan.partitions(n)`` over its task runner
    (threads, or Dask workers on other machines) and hands the vectors to ``finish_vectors``."""
    rows = entities.to_dict("records")
    texts = [embedding_input(row, settings.embedding.max_tags_in_text, settings.embedding.name_weight) for row in rows]
    db = open_db(indexes_root(settings) / "lance")
    return plan_vector_update(db, settings.vector.table, entities[S.ID].tolist(), entities[S.TYPE].tolist(), texts)


@dataclass
class EncodedPartition:
    vectors: np.ndarray  # (n, dim)
    seconds: float


def encode_texts(settings: Settings, texts: list[EmbeddingText], show_progress: bool = False) -> EncodedPartition:
    """One partition's embeddings (the encoder is loaded once per worker process); an empty
    partition loads nothing."""
    if not texts:
        return EncodedPartition(np.zeros((0, 0), dtype=np.float32), 0.0)
    encoder = document_encoder(settings, name_sample(texts, settings.embedding.query_agreement_sample))
    started = time.perf_counter()
    vectors = blend_embeddings(encoder, texts, show_progress)
    return EncodedPartition(vectors, time.perf_counter() - started)


def blend_embeddings(encoder: TextEncoder, texts: list[EmbeddingText], show_progress: bool = False) -> np.ndarray:
    """Each text's vector: ``name_weight`` x its name line's embedding + the rest x its whole
    text's; a name line equal to the whole text (nothing to describe) is encoded once."""
    if not texts:
        return np.zeros((0, encoder.dim), dtype=np.float32)
    vectors = encoder.encode([t.full for t in texts], show_progress=show_progress)
    blended = [i for i, t in enumerate(texts) if t.name_weight > 0 and t.name != t.full]
    if blended:
        names = encoder.encode([texts[i].name for i in blended], show_progress=show_progress)
        weights = np.array([texts[i].name_weight for i in blended], dtype=np.float32)[:, None]
        vectors[blended] = weights * names + (1 - weights) * vectors[blended]
    return vectors


def finish_vectors(
    settings: Settings, plan: VectorPlan, parts: list[EncodedPartition], out_dir: Path
) -> dict[str, Any]:
    """Write the encoded partitions (in plan order); then the serving index: the HNSW graphs into
    ``out_dir`` (``vector.serving_index: graph``, updated from the current build's), or Lance's
    ANN index, rebuilt if anything changed; either's recall against exact search.
    ``encode_seconds`` sums the partitions' encoding time (worker time)."""
    started = time.perf_counter()
    encode_seconds = sum(part.seconds for part in parts)
    encoded = [part for part in parts if len(part.vectors)]
    db = open_db(indexes_root(settings) / "lance")
    dim = _vector_dim(db, settings, encoded)
    vectors = np.concatenate([part.vectors for part in encoded]) if encoded else np.zeros((0, dim), dtype=np.float32)
    update = apply_vector_update(db, settings.vector.table, plan, vectors, dim, encode_seconds)
    table = db.open_table(settings.vector.table)
    if settings.vector.serving_index == "graph":
        spec = build_graph(table, settings.vector, out_dir, previous_graph(settings))
        ann, recall = graph_report(spec), spec.recall
    else:
        ann = build_ann_index(table, settings.vector, force=update.n_encoded > 0 or update.n_removed > 0)
        recall = measure_recall(table, settings.vector) if ann["kind"] != "brute_force" else {}
    return {
        "model": settings.embedding.model,
        "encoder": settings.embedding.document_encoder,
        "dim": dim,
        "table": settings.vector.table,
        "table_version": int(table.version),
        "n_vectors": table.count_rows(),
        "n_encoded": update.n_encoded,
        "n_removed": update.n_removed,
        "n_unchanged": update.n_unchanged,
        "encode_seconds": update.encode_seconds,
        "texts_per_second": round(update.n_encoded / update.encode_seconds, 1) if update.n_encoded else None,
        "ann": ann,
        "ann_recall": recall,
        "seconds": round(time.perf_counter() - started + encode_seconds, 2),
    }


def previous_graph(settings: Settings) -> Path | None:
    """The current build's graphs, which the next build updates in place; None before the first."""
    try:
        build_dir, _ = current_build(settings)
    except IndexNotBuilt:
        return None
    graph = build_dir / GRAPH_DIR
    return graph if graph.is_dir() else None


def _vector_dim(db: Any, settings: Settings, parts: list[EncodedPartition]) -> int:
    """The vectors' dimension: the (non-empty) partitions', else the table's (nothing changed),
    else the model's (an empty catalog's first build)."""
    if parts:
        return int(parts[0].vectors.shape[1])
    if settings.vector.table in db.table_names():
        return int(db.open_table(settings.vector.table).schema.field(VECTOR).type.list_size)
    return _torch_encoder(settings.embedding).dim


def _versions(*names: str) -> dict[str, str]:
    out = {}
    for name in names:
        try:
            out[name] = package_version(name)
        except Exception:  # noqa: BLE001 - a missing optional package is reported, not fatal
            out[name] = "not installed"
    return out


def settings_fingerprint(settings: Settings) -> str:
    """The settings an index build is a function of (with the catalog version): BM25, the
    embedding model and text, the vector table and ANN, the QU vocabulary."""
    payload = {
        name: getattr(settings, name).model_dump(
            mode="json", exclude={"export_cache_dir"} if name == "embedding" else None
        )
        for name in ("bm25", "embedding", "vector", "query_understanding")
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def publish_build(settings: Settings, build_id: str, catalog_version: str, reports: dict[str, Any]) -> dict[str, Any]:
    """Write the manifest, rename the staged build into place, switch CURRENT."""
    staged = staging_dir(settings, build_id)
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "build_id": build_id,
        "created_at": datetime.now(UTC).isoformat(),
        "catalog_version": catalog_version,
        "settings_fingerprint": settings_fingerprint(settings),
        "entity_schema_version": S.ENTITY_SCHEMA_VERSION,
        "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
        "component_versions": _versions(
            "ltrr", "bm25s", "lancedb", "pylance", "sentence-transformers", "torch", "onnxruntime"
        ),
        **reports,
    }
    manifest["checksums"] = checksum_tree(staged)
    write_json_atomic(staged / "manifest.json", manifest)
    build_store(settings).adopt(staged, build_id)
    return manifest


def current_build(settings: Settings) -> tuple[Path, dict[str, Any]]:
    path = build_store(settings).require()
    return path, read_json(path / "manifest.json")
