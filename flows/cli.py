"""The ``ltrr`` command line (Typer). Every command takes ``--config``.

Heavy modules are imported inside commands, after the offline environment is applied, so
``ltrr --help`` is instant and nothing reaches for the network or $HOME.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ltrr_core.config import DEFAULT_CONFIG, Settings, load_settings
from ltrr_core.env import apply_offline_env
from ltrr_core.nightly import STEPS as NIGHTLY_STEPS
from ltrr_core.nightly import parse_day, select_steps

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


bandit_app = typer.Typer(help="Off-policy evaluation (and, with issue 5, the retrieval bandit).", no_args_is_help=True)
app.add_typer(bandit_app, name="bandit")


@bandit_app.command("train")
def bandit_train_cmd(
    day: Annotated[str, typer.Option("--date", help="last day of the window, YYYY-MM-DD")],
    window_days: Annotated[int | None, typer.Option(help="default: bandit.learner.window_days")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the training report as JSON")] = False,
    config: ConfigOption = None,
) -> None:
    """Flow train_bandit: logs -> replay -> policy -> off-policy estimates -> MLflow (alias challenger)."""
    _settings(config)
    from flows.train_bandit import train_bandit
    from ltrr_core.bandit.learner import NotEnoughData
    from ltrr_core.locking import DataDirBusy

    try:
        report = train_bandit(day, window_days, _config_arg(config))
    except (NotEnoughData, DataDirBusy) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error
    if as_json:
        sys.stdout.write(json.dumps(report, default=str) + "\n")
        return
    ope = report["ope"]
    console.print(
        f"policy {report['version']} -> {report['policy_dir']}; logging policy value "
        f"{ope['logging_policy']['estimate']:.4f} {ope['logging_policy']['ci']}"
    )
    for name, e in ope["learned_policy"].items():
        console.print(f"  learned, {name}: {e['estimate']:.4f} [{e['ci'][0]:.4f}, {e['ci'][1]:.4f}] ESS {e['ess']:.0f}")


@bandit_app.command("evaluate")
def bandit_evaluate_cmd(
    nights: Annotated[int, typer.Option("--nights", min=1, help="simulated days, each followed by training")] = 7,
    queries_per_day: Annotated[int | None, typer.Option("--queries-per-day", min=1)] = None,
    cpcd_heldout: Annotated[
        bool, typer.Option(help="also measure the final policy on the real CPCD held-out queries")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="print one object per night")] = False,
    config: ConfigOption = None,
) -> None:
    """Nights of simulate -> measure candidate hit rates (learned, best static, single strategies, oracle) -> train."""
    settings = _settings(config)
    from ltrr_core.eval.policy_nights import evaluate_nights
    from ltrr_core.runtime import bundle_loader

    evaluation = evaluate_nights(
        settings, bundle_loader(settings), nights, queries_per_day, lambda message: console.log(message)
    )
    results = evaluation.nights
    cpcd = None
    if cpcd_heldout:
        from ltrr_core.artifacts import latest_bundle
        from ltrr_core.eval.policy_nights import evaluate_cpcd
        from ltrr_core.runtime import load_service

        cpcd = evaluate_cpcd(settings, load_service(settings, latest_bundle(settings)))
    if as_json:
        for night in results:
            sys.stdout.write(json.dumps(night, default=str) + "\n")
        if evaluation.pooled:
            sys.stdout.write(json.dumps({"pooled": evaluation.pooled}) + "\n")
        if cpcd:
            sys.stdout.write(json.dumps({"cpcd_heldout": cpcd}) + "\n")
        return
    table = Table(title="retrieval policy by night: share of requests whose candidates hold an intended entity")
    for column in (
        "day",
        "policy",
        "served",
        "learned (greedy)",
        "candidates",
        "best static, same budget (plan)",
        "learned − best static",
        "static mixture chosen on the previous day",
        "learned − that mixture",
        "oracle",
        "measured value",
        "previous night's DR estimate",
    ):
        table.add_column(column)
    for night in (
        [*results, {"day": "CPCD held-out", "policy": cpcd["policy"], "candidate_hit_rate": cpcd}] if cpcd else results
    ):
        m = night["candidate_hit_rate"]
        learned = m.get("learned") or {
            "hit_rate": m["served"],
            "avg_candidates": m["avg_candidates"],
            "best_static": m["best_static"],
            "minus_best_static_ci": m["served_minus_best_static_ci"],
        }
        prior = learned.get("static_from_previous_day")
        estimate = night.get("previous_estimate")
        table.add_row(
            night["day"],
            night["policy"],
            f"{m['served']:.3f}",
            f"{learned['hit_rate']:.3f}",
            f"{learned['avg_candidates']:.0f}",
            f"{learned['best_static']['hit_rate']:.3f} ({learned['best_static']['plan']})",
            "[{:+.3f}, {:+.3f}]".format(*learned["minus_best_static_ci"]),
            f"{prior['best_static_mixture']['hit_rate']:.3f}" if prior else "-",
            "[{:+.3f}, {:+.3f}]".format(*prior["minus_best_static_mixture_ci"]) if prior else "-",
            f"{m['oracle']:.3f}",
            f"{night['measured_value']:.3f}" if "measured_value" in night else "-",
            f"{estimate['estimate']:.3f} [{estimate['ci'][0]:.3f}, {estimate['ci'][1]:.3f}]" if estimate else "-",
        )
    Console().print(table)
    if evaluation.pooled:
        pooled = evaluation.pooled
        summary = Table(
            title=f"learned nights pooled ({pooled['nights']} nights, {pooled['requests']} requests): "
            f"learned {pooled['learned']:.3f}"
        )
        for column in ("baseline (same budget each night)", "hit rate", "learned − baseline, paired 95%"):
            summary.add_column(column)
        for name, row in pooled["baselines"].items():
            summary.add_row(name, f"{row['hit_rate']:.3f}", "[{:+.3f}, {:+.3f}]".format(*row["learned_minus_ci"]))
        Console().print(summary)
        agreement = pooled.get("ope_agreement")
        if agreement:
            Console().print(
                "previous night's estimate vs measured value, {nights} nights: measured - estimate "
                "{mean_measured_minus_estimate:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]; nights agreeing "
                "{nights_agreeing}, strictly covered {nights_strictly_covered}".format(**agreement)
            )


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


ranker_app = typer.Typer(help="The learned ranker: train (flow train_ranker), evaluate.", no_args_is_help=True)
app.add_typer(ranker_app, name="ranker")


@ranker_app.command("train")
def ranker_train_cmd(
    day: Annotated[
        str, typer.Option("--date", help="evaluation day D: logs train on the days before it, validate on D-1")
    ],
    window_days: Annotated[int | None, typer.Option(help="default: ranker.window_days")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the training report as JSON")] = False,
    config: ConfigOption = None,
) -> None:
    """Flow train_ranker: real engagement and/or logs (ranker.sources) -> training set (contract) -> CatBoost ->
    evaluation -> MLflow (alias challenger)."""
    _settings(config)
    from flows.train_ranker import train_ranker_flow
    from ltrr_core.locking import DataDirBusy
    from ltrr_core.ranking.train import NotEnoughRankingData

    try:
        report = train_ranker_flow(day, window_days, _config_arg(config))
    except (NotEnoughRankingData, DataDirBusy) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error
    if as_json:
        sys.stdout.write(json.dumps(report, default=str) + "\n")
        return
    console.print(
        f"ranker {report['version']} ({report['loss']}, sources {', '.join(report['sources'])}) -> "
        f"{report['ranker_dir']}; examination {(report.get('position_bias') or {}).get('examination', 'not estimated')}"
    )
    _print_ranker_scores(report["evaluated_on"], report["evaluation"])
    if report.get("evaluation_logged_day"):
        _print_ranker_scores(
            f"logged day {report['evaluation_day']} (GENERATED traffic)", report["evaluation_logged_day"]
        )


@ranker_app.command("nights")
def ranker_nights_cmd(
    first: Annotated[str, typer.Option("--from", help="first evaluation day, YYYY-MM-DD")],
    last: Annotated[str, typer.Option("--to", help="last evaluation day")],
    as_json: Annotated[bool, typer.Option("--json", help="one training report per night")] = False,
    config: ConfigOption = None,
) -> None:
    """Nightly protocol over logged days: per day train + evaluate vs fusion and champion, log to MLflow, bundle."""
    settings = _settings(config)
    from datetime import date, timedelta

    from ltrr_core.ranking.tracking import log_ranker_run
    from ltrr_core.ranking.train import train_nights
    from ltrr_core.runtime import bundle_loader

    start, end = date.fromisoformat(first), date.fromisoformat(last)
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    reports = train_nights(
        settings,
        days,
        bundle_loader(settings),
        lambda path, report, rows: log_ranker_run(
            settings, path, report, rows, f"ranker nights {report['evaluation_day']}"
        ),
    )
    for report in reports:
        if as_json:
            sys.stdout.write(
                json.dumps(
                    {
                        k: report[k]
                        for k in (
                            "evaluation_day",
                            "version",
                            "loss",
                            "losses",
                            "position_bias",
                            "champion",
                            "training_set",
                            "evaluation",
                        )
                    },
                    default=str,
                )
                + "\n"
            )
        else:
            _print_ranker_scores(f"evaluation day {report['evaluation_day']} ({report['loss']})", report["evaluation"])


def _print_ranker_scores(title: str, scores: dict) -> None:
    table = Table(title=title)
    for column in ("ranking", "nDCG@10", "MRR@10", "nDCG@10 − fusion, 95%"):
        table.add_column(column)
    for name, s in scores.items():
        if isinstance(s, dict) and "ndcg@10" in s:
            table.add_row(name, str(s["ndcg@10"]), str(s["mrr@10"]), str(s.get("ndcg@10_minus_fusion_ci", "-")))
    Console().print(table)


@ranker_app.command("evaluate")
def ranker_evaluate_cmd(
    ranker: Annotated[Path | None, typer.Option(help="a trained ranker directory (default: the latest)")] = None,
    cpcd_heldout: Annotated[bool, typer.Option(help="also on the real CPCD held-out queries")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="print {simulated: {...}, cpcd: {...}}")] = False,
    config: ConfigOption = None,
) -> None:
    """The ranker on its evaluation day and on real CPCD held-out queries, against the fusion and the champion."""
    settings = _settings(config)
    from ltrr_core.artifacts import latest_bundle
    from ltrr_core.ranking.evaluate import evaluate_ranker
    from ltrr_core.runtime import bundle_loader, load_service

    directory = ranker or _latest_ranker_or_exit(settings)
    service = load_service(settings, latest_bundle(settings)) if cpcd_heldout else None
    result = evaluate_ranker(settings, directory, bundle_loader(settings, (service,) if service else ()), service)
    if as_json:
        sys.stdout.write(json.dumps(result, default=str) + "\n")
        return
    if result["simulated"]:
        _print_ranker_scores(
            f"simulated day {result['evaluation_day']} (ranker {result['ranker']})", result["simulated"]
        )
    if result.get("cpcd"):
        _print_ranker_scores("real CPCD held-out queries", result["cpcd"])


@ranker_app.command("compare-memory")
def ranker_compare_memory_cmd(
    seeds: Annotated[str, typer.Option(help="comma-separated ranker seeds fitted per mode")] = "0,1",
    heldout: Annotated[
        bool, typer.Option(help="also the held-out CPCD queries (to confirm a choice, never to make it)")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="also write the markdown table here")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    config: ConfigOption = None,
) -> None:
    """ranker.real.memory excluded vs cross_fitted: each mode's ranker judged on the same cross-fitted
    train-validation pools (paired interval), optionally on held-out queries by seen/unseen slice."""
    settings = _settings(config)
    from dataclasses import asdict

    from ltrr_core.durable import write_bytes_atomic
    from ltrr_core.learning_data import bundle_q2e_table, reference_bundle
    from ltrr_core.ranking.memory_modes import compare_memory_modes
    from ltrr_core.runtime import load_service

    bundle = reference_bundle(settings)
    service = load_service(settings, bundle)
    result = compare_memory_modes(
        settings,
        service,
        bundle_q2e_table(settings, bundle.name),
        [int(s) for s in seeds.split(",") if s.strip()],
        heldout,
    )
    command = f"ltrr --config {_config_arg(config)} ranker compare-memory --seeds {seeds}"
    markdown = (
        "# Should the ranker learn from the memory index?\n\n"
        f"Command: `{command}{' --heldout' if heldout else ''}`. Bundle `{bundle.name}`. "
        "`ranker.real.memory`: `excluded` leaves the memory strategy out of the real training pools; "
        "`cross_fitted` gives each train search the memory of the other folds of conversations "
        "(ltrr_core/learning_data.py).\n\n" + result.to_markdown()
    )
    if out is not None:
        write_bytes_atomic(out, markdown.encode("utf-8"))
    if as_json:
        sys.stdout.write(json.dumps(asdict(result)) + "\n")
        return
    console.print(markdown)


def _latest_ranker_or_exit(settings) -> Path:
    from ltrr_core.ranking.train import latest_ranker

    directory = latest_ranker(settings)
    if directory is None:
        console.print("[red]no trained ranker; run `ltrr ranker train --date D` first[/red]")
        raise typer.Exit(1)
    return directory


@bandit_app.command("ope-obd")
def bandit_ope_obd_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    plot: Annotated[Path | None, typer.Option(help="also draw the intervals to this PNG")] = None,
    config: ConfigOption = None,
) -> None:
    """Estimate the uniform policy's click rate from OBD's Thompson-sampling log; compare with its own log."""
    settings = _settings(config)
    from ltrr_core.bandit.obd import ope_obd
    from ltrr_core.bandit.plots import plot_intervals

    try:
        report = ope_obd(settings)
    except (FileNotFoundError, ValueError) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from error
    if plot:
        plot_intervals(report, plot, "OBD: uniform policy CTR from Thompson-sampling logs")
        console.print(f"wrote {plot}")
    if as_json:
        sys.stdout.write(json.dumps(report) + "\n")
        return
    on = report["on_policy"]
    table = Table(
        title=f"OBD uniform policy: on-policy click rate {on['value']:.4f} [{on['ci'][0]:.4f}, {on['ci'][1]:.4f}]"
    )
    for column in ("estimator", "estimate", f"{report['confidence']:.0%} interval", "ESS", "covers on-policy"):
        table.add_column(column)
    for name, r in report["estimators"].items():
        table.add_row(
            name,
            f"{r['estimate']:.4f}",
            f"[{r['ci'][0]:.4f}, {r['ci'][1]:.4f}]",
            f"{r['ess']:.0f}",
            "yes" if r["covers_on_policy"] else "no",
        )
    Console().print(table)


def _run_flow(flow, config_path: str):
    from ltrr_core.contracts import ContractViolation
    from ltrr_core.locking import DataDirBusy

    try:
        return flow(config_path)
    except (ContractViolation, DataDirBusy) as violation:
        console.print(f"[red]{violation}[/red]")
        raise typer.Exit(1) from violation


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


@app.command("eval")
def eval_cmd(
    queries: Annotated[
        Path | None, typer.Option("--queries", help="CPCD-format TSV (default: the project's CPCD file)")
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            help="conversations to evaluate: heldout, simulate, train, or all "
            "(default: heldout of the project's file, all of --queries FILE)"
        ),
    ] = None,
    bundle: Annotated[
        Path | None, typer.Option("--bundle", help="bundle to serve (default: the promoted champion)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    config: ConfigOption = None,
) -> None:
    """What users get on labelled queries: the served bundle beside each strategy, the static hybrid
    and the best static mixture at the same budget, with paired intervals and seen/unseen slices."""
    settings = _settings(config)
    from ltrr_core.artifacts import BundleError
    from ltrr_core.artifacts.champion import serving_bundle
    from ltrr_core.eval.labelled import evaluate_labelled
    from ltrr_core.eval.offline import evaluate_searcher
    from ltrr_core.retrieval.searcher import load_searcher
    from ltrr_core.runtime.service import load_service
    from ltrr_core.splits import seen_queries

    labelled = _labelled(settings, queries, split or ("all" if queries else "heldout"))
    try:
        service = load_service(settings, bundle or serving_bundle(settings))
    except BundleError as error:
        if bundle is not None:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(2) from error
        console.print(f"[yellow]no served row: {error}[/yellow]")
        result = evaluate_searcher(load_searcher(settings), labelled, settings.eval.metrics, settings.eval.depth)
        _emit({**result, "served": None, "served_unavailable": str(error)}, as_json)
        return
    _emit(evaluate_labelled(settings, service, labelled, seen_queries(settings)).to_dict(), as_json)


@app.command("eval-encoders")
def eval_encoders_cmd(
    queries: Annotated[
        Path | None, typer.Option("--queries", help="CPCD-format TSV (default: the project's CPCD file)")
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            help="heldout, simulate, train or all (default: heldout of the project's file, all of --queries FILE)"
        ),
    ] = None,
    encoders: Annotated[
        str, typer.Option(help="comma-separated, the first is the reference: torch, onnx_int8, onnx_fp32")
    ] = "torch,onnx_int8,onnx_fp32",
    bundle: Annotated[
        Path | None, typer.Option("--bundle", help="bundle to serve (default: the promoted champion)")
    ] = None,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="also write the table to this file")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    config: ConfigOption = None,
) -> None:
    """Query encoders side by side on labelled queries: semantic, hybrid and served quality with each
    behind `semantic`, paired intervals against the first, agreement, single-query latency."""
    settings = _settings(config)
    from ltrr_core.artifacts import BundleError
    from ltrr_core.artifacts.champion import serving_bundle
    from ltrr_core.eval.encoders import compare_query_encoders, load_encoders
    from ltrr_core.index.query_encoder import QueryEncoderError
    from ltrr_core.runtime.service import load_service

    kinds = [k.strip() for k in encoders.split(",") if k.strip()]
    unknown = sorted(set(kinds) - {"torch", "onnx_int8", "onnx_fp32"})
    if unknown or not kinds:
        console.print(
            f"[red]--encoders: unknown {unknown or 'empty list'}; choose from torch, onnx_int8, onnx_fp32[/red]"
        )
        raise typer.Exit(2)
    labelled = _labelled(settings, queries, split or ("all" if queries else "heldout"))
    try:
        service = load_service(settings, bundle or serving_bundle(settings))
        loaded = load_encoders(settings, kinds, service.display)
    except (BundleError, QueryEncoderError) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from error
    result = compare_query_encoders(settings, service, labelled, loaded)
    if markdown:
        from ltrr_core.durable import write_bytes_atomic
        from ltrr_core.eval.report import provenance

        command = "ltrr eval-encoders " + " ".join(sys.argv[sys.argv.index("eval-encoders") + 1 :])
        page = result.document(provenance(settings, command, _config_arg(config), Path.cwd(), output=markdown))
        write_bytes_atomic(markdown, page.encode("utf-8"))
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict()) + "\n")
        return
    console.print(f"{result.n_queries} queries, bundle {result.bundle_id}, reference {result.reference}")
    console.print(result.markdown())


@app.command("eval-semantic")
def eval_semantic_cmd(
    queries: Annotated[
        Path | None, typer.Option("--queries", help="CPCD-format TSV (default: the project's CPCD file)")
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            help="heldout, simulate, train or all (default: heldout of the project's file, all of --queries FILE)"
        ),
    ] = None,
    bundle: Annotated[
        Path | None, typer.Option("--bundle", help="bundle to serve (default: the promoted champion)")
    ] = None,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="also write the table to this file")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    config: ConfigOption = None,
) -> None:
    """The semantic strategy's document vectors side by side on labelled queries: a plain MiniLM over
    "title by artists from album", the whole entity text, the blend, the blend with type caps, and
    the bundle's own strategy; paired intervals against the first, by QU intent."""
    settings = _settings(config)
    from ltrr_core.artifacts import BundleError
    from ltrr_core.artifacts.champion import serving_bundle
    from ltrr_core.catalog import CatalogStore
    from ltrr_core.durable import read_json
    from ltrr_core.eval.semantic import compare_semantic_documents
    from ltrr_core.index.encoder import Encoder
    from ltrr_core.runtime.service import load_service

    labelled = _labelled(settings, queries, split or ("all" if queries else "heldout"))
    try:
        path = bundle or serving_bundle(settings)
        service = load_service(settings, path)
    except BundleError as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from error
    if "semantic" not in service.strategies:
        console.print(f"[red]bundle {service.bundle_id} does not serve the semantic strategy[/red]")
        raise typer.Exit(2)
    catalog_version = read_json(Path(path) / "manifest.json")["components"]["catalog_version"]
    entities = CatalogStore(settings.data_dir / "catalog").load(catalog_version)
    result = compare_semantic_documents(
        settings, service, labelled, entities, catalog_version, Encoder(settings.embedding)
    )
    if markdown:
        from ltrr_core.durable import write_bytes_atomic
        from ltrr_core.eval.report import provenance

        command = "ltrr eval-semantic " + " ".join(sys.argv[sys.argv.index("eval-semantic") + 1 :])
        page = result.document(provenance(settings, command, _config_arg(config), Path.cwd(), output=markdown))
        write_bytes_atomic(markdown, page.encode("utf-8"))
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict()) + "\n")
        return
    console.print(f"{result.n_queries} queries, bundle {result.bundle_id}, {result.n_entities} entities")
    console.print(result.markdown())


