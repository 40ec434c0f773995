"""Tasks of the train_ranker flow (thin wrappers of ltrr_core.ranking)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from ltrr_core.config import Settings
from ltrr_core.ranking import train
from ltrr_core.runtime import bundle_loader

ALIAS_NOTE = {True: "alias challenger", False: "challenger kept: it learned from a later night"}


@task(name="split_days", cache_policy=NO_CACHE)
def split_days(settings: Settings, day: date, window_days: int) -> train.Split:
    split = train.split_days(settings, day, window_days)
    get_run_logger().info(
        "train %s, validate %s, evaluate %s", split.train_days, split.validation_day, split.evaluation_day
    )
    return split


@task(name="train_ranker", cache_policy=NO_CACHE)
def train_ranker(settings: Settings, day: date, window_days: int) -> tuple[Path, dict[str, Any], Any]:
    """Contract-checked logs -> training set (its own contract) -> CatBoost -> evaluation on ``day``."""
    ranker_dir, report, rows = train.train_night(settings, day, bundle_loader(settings), window_days)
    get_run_logger().info("ranker %s (%s): %s", report["version"], report["loss"], json.dumps(report["evaluation"]))
    return ranker_dir, report, rows


@task(name="track_ranker", retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def track_ranker(
    settings: Settings, ranker_dir: Path, report: dict[str, Any], rows: Any, run_name: str
) -> dict[str, Any]:
    from ltrr_core.ranking.tracking import log_ranker_run

    tracked = log_ranker_run(settings, ranker_dir, report, rows, run_name)
    evaluation = report["evaluation"]
    lines = [
        f"| {name} | {s['ndcg@10']} | {s['mrr@10']} | {s.get('ndcg@10_minus_fusion_ci', '')} |"
        for name, s in evaluation.items()
        if isinstance(s, dict) and "ndcg@10" in s
    ]
    create_markdown_artifact(
        key="ranker",
        description=f"ranker {report['version']}",
        markdown="\n".join(
            [
                f"# Ranker {report['version']} ({report['loss']})",
                f"Sources {report.get('sources')}; logged days {report['train_days'] or 'none'}, validated on "
                f"{report['validation_day'] or 'real validation queries'}, gated on {report.get('evaluated_on')}; "
                f"examination by position {(report.get('position_bias') or {}).get('examination', 'not estimated')}.",
                f"MLflow run {tracked['run_id']}, model version {tracked['model_version']} ({ALIAS_NOTE[tracked['challenger']]}); "
                f"champion {report['champion'] or 'none'}.",
                "",
                "| ranking | nDCG@10 | MRR@10 (engaged) | nDCG@10 − fusion, 95% |",
                "|---|---|---|---|",
                *lines,
            ]
        ),
    )
    return tracked
