"""Query encoders side by side on labelled queries: quality (semantic alone, the static hybrid
and the served bundle, each with that encoder behind ``semantic``), paired intervals against
the reference encoder, agreement with its vectors, and single-query encoding latency.

The bundle, the document vectors and every other strategy stay the same; only the query
encoder changes (``SearchService.with_strategy``), so a difference is the encoder's. Latency
is measured per query text, one at a time and uncached, in this process (its threads as
configured): the cost a request pays on a cache miss.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..config import Settings
from ..index.build import indexes_root
from ..index.encoder import Encoder
from ..index.onnx_export import cached_query_encoder, first_artist, sample_texts
from ..index.query_encoder import OnnxQueryEncoder, TextEncoder
from ..retrieval.semantic import SemanticStrategy
from .datasets import LabelledQueries
from .labelled import HYBRID, SERVED, fused_runs, per_query_values, retrieve_runs
from .labels import graded_labels
from .stats import paired_bootstrap_ci

SEMANTIC = "semantic"
SYSTEMS = (SEMANTIC, HYBRID, SERVED)


@dataclass(frozen=True)
class EncoderRow:
    encoder: str
    metrics: dict[str, dict[str, float]]            # system -> metric -> mean (graded view)
    vs_reference: dict[str, list[float]]            # system -> paired interval of (this - reference) on the metric
    agreement: dict[str, float]                     # cosine to the reference's query vectors: mean, min
    latency_ms: dict[str, float]                    # p50, p95, p99 of one uncached query


@dataclass(frozen=True)
class EncoderComparison:
    n_queries: int
    bundle_id: str
    reference: str
    metric: str
    rows: list[EncoderRow]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        header = (f"| encoder | {' | '.join(f'{s} {self.metric}' for s in SYSTEMS)} | "
                  f"semantic / served − {self.reference} (95% paired) | cosine to {self.reference} (mean, min) | "
                  "ms p50 / p95 / p99 |")
        lines = [header, "|---" * (len(SYSTEMS) + 4) + "|"]
        for row in self.rows:
            values = " | ".join(f"{row.metrics[s][self.metric]:.4f}" for s in SYSTEMS)
            diffs = ", ".join(f"{row.vs_reference[s]}" for s in (SEMANTIC, SERVED))
            latency = " / ".join(f"{row.latency_ms[p]:.2f}" for p in ("p50", "p95", "p99"))
            lines.append(f"| {row.encoder} | {values} | {diffs} | {row.agreement['mean']:.4f}, "
                         f"{row.agreement['min']:.4f} | {latency} |")
        return "\n".join(lines)


def compare_query_encoders(settings: Settings, service: Any, labelled: LabelledQueries,
                           encoders: dict[str, TextEncoder], latency_queries: int = 300) -> EncoderComparison:
    """``encoders``: name -> encoder, the first being the reference; ``service``: a loaded
    SearchService whose bundle serves ``semantic``."""
    qids = list(labelled.queries)
    if not qids or not encoders:
        raise ValueError("nothing to compare: no labelled queries or no encoders")
    graded = graded_labels(labelled, service.display, settings.eval).qrels
    metric = settings.eval.metrics[0]
    depth = settings.eval.depth
    table = service.strategies[SEMANTIC].table
    texts = [labelled.queries[q] for q in qids]
    values: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    vectors: dict[str, np.ndarray] = {}
    latency: dict[str, dict[str, float]] = {}
    for name, encoder in encoders.items():
        swapped = service.with_strategy(SemanticStrategy(table, encoder, settings.vector))
        runs, per_strategy, _ = retrieve_runs(swapped, labelled, qids, depth)
        runs[HYBRID] = fused_runs(per_strategy, {n: depth for n in per_strategy}, swapped.settings.retrieval.fusion,
                                  depth)
        values[name] = {system: per_query_values(runs[system], graded, qids, "graded", settings) for system in SYSTEMS}
        vectors[name] = encoder.encode(texts)
        latency[name] = _latency(encoder, texts[:latency_queries])
    reference = next(iter(encoders))
    rows = []
    for name in encoders:
        cosine = (vectors[name] * vectors[reference]).sum(axis=1)
        rows.append(EncoderRow(
            encoder=name,
            metrics={s: {m: round(float(v.mean()), 4) for m, v in values[name][s].items()} for s in SYSTEMS},
            vs_reference={s: paired_bootstrap_ci(values[name][s][metric], values[reference][s][metric],
                                                 settings.eval.confidence, n=settings.eval.n_bootstrap)
                          for s in SYSTEMS},
            agreement={"mean": round(float(cosine.mean()), 5), "min": round(float(cosine.min()), 5)},
            latency_ms=latency[name]))
    return EncoderComparison(len(qids), service.bundle_id, reference, metric, rows)


def _latency(encoder: TextEncoder, texts: list[str]) -> dict[str, float]:
    encoder.encode(texts[:1])                      # first call: allocations, lazy initialisation
    seconds = []
    for text in texts:
        started = time.perf_counter()
        encoder.encode([text])
        seconds.append(time.perf_counter() - started)
    ms = np.array(seconds) * 1000
    return {p: round(float(np.percentile(ms, q)), 3) for p, q in (("p50", 50), ("p95", 95), ("p99", 99))}


def load_encoders(settings: Settings, kinds: list[str], display: Any) -> dict[str, TextEncoder]:
    """``torch`` and ``onnx_int8`` / ``onnx_fp32`` (exported and gated now, or from the export
    cache), all single-threaded as serving runs them and without the query cache. ``display``:
    the bundle's entities (title, artists), whose titles are the export gate's sample texts."""
    threads = settings.runtime.query_encoder_threads
    artists = [first_artist(a) for a in display["artists"]]
    sample = sample_texts(display["title"].astype(str).tolist(), artists, settings.embedding.query_agreement_sample)
    out: dict[str, TextEncoder] = {}
    for kind in kinds:
        config = settings.embedding.model_copy(update={"query_encoder": kind, "torch_threads": threads})
        if kind == "torch":
            out[kind] = Encoder(config)
            continue
        directory, _ = cached_query_encoder(config, indexes_root(settings) / "query-encoders", sample)
        out[kind] = OnnxQueryEncoder(directory, threads, cache_size=0)
    return out
