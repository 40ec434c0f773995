"""Operating the loop: ``ltrr nightly``, ``backfill``, ``deploy``, ``demo``."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ltrr_core.nightly import STEPS as NIGHTLY_STEPS
from ltrr_core.nightly import parse_day, select_steps

from .app import ConfigOption, _config_arg, _settings, app, console


@app.command()
def nightly(
    day: Annotated[str | None, typer.Option("--date", help="day whose logs to learn from (default: yesterday)")] = None,
    steps: Annotated[str | None, typer.Option(help="comma-separated subset of: " + ", ".join(NIGHTLY_STEPS))] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the night's record as JSON")] = False,
    config: ConfigOption = None,
) -> None:
    """Flow nightly: validate logs -> catalog/indexes/Q2E (if changed) -> bandit || ranker -> bundle -> gates -> promote."""
    _settings(config)
    from flows.nightly import nightly as nightly_flow

    selected = _run_nightly(lambda: _checked_steps(steps))
    when = _run_nightly(lambda: parse_day(day)) if day else None
    record = _run_nightly(lambda: nightly_flow(when, selected, _config_arg(config)))
    _print_record(record, as_json)


@app.command()
def backfill(
    start_date: Annotated[str, typer.Option("--start", help="first date, YYYY-MM-DD")],
    end_date: Annotated[str, typer.Option("--end", help="last date, YYYY-MM-DD")],
    steps: Annotated[str | None, typer.Option(help="comma-separated subset of the nightly steps")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one record per date")] = False,
    config: ConfigOption = None,
) -> None:
    """Flow backfill: the nightly logic for each date in order (dates without logs are skipped)."""
    _settings(config)
    from flows.nightly import backfill as backfill_flow

    selected = _run_nightly(lambda: _checked_steps(steps))
    first, last = _run_nightly(lambda: (parse_day(start_date, "start_date"), parse_day(end_date, "end_date")))
    records = _run_nightly(lambda: backfill_flow(first, last, selected, _config_arg(config)))
    for record in records:
        if "skipped" in record:
            console.print(f"{record['date']}: skipped ({record['skipped']})")
        else:
            _print_record(record, as_json)


def _checked_steps(steps: str | None) -> list[str] | None:
    """The flows' parameters are typed (the run form offers the step names); the CLI checks them
    first so that a typo gets the domain's message naming the valid steps, not a schema error."""
    if not steps:
        return None
    selected = [s.strip() for s in steps.split(",") if s.strip()]
    select_steps(selected)
    return selected


def _run_nightly(run):
    from ltrr_core.contracts import ContractViolation
    from ltrr_core.locking import DataDirBusy
    from ltrr_core.nightly import NightlyError

    try:
        return run()
    except (NightlyError, ContractViolation, DataDirBusy) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error


def _print_record(record: dict, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(record, default=str) + "\n")
        return
    from ltrr_core.nightly import STEPS

    table = Table(title=f"nightly {record['date']} (run {record['attempt']})")
    for column in ("step", "status", "details"):
        table.add_column(column)
    for step in STEPS:
        result = record["steps"].get(step, {"status": "not selected"})
        details = {k: v for k, v in result.items() if k not in ("status", "mlflow")}
        table.add_row(step, str(result["status"]), json.dumps(details, default=str)[:160])
    Console().print(table)


