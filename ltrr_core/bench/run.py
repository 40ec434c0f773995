"""`make bench`: build and query costs, written as a Markdown table with the machine noted.

Two sizes: the real default catalog (~81k entities) and a GENERATED 1,000,000-entity catalog
derived from it (see ``generate``). Encoding 1M texts would take ~40 minutes on 2 cores, so
the 1M vector table uses vectors derived from the real embeddings; real encoding throughput
is measured separately on real texts. Everything runs in a temporary directory; the
platform's own state is only read (its vectors are reused when a build exists).
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

from .. import schema as S
from ..catalog.pipeline import assign_catalog_fields, ingest_catalog, understand, validate_catalog
from ..catalog.understanding import annotate_rules
from ..config import Settings
from ..durable import write_bytes_atomic
from ..eval.encoders import load_encoders
from ..index import build
from ..index.bm25 import BM25Index, BM25Settings, weighted_document
from ..index.documents import document_fields, embedding_input, query_like_sample
from ..index.encoder import Encoder
from ..index.graph import GRAPH_DIR, VectorGraph, build_graph
from ..index.query_encoder import TextEncoder
from ..index.vector import (
    ID,
    VECTOR,
    LanceVectors,
    as_dataset,
    build_ann_index,
    measure_recall,
    open_db,
    vector_schema,
)
from ..labelled.datasets import project_cpcd_queries
from ..retrieval.base import Candidates, Query
from ..retrieval.fusion import fuse
from . import runtime as runtime_bench
from .generate import derived_vectors, generate_catalog

console = Console(stderr=True)


def _timed(label: str, fn: Callable[[], Any]) -> tuple[Any, float]:
    console.log(f"bench: {label} ...")
    started = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - started
    console.log(f"bench: {label} took {seconds:.1f} s")
    return value, seconds


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({model}), {memory:.0f} GiB RAM, Python {platform.python_version()}, {platform.system()}"


def _percentiles(samples_ms: list[float]) -> str:
    return f"{np.percentile(samples_ms, 50):.1f} / {np.percentile(samples_ms, 99):.1f}"


def _latencies(
    queries: list[str],
    strategies: dict[str, Callable[[Query], Any]],
    settings: Settings,
    understander=None,
    compared: dict[str, Callable[[Query], Any]] | None = None,
) -> dict[str, str]:
    """p50 / p99 per strategy, QU and their sum with fusion (``hybrid``); ``compared``: other ways
    of answering a strategy, timed beside it but not part of the hybrid."""
    compared = compared or {}
    samples: dict[str, list[float]] = {name: [] for name in [*strategies, *compared]}
    samples["query understanding"] = []
    samples["hybrid"] = []
    for text in queries:
        started = time.perf_counter()
        query = Query(text, {}, understander.understand(text) if understander else None)
        samples["query understanding"].append((time.perf_counter() - started) * 1000)
        results = []
        for name, fn in [*strategies.items(), *compared.items()]:
            started = time.perf_counter()
            found = fn(query)
            samples[name].append((time.perf_counter() - started) * 1000)
            if name in strategies:
                results.append(found)
        started = time.perf_counter()
        fuse(results, settings.retrieval.fusion, settings.retrieval.k)
        samples["hybrid"].append(
            sum(samples[n][-1] for n in strategies)
            + samples["query understanding"][-1]
            + (time.perf_counter() - started) * 1000
        )
    return {name: _percentiles(values) for name, values in samples.items()}


def _vector_table(db, name: str, ids: list[str], types: list[str], vectors: np.ndarray):
    import pyarrow as pa

    schema = vector_schema(vectors.shape[1])
    table = None
    for start in range(0, len(ids), 200_000):
        stop = start + 200_000
        flat = pa.array(vectors[start:stop].reshape(-1), type=pa.float32())
        batch = pa.Table.from_arrays(
            [
                pa.array(ids[start:stop]),
                pa.array(types[start:stop]),
                pa.array([""] * len(ids[start:stop])),
                pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]),
            ],
            schema=schema,
        )
        table = db.create_table(name, data=batch, schema=schema) if table is None else table
        if start:
            table.add(batch)
    return table


def _real_vectors(settings: Settings, entities: pd.DataFrame, encoder: TextEncoder) -> np.ndarray:
    """The platform's own vectors when a build exists (no re-encoding), else encode now."""
    try:
        _, manifest = build.current_build(settings)
        table = open_db(build.indexes_root(settings) / "lance").open_table(manifest["vectors"]["table"])
        table.checkout(manifest["vectors"]["table_version"])
        frame = table.to_arrow().select([ID, VECTOR]).to_pandas().set_index(ID)
        if set(entities[S.ID]) <= set(frame.index):
            return np.stack(frame.loc[entities[S.ID], VECTOR].to_numpy()).astype(np.float32)
    except (FileNotFoundError, KeyError, ValueError):
        pass
    texts = [
        embedding_input(r, settings.embedding.max_tags_in_text, settings.embedding.name_weight)
        for r in entities.to_dict("records")
    ]
    return build.blend_embeddings(encoder, texts, show_progress=True)


