"""Tasks of the content_understanding flow."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from ltrr_core import catalog
from ltrr_core.config import Settings

# DataFrames pass between tasks in memory; hashing 80k-row frames for cache keys costs more
# than the steps themselves, so these tasks do not cache.


@task(name="ingest_catalog", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def ingest_catalog(settings: Settings) -> tuple[pd.DataFrame, dict[str, Any]]:
    entities, report = catalog.ingest_catalog(settings)
    get_run_logger().info("ingested %d entities: %s", len(entities), json.dumps(report))
    return entities, report


@task(name="validate_catalog", cache_policy=NO_CACHE)
def validate_catalog(settings: Settings, entities: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    kept, quarantined, summary = catalog.validate_catalog(settings, entities)
    get_run_logger().info(
        "catalog contract passed: %d kept, %d quarantined %s",
        len(kept),
        len(quarantined),
        summary["quarantined_by_reason"],
    )
    return kept, quarantined, summary


@task(name="understand_catalog", cache_policy=NO_CACHE)
def understand_catalog(settings: Settings, entities: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    enriched, report = catalog.understand(settings, entities)
    get_run_logger().info("content understanding: %s", json.dumps(report["counts"]))
    return enriched, report


@task(name="publish_catalog", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def publish_catalog(
    settings: Settings, entities: pd.DataFrame, quarantined: pd.DataFrame, reports: dict[str, Any]
) -> dict[str, Any]:
    version, manifest = catalog.publish_catalog(settings, entities, quarantined, reports)
    create_markdown_artifact(
        key="catalog-version",
        markdown=_catalog_markdown(manifest),
        description=f"catalog {version}",
    )
    return manifest


def _catalog_markdown(manifest: dict[str, Any]) -> str:
    diff = manifest["diff"]
    cu = manifest.get("content_understanding", {}).get("counts", {})
    lines = [
        f"# Catalog {manifest['version']}",
        f"{manifest['n_entities']} entities ({manifest['by_type']}); quarantined {manifest['n_quarantined']}.",
        "",
        "| new | changed | removed | unchanged |",
        "|---|---|---|---|",
        f"| {diff['new']} | {diff['changed']} | {diff['removed']} | {diff['unchanged']} |",
        "",
        "| attribute | entities |",
        "|---|---|",
        *[f"| {name} | {count} |" for name, count in cu.items()],
    ]
    return "\n".join(lines)
