"""The learners: ``ltrr bandit ...`` and ``ltrr ranker ...``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .app import ConfigOption, _config_arg, _settings, app, console

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
