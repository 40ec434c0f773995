"""Build and serve: content understanding, index builds, Q2E, bundles, logs, serve, simulate, promotion, retention, search."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .app import ConfigOption, _config_arg, _run_flow, _settings, _writing, app, console


@app.command("content-understanding")
def content_understanding_cmd(config: ConfigOption = None) -> None:
    """Ingest the real sources, apply the catalog contract, add structure, publish a version."""
    _settings(config)
    from flows.content_understanding import content_understanding

    manifest = _run_flow(content_understanding, _config_arg(config))
    console.print(
        f"catalog {manifest['version']}: {manifest['n_entities']} entities, "
        f"diff {manifest['diff']}, quarantined {manifest['n_quarantined']}"
    )


@app.command("build-indexes")
def build_indexes_cmd(config: ConfigOption = None) -> None:
    """Build BM25 and the Lance vector table (incremental) from the published catalog."""
    settings = _settings(config)
    from flows.build_indexes import build_indexes
    from flows.runners import with_task_runner

    manifest = _run_flow(with_task_runner(build_indexes, settings), _config_arg(config))
    vectors = manifest["vectors"]
    console.print(
        f"build {manifest['build_id']}: {vectors['n_vectors']} vectors "
        f"({vectors['n_encoded']} encoded), ANN {vectors['ann']['kind']} {vectors['ann_recall']}"
    )


@app.command("generate-q2e")
def generate_q2e_cmd(config: ConfigOption = None) -> None:
    """doc2query predictions for new/changed entities, blended with observed engagement -> Q2E table."""
    _settings(config)
    from flows.generate_q2e import generate_q2e

    manifest = _run_flow(generate_q2e, _config_arg(config))
    console.print(
        f"Q2E {manifest['version']}: {manifest['n_rows']} rows {manifest['rows_by_source']}, "
        f"{manifest['n_queries']} queries, scope {manifest['scope']['mode']}"
    )


bundle_app = typer.Typer(help="Serving bundles: build one from the latest builds, verify one.", no_args_is_help=True)


app.add_typer(bundle_app, name="bundle")


@bundle_app.command("build")
def bundle_build_cmd(
    policy: Annotated[
        str, typer.Option(help="'latest' (the newest trained policy, if any), 'none', or a directory")
    ] = "latest",
    ranker: Annotated[
        str, typer.Option(help="'latest' (the newest trained ranker, if any), 'none', or a directory")
    ] = "latest",
    config: ConfigOption = None,
) -> None:
    """Assemble an immutable bundle (BM25, QU resources, Q2E table, retrieval config, Lance reference, policy, ranker)."""
    settings = _settings(config)
    from ltrr_core.artifacts import build_bundle
    from ltrr_core.bandit.learner import latest_policy
    from ltrr_core.ranking.train import latest_ranker

    chosen = latest_policy(settings) if policy == "latest" else None if policy == "none" else Path(policy)
    chosen_ranker = latest_ranker(settings) if ranker == "latest" else None if ranker == "none" else Path(ranker)
    with _writing(settings, "bundle build"):
        manifest = build_bundle(settings, chosen, chosen_ranker)
    console.print(
        f"bundle {manifest['bundle_id']}: {len(manifest['files'])} files, components {manifest['components']}"
    )


@bundle_app.command("verify")
def bundle_verify_cmd(
    path: Annotated[Path | None, typer.Argument(help="bundle directory (default: the latest built)")] = None,
    config: ConfigOption = None,
) -> None:
    """Check a bundle's manifest, every checksum and that no path leaves the bundle."""
    settings = _settings(config)
    from ltrr_core.artifacts import BundleError, latest_bundle, verify_bundle

    try:
        target = path or latest_bundle(settings)
        manifest = verify_bundle(target)
    except BundleError as error:
        console.print(f"[red]bundle refused:[/red] {error}")
        raise typer.Exit(1) from error
    console.print(f"bundle {manifest['bundle_id']} verifies: {len(manifest['files'])} files")


logs_app = typer.Typer(help="Interaction logs.", no_args_is_help=True)


app.add_typer(logs_app, name="logs")


