"""Flow: published catalog -> (BM25 || QU resources || ONNX query encoder || vectors: plan -> document
encoder -> encode partitions -> write + ANN)
-> publish build. The task runner comes from ``orchestration.task_runner`` (threads, or Dask
workers: ``flows.runners.with_task_runner``)."""

from __future__ import annotations

from typing import Any

from prefect import flow, unmapped

from ltrr_core.config import load_settings
from ltrr_core.locking import writer_lock
from tasks.indexes import (
    build_bm25,
    build_query_encoder,
    build_query_resources,
    encode_partition,
    finish_vectors,
    load_catalog,
    plan_vectors,
    prepare_document_encoder,
    publish_build,
    start_build,
)


@flow(name="build_indexes", log_prints=True)
def build_indexes(config_path: str | None = None) -> dict[str, Any]:
    settings = load_settings(config_path)
    with writer_lock(settings, "build_indexes"):  # held by this (the flow's) process, not the tasks'
        catalog_version, entities = load_catalog(settings)
        build_id = start_build(settings)
        bm25 = build_bm25.submit(settings, entities, build_id)
        query_resources = build_query_resources.submit(settings, entities, build_id)
        plan = plan_vectors(settings, entities)
        # Exported once, before the partitions load it, and before the query encoder's export
        # (exports run one at a time): encoding is the longest step.
        document_encoder = prepare_document_encoder(settings, plan)
        query_encoder = build_query_encoder.submit(settings, entities, build_id)
        parts = encode_partition.map(
            unmapped(settings), plan.partitions(settings.orchestration.task_runner.encode_partitions)
        )
        vectors = finish_vectors(settings, plan, [part.result() for part in parts], build_id)
        reports = {
            "bm25": bm25.result(),
            "query_resources": query_resources.result(),
            "query_encoder": query_encoder.result(),
            "document_encoder": document_encoder,
            "vectors": vectors,
        }
        return publish_build(settings, build_id, catalog_version, reports)


if __name__ == "__main__":
    build_indexes()
