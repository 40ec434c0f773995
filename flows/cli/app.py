"""The ``ltrr`` Typer app and what every command group shares: ``--config``, settings, the console, error exits."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ltrr_core.config import DEFAULT_CONFIG, Settings, load_settings
from ltrr_core.env import apply_offline_env

app = typer.Typer(help="ltrr: learning to rank and retrieve.", no_args_is_help=True, add_completion=False)


console = Console(stderr=True)


ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config (default: configs/default.yaml)")
]


_state: dict[str, Path | None] = {"config": None}


@app.callback()
def _main(config: ConfigOption = None) -> None:
    _state["config"] = config


def _settings(config: Path | None) -> Settings:
    path = config or _state["config"] or DEFAULT_CONFIG
    try:
        settings = load_settings(path)
    except Exception as error:  # noqa: BLE001 - shown to the operator as one clear line
        console.print(f"[red]invalid configuration {path}:[/red] {error}")
        raise typer.Exit(2) from error
    apply_offline_env(settings.data_dir)
    return settings


def _config_arg(config: Path | None) -> str:
    return str(config or _state["config"] or DEFAULT_CONFIG)


@contextmanager
def _writing(settings: Settings, what: str) -> Iterator[None]:
    """The data dir's writer lock for a command that writes outside a flow; refused: exit 1 naming the holder."""
    from ltrr_core.locking import DataDirBusy, writer_lock

    try:
        with writer_lock(settings, what):
            yield
    except DataDirBusy as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error


def _run_flow(flow, config_path: str):
    from ltrr_core.contracts import ContractViolation
    from ltrr_core.locking import DataDirBusy

    try:
        return flow(config_path)
    except (ContractViolation, DataDirBusy) as violation:
        console.print(f"[red]{violation}[/red]")
        raise typer.Exit(1) from violation


def _emit(result: dict, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    _metrics_table(
        result, f"{result['n_queries']} queries" + (f", bundle {result['bundle_id']}" if "bundle_id" in result else "")
    )
    for name, interval in result.get("intervals", {}).items():
        Console(width=160).print(f"{name} (paired {len(interval)} metrics, 95% bootstrap): {interval}")
    if "candidate_hit" in result:
        Console(width=160).print(
            f"candidate hit (intended entity among the candidates drawn): {result['candidate_hit']}"
        )
    for name, part in result.get("slices", {}).items():
        _metrics_table(part, f"{name}: {part['n_queries']} queries")
    for intent, part in result.get("by_intent", {}).items():
        _metrics_table(part, f"{part['n_queries']} queries that QU reads as {intent}")
    if "cold_start" in result:
        Console(width=160).print(f"memory index cold start: {result['cold_start']}")


def _metrics_table(result: dict, title: str) -> None:
    table = Table(title=title)
    metrics = list(next(iter(result["strategies"].values())))
    table.add_column("strategy")
    for metric in metrics:
        table.add_column(metric)
    for name, values in result["strategies"].items():
        table.add_row(name, *[f"{values[m]:.4f}" for m in metrics])
    Console(width=160).print(table)
