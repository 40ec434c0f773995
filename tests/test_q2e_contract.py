"""The Q2E contract (data_contracts/q2e.json) on the test platform's real Q2E table: it passes,
engagement on entities outside the catalog is left out (CPCD shows tracks its track table does
not hold), and a table with a planted bad row is refused naming the rule, publishing nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ltrr_core import schema as S
from ltrr_core.contracts.validate import ContractViolation
from ltrr_core.memory.contract import check_q2e

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def published(q2e_platform):
    from ltrr_core.catalog import CatalogStore
    from ltrr_core.memory.store import Q2EStore

    settings, manifest, _ = q2e_platform
    store = Q2EStore(settings.data_dir / "q2e")
    table = pd.read_parquet(store.store.path(manifest["version"]) / "q2e.parquet")
    entities = CatalogStore(settings.data_dir / "catalog").load(manifest["catalog_version"])
    return settings, manifest, table, entities


def test_the_published_table_passed_and_holds_only_catalog_entities(published):
    settings, manifest, table, entities = published
    assert manifest["contract"]["n_rows"] == len(table)  # the contract saw the whole published table
    assert table["entity_id"].isin(entities[S.ID]).all()
    # Real CPCD: people were shown tracks that are not in its track table; their pairs are counted, not served.
    assert manifest["n_observed_pairs_outside_catalog"] > 1000
    assert (table["source"] == "observed").sum() == manifest["n_observed_pairs"] > 1000


def _first(frame: pd.DataFrame, **values) -> pd.DataFrame:
    planted = frame.copy()
    for column, value in values.items():
        planted.loc[planted.index[0], column] = value
    return planted


@pytest.mark.parametrize(
    "plant, rule",
    [
        (lambda f: _first(f, entity_id="cpcd:not-in-the-catalog"), "column 'entity_in_catalog'"),
        (lambda f: pd.concat([f, f.iloc[[0]]], ignore_index=True), "expect_compound_columns_to_be_unique"),
        (lambda f: _first(f, score=1.5), "column 'score'"),
        (lambda f: _first(f, query=""), "column 'query'"),
        (lambda f: _first(f, generator="seq2seq-from-elsewhere"), "column 'generator'"),
        (
            lambda f: f.assign(source=np.where(f.index == 0, "observed", f["source"]), n_impressions=0.0),
            "column 'source_matches_evidence'",
        ),
        (lambda f: f.assign(clicked=1), "expect_table_columns_to_match_set"),
    ],
)
def test_a_bad_table_is_refused_naming_the_rule(published, plant, rule):
    settings, _, table, entities = published
    sample = table.sample(3000, random_state=5).reset_index(drop=True)
    assert check_q2e(settings, sample, entities[S.ID])["passed"]
    with pytest.raises(ContractViolation, match=rule):
        check_q2e(settings, plant(sample), entities[S.ID])


def test_a_refused_table_publishes_nothing(published):
    from ltrr_core.memory.build import publish_q2e
    from ltrr_core.memory.store import Q2EStore

    settings, manifest, _, entities = published
    store = Q2EStore(settings.data_dir / "q2e").store
    before = store.versions()
    predicted = pd.DataFrame(
        {"query": ["taylor swift"], "entity_id": [entities[S.ID].iloc[0]], "score": [1.7], "generator": ["templates"]}
    )
    empty = pd.DataFrame(columns=["request_id", "query", "entity_id", "examined", "engaged", "timestamp"])
    with pytest.raises(ContractViolation, match="column 'score'"):
        publish_q2e(settings, manifest["catalog_version"], entities, predicted, empty, {})
    assert store.versions() == before and store.read_pointer() == manifest["version"]
