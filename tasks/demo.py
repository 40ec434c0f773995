"""Tasks of the demo loop (thin wrappers of ltrr_core.nightly)."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from ltrr_core import nightly
from ltrr_core.config import Settings


@task(name="ensure_champion", cache_policy=NO_CACHE)
def ensure_champion(settings: Settings) -> dict[str, Any] | None:
    decision = nightly.ensure_champion(settings)
    if decision:
        get_run_logger().info(
            "first champion %s: promoted=%s %s", decision["bundle_id"], decision["promoted"], decision["reasons"]
        )
    return decision


@task(name="simulate_day", cache_policy=NO_CACHE)
def simulate_day(settings: Settings, queries_per_day: int) -> dict[str, Any]:
    summary = nightly.simulate_served_day(settings, queries_per_day)
    get_run_logger().info(
        "simulated %s: %d requests, success@10 %.3f", summary["day"], summary["requests"], summary["success_at_10"]
    )
    return summary


@task(name="measure_day", cache_policy=NO_CACHE)
def measure_day(settings: Settings, day: str) -> dict[str, Any]:
    from ltrr_core.eval.served import measure_served_day

    return measure_served_day(settings, day)
