"""Flows: ``nightly(date)`` -- the platform's night as one DAG -- and ``backfill(start, end)``.

    validate_logs ─┬─ train_policy_night ─┐
                   └─ train_ranker_night ─┤   (concurrent with the catalog chain)
    catalog_status → content_understanding → indexes_status → build_indexes → q2e_status → generate_q2e
                                          └───────────────────────────────────┴→ build_candidate
                                                         → promote_candidate → apply_retention → record_night

Subflows skip themselves when their inputs did not change (catalog fingerprint, index build vs
catalog and settings). Every run writes the date's record and a markdown artifact; re-running a
date replaces its outputs (``ltrr_core.nightly``). Every flow here holds the data dir's writer lock
(``ltrr_core.locking``) for its run, shared with its subflows: a second nightly or backfill on the
same data dir waits ``orchestration.lock_wait_seconds`` and is then refused, naming the holder.
"""

from __future__ import annotations

from datetime import date as date_type
from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from flows.build_indexes import build_indexes
from flows.content_understanding import content_understanding
from flows.generate_q2e import generate_q2e
from flows.runners import with_task_runner
from ltrr_core import nightly as night
from ltrr_core.config import load_settings
from ltrr_core.locking import writer_lock
from tasks.nightly import (
    apply_retention,
    build_candidate,
    catalog_status,
    indexes_status,
    promote_candidate,
    publish_backfill_summary,
    q2e_status,
    record_night,
    track_model,
    train_policy,
    train_ranker,
    validate_logs,
)


@flow(name="refresh_platform", log_prints=True)
def refresh_platform(
    config_path: str | None = None, until: str | None = None, steps: list[str] | None = None
) -> dict[str, Any]:
    """The catalog chain: content understanding if the catalog's inputs changed, index builds if
    the catalog or index settings changed, then the Q2E table from engagement up to ``until``."""
    settings = load_settings(config_path)
    selected, out = night.select_steps(steps), {}
    with writer_lock(settings, f"refresh_platform until {until or 'now'}"):
        if "catalog" in selected:
            status = catalog_status(settings)
            out["catalog"] = (
                {"status": "ran", "reason": status["reason"], "version": content_understanding(config_path)["version"]}
                if status["stale"]
                else {"status": "skipped", **status}
            )
        if "indexes" in selected:
            status = indexes_status(settings)
            out["indexes"] = (
                {
                    "status": "ran",
                    "reason": status["reason"],
                    "build_id": with_task_runner(build_indexes, settings)(config_path)["build_id"],
                }
                if status["stale"]
                else {"status": "skipped", **status}
            )
        if "q2e" in selected:
            status = q2e_status(settings, date_type.fromisoformat(until) if until else None)
            if status["stale"]:
                q2e = generate_q2e(config_path, until)
                out["q2e"] = {
                    "status": "ran",
                    "reason": status["reason"],
                    "version": q2e["version"],
                    "rows": q2e["n_rows"],
                    "by_source": q2e["rows_by_source"],
                }
            else:
                out["q2e"] = {"status": "skipped", **status}
    return out


def _nightly_run_name() -> str:
    """``nightly 2026-01-03``: the date the run learns from (a scheduled run's is yesterday)."""
    parameters = flow_run.parameters
    try:
        day = night.resolve_day(load_settings(parameters.get("config_path")), _iso(parameters.get("date")))
    except (night.NightlyError, OSError, ValueError):  # naming never fails a run; the run reports the error
        return "nightly"
    return f"nightly {day.isoformat()}"


def _iso(day: date_type | str | None) -> str | None:
    return day.isoformat() if isinstance(day, date_type) else day


@flow(name="nightly", log_prints=True, flow_run_name=_nightly_run_name)
def nightly(
    date: date_type | None = None, steps: list[night.Step] | None = None, config_path: str | None = None
) -> dict[str, Any]:
    """One night of the platform for one date.

    Args:
        date: the day whose logs to learn from, YYYY-MM-DD (empty: yesterday, as the schedule runs it).
        steps: which steps to run, in their fixed order (empty: all). "promote" needs "bundle".
        config_path: the platform's YAML config (set by the deployment).
    """
    settings = load_settings(config_path)
    day, selected = night.resolve_day(settings, _iso(date)), night.select_steps(steps)
    with writer_lock(settings, f"nightly {day}"):
        record = night.new_record(settings, day, selected)
        logs = validate_logs.submit(settings, day) if "validate_logs" in selected else None
        wait = [logs] if logs else []
        policy = (
            track_model.submit(settings, train_policy.submit(settings, day, wait_for=wait), day)
            if "bandit" in selected
            else None
        )
        ranker = (
            track_model.submit(settings, train_ranker.submit(settings, day, wait_for=wait), day)
            if "ranker" in selected
            else None
        )
        if logs:
            night.note(record, "validate_logs", logs.result())
        for step, result in refresh_platform(config_path, day.isoformat(), selected).items():
            night.note(record, step, result)
        for step, future in (("bandit", policy), ("ranker", ranker)):
            if future is not None:
                night.note(record, step, future.result())
        if "bundle" in selected:
            candidate = build_candidate(
                settings, record["outputs"].get("policy_dir"), record["outputs"].get("ranker_dir")
            )
            night.note(record, "bundle", candidate)
            if "promote" in selected:
                decision = promote_candidate(settings, candidate["bundle_id"])
                night.note(record, "promote", decision)
                alone = night.fallback_models(
                    decision, record["outputs"].get("policy_dir"), record["outputs"].get("ranker_dir")
                )
                if alone is not None and not decision["promoted"]:
                    candidate = build_candidate(settings, alone["policy_dir"], alone["ranker_dir"])
                    night.note(record, "bundle", candidate)
                    night.note(record, "promote", promote_candidate(settings, candidate["bundle_id"]))
        if "retention" in selected:
            night.note(record, "retention", apply_retention(settings))
        return {**record_night(settings, record), "flow_run_id": str(flow_run.id)}


@flow(name="backfill", log_prints=True, flow_run_name="backfill {start_date}..{end_date}")
def backfill(
    start_date: date_type, end_date: date_type, steps: list[night.Step] | None = None, config_path: str | None = None
) -> list[dict[str, Any]]:
    """The nightly logic for each date from start_date to end_date, in order.

    Args:
        start_date: the first date, YYYY-MM-DD.
        end_date: the last date, YYYY-MM-DD (dates without logs are reported and skipped).
        steps: which steps each night runs, in their fixed order (empty: all). "promote" needs "bundle".
        config_path: the platform's YAML config (set by the deployment).
    """
    settings = load_settings(config_path)
    start, end = _iso(start_date) or "", _iso(end_date) or ""
    night.select_steps(steps)
    out: list[dict[str, Any]] = []
    with writer_lock(settings, f"backfill {start}..{end}"):
        for day in night.backfill_days(start, end):
            if not night.has_logs(settings, day):
                out.append({"date": day.isoformat(), "skipped": "no logs"})
                continue
            out.append(nightly(day, steps, config_path))
    publish_backfill_summary(start, end, out)
    return out


if __name__ == "__main__":
    import sys

    nightly(sys.argv[1] if len(sys.argv) > 1 else None)