@app.command("eval-qu")
def eval_qu_cmd(
    directory: Annotated[Path | None, typer.Option("--data", help="MusicRecoNER folder (default: shared data)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    config: ConfigOption = None,
) -> None:
    """Artist / title mention detection of query understanding on MusicRecoNER (real Reddit requests)."""
    settings = _settings(config)
    result = _qu_mentions(settings, directory)
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    table = Table(title=f"QU mention detection on {result['n_requests']} MusicRecoNER requests")
    for column in (
        "type",
        "precision",
        "recall",
        "precision (lenient)",
        "recall in catalog",
        "gold",
        "gold in catalog",
    ):
        table.add_column(column)
    for kind in ("artist", "work"):
        r = result[kind]
        table.add_row(
            kind,
            f"{r['precision']:.3f}",
            f"{r['recall']:.3f}",
            f"{r['precision_lenient']:.3f}",
            f"{r['recall_in_catalog']:.3f}",
            str(r["n_gold"]),
            str(r["n_gold_in_catalog"]),
        )
    Console(width=160).print(table)


def _qu_mentions(settings: Settings, directory: Path | None) -> dict:
    """QU of the current index build against MusicRecoNER's annotated mentions."""
    from ltrr_core.eval.qu_mentions import catalog_names, evaluate_mentions
    from ltrr_core.index.build import current_build
    from ltrr_core.query import QueryUnderstander
    from ltrr_core.query.resources import read_resources

    build_dir, _ = current_build(settings)
    _, vocabulary = read_resources(build_dir / "qu")
    understander = QueryUnderstander(vocabulary, settings.query_understanding, settings.content_understanding)
    return evaluate_mentions(
        understander, directory or settings.shared_path("musicreco-ner"), catalog_names(vocabulary)
    )


@app.command()
def report(
    out: Annotated[Path, typer.Option("--out", help="markdown file to write (atomically)")] = Path("docs/results.md"),
    sweeps: Annotated[
        bool, typer.Option("--sweeps", help="also run the BM25 and fusion sweeps on the train part")
    ] = False,
    bundle: Annotated[
        Path | None, typer.Option("--bundle", help="bundle to serve (default: the promoted champion)")
    ] = None,
    bandit: Annotated[
        Path | None, typer.Option("--bandit", help="output of `ltrr bandit evaluate --json` to include")
    ] = None,
    bandit_command: Annotated[
        str, typer.Option(help="the command that wrote --bandit")
    ] = "ltrr bandit evaluate --json",
    via: Annotated[
        str | None, typer.Option(help="the command people should run to regenerate (e.g. a make target)")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Regenerate docs/results.md: held-out CPCD (served vs hybrid vs static mixture, slices,
    intervals), the demo loop's nights (GENERATED traffic), QU on MusicRecoNER, optionally the sweeps."""
    settings = _settings(config)
    from ltrr_core import nightly as night
    from ltrr_core.artifacts import BundleError
    from ltrr_core.artifacts.champion import serving_bundle
    from ltrr_core.catalog import CatalogStore
    from ltrr_core.durable import write_bytes_atomic
    from ltrr_core.eval import report as rep
    from ltrr_core.eval.labelled import evaluate_labelled
    from ltrr_core.labelled.datasets import project_cpcd_queries
    from ltrr_core.runtime.service import load_service
    from ltrr_core.splits import seen_queries

    cfg = _config_arg(config)
    try:
        service = load_service(settings, bundle or serving_bundle(settings))
    except BundleError as error:
        console.print(f"[red]{error}[/red] (run `make demo` or promote a bundle first)")
        raise typer.Exit(2) from error
    console.print("held-out CPCD: served, strategies, hybrid, static mixtures ...")
    heldout = evaluate_labelled(settings, service, project_cpcd_queries(settings, "heldout"), seen_queries(settings))
    sections = [rep.render_heldout(heldout.to_dict(), cfg)]
    records = night.records(settings)
    if records:
        sections.append(rep.render_loop(night.learning_curve(records, None), cfg))
    if bandit is not None:
        rows = [json.loads(line) for line in bandit.read_text(encoding="utf-8").splitlines() if line.strip()]
        sections.append(rep.render_bandit(rows, bandit_command))
    console.print("query understanding on MusicRecoNER ...")
    sections.append(rep.render_qu(_qu_mentions(settings, None), cfg))
    store = CatalogStore(settings.data_dir / "catalog")
    sections.append(rep.render_catalog(store.manifest(), cfg))
    from ltrr_core.bandit.obd import ope_obd

    sections.append(rep.render_obd(ope_obd(settings), cfg))
    if sweeps:
        sections.append(_sweep_sections(settings, cfg))
    catalog = {"version": store.current_version(), "n_entities": len(service.display)}
    command = (
        f"ltrr --config {cfg} report"
        + (" --sweeps" if sweeps else "")
        + (f" --bundle {bundle}" if bundle else "")
        + (f" --bandit {bandit} --bandit-command '{bandit_command}'" if bandit else "")
        + (f" --out {out}" if out != Path("docs/results.md") else "")
    )
    text = rep.render_report(rep.provenance(settings, command, cfg, Path.cwd(), via, out), sections, catalog)
    write_bytes_atomic(out, text.encode("utf-8"))
    console.print(f"wrote {out}")


def _sweep_sections(settings: Settings, cfg: str) -> list[str]:
    from ltrr_core.catalog import CatalogStore
    from ltrr_core.eval import report as rep
    from ltrr_core.eval.bm25_sweep import sweep_bm25
    from ltrr_core.eval.fusion_sweep import sweep_fusion
    from ltrr_core.labelled.datasets import project_cpcd_queries
    from ltrr_core.retrieval.searcher import load_searcher

    train = project_cpcd_queries(settings, "train")
    lines = ["## 7. Tuning on the train part", ""]
    lines += rep.render_sweep(
        "BM25 tokenisation (lexical only)",
        f"ltrr --config {cfg} bm25-sweep --json",
        sweep_bm25(settings, CatalogStore(settings.data_dir / "catalog").load(), train),
    )
    fusion = sweep_fusion(load_searcher(settings), train, settings.eval.metrics, settings.eval.depth)
    for half, scores in fusion.items():
        n = scores.pop("n_queries")
        lines += rep.render_sweep(
            f"Static fusion, {half} of the train queries ({n})", f"ltrr --config {cfg} fusion-sweep", scores
        )
    return lines


@app.command("eval-beir")
def eval_beir_cmd(
    directory: Annotated[Path, typer.Argument(help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/test.tsv")],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    split: Annotated[str, typer.Option(help="qrels split")] = "test",
    config: ConfigOption = None,
) -> None:
    """Index a BEIR corpus in a temporary place and evaluate every strategy on it."""
    settings = _settings(config)
    from ltrr_core.eval.beir import evaluate_beir

    _emit(evaluate_beir(settings, directory, split), as_json)


def _labelled(settings: Settings, queries: Path | None, split: str, tuning: str | None = None):
    """The labelled queries of a CPCD-format file; ``tuning`` names a sweep, which reads train only.
    Bad input (a missing file or column, a bad label, a refused split) is one clear line, exit 2."""
    from ltrr_core.labelled.datasets import load_cpcd_queries
    from ltrr_core.splits import require_train

    try:
        if tuning:
            require_train(split, tuning)
        return load_cpcd_queries(
            queries or settings.shared_path(settings.catalog.paths.cpcd_labels), settings.splits, split
        )
    except (FileNotFoundError, ValueError) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from error


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


@app.command("bm25-sweep")
def bm25_sweep_cmd(
    queries: Annotated[Path | None, typer.Option("--queries", help="CPCD-style TSV (default: CPCD train)")] = None,
    split: Annotated[
        str, typer.Option(help="conversations to tune on: train only (anything else is refused)")
    ] = "train",
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    config: ConfigOption = None,
) -> None:
    """Measure BM25 stemming / stopword / field-weight variants on labelled train queries."""
    settings = _settings(config)
    from ltrr_core.catalog import CatalogStore
    from ltrr_core.eval.bm25_sweep import sweep_bm25

    labelled = _labelled(settings, queries, split, tuning="bm25-sweep")
    results = sweep_bm25(settings, CatalogStore(settings.data_dir / "catalog").load(), labelled)
    _emit({"n_queries": len(labelled.queries), "strategies": results}, as_json)


@app.command("fusion-sweep")
def fusion_sweep_cmd(
    queries: Annotated[Path | None, typer.Option("--queries", help="CPCD-style TSV (default: CPCD train)")] = None,
    split: Annotated[
        str, typer.Option(help="conversations to tune on: train only (anything else is refused)")
    ] = "train",
    config: ConfigOption = None,
) -> None:
    """Measure static fusions (RRF, CombSUM x semantic weight) on two halves of labelled train queries."""
    settings = _settings(config)
    from ltrr_core.eval.fusion_sweep import sweep_fusion
    from ltrr_core.retrieval.searcher import load_searcher

    labelled = _labelled(settings, queries, split, tuning="fusion-sweep")
    report = sweep_fusion(load_searcher(settings), labelled, settings.eval.metrics, settings.eval.depth)
    sys.stdout.write(json.dumps(report) + "\n")


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


@app.command("bench-install")
def bench_install(
    out: Annotated[Path, typer.Option("--out", help="Markdown file for the install sizes")] = Path("bench/INSTALL.md"),
) -> None:
    """The runtime extra in a fresh virtual environment: its size and largest packages beside the whole platform's."""
    import tempfile

    from ltrr_core.bench.install import measure_install, render_install
    from ltrr_core.bench.run import machine
    from ltrr_core.durable import write_bytes_atomic

    root = Path(__file__).resolve().parent.parent
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
