"""Prefect deployments of the nightly and backfill flows (``ltrr deploy``, ``make deploy``).

``serve_deployments`` registers both with the Prefect API (``PREFECT_API_URL``; ``make ui``
starts a server on 127.0.0.1) and runs a long-lived process that executes their runs: the
cron-scheduled nightly and any backfill (or nightly) a person starts from the UI's "Custom run"
with their own parameters. For several machines, the same deployments go to a work pool
(``flow.deploy``) with workers instead; nothing else changes (README, "Scaling out").

Each deployment has a Prefect concurrency limit (``orchestration.deployment_concurrency_limit``,
1: a second scheduled or UI-started run of the same deployment waits in AwaitingConcurrencySlot,
or is cancelled with ``cancel_new``). Prefect 3 keeps one such limit per deployment; a nightly and
a backfill at the same time are serialised by the data dir's writer lock (``ltrr_core.locking``),
which every run takes first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ltrr_core.config import Settings


def concurrency(settings: Settings) -> Any:
    """The deployments' concurrency limit from ``orchestration`` (Prefect's ConcurrencyLimitConfig)."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    orchestration = settings.orchestration
    return ConcurrencyLimitConfig(
        limit=orchestration.deployment_concurrency_limit,
        collision_strategy=ConcurrencyLimitStrategy(orchestration.deployment_collision_strategy.upper()),
    )


def deployments(settings: Settings, config_path: str) -> list[Any]:
    from prefect.schedules import Cron

    from flows.nightly import backfill, nightly

    orchestration = settings.orchestration
    config = str(Path(config_path).resolve())
    return [
        nightly.to_deployment(
            name=orchestration.nightly_deployment,
            schedules=[Cron(orchestration.nightly_cron, timezone=orchestration.timezone)],
            parameters={"config_path": config},
            concurrency_limit=concurrency(settings),
            description="validate logs -> catalog / indexes / Q2E (if changed) -> bandit || ranker -> bundle -> gates "
            "-> promote -> retention; `date` defaults to yesterday",
            tags=["ltrr", "nightly"],
        ),
        backfill.to_deployment(
            name=orchestration.backfill_deployment,
            parameters={"config_path": config},
            concurrency_limit=concurrency(settings),
            description="the nightly logic for each date from start_date to end_date (optionally only some steps)",
            tags=["ltrr", "backfill"],
        ),
    ]


def serve_deployments(settings: Settings, config_path: str, limit: int | None = None) -> None:
    from prefect import serve

    serve(
        *deployments(settings, config_path),
        limit=limit,
        pause_on_shutdown=settings.orchestration.pause_schedules_on_stop,
    )
