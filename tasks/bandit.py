"""Tasks of the train_bandit flow (thin wrappers of ltrr_core.bandit)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from ltrr_core.bandit import learner, training
from ltrr_core.config import Settings
from ltrr_core.runtime import bundle_loader

ALIAS_NOTE = {True: "alias challenger", False: "challenger kept: it learned from a later night"}


@task(name="validate_window_logs", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def validate_window_logs(settings: Settings, end: date, window_days: int) -> learner.WindowData:
    data = learner.load_window(settings, end, window_days)
    get_run_logger().info("window %s: %s", data.days, json.dumps(data.validation))
    return data


@task(name="replay_window", cache_policy=NO_CACHE)
def replay_window(settings: Settings, data: learner.WindowData) -> Any:
    return learner.replay_window(settings, data.outcomes, training.action_strategies(settings), bundle_loader(settings))


@task(name="train_policy", cache_policy=NO_CACHE)
def train_policy(settings: Settings, data: learner.WindowData, ranks: Any) -> tuple[Path, dict[str, Any]]:
    policy_dir, report = learner.train_night(
        settings, data, ranks, learner.real_rows(settings, bundle_loader(settings))
    )
    get_run_logger().info("policy %s: %s", report["version"], json.dumps(report["ope"]))
    return policy_dir, report


@task(name="track_policy", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def track_policy(
    settings: Settings, policy_dir: Path, report: dict[str, Any], data: learner.WindowData, run_name: str
) -> dict[str, Any]:
    from ltrr_core.bandit.tracking import log_training_run

    tracked = log_training_run(settings, policy_dir, report, data.outcomes, run_name)
    ope = report["ope"]
    rows = [
        f"| {name} | {e['estimate']:.4f} | [{e['ci'][0]:.4f}, {e['ci'][1]:.4f}] | {e['ess']:.0f} |"
        for name, e in ope["learned_policy"].items()
    ]
    create_markdown_artifact(
        key="bandit-policy",
        description=f"retrieval policy {report['version']}",
        markdown="\n".join(
            [
                f"# Retrieval policy {report['version']}",
                f"Window {report['window']}, held out {report['held_out']}; training {report['training']}.",
                f"Logging policy value {ope['logging_policy']['estimate']:.4f} {ope['logging_policy']['ci']}; "
                f"MLflow run {tracked['run_id']}, model version {tracked['model_version']} ({ALIAS_NOTE[tracked['challenger']]}).",
                "",
                "| estimator | learned policy | interval | ESS |",
                "|---|---|---|---|",
                *rows,
            ]
        ),
    )
    return tracked
