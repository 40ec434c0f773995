"""Steps of the generate_q2e flow: which entities need predictions, the engagement logs, the
generators, and the blended table.

Incremental by design: predictions are made only for entities that are new or changed since
the catalog version the current Q2E table was predicted from (by content hash); predictions
of unchanged entities are carried over, those of removed or changed entities dropped.
Observed statistics are recomputed from all engagement every run (aggregation is cheap, and
it keeps re-runs idempotent). Known limitation: log-neighbour predictions of unchanged
entities are not refreshed when new logs arrive; their observed statistics are.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import schema as S
from ..config import Settings
from ..doc2query import LoggedQueryNeighbourGenerator, RelevanceFilter, TemplateGenerator, predict_q2e
from ..doc2query.base import empty
from ..index.build import document_encoder
from ..index.documents import query_like_sample
from .blend import blend, observed_statistics
from .contract import check_q2e
from .engagement import COLUMNS as ENGAGEMENT_COLUMNS
from .engagement import cpcd_engagement, log_engagement
from .store import Q2ENotBuilt, Q2EStore

_log = logging.getLogger("ltrr.q2e")

# Bump when generator code changes what it predicts: the next run then re-predicts everything.
GENERATORS_VERSION = 2


def q2e_store(settings: Settings) -> Q2EStore:
    return Q2EStore(settings.data_dir / "q2e")


def load_engagement(settings: Settings, until: date | None = None) -> pd.DataFrame:
    """Everything observed so far: the bootstrap source (CPCD train conversations) plus every
    day of the runtime's logs (up to ``until``, so a backfilled night sees only its past), each
    day checked against its contracts first (bad rows are quarantined, not used). Held-out CPCD
    conversations never enter: they are the evaluation set."""
    bootstrap = settings.memory.bootstrap
    frames = []
    if bootstrap.source == "cpcd":
        frames.append(
            cpcd_engagement(settings.shared_path(settings.catalog.paths.cpcd_labels), settings.splits, "train")
        )
    if settings.memory.use_runtime_logs:
        frames.append(runtime_log_engagement(settings.data_dir / settings.runtime.log_dir, until))
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=ENGAGEMENT_COLUMNS)


def inputs_fingerprint(settings: Settings, until: date | None = None) -> str:
    """What a Q2E version is a function of: the catalog version, the engagement sources (the
    bootstrap file and every finalised log file up to ``until``: names, sizes, mtimes), the
    prediction and blend settings, and today's date (the blend decays observations by age).
    Taken before the inputs are read, so a log landing mid-run only makes the next run stale."""
    import hashlib
    import json
    from datetime import datetime

    from ..catalog.store import CatalogStore
    from ..logs import logged_days

    labels = settings.shared_path(settings.catalog.paths.cpcd_labels)
    files = [[labels.name, *((labels.stat().st_size, labels.stat().st_mtime_ns) if labels.is_file() else (None, None))]]
    log_root = settings.data_dir / settings.runtime.log_dir
    if settings.memory.use_runtime_logs:
        for day in logged_days(log_root):
            if until is None or day <= until.isoformat():
                for kind in ("impressions", "feedback"):
                    files += [
                        [f"{kind}/{f.parent.name}/{f.name}", f.stat().st_size, f.stat().st_mtime_ns]
                        for f in sorted((log_root / kind / f"date={day}").glob("*.parquet"))
                    ]
    payload = {
        "catalog": CatalogStore(settings.data_dir / "catalog").current_version(),
        "files": files,
        "prediction": _prediction_settings(settings),
        "memory": settings.memory.model_dump(mode="json"),
        "splits": settings.splits.model_dump(mode="json"),
        "today": datetime.now(UTC).date().isoformat(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def runtime_log_engagement(log_root: Path, until: date | None = None) -> pd.DataFrame:
    from ..contracts.logs import check_logged_day
    from ..logs import logged_days

    frames = []
    for day in logged_days(log_root):
        if until is not None and day > until.isoformat():
            continue
        impressions, feedback, report = check_logged_day(log_root, day)
        _log.info("runtime logs %s: %s", day, report)
        frames.append(log_engagement(impressions, feedback))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=ENGAGEMENT_COLUMNS)


def entities_to_predict(
    settings: Settings, catalog_version: str, entities: pd.DataFrame
) -> tuple[pd.DataFrame, set[str], dict[str, Any]]:
    """(entities needing predictions, ids whose old predictions must go, report)."""
    from ..catalog.store import CatalogStore, diff_catalogs

    store = q2e_store(settings)
    try:
        previous = store.manifest()
    except Q2ENotBuilt:
        return entities, set(), {"mode": "full", "n_to_predict": len(entities)}
    if previous.get("q2e_settings") != _prediction_settings(settings):
        return entities, set(), {"mode": "full (generator settings changed)", "n_to_predict": len(entities)}
    before = CatalogStore(settings.data_dir / "catalog").load(previous["catalog_version"])
    diff = diff_catalogs(before, entities)
    todo = set(diff.new) | set(diff.changed)
    report = {
        "mode": "incremental",
        "from_catalog": previous["catalog_version"],
        **diff.counts(),
        "n_to_predict": len(todo),
    }
    return entities[entities[S.ID].isin(todo)], set(diff.changed) | set(diff.removed), report


def _prediction_settings(settings: Settings) -> dict[str, Any]:
    """What the predictions depend on besides the entity: changing it re-predicts everything."""
    return {
        "generators_version": GENERATORS_VERSION,
        "doc2query": settings.doc2query.model_dump(mode="json"),
        "embedding": settings.embedding.model,
        "bootstrap": settings.memory.bootstrap.model_dump(mode="json"),
        "splits": settings.splits.model_dump(mode="json"),
    }


class EntityVectors:
    """Unit vectors of catalog entities from the Lance table of the current index build."""

    def __init__(self, settings: Settings):
        from ..index.build import current_build
        from ..index.vector import open_db

        _, manifest = current_build(settings)
        vectors = manifest["vectors"]
        table = open_db(settings.data_dir / "indexes" / "lance").open_table(vectors["table"])
        table.checkout(vectors["table_version"])
        arrow = table.to_arrow().select(["id", "vector"])
        self.dim = int(vectors["dim"])
        self._row = {entity: i for i, entity in enumerate(arrow.column("id").to_pylist())}
        matrix = np.asarray(
            arrow.column("vector").combine_chunks().values.to_numpy(zero_copy_only=False), dtype=np.float32
        ).reshape(-1, self.dim)
        # Blended vectors (embedding.name_weight) are shorter than one: normalised here, so that
        # neighbours are ranked by cosine whatever the blend.
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        self._matrix = matrix / np.where(norms > 0, norms, 1.0)

    def __call__(self, ids: list[str]) -> np.ndarray:
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        rows = [self._row.get(i, -1) for i in ids]
        found = np.array([r >= 0 for r in rows], dtype=bool)
        if found.any():
            out[found] = self._matrix[[r for r in rows if r >= 0]]
        return out


def make_generators(settings: Settings, observed: pd.DataFrame, vectors: EntityVectors | None, encode) -> list:
    config = settings.doc2query
    generators: list = []
    for name in config.generators:
        if name == "templates":
            generators.append(TemplateGenerator(config.templates, config.max_tags_per_entity))
        elif name == "log_neighbours":
            engaged = observed[observed["n_engaged"] > 0]
            if engaged.empty or vectors is None:
                _log.warning("log_neighbours: no engagement logged yet; generator skipped")
                continue
            queries = sorted(engaged["query"].unique())
            position = {q: i for i, q in enumerate(queries)}
            centroids = np.zeros((len(queries), vectors.dim), dtype=np.float32)
            entity_vectors = vectors(engaged["entity_id"].tolist())
            np.add.at(
                centroids,
                engaged["query"].map(position).to_numpy(),
                entity_vectors * engaged["n_engaged"].to_numpy(dtype=np.float32)[:, None],
            )
            totals = engaged.groupby("query")["n_engaged"].sum().reindex(queries).to_numpy(dtype=float)
            generators.append(
                LoggedQueryNeighbourGenerator(config.neighbours, queries, encode(queries), centroids, totals, vectors)
            )
        elif name == "seq2seq":
            from ..doc2query.seq2seq import Seq2SeqGenerator

            generators.append(Seq2SeqGenerator(config.seq2seq))
    return generators


def generate_predictions(
    settings: Settings, entities: pd.DataFrame, observed: pd.DataFrame
) -> tuple[pd.DataFrame, dict]:
    """Predicted Q2E rows for these entities with every configured generator, Doc2Query-- filtered."""
    if entities.empty:
        return empty(), {"generated": {}, "kept": 0}
    started = time.perf_counter()
    encoder = document_encoder(settings, query_like_sample(entities, settings.embedding.query_agreement_sample))
    vectors = EntityVectors(settings)
    generators = make_generators(settings, observed, vectors, encoder.encode)
    relevance = RelevanceFilter(
        encoder.encode, vectors, settings.doc2query.min_relevance, settings.doc2query.drop_fraction
    )
    predicted, report = predict_q2e(entities, generators, relevance)
    report["seconds"] = round(time.perf_counter() - started, 2)
    return predicted, report


def merge_predictions(settings: Settings, fresh: pd.DataFrame, drop_ids: set[str], report: dict) -> pd.DataFrame:
    """Previous predictions of unchanged entities + fresh ones."""
    if report.get("mode") != "incremental":
        return fresh
    previous = q2e_store(settings).load_predicted()
    kept = previous[~previous["entity_id"].isin(drop_ids | set(fresh["entity_id"]))]
    return pd.concat([kept, fresh], ignore_index=True)


def publish_q2e(
    settings: Settings,
    catalog_version: str,
    entities: pd.DataFrame,
    predicted: pd.DataFrame,
    engagement: pd.DataFrame,
    reports: dict[str, Any],
) -> dict[str, Any]:
    """Blend the predictions with the engagement observed on the catalog's entities, check the
    table against ``data_contracts/q2e.json`` (``entities``: the catalog version's) and publish it
    as a new Q2E version. Engagement on
    entities outside the catalog version (CPCD shows tracks its track table does not hold) is
    counted and left out: the memory strategy may only answer with catalog entities."""
    catalog_ids = pd.Index(entities[S.ID])
    observed = observed_statistics(engagement, settings.memory)
    outside = ~observed["entity_id"].isin(catalog_ids)
    table = blend(predicted, observed[~outside], settings.memory, pd.Timestamp.now(tz="UTC"))
    contract = check_q2e(settings, table, catalog_ids)
    return q2e_store(settings).publish(
        table,
        predicted,
        {
            "catalog_version": catalog_version,
            "q2e_settings": _prediction_settings(settings),
            "n_engagement_rows": int(len(engagement)),
            "n_observed_pairs": int((~outside).sum()),
            "n_observed_pairs_outside_catalog": int(outside.sum()),
            "contract": {key: contract[key] for key in ("passed", "n_rows", "data_docs") if key in contract},
            **reports,
        },
    )