@logs_app.command("validate")
def logs_validate_cmd(
    date: Annotated[str, typer.Option("--date", help="day partition, YYYY-MM-DD")],
    config: ConfigOption = None,
) -> None:
    """Run the impression and feedback contracts on one day; quarantine bad rows with their reason."""
    settings = _settings(config)
    from ltrr_core.contracts import ContractViolation
    from ltrr_core.contracts.logs import check_logged_day

    root = settings.data_dir / settings.runtime.log_dir
    try:
        _, _, report = check_logged_day(root, date)
    except ContractViolation as violation:
        console.print(f"[red]{violation}[/red]")
        raise typer.Exit(1) from violation
    sys.stdout.write(json.dumps(report, default=str) + "\n")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address (default: runtime.host, 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default: runtime.port)")] = None,
    bundle: Annotated[
        Path | None, typer.Option(help="a bundle that has passed the gates (default: the promoted one)")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="worker processes sharing the port (each loads the bundle)")] = 1,
    config: ConfigOption = None,
) -> None:
    """Serve search, feedback, health and admin reload over HTTP (OpenAPI docs at /docs).
    Only a gated bundle serves: before the first promotion this refuses to start."""
    settings = _settings(config)
    import os

    import uvicorn

    from ltrr_core.artifacts import BundleError
    from ltrr_core.runtime.serve import BUNDLE_ENV, CONFIG_ENV, HTTP_PROTOCOL, build_app, chosen_bundle

    try:
        if workers == 1:
            app_ = build_app(settings, bundle)
        else:
            chosen_bundle(settings, bundle)  # refuse here, with the reason, before any worker starts
    except BundleError as error:
        console.print(f"[red]bundle refused:[/red] {error}")
        raise typer.Exit(1) from error
    host, port = host or settings.runtime.host, port or settings.runtime.port
    if workers == 1:
        service = app_.state.current_service()
        console.print(f"serving bundle {service.bundle_id} (cold start {service.startup})")
        uvicorn.run(app_, host=host, port=port, log_level="info", http=HTTP_PROTOCOL)
        return
    os.environ[CONFIG_ENV] = str(Path(_config_arg(config)).resolve())
    os.environ.pop(BUNDLE_ENV, None)
    if bundle is not None:
        os.environ[BUNDLE_ENV] = str(bundle.resolve())
    uvicorn.run(
        "ltrr_core.runtime.serve:app_from_env",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        http=HTTP_PROTOCOL,
        log_level="info",
    )


@app.command()
def simulate(
    days: Annotated[int, typer.Option("--days", min=1, help="simulated days")] = 1,
    queries_per_day: Annotated[
        int | None, typer.Option("--queries-per-day", min=1, help="default: simulate.queries_per_day")
    ] = None,
    start_date: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default: day after the last logged day)")] = None,
    bundle: Annotated[Path | None, typer.Option(help="bundle directory (default: the promoted one)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the day summaries as JSON")] = False,
    config: ConfigOption = None,
) -> None:
    """Simulated people (GENERATED behaviour on real users and intents) search the real runtime; logs are written."""
    settings = _settings(config)
    from datetime import date

    from ltrr_core.artifacts import BundleError
    from ltrr_core.artifacts.champion import serving_bundle
    from ltrr_core.contracts import ContractViolation
    from ltrr_core.contracts.logs import check_logged_day
    from ltrr_core.progress import progress
    from ltrr_core.runtime import load_service
    from ltrr_core.simulate import DayAlreadyLogged
    from ltrr_core.simulate.run import simulate as run_simulation

    try:
        start = date.fromisoformat(start_date) if start_date else None
    except ValueError as error:
        raise typer.BadParameter(f"--start-date {start_date!r} is not YYYY-MM-DD") from error
    per_day_n = queries_per_day or settings.simulate.queries_per_day
    with progress(f"simulating {days} day(s) of {per_day_n} searches", days * per_day_n, console) as advance:

        def per_day(n: int) -> Callable[[], None]:
            return lambda: advance(1)

        try:
            service = load_service(settings, bundle or serving_bundle(settings))
            summaries = run_simulation(settings, service, days, queries_per_day, start, per_day)
        except (BundleError, DayAlreadyLogged) as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(1) from error
    root = settings.data_dir / settings.runtime.log_dir
    out = []
    for summary in summaries:
        try:
            _, _, report = check_logged_day(root, summary.day)
        except ContractViolation as violation:
            console.print(f"[red]{violation}[/red]")
            raise typer.Exit(1) from violation
        out.append({**summary.to_dict(), "contracts": report})
    if as_json:
        sys.stdout.write(json.dumps(out) + "\n")
        return
    table = Table(title=f"simulated days (logs under {root})")
    for column in ("day", "requests", "clicks", "streams", "likes", "success@10", "mrr@10", "quarantined"):
        table.add_column(column)
    for row in out:
        quarantined = row["contracts"]["impressions"]["quarantined"] + row["contracts"]["feedback"]["quarantined"]
        table.add_row(
            row["day"],
            str(row["requests"]),
            str(row["clicks"]),
            str(row["streams"]),
            str(row["likes"]),
            f"{row['success_at_10']:.3f}",
            f"{row['mrr_at_10']:.3f}",
            str(quarantined),
        )
    Console().print(table)


