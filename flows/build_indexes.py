"""Flow: published catalog -> (BM25 || QU resources || incremental vectors + ANN) -> publish build."""

from __future__ import annotations

from typing import Any

from prefect import flow

from ltrr_core.config import load_settings
from tasks.indexes import (
    build_bm25,
    build_query_resources,
    build_vectors,
    load_catalog,
    publish_build,
    start_build,
)


@flow(name="build_indexes", log_prints=True)
def build_indexes(config_path: str | None = None) -> dict[str, Any]:
    settings = load_settings(config_path)
    catalog_version, entities = load_catalog(settings)
    build_id = start_build(settings)
    bm25 = build_bm25.submit(settings, entities, build_id)
    query_resources = build_query_resources.submit(settings, entities, build_id)
    vectors = build_vectors.submit(settings, entities)
    reports = {"bm25": bm25.result(), "query_resources": query_resources.result(), "vectors": vectors.result()}
    return publish_build(settings, build_id, catalog_version, reports)


if __name__ == "__main__":
    build_indexes()