def _query_encoder(settings: Settings, entities: pd.DataFrame) -> TextEncoder:
    """What serving encodes queries with (``embedding.query_encoder``), from the export cache (or
    exported and gated now), uncached: every bench query pays for its encoding."""
    kind = settings.embedding.query_encoder
    return load_encoders(settings, [kind], entities)[kind]


def _bench_size(
    label: str,
    settings: Settings,
    entities: pd.DataFrame,
    vectors: np.ndarray,
    queries: list[str],
    encoder: TextEncoder,
    workdir: Path,
    index_type: str,
    serve_in_process: bool = False,
) -> dict[str, Any]:
    rss_before = _rss_mb()
    rows = entities.to_dict("records")
    bm25_settings = BM25Settings.from_config(settings.bm25)
    documents = [
        weighted_document(document_fields(r, settings.embedding.max_tags_in_text), bm25_settings.field_weights)
        for r in rows
    ]
    index, bm25_seconds = _timed(
        f"{label}: BM25 build", lambda: BM25Index.build(entities[S.ID].tolist(), documents, bm25_settings)
    )
    db = open_db(workdir / f"lance-{label}")
    table, write_seconds = _timed(
        f"{label}: Lance write",
        lambda: _vector_table(db, "bench", entities[S.ID].tolist(), entities[S.TYPE].tolist(), vectors),
    )
    # Brute force on 1M vectors costs ~2 s a query, so recall is measured on fewer probes there.
    forced = settings.vector.model_copy(
        update={"ann_min_rows": 0, "index_type": index_type, "recall_probe_queries": settings.bench.recall_probes}
    )
    ann, ann_seconds = _timed(f"{label}: Lance ANN build", lambda: build_ann_index(table, forced, force=True))
    recall = measure_recall(table, forced, n_probes=settings.bench.recall_probes)
    spec, graph_seconds = _timed(
        f"{label}: HNSW graph build", lambda: build_graph(table, forced, workdir / f"graph-{label}")
    )
    graph = VectorGraph.open(workdir / f"graph-{label}" / GRAPH_DIR, forced)
    table = as_dataset(table)  # searched as serving searches it: pylance, the indexed version
    index.search(["warm up the numba scorer"], 10)
    lance_vectors = LanceVectors(table, forced)
    strategies = {
        "lexical": lambda q: Candidates.from_pairs("lexical", index.search([q.text], settings.retrieval.k)[0]),
        "semantic": lambda q: Candidates.from_pairs(
            "semantic", graph.search(encoder.encode([q.text])[0], settings.retrieval.k)
        ),
    }
    compared = {
        "semantic with Lance's index": lambda q: Candidates.from_pairs(
            "semantic", lance_vectors.search(encoder.encode([q.text])[0], settings.retrieval.k)
        ),
    }
    understander, structured, memory, qu_timings = _qu_strategies(label, settings, entities, workdir)
    strategies.update(
        {
            "structured": lambda q: structured.retrieve(q, settings.retrieval.k),
            "memory": lambda q: memory.retrieve(q, settings.retrieval.k),
        }
    )
    latencies = _latencies(queries, strategies, settings, understander, compared)
    runtime = None
    if serve_in_process:
        runtime = _runtime_in_process(
            label,
            settings,
            entities,
            index,
            graph,
            encoder,
            understander,
            structured,
            memory,
            queries,
            workdir,
            rss_before,
        )
    return {
        "runtime": runtime,
        "n_entities": len(entities),
        **qu_timings,
        "bm25_build_s": round(bm25_seconds, 1),
        "lance_write_s": round(write_seconds, 1),
        "ann": f"{ann['kind']} in {ann_seconds:.0f} s, recall@10 {recall.get('recall@10', float('nan')):.3f}",
        "graph": (
            f"{spec.dtype} HNSW (usearch) in {graph_seconds:.0f} s, recall@10 "
            f"{spec.recall.get('recall@10', float('nan')):.3f}"
        ),
        "latency_ms": latencies,
    }


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _runtime_in_process(
    label,
    settings,
    entities,
    index,
    graph,
    encoder,
    understander,
    structured,
    memory,
    queries,
    workdir,
    rss_before,
) -> dict[str, Any]:
    """The SearchService over this size's components, served over HTTP from a thread."""
    from ..models.policy import EpsilonDefaultPolicy
    from ..retrieval.lexical import LexicalStrategy
    from ..retrieval.semantic import SemanticStrategy
    from ..runtime.service import SearchService

    strategies = [LexicalStrategy(index), SemanticStrategy(graph, encoder), structured, memory]
    display = entities[[S.ID, S.TYPE, S.TITLE, S.ARTISTS]].set_index(S.ID)
    service = SearchService(
        settings, f"bench-{label}", strategies, understander, EpsilonDefaultPolicy(settings.runtime.policy), display, {}
    )
    result, _ = _timed(
        f"{label}: runtime over HTTP",
        lambda: runtime_bench.bench_in_process(
            service, queries, settings, workdir / f"runtime-{label}", _rss_mb() - rss_before
        ),
    )
    return result