@app.command()
def promote(
    bundle: Annotated[Path | None, typer.Option(help="candidate bundle (default: the latest built)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="run and record the gates, switch nothing")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the decision as JSON")] = False,
    config: ConfigOption = None,
) -> None:
    """Gate a candidate bundle (contracts, ranker, policy, integrity, smoke test) and promote it if all pass."""
    settings = _settings(config)
    from ltrr_core.artifacts import latest_bundle
    from ltrr_core.promotion import promote as run_promotion

    with _writing(settings, "promote" + (" --dry-run" if dry_run else "")):
        decision = run_promotion(settings, bundle or latest_bundle(settings), dry_run)
    if as_json:
        sys.stdout.write(json.dumps(decision.to_dict(), default=str) + "\n")
    else:
        table = Table(title=f"promotion of {decision.bundle_id}" + (" (dry run)" if dry_run else ""))
        for column in ("gate", "passed", "reason"):
            table.add_column(column)
        for gate in decision.gates:
            table.add_row(gate.name, "yes" if gate.passed else "[red]no[/red]", gate.reason)
        Console().print(table)
        console.print(
            "promoted"
            if decision.promoted
            else f"not promoted; serving stays {decision.previous or 'the latest built'}"
        )
    if not decision.promoted and not dry_run:
        raise typer.Exit(1)


@app.command()
def rollback(config: ConfigOption = None) -> None:
    """Serve the previously promoted bundle again (after it verifies)."""
    settings = _settings(config)
    from ltrr_core.artifacts import BundleError
    from ltrr_core.promotion import rollback as run_rollback

    try:
        with _writing(settings, "rollback"):
            entry = run_rollback(settings)
    except BundleError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error
    console.print(f"rolled back from {entry['from']} to {entry['bundle_id']}")


@app.command()
def promotions(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per line")] = False,
    config: ConfigOption = None,
) -> None:
    """The promotion history: every decision with its gates and numbers, switches and rollbacks."""
    settings = _settings(config)
    from ltrr_core.artifacts.champion import history

    for entry in history(settings):
        if as_json:
            sys.stdout.write(json.dumps(entry, default=str) + "\n")
        else:
            verdict = entry.get("promoted")
            console.print(
                f"{entry['decided_at']}  {entry['action']:9s} {entry['bundle_id']}"
                + (
                    f"  promoted={verdict} {entry.get('reasons') or ''}"
                    if verdict is not None
                    else f"  (from {entry.get('from') or entry.get('previous')})"
                )
            )


@app.command()
def retention(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print what would be removed, remove nothing")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="the plan (and what was removed) as JSON")] = False,
    config: ConfigOption = None,
) -> None:
    """Remove old log days and versions by configured age/count (`retention`); never what serving, rollback, a training window or replay needs."""
    settings = _settings(config)
    from ltrr_core.retention import apply_retention, plan_retention

    if dry_run:
        plan, result = plan_retention(settings), None
    else:
        with _writing(settings, "retention"):
            plan = plan_retention(settings)
            result = apply_retention(plan)
    if as_json:
        sys.stdout.write(
            json.dumps(
                {"dry_run": dry_run, "plan": plan.to_dict(), "result": result.to_dict() if result else None},
                default=str,
            )
            + "\n"
        )
        return
    _print_retention(plan, dry_run)
    if result is not None:
        console.print(
            f"removed {sum(map(len, result.removed.values()))} item(s) {result.removed}; Lance: {result.lance}"
            + (f"; skipped {result.skipped}" if result.skipped else "")
        )


