"""Flow: ingest the real sources -> catalog contract -> content understanding -> publish."""

from __future__ import annotations

from typing import Any

from prefect import flow

from ltrr_core.config import load_settings
from ltrr_core.locking import writer_lock
from tasks.catalog import ingest_catalog, publish_catalog, understand_catalog, validate_catalog


@flow(name="content_understanding", log_prints=True)
def content_understanding(config_path: str | None = None) -> dict[str, Any]:
    """A failed contract raises before anything is published; the last good version stays."""
    settings = load_settings(config_path)
    with writer_lock(settings, "content_understanding"):
        entities, ingest_report = ingest_catalog(settings)
        kept, quarantined, contract = validate_catalog(settings, entities)
        enriched, understanding = understand_catalog(settings, kept)
        reports = {"ingest": ingest_report, "contract": contract, "content_understanding": understanding}
        return publish_catalog(settings, enriched, quarantined, reports)


if __name__ == "__main__":
    content_understanding()
