"""The Q2E contract (``data_contracts/q2e.json``): a Q2E table is checked before it is published,
like the catalog before a catalog version and the logs before a nightly. Every rule is critical:
a table that breaks one is refused (``ContractViolation`` naming the rule and example rows),
nothing is published and the previous version keeps serving."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import Settings
from ..contracts.docs import documented, page_of
from ..contracts.validate import ROW, ContractViolation, load_suite, validate_frame
from .store import Q2E_SCHEMA

CONTRACT = Path(__file__).resolve().parents[2] / "data_contracts" / "q2e.json"
OBSERVED = "observed"  # the generator and source of rows that come from engagement alone
CHECKS = ("entity_in_catalog", "source_matches_evidence")  # the view's row checks


def contract_view(table: pd.DataFrame, catalog_ids: Collection[str]) -> pd.DataFrame:
    """The table plus the two row checks the suite reads: the entity is in the catalog version,
    and ``source`` says 'observed' exactly when the pair has impressions."""
    ids = catalog_ids if isinstance(catalog_ids, pd.Index) else pd.Index(list(catalog_ids))
    observed = table["source"].eq(OBSERVED)
    return table.assign(
        entity_in_catalog=table["entity_id"].isin(ids),
        source_matches_evidence=observed.eq(table["n_impressions"].gt(0)),
    )


def check_q2e(settings: Settings, table: pd.DataFrame, catalog_ids: Collection[str]) -> dict[str, Any]:
    """Refuse (``ContractViolation``) a table that breaks ``data_contracts/q2e.json``; else the
    validation's summary (with its Data Docs page when ``contracts.data_docs``)."""
    suite = load_suite(
        CONTRACT,
        overrides={
            "expect_table_columns_to_match_set:None": {"column_set": [*Q2E_SCHEMA.names, *CHECKS, ROW]},
            "expect_column_values_to_be_in_set:generator": {
                "value_set": sorted({*settings.doc2query.generators, OBSERVED})
            },
        },
    )
    run, page = documented(settings, "q2e")
    report = validate_frame(
        contract_view(table, catalog_ids),
        suite,
        max_quarantine_fraction=0.0,
        example_columns=("query", "entity_id"),
        run=run,
    )
    if not report.passed:
        raise ContractViolation(report)
    return {**report.summary(), **page_of(page)}
