"""Flow: catalog + engagement -> doc2query predictions for new/changed entities -> blend with
observed statistics -> publish a Q2E version."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow

from ltrr_core.config import load_settings
from ltrr_core.locking import writer_lock
from tasks.indexes import load_catalog
from tasks.q2e import entities_to_predict, generate_predictions, load_engagement, publish_q2e, q2e_inputs


@flow(name="generate_q2e", log_prints=True)
def generate_q2e(config_path: str | None = None, until: str | None = None) -> dict[str, Any]:
    """``until``: use runtime logs up to this day only (a backfilled night sees only its past)."""
    settings = load_settings(config_path)
    cutoff = date.fromisoformat(until) if until else None
    with writer_lock(settings, f"generate_q2e until {until or 'now'}"):
        fingerprint = q2e_inputs(settings, cutoff)
        catalog_version, entities = load_catalog(settings)
        engagement = load_engagement.submit(settings, cutoff)
        todo, drop_ids, scope = entities_to_predict(settings, catalog_version, entities)
        fresh, doc2query = generate_predictions(settings, todo, engagement.result())
        return publish_q2e(
            settings,
            catalog_version,
            entities,
            fresh,
            drop_ids,
            engagement.result(),
            {"scope": scope, "doc2query": doc2query, "inputs_fingerprint": fingerprint},
        )


if __name__ == "__main__":
    generate_q2e()
