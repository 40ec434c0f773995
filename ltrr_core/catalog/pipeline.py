"""The catalog steps that the ``content_understanding`` flow wires together.

Each step takes and returns DataFrames plus a small report dict, so the flow's tasks stay
thin and every step is testable without Prefect. Steps never write the published catalog;
only ``publish_catalog`` does, last, and atomically.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from .. import schema as S
from ..config import Settings
from ..contracts.docs import documented, page_of
from ..contracts.validate import ContractViolation, catalog_view, load_suite, split_quarantine, validate_frame
from .adapters import read_sources
from .linking import link_entities
from .store import CatalogStore
from .understanding import understand_catalog


def catalog_store(settings: Settings) -> CatalogStore:
    return CatalogStore(settings.data_dir / "catalog")


def assign_catalog_fields(entities: pd.DataFrame, previous: pd.DataFrame | None, now: datetime) -> pd.DataFrame:
    """Content hash per entity; ``added_at`` kept from the previous version, else ``now``.

    None of the sources carries a date an entity entered the catalog, so first ingestion is it.
    """
    hashes = [S.content_hash(row) for row in entities[S.HASHED_COLUMNS].to_dict("records")]
    first_seen = {} if previous is None else dict(zip(previous[S.ID], previous[S.ADDED_AT]))
    stamp = pd.Timestamp(now).tz_convert("UTC") if pd.Timestamp(now).tzinfo else pd.Timestamp(now, tz="UTC")
    added = [first_seen.get(i, stamp) for i in entities[S.ID]]
    return entities.assign(**{S.CONTENT_HASH: hashes, S.ADDED_AT: pd.to_datetime(added, utc=True)})


def inputs_fingerprint(settings: Settings) -> str:
    """What a catalog version is a function of: every source file (path, size, modification
    time) and the catalog and content-understanding settings. Equal fingerprints mean a rebuild
    would publish the same entities, so the nightly skips it (a cheap stat, not a re-read)."""
    files = []
    for name, relative in sorted(settings.catalog.paths.model_dump().items()):
        path = settings.shared_path(relative)
        stat = path.stat() if path.is_file() else None
        files.append([name, str(path), stat.st_size if stat else None, stat.st_mtime_ns if stat else None])
    payload = {
        "files": files,
        "profile": settings.profile,
        "catalog": settings.catalog.model_dump(mode="json"),
        "content_understanding": settings.content_understanding.model_dump(mode="json"),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def ingest_catalog(settings: Settings, now: datetime | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read every source of the profile, link artists across sources, hash the result."""
    now = now or datetime.now(UTC)
    frames = read_sources(settings)
    linked, link_report = link_entities(
        frames,
        settings.catalog.link_gazetteer_sources,
        settings.catalog.inherited_tag_weight,
        settings.catalog.max_tags_per_entity,
    )
    previous = catalog_store(settings).load_if_any()
    entities = assign_catalog_fields(linked, previous, now)
    report = {
        "profile": settings.profile,
        "inputs_fingerprint": inputs_fingerprint(settings),
        "rows_by_source": {name: len(frame) for name, frame in frames.items()},
        "linking": {
            "n_tracks": link_report.n_tracks,
            "n_tracks_linked": link_report.n_tracks_linked,
            "track_link_rate": round(link_report.track_link_rate, 4),
            "n_artist_entities_linked": link_report.n_artist_entities_linked,
        },
    }
    return entities, report


def validate_catalog(settings: Settings, entities: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Apply the catalog contract: raise on critical failures, quarantine row-level ones.

    Returns (kept entities, quarantined rows with their reasons, contract summary).
    """
    suite = load_suite(
        Path(settings.contracts.catalog_suite),
        overrides={"expect_column_values_to_be_in_set:type": {"value_set": settings.catalog.entity_types}},
    )
    run, page = documented(settings, "catalog")
    report = validate_frame(
        catalog_view(entities),
        suite,
        settings.contracts.max_quarantine_fraction,
        settings.contracts.n_example_rows,
        example_columns=(S.ID, S.SOURCE, S.TITLE),
        run=run,
    )
    if not report.passed:
        raise ContractViolation(report)
    kept, quarantined = split_quarantine(entities, report)
    if len(quarantined):
        quarantined = quarantined.assign(
            **{
                col: quarantined[col].map(lambda v: None if v is None else list(v))
                for col in (S.ARTISTS, S.TAGS, S.TAG_WEIGHTS, S.LINKED_ARTIST_IDS)
            }
        )
    summary = {**report.summary(), **page_of(page)}
    summary["quarantined_by_reason"] = (
        quarantined["quarantine_reason"].value_counts().to_dict() if len(quarantined) else {}
    )
    return kept, quarantined, summary


def understand(settings: Settings, entities: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    enriched, report = understand_catalog(entities, settings.content_understanding)
    return enriched, {"counts": report.counts, "genre_classifier": report.classifier}


def publish_catalog(
    settings: Settings,
    entities: pd.DataFrame,
    quarantined: pd.DataFrame,
    reports: dict[str, Any],
    now: datetime | None = None,
) -> tuple[str, dict[str, Any]]:
    """Publish a new catalog version (atomic); returns (version, manifest)."""
    return catalog_store(settings).publish(entities, quarantined, reports, now)
