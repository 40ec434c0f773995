"""Tasks of the build_indexes flow."""

from __future__ import annotations

import json
import logging
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from ltrr_core.catalog import CatalogStore
from ltrr_core.config import Settings
from ltrr_core.index import build
from ltrr_core.index.documents import EmbeddingText
from ltrr_core.index.vector import VectorPlan

# ltrr_core reports progress (e.g. "encoded 20480/81186 texts") on the "ltrr" logger; Prefect
# forwards it to the run logs (PREFECT_LOGGING_EXTRA_LOGGERS, set by ltrr_core.env).
logging.getLogger("ltrr").setLevel(logging.INFO)


@task(name="load_catalog", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def load_catalog(settings: Settings) -> tuple[str, pd.DataFrame]:
    store = CatalogStore(settings.data_dir / "catalog")
    version = store.current_version()
    return version, store.load(version)


@task(name="start_build", cache_policy=NO_CACHE)
def start_build(settings: Settings) -> str:
    build_id = build.new_build_id(settings)
    build.start_build(settings, build_id)
    return build_id


@task(name="build_bm25", cache_policy=NO_CACHE)
def build_bm25(settings: Settings, entities: pd.DataFrame, build_id: str) -> dict[str, Any]:
    report = build.build_bm25(settings, entities, build.staging_dir(settings, build_id))
    get_run_logger().info("bm25: %s", json.dumps(report))
    return report


@task(name="build_query_resources", cache_policy=NO_CACHE)
def build_query_resources(settings: Settings, entities: pd.DataFrame, build_id: str) -> dict[str, Any]:
    report = build.build_query_resources(settings, entities, build.staging_dir(settings, build_id))
    get_run_logger().info("query resources: %s", json.dumps(report))
    return report


@task(name="build_query_encoder", retries=1, retry_delay_seconds=[5], cache_policy=NO_CACHE)
def build_query_encoder(settings: Settings, entities: pd.DataFrame, build_id: str) -> dict[str, Any]:
    report = build.build_query_encoder(settings, entities, build.staging_dir(settings, build_id))
    get_run_logger().info("query encoder: %s", json.dumps(report))
    return report


@task(name="plan_vectors", cache_policy=NO_CACHE)
def plan_vectors(settings: Settings, entities: pd.DataFrame) -> VectorPlan:
    plan = build.plan_vectors(settings, entities)
    get_run_logger().info(
        "vectors: %d to encode, %d to remove, %d entities", len(plan.todo_ids), len(plan.removed), plan.n_total
    )
    return plan


@task(name="prepare_document_encoder", retries=1, retry_delay_seconds=[5], cache_policy=NO_CACHE)
def prepare_document_encoder(settings: Settings, plan: VectorPlan) -> dict[str, Any]:
    report = build.prepare_document_encoder(settings, plan)
    get_run_logger().info("document encoder: %s", json.dumps(report))
    return report


@task(name="encode_partition", retries=1, retry_delay_seconds=[5], cache_policy=NO_CACHE)
def encode_partition(settings: Settings, texts: list[EmbeddingText]) -> build.EncodedPartition:
    return build.encode_texts(settings, texts, show_progress=len(texts) > 0)


@task(name="finish_vectors", retries=1, retry_delay_seconds=[5], cache_policy=NO_CACHE)
def finish_vectors(
    settings: Settings, plan: VectorPlan, parts: list[build.EncodedPartition], build_id: str
) -> dict[str, Any]:
    report = build.finish_vectors(settings, plan, parts, build.staging_dir(settings, build_id))
    get_run_logger().info("vectors: %s", json.dumps(report))
    return report


@task(name="publish_build", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def publish_build(settings: Settings, build_id: str, catalog_version: str, reports: dict[str, Any]) -> dict[str, Any]:
    manifest = build.publish_build(settings, build_id, catalog_version, reports)
    vectors, bm25 = manifest["vectors"], manifest["bm25"]
    create_markdown_artifact(
        key="index-build",
        description=f"index build {build_id}",
        markdown="\n".join(
            [
                f"# Index build {build_id} (catalog {catalog_version})",
                "| step | result |",
                "|---|---|",
                f"| BM25 | {bm25['n_documents']} docs, vocab {bm25['vocabulary_size']}, {bm25['seconds']} s |",
                f"| vectors | {vectors['n_vectors']} rows, encoded {vectors['n_encoded']}, removed {vectors['n_removed']}, Lance v{vectors['table_version']} |",
                f"| ANN | {vectors['ann']} recall {vectors['ann_recall']} |",
                f"| QU resources | {manifest['query_resources']} |",
                f"| query encoder | {manifest.get('query_encoder')} |",
            ]
        ),
    )
    return manifest