@app.command()
def deploy(
    register_only: Annotated[bool, typer.Option("--register-only", help="register the deployments and exit")] = False,
    pause_on_stop: Annotated[
        bool,
        typer.Option(
            "--pause-on-stop",
            help="pause the nightly schedule when this process stops (default: orchestration.pause_schedules_on_stop)",
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Register the `nightly` (cron from config) and `backfill` deployments and serve them (runs scheduled and UI-triggered flows)."""
    settings = _settings(config)
    if pause_on_stop:
        settings = settings.with_overrides(**{"orchestration.pause_schedules_on_stop": True})
    from flows.deploy import deployments, serve_deployments

    if register_only:
        for deployment in deployments(settings, _config_arg(config)):
            console.print(f"registered {deployment.name}: {deployment.apply()}")
        return
    console.print(
        f"serving deployments {settings.orchestration.nightly_deployment} (cron "
        f"'{settings.orchestration.nightly_cron}' {settings.orchestration.timezone}) and "
        f"{settings.orchestration.backfill_deployment}; Ctrl-C stops"
    )
    serve_deployments(settings, _config_arg(config))


@app.command()
def demo(
    nights: Annotated[int | None, typer.Option("--nights", min=1, help="default: demo.nights")] = None,
    queries_per_day: Annotated[int | None, typer.Option("--queries-per-day", min=10)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one object per night")] = False,
    config: ConfigOption = None,
) -> None:
    """The whole loop: cold start, then N nights of serve -> log -> nightly -> promote (GENERATED traffic)."""
    settings = _settings(config)
    from flows.demo import demo_loop

    rows = _run_nightly(lambda: demo_loop(nights, queries_per_day, _config_arg(config)))
    if as_json:
        for row in rows:
            sys.stdout.write(json.dumps(row, default=str) + "\n")
        return
    table = Table(
        title="the loop: what each day served, the policy trained that night, the promotion "
        "(GENERATED traffic: real users and intents, simulated behaviour)"
    )
    for column in (
        "day",
        "served by (policy / ranker)",
        "cand. recall",
        "nDCG@10",
        "reward",
        "cands",
        "night: policy estimate",
        "measured next day",
        "promoted",
        "why not",
    ):
        table.add_column(column)
    for row in rows:
        policy, promotion = row["policy"], row["promotion"]
        table.add_row(
            row["date"],
            _served_by(row["served_by"]["policy"], row["served_by"]["ranker"]),
            _fmt(row["candidate_recall"]),
            _fmt(row["ndcg@10"]),
            _fmt(row["reward"]),
            _fmt(row["unique_candidates"], "{:.0f}"),
            f"{policy['estimate']:.3f} [{policy['ci'][0]:.3f}, {policy['ci'][1]:.3f}]"
            if policy["estimate"] is not None
            else str(policy["trained"]),
            _fmt(policy["measured_next_day"]) if policy["served_next_day"] else "(not served)",
            ("yes (" + " + ".join(promotion.get("models") or []) + ")") if promotion["promoted"] else "no",
            " / then: ".join(
                "; ".join(a["reasons"] or []) for a in promotion.get("attempts") or [promotion] if not a.get("promoted")
            ),
        )
    last = rows[-1]["next_day"] if rows else None
    if last:
        table.add_row(
            last["day"],
            _served_by(last["policies"], last["ranked_by"]),
            _fmt(last["candidate_recall"]),
            _fmt(last["ndcg@10"]),
            _fmt(last["reward"]),
            _fmt(last["unique_candidates"], "{:.0f}"),
            "(served only)",
            "",
            "",
            "",
        )
    Console(width=220).print(table)
    import os

    ports = settings.orchestration
    prefect_where = (
        f"the flow runs 'demo' and 'nightly' with their markdown artifacts are at {os.environ['PREFECT_API_URL'].removesuffix('/api')}"
        if os.environ.get("PREFECT_API_URL")
        else "these flow runs used a temporary Prefect API; start `make ui` before `make demo` to keep them in the "
        f"UI (http://127.0.0.1:{ports.prefect_port})"
    )
    console.print(
        f"Prefect: {prefect_where}. MLflow: `make ui`, then http://127.0.0.1:{ports.mlflow_port} (experiments "
        f"{settings.mlflow.bandit_experiment}, {settings.mlflow.ranker_experiment}, {settings.mlflow.promotion_experiment}). "
        f"Records: {settings.data_dir / ports.out_dir}; promotions: `ltrr promotions`."
    )


def _served_by(policies: dict | None, rankers: dict | None) -> str:
    names = [p.split(":")[0] for p in (policies or {})] + [r.split(":")[0] for r in (rankers or {})]
    return " / ".join(dict.fromkeys(names)) or "-"


def _fmt(value, pattern: str = "{:.3f}") -> str:
    return pattern.format(value) if value is not None else "-"