def _runtime_real(
    settings: Settings, config_path: Path | None, queries: list[str], workdir: Path
) -> list[dict[str, Any]] | str:
    """``ltrr serve --workers N`` on the platform's promoted bundle for each N of
    ``bench.http_workers``, or why not."""
    from ..artifacts import BundleError
    from ..artifacts.champion import serving_bundle

    try:
        bundle = serving_bundle(settings)
    except BundleError as error:
        return f"not measured: {error}"
    if config_path is None:
        raise ValueError("bench: the real-runtime benchmark needs the config file (run_benchmarks(config_path=...))")
    import pyarrow.parquet as pq

    entities = pq.read_metadata(bundle / "display.parquet").num_rows  # what the bundle serves
    runs = []
    for workers in settings.bench.http_workers:

        def serve(n: int = workers) -> dict[str, Any]:
            return runtime_bench.bench_serve_process(
                settings, config_path, bundle, queries, workdir / f"runtime-real-{n}", n
            )

        result, _ = _timed(f"real: ltrr serve --workers {workers} over HTTP", serve)
        runs.append({**result, "bundle": bundle.name, "entities": entities})
    return runs


def _qu_strategies(label: str, settings: Settings, entities: pd.DataFrame, workdir: Path):
    """QU resources, structured index and a template-only Q2E memory index for this catalog."""
    from ..doc2query import TemplateGenerator, predict_q2e
    from ..memory import MemoryIndex, blend, observed_statistics
    from ..memory.engagement import COLUMNS as ENGAGEMENT_COLUMNS
    from ..query import QueryUnderstander
    from ..query.resources import read_resources, write_resources
    from ..retrieval.memory import MemoryStrategy
    from ..retrieval.structured import StructuredIndex, StructuredStrategy

    qu_dir = workdir / f"qu-{label}"
    _, resources_seconds = _timed(
        f"{label}: QU resources",
        lambda: write_resources(entities, qu_dir, settings.query_understanding.min_tag_entities),
    )
    fields, vocabulary = read_resources(qu_dir)
    understander, qu_load = _timed(
        f"{label}: QU + structured load",
        lambda: QueryUnderstander(vocabulary, settings.query_understanding, settings.content_understanding),
    )
    structured, structured_load = _timed(
        f"{label}: structured index",
        lambda: StructuredStrategy(StructuredIndex(fields), understander, settings.structured),
    )
    templates = TemplateGenerator(settings.doc2query.templates, settings.doc2query.max_tags_per_entity)
    (predicted, _), q2e_seconds = _timed(f"{label}: template Q2E", lambda: predict_q2e(entities, [templates]))
    no_logs = observed_statistics(pd.DataFrame(columns=ENGAGEMENT_COLUMNS), settings.memory)
    table = blend(predicted, no_logs, settings.memory, pd.Timestamp.now(tz="UTC"))
    index, memory_load = _timed(f"{label}: memory index load", lambda: MemoryIndex(table, settings.memory))
    timings = {
        "qu_resources_s": round(resources_seconds, 1),
        "qu_structured_load_s": round(qu_load + structured_load, 1),
        "q2e_templates": f"{len(table):,} rows in {q2e_seconds:.0f} s; index load {memory_load:.1f} s",
    }
    return understander, structured, MemoryStrategy(index), timings


