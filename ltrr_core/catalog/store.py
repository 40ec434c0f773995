"""The versioned catalog: immutable version directories plus one pointer file.

Layout under ``<data_dir>/catalog``::

    versions/<version>/entities.parquet    the published entities (entity schema)
    versions/<version>/quarantine.parquet  rows held back, with the rule each broke
    versions/<version>/manifest.json       counts, diff, reports, checksums
    CURRENT                                the published version's name

A version directory is staged and renamed into place, and CURRENT is switched with an atomic
rename afterwards, so a failed or interrupted run leaves the previous version serving.
Partitioned Parquet with a manifest was chosen over a Lance table for the catalog because the
catalog is read whole by every batch step and diffed by hash; Lance holds the vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .. import schema as S
from ..durable import checksum_tree, write_json_atomic, write_parquet
from ..store import NotPublished, VersionedStore


class CatalogNotFound(NotPublished):
    pass


@dataclass(frozen=True)
class CatalogDiff:
    new: list[str]
    changed: list[str]
    removed: list[str]
    n_unchanged: int

    def counts(self) -> dict[str, int]:
        return {
            "new": len(self.new),
            "changed": len(self.changed),
            "removed": len(self.removed),
            "unchanged": self.n_unchanged,
        }


def diff_catalogs(previous: pd.DataFrame | None, current: pd.DataFrame) -> CatalogDiff:
    """New, changed and removed entity ids, by content hash."""
    now = dict(zip(current[S.ID], current[S.CONTENT_HASH]))
    if previous is None or previous.empty:
        return CatalogDiff(sorted(now), [], [], 0)
    before = dict(zip(previous[S.ID], previous[S.CONTENT_HASH]))
    new = sorted(set(now) - set(before))
    removed = sorted(set(before) - set(now))
    common = set(now) & set(before)
    changed = sorted(i for i in common if now[i] != before[i])
    return CatalogDiff(new, changed, removed, len(common) - len(changed))


class CatalogStore:
    def __init__(self, root: Path):
        self.store = VersionedStore(
            Path(root),
            "catalog version",
            "v",
            pointer="CURRENT",
            versions_dir="versions",
            hint="run `ltrr content-understanding` first",
            missing=CatalogNotFound,
        )
        self.root = self.store.root
        self.versions_dir = self.store.versions_root
        self.pointer = self.store.pointer_file()

    def current_version(self) -> str | None:
        return self.store.read_pointer()

    def version_dir(self, version: str | None = None) -> Path:
        return self.store.require(version)

    def load_table(self, version: str | None = None) -> pa.Table:
        table = pq.read_table(self.version_dir(version) / "entities.parquet")
        written = (table.schema.metadata or {}).get(b"ltrr.entity_schema_version", b"?").decode()
        if written.split(".")[0] != S.ENTITY_SCHEMA_VERSION.split(".")[0]:
            raise ValueError(
                f"catalog version {version or self.current_version()} has entity schema {written}; "
                f"this code reads {S.ENTITY_SCHEMA_VERSION}"
            )
        return table

    def load(self, version: str | None = None) -> pd.DataFrame:
        return self.load_table(version).to_pandas()

    def load_if_any(self) -> pd.DataFrame | None:
        return self.load() if self.current_version() else None

    def manifest(self, version: str | None = None) -> dict[str, Any]:
        manifest: dict[str, Any] = self.store.manifest(version)
        return manifest

    def publish(
        self,
        entities: pd.DataFrame,
        quarantined: pd.DataFrame,
        reports: dict[str, Any],
        now: datetime | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Write a new immutable version and switch CURRENT to it; returns (version, manifest)."""
        now = now or datetime.now(UTC)
        previous = self.load_if_any()
        diff = diff_catalogs(previous, entities)
        version = self.store.new_version(now)
        table = pa.Table.from_pandas(entities[S.ENTITY_SCHEMA.names], schema=S.ENTITY_SCHEMA, preserve_index=False)
        with self.store.publish(version) as staging:
            write_parquet(table, staging / "entities.parquet")
            write_parquet(pa.Table.from_pandas(quarantined, preserve_index=False), staging / "quarantine.parquet")
            write_parquet(
                pa.table(
                    {
                        "id": diff.new + diff.changed + diff.removed,
                        "change": ["new"] * len(diff.new)
                        + ["changed"] * len(diff.changed)
                        + ["removed"] * len(diff.removed),
                    }
                ),
                staging / "diff.parquet",
            )
            manifest = {
                "version": version,
                "entity_schema_version": S.ENTITY_SCHEMA_VERSION,
                "created_at": now.isoformat(),
                "previous_version": self.current_version(),
                "n_entities": len(entities),
                "by_type": entities[S.TYPE].value_counts().to_dict(),
                "by_source": entities[S.SOURCE].value_counts().to_dict(),
                "diff": diff.counts(),
                "n_quarantined": len(quarantined),
                **reports,
            }
            manifest["checksums"] = checksum_tree(staging)
            write_json_atomic(staging / "manifest.json", manifest)
        return version, manifest
