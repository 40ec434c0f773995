"""Benchmarks and the fault harness: ``ltrr bench``, ``bench-install``, ``bench-soak``, ``reliability``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ltrr_core.config import DEFAULT_CONFIG, Settings

from .app import ConfigOption, _config_arg, _run_flow, _settings, _state, app, console


@app.command()
def bench(
    out: Annotated[Path, typer.Option("--out", help="Markdown file for the results table")] = Path("bench/RESULTS.md"),
    config: ConfigOption = None,
) -> None:
    """Measure ingest, index builds, embedding throughput, query latency and the runtime over HTTP (real and 1M)."""
    settings = _settings(config)
    from ltrr_core.bench.run import run_benchmarks

    run_benchmarks(settings, out, Path(_config_arg(config)))
    console.print(f"wrote {out}")


def project_root() -> Path:
    """The source tree this CLI runs from (flows/cli/bench.py -> the project): what
    ``bench-install`` installs, with its requirements.lock."""
    return Path(__file__).resolve().parents[2]


@app.command("bench-install")
def bench_install(
    out: Annotated[Path, typer.Option("--out", help="Markdown file for the install sizes")] = Path("bench/INSTALL.md"),
) -> None:
    """The runtime extra in a fresh virtual environment: its size and largest packages beside the whole platform's."""
    import tempfile

    from ltrr_core.bench.install import measure_install, render_install
    from ltrr_core.bench.run import machine
    from ltrr_core.durable import write_bytes_atomic

    root = project_root()
    with tempfile.TemporaryDirectory(prefix="ltrr-install-") as tmp:
        report = measure_install(root, root / "requirements.lock", Path(tmp))
    write_bytes_atomic(out, render_install(report, machine(), "ltrr bench-install").encode("utf-8"))
    sys.stdout.write(json.dumps(report.to_dict()) + "\n")
    console.print(f"wrote {out}")


@app.command("bench-soak")
def bench_soak(
    out: Annotated[Path, typer.Option("--out", help="Markdown file for the soak figures")] = Path("bench/SOAK.md"),
    minutes: Annotated[float | None, typer.Option(help="default: bench.soak.minutes")] = None,
    config: ConfigOption = None,
) -> None:
    """ltrr serve --workers under steady load (70% of measured capacity) with hot reloads and a worker restart."""
    settings = _settings(config)
    import tempfile

    from ltrr_core.artifacts import BundleError
    from ltrr_core.bench.run import machine
    from ltrr_core.bench.soak import render_soak, run_soak
    from ltrr_core.durable import write_bytes_atomic
    from ltrr_core.labelled.datasets import project_cpcd_queries

    if minutes is not None:
        settings = settings.with_overrides(**{"bench.soak.minutes": minutes})
    queries = list(project_cpcd_queries(settings, "all").queries)  # load only: every query text
    command = f"ltrr --config {_config_arg(config)} bench-soak --minutes {settings.bench.soak.minutes:g}"
    with tempfile.TemporaryDirectory(prefix="ltrr-soak-") as tmp:
        try:
            result = run_soak(settings, Path(_config_arg(config)), queries, Path(tmp))
        except BundleError as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(1) from error
    write_bytes_atomic(out, render_soak(result, machine(), command).encode("utf-8"))
    sys.stdout.write(json.dumps(result.to_dict()) + "\n")
    console.print(f"wrote {out}")


@app.command()
def reliability(
    out: Annotated[Path, typer.Option("--out", help="Markdown file for the writer x fault table")] = Path(
        "docs/reliability.md"
    ),
    platform: Annotated[
        Path | None,
        typer.Option("--platform", help="a built data dir to copy (its catalog, indexes, q2e) instead of building one"),
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="one point per fault instead of every point")] = False,
    config: ConfigOption = None,
) -> None:
    """kill -9, ENOSPC and EIO at every writer's writes (child processes, a temporary platform of
    the test profile unless --config): writes what a reader saw after each, and whether the next
    run completed and the champion kept serving."""
    import tempfile

    profile = config or _state["config"] or DEFAULT_CONFIG.parent / "test.yaml"
    command = "ltrr reliability " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["reliability"] else sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="ltrr-reliability-") as tmp:
        settings = _reliability_platform(profile, platform, Path(tmp))
        from ltrr_core.reliability.report import generate

        outcomes = generate(
            settings,
            Path(tmp) / "work",
            out,
            command.strip(),
            f"profile {profile.name}, " + ("a copy of " + str(platform) if platform else "built by the flows"),
            every_point=not quick,
            progress=lambda o: console.print(
                f"{'ok ' if o.ok else 'FAIL'} {o.writer} x {o.fault} at {o.point} ({o.seconds:.0f} s)"
            ),
        )
    console.print(f"wrote {out}: {sum(o.ok for o in outcomes)} of {len(outcomes)} runs held")
    if not all(o.ok for o in outcomes):
        raise typer.Exit(1)


def _reliability_platform(profile: Path, platform: Path | None, tmp: Path) -> Settings:
    """A platform in ``tmp``: a copy of a built data dir, or the content_understanding,
    build_indexes and generate_q2e flows run on ``profile``."""
    import shutil

    import yaml

    data, config_file = tmp / "data", tmp / "platform.yaml"
    config_file.write_text(yaml.safe_dump({"extends": str(profile.resolve()), "data_dir": str(data)}))
    settings = _settings(config_file)
    if platform is not None:
        for part in ("catalog", "indexes", "q2e"):
            shutil.copytree(platform / part, data / part)
        return settings
    from flows.build_indexes import build_indexes
    from flows.content_understanding import content_understanding
    from flows.generate_q2e import generate_q2e

    for flow in (content_understanding, build_indexes, generate_q2e):
        _run_flow(flow, str(config_file))
    return settings
