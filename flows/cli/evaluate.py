"""What users get: ``ltrr eval``, ``eval-*``, the sweeps on the train part, ``ltrr report``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ltrr_core.config import Settings

from .app import ConfigOption, _config_arg, _emit, _settings, app, console


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
    from ltrr_core.index.build import document_encoder
    from ltrr_core.index.documents import query_like_sample
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
    encoder = document_encoder(settings, query_like_sample(entities, settings.embedding.query_agreement_sample))
    result = compare_semantic_documents(settings, service, labelled, entities, catalog_version, encoder)
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
