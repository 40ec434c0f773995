"""Tasks of the nightly and backfill flows (thin wrappers of ltrr_core.nightly)."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from ltrr_core import nightly, retention
from ltrr_core.config import Settings


@task(name="validate_logs", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def validate_logs(settings: Settings, day: date) -> dict[str, Any]:
    report = nightly.validate_logs(settings, day)
    get_run_logger().info("logs of %s: %s", day, json.dumps(report, default=str))
    return report


@task(name="catalog_status", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def catalog_status(settings: Settings) -> dict[str, Any]:
    return nightly.catalog_status(settings)


@task(name="indexes_status", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def indexes_status(settings: Settings) -> dict[str, Any]:
    return nightly.indexes_status(settings)


@task(name="q2e_status", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def q2e_status(settings: Settings, until: date | None) -> dict[str, Any]:
    return nightly.q2e_status(settings, until)


@task(name="train_policy_night", cache_policy=NO_CACHE)
def train_policy(settings: Settings, day: date) -> nightly.Trained:
    return nightly.train_policy(settings, day)


@task(name="train_ranker_night", cache_policy=NO_CACHE)
def train_ranker(settings: Settings, day: date) -> nightly.Trained:
    return nightly.train_ranker(settings, day)


@task(name="track_model", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def track_model(settings: Settings, trained: nightly.Trained, day: date) -> dict[str, Any]:
    """The MLflow run of a model trained tonight (retried alone: I/O, not training)."""
    summary = nightly.tracked_summary(settings, trained, f"nightly {day}")
    get_run_logger().info("%s: %s", trained.component, json.dumps(summary, default=str))
    return summary


@task(name="build_candidate", retries=1, retry_delay_seconds=[5], cache_policy=NO_CACHE)
def build_candidate(settings: Settings, policy_dir: str | None, ranker_dir: str | None) -> dict[str, Any]:
    from pathlib import Path

    candidate = nightly.build_candidate(
        settings, Path(policy_dir) if policy_dir else None, Path(ranker_dir) if ranker_dir else None
    )
    get_run_logger().info("candidate bundle %s from %s", candidate["bundle_id"], candidate["sources"])
    return candidate


@task(name="promote_candidate", cache_policy=NO_CACHE)
def promote_candidate(settings: Settings, bundle_id: str) -> dict[str, Any]:
    decision = nightly.promote_candidate(settings, bundle_id)
    get_run_logger().info("promotion of %s: %s %s", bundle_id, decision["promoted"], decision["reasons"])
    return decision


@task(name="apply_retention", cache_policy=NO_CACHE)
def apply_retention(settings: Settings) -> dict[str, Any]:
    """Old log days and versions nothing needs, removed (the flow's process holds the writer lock)."""
    summary = retention.run_retention(settings)
    get_run_logger().info("retention: %s", json.dumps(summary, default=str))
    return summary


@task(name="record_night", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def record_night(settings: Settings, record: dict[str, Any]) -> dict[str, Any]:
    record = nightly.finish_record(settings, record)
    create_markdown_artifact(
        key=f"nightly-{record['date']}",
        description=f"nightly run of {record['date']}",
        markdown=nightly.markdown(record, nightly.mlflow_ui_url(settings)),
    )
    return record


PREFECT_RUN_LINK = "/runs/flow-run/{flow_run_id}"  # the Prefect UI's page of a flow run (its artifacts tab)


@task(name="publish_backfill_summary", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def publish_backfill_summary(start: str, end: str, nights: list[dict[str, Any]]) -> None:
    create_markdown_artifact(
        key=f"backfill-{start}-{end}",
        description=f"backfill {start}..{end}",
        markdown=nightly.backfill_summary(start, end, nights, PREFECT_RUN_LINK),
    )