def _print_retention(plan, dry_run: bool) -> None:
    table = Table(
        title="retention plan"
        + (" (dry run)" if dry_run else "")
        + ("" if plan.enabled else " -- retention.enabled is false")
    )
    for column in ("kind", "kept", "removed", "protected (beyond the newest N)"):
        table.add_column(column)
    for kind in plan.kinds.values():
        protected = [
            f"{name}: {'; '.join(r for r in why if not r.startswith('newest'))}"
            for name, why in kind.kept.items()
            if any(not r.startswith("newest") for r in why)
        ]
        table.add_row(
            kind.kind,
            str(len(kind.kept)),
            "\n".join(f"{r.name} ({r.reason})" for r in kind.removals) or "-",
            "\n".join(protected)[:600] or "-",
        )
    if plan.lance:
        table.add_row(
            "lance versions",
            str(len(plan.lance.versions) - len(plan.lance.removable)),
            ", ".join(map(str, plan.lance.removable)) or "-",
            f"floor {plan.lance.floor}: {plan.lance.reason}",
        )
    Console(width=200).print(table)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="what a person would type")],
    k: Annotated[int, typer.Option("-k", help="results to show")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object (QU + results)")] = False,
    config: ConfigOption = None,
) -> None:
    """Understand the query, run every strategy, fuse; shows the QU reading and which strategy found each result."""
    settings = _settings(config)
    from ltrr_core.query import InvalidQuery
    from ltrr_core.retrieval.searcher import entity_lookup, load_searcher

    searcher = load_searcher(settings)
    try:
        result = searcher.search(query, k=settings.retrieval.k)
    except InvalidQuery as error:
        console.print(f"[red]invalid query:[/red] {error}")
        raise typer.Exit(2) from error
    entities = entity_lookup(settings)
    if as_json:
        sys.stdout.write(json.dumps(search_payload(result, entities, k)) + "\n")
        return
    _print_understanding(result.query.understanding)
    _print_results(result, entities, k)


def search_payload(result, entities, k: int) -> dict:
    """The machine-readable search answer: QU and the fused results with their provenance."""
    understanding = result.query.understanding
    qu = understanding.to_dict() if understanding else {"normalised": result.query.normalized}
    from ltrr_core.retrieval.searcher import describe_result

    results = [describe_result(c, entities.loc[c.entity_id]) for c in result.fused[:k]]
    return {"query": result.query.text, "qu": qu, "results": results}


def _print_results(result, entities, k: int) -> None:
    table = Table(title=f"results for {result.query.text!r}")
    for column in ("#", "type", "title", "artists", "found by (rank, score)", "fused"):
        table.add_column(column)
    for position, candidate in enumerate(result.fused[:k], start=1):
        row = entities.loc[candidate.entity_id]
        found = ", ".join(f"{s} (#{r}, {sc:.3f})" for s, (r, sc) in candidate.found_by.items())
        artists = ", ".join(list(row["artists"])) if row["artists"] is not None else ""
        table.add_row(str(position), row["type"], str(row["title"]), artists, found, f"{candidate.score:.4f}")
    Console(width=160).print(table)


def _print_understanding(understanding) -> None:
    if understanding is None:
        return
    intent = ", ".join(f"{k} {v:.2f}" for k, v in understanding.intent.items())
    fixes = f"  spelling: {understanding.corrections}" if understanding.corrections else ""
    console.print(f"[bold]QU[/bold] {understanding.normalised!r}  intent: {intent}{fixes}", soft_wrap=True)
    for interpretation in understanding.interpretations:
        slots = "  ".join(f"{s.kind}={s.display!r} ({s.confidence:.2f})" for s in interpretation.slots) or "(no slots)"
        rest = f"  + {' '.join(interpretation.unexplained)!r}" if interpretation.unexplained else ""
        console.print(f"  {interpretation.probability:.3f}  {slots}{rest}", soft_wrap=True)
