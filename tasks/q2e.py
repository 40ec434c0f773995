"""Tasks of the generate_q2e flow (thin wrappers of ltrr_core.memory.build)."""

from __future__ import annotations

import json
import logging
from datetime import date
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from ltrr_core.config import Settings
from ltrr_core.memory import build, observed_statistics

logging.getLogger("ltrr").setLevel(logging.INFO)


@task(name="q2e_inputs", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def q2e_inputs(settings: Settings, until: date | None = None) -> str:
    return build.inputs_fingerprint(settings, until)


@task(name="load_engagement", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def load_engagement(settings: Settings, until: date | None = None) -> pd.DataFrame:
    engagement = build.load_engagement(settings, until)
    get_run_logger().info("engagement rows: %d", len(engagement))
    return engagement


@task(name="entities_to_predict", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def entities_to_predict(
    settings: Settings, catalog_version: str, entities: pd.DataFrame
) -> tuple[pd.DataFrame, set[str], dict[str, Any]]:
    todo, drop, report = build.entities_to_predict(settings, catalog_version, entities)
    get_run_logger().info("prediction scope: %s", json.dumps(report))
    return todo, drop, report


@task(name="generate_predictions", cache_policy=NO_CACHE)
def generate_predictions(
    settings: Settings, entities: pd.DataFrame, engagement: pd.DataFrame
) -> tuple[pd.DataFrame, dict]:
    predicted, report = build.generate_predictions(settings, entities, observed_statistics(engagement, settings.memory))
    get_run_logger().info("doc2query: %s", json.dumps(report))
    return predicted, report


@task(name="publish_q2e", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def publish_q2e(
    settings: Settings,
    catalog_version: str,
    entities: pd.DataFrame,
    fresh: pd.DataFrame,
    drop_ids: set[str],
    engagement: pd.DataFrame,
    reports: dict[str, Any],
) -> dict[str, Any]:
    predicted = build.merge_predictions(settings, fresh, drop_ids, reports["scope"])
    manifest = build.publish_q2e(settings, catalog_version, entities, predicted, engagement, reports)
    create_markdown_artifact(
        key="q2e",
        description=f"Q2E table {manifest['version']}",
        markdown="\n".join(
            [
                f"# Q2E table {manifest['version']} (catalog {catalog_version})",
                "| what | value |",
                "|---|---|",
                f"| scope | {reports['scope']} |",
                f"| generated | {reports['doc2query']} |",
                f"| rows | {manifest['n_rows']} ({manifest['rows_by_source']}) |",
                f"| queries / entities | {manifest['n_queries']} / {manifest['n_entities']} |",
                f"| engagement rows / observed pairs | {manifest['n_engagement_rows']} / {manifest['n_observed_pairs']} "
                f"({manifest['n_observed_pairs_outside_catalog']} outside the catalog, left out) |",
                f"| contract | {manifest['contract']} |",
            ]
        ),
    )
    return manifest