def run_benchmarks(settings: Settings, out: Path, config_path: Path | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    labelled = project_cpcd_queries(settings, "all")  # latency only: every query text
    rng = np.random.default_rng(settings.bench.seed)
    all_queries = list(labelled.queries)
    queries = [all_queries[i] for i in rng.choice(len(all_queries), settings.bench.n_latency_queries, replace=False)]
    with tempfile.TemporaryDirectory(prefix="ltrr-bench-") as tmp:
        workdir = Path(tmp)
        scoped = settings.with_overrides(data_dir=str(workdir / "state"))

        def ingest_and_understand() -> pd.DataFrame:
            entities, _ = ingest_catalog(scoped)
            kept, _, _ = validate_catalog(scoped, entities)
            return understand(scoped, kept)[0]

        real, ingest_seconds = _timed("real: ingest + contract + content understanding", ingest_and_understand)
        sample = [
            embedding_input(r, settings.embedding.max_tags_in_text, settings.embedding.name_weight)
            for r in real.sample(settings.bench.embed_sample, random_state=1).to_dict("records")
        ]
        # Both document encoders on the same texts: the configured one embeds the catalog below.
        torch_encoder = Encoder(settings.embedding)
        _, torch_embed_seconds = _timed(
            "real: encode sample (torch)", lambda: build.blend_embeddings(torch_encoder, sample)
        )
        encoder = build.document_encoder(settings, query_like_sample(real, settings.embedding.query_agreement_sample))
        _, embed_seconds = _timed(
            f"real: encode sample ({settings.embedding.document_encoder})",
            lambda: build.blend_embeddings(encoder, sample),
        )
        real_vectors = _real_vectors(settings, real, encoder)
        query_encoder = _query_encoder(settings, real)
        real_result = _bench_size(
            "real", settings, real, real_vectors, queries, query_encoder, workdir, settings.vector.index_type
        )
        real_result["ingest_cu_s"] = round(ingest_seconds, 1)
        real_result["runtime"] = _runtime_real(settings, config_path, queries, workdir)

        generated = generate_catalog(real, settings.bench.generated_entities, settings.bench.seed)
        generated = assign_catalog_fields(generated, None, datetime.now(UTC))

        # Content rules cost ~0.4 ms an entity on one core; on the full 1M they alone would take
        # most of the 30-minute budget, so they are timed on a sample and scaled (labelled so).
        cu_rows = min(settings.bench.cu_sample, len(generated))

        def contract_and_rules() -> pd.DataFrame:
            kept, _, _ = validate_catalog(scoped, generated.iloc[:cu_rows])
            return annotate_rules(kept, settings.content_understanding)

        _, gen_cu_seconds = _timed(f"generated: contract + content rules on {cu_rows} rows", contract_and_rules)
        gen_vectors = derived_vectors(real_vectors, len(generated), settings.bench.seed)
        gen_result = _bench_size(
            "generated",
            settings,
            generated,
            gen_vectors,
            queries,
            query_encoder,
            workdir,
            settings.bench.generated_index_type,
            serve_in_process=True,
        )
        gen_result["ingest_cu_s"] = (
            f"{gen_cu_seconds * len(generated) / cu_rows:.0f} (scaled from {gen_cu_seconds:.0f} s measured on "
            f"{cu_rows:,} rows; contract + rules, no classifier)"
        )

    report = {
        "machine": machine(),
        "embedding_texts_per_s": round(len(sample) / embed_seconds, 1),
        "embedding_texts_per_s_torch": round(len(sample) / torch_embed_seconds, 1),
        "real": real_result,
        "generated": gen_result,
        "total_minutes": round((time.perf_counter() - started) / 60, 1),
    }
    write_bytes_atomic(out, render_markdown(report, settings).encode("utf-8"))
    return report


def render_markdown(report: dict[str, Any], settings: Settings) -> str:
    real, gen = report["real"], report["generated"]
    lines = [
        "# ltrr benchmarks",
        "",
        f"Machine: {report['machine']}. Written by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC "
        f"in {report['total_minutes']} min.",
        "",
        f"The 1M catalog is GENERATED from the real one (real titles, artist names and tags recombined); its vectors "
        f"are real MiniLM vectors plus noise, not encodings. Encoding throughput is measured on "
        f"{settings.bench.embed_sample} real entity texts: **{report['embedding_texts_per_s']} texts/s** with the "
        f"configured document encoder (`{settings.embedding.document_encoder}`), "
        f"{report['embedding_texts_per_s_torch']} texts/s with the torch model, both on "
        f"{settings.embedding.torch_threads} threads. Latency: {settings.bench.n_latency_queries} real CPCD "
        f"queries, top {settings.retrieval.k}, one at a time, each query encoded by the serving query encoder "
        f"(`{settings.embedding.query_encoder}`, {settings.runtime.query_encoder_threads} thread, no cache: "
        f"every request pays for its encoding); `hybrid` = query understanding + all four strategies + "
        f"RRF fusion. The memory index here holds template predictions only (no logs); the generated catalog has no "
        f"content-understanding attributes, so structured search there matches names and tags only.",
        "",
        f"| measure | real catalog ({real['n_entities']:,}) | generated ({gen['n_entities']:,}) |",
        "|---|---|---|",
        f"| ingest + contract + content understanding (s) | {real['ingest_cu_s']} | {gen['ingest_cu_s']} |",
        f"| BM25 build, bm25s (s) | {real['bm25_build_s']} | {gen['bm25_build_s']} |",
        f"| Lance vector write (s) | {real['lance_write_s']} | {gen['lance_write_s']} |",
        f"| Lance ANN build and recall@10 vs brute force | {real['ann']} | {gen['ann']} |",
        f"| serving HNSW graphs: build and recall@10 vs brute force (capped) | {real['graph']} | {gen['graph']} |",
        f"| QU resources build (s) | {real['qu_resources_s']} | {gen['qu_resources_s']} |",
        f"| QU vocabulary + structured index load (s) | {real['qu_structured_load_s']} | {gen['qu_structured_load_s']} |",
        f"| Q2E from templates | {real['q2e_templates']} | {gen['q2e_templates']} |",
    ]
    for name in real["latency_ms"]:
        lines.append(
            f"| query latency p50 / p99 (ms): {name} | {real['latency_ms'][name]} | {gen['latency_ms'][name]} |"
        )
    return "\n".join(lines + _runtime_markdown(real["runtime"], gen["runtime"])) + "\n"


def _runtime_markdown(real: dict[str, Any] | str, gen: dict[str, Any] | str) -> list[str]:
    lines = [
        "",
        "## Query runtime over HTTP (127.0.0.1)",
        "",
        "Promoted bundle: a separate `ltrr serve --workers N` process on the platform's promoted bundle, whose "
        "catalog is the config's (the demo's is a slice of the real one; cold start: "
        "from the command to the first answered search; query-vector cache off, so every request encodes). "
        "Generated 1M: the "
        "SearchService assembled in the bench process and served from a thread, clients in the same process "
        "(shared GIL: a lower bound on throughput). Each level sends the same real CPCD queries (no trace: "
        "its per-result feature explanations cost ~15 ms); stage latencies are the server's own timings, end to end is measured by the client; "
        "the policy samples plans as in production, so a strategy's stage latency counts the requests whose plan ran it.",
        "",
    ]
    sizes: dict[str, Any] = (
        {f"promoted bundle ({r['entities']:,} entities), {r['workers']} worker(s)": r for r in real}
        if isinstance(real, list)
        else {"promoted bundle": real}
    )
    sizes["generated 1M"] = gen
    for label, result in sizes.items():
        if not isinstance(result, dict):
            lines.append(f"- {label}: {result}")
            continue
        cold = (
            "n/a (assembled in the bench process)" if result["cold_start_s"] is None else f"{result['cold_start_s']} s"
        )
        lines.append(
            f"- {label}: cold start {cold}, resident memory {result['rss_mb']} MiB"
            + (f", bundle {result['bundle']}" if result.get("bundle") else "")
        )
    lines += [
        "",
        "| catalog | clients | throughput (req/s) | end to end p50 / p99 (ms) | server stages p50 / p99 (ms) |",
        "|---|---|---|---|---|",
    ]
    for label, result in sizes.items():
        if not isinstance(result, dict):
            continue
        for level in result["levels"]:
            stages = "; ".join(f"{k} {v}" for k, v in level["stages_ms"].items())
            lines.append(
                f"| {label} | {level['concurrency']} | {level['throughput_rps']} | {level['end_to_end_ms']} | "
                f"{stages} |"
            )
    return lines
