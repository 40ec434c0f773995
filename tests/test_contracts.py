"""The catalog contract: critical failures stop, row-level failures are quarantined and counted."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pytest

from ltrr_core import schema as S
from ltrr_core.catalog import adapters
from ltrr_core.catalog.pipeline import assign_catalog_fields, validate_catalog
from ltrr_core.contracts import ContractViolation
from tests.conftest import make_settings

NOW = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return make_settings(tmp_path_factory.mktemp("contracts"))


@pytest.fixture(scope="module")
def sample(settings) -> pd.DataFrame:
    """2,000 real CPCD tracks, hashed as the pipeline would."""
    tracks = adapters.read_cpcd_tracks(settings, nrows=2000)
    return assign_catalog_fields(tracks, None, NOW)


def _corrupt(frame: pd.DataFrame, rows: list[int], column: str, value) -> pd.DataFrame:
    bad = frame.copy()
    for row in rows:
        bad.at[row, column] = value
    return bad


def test_clean_real_sample_passes_with_nothing_quarantined(settings, sample):
    kept, quarantined, summary = validate_catalog(settings, sample)
    assert summary["passed"] and len(kept) == len(sample) and len(quarantined) == 0


def test_duplicate_ids_stop_the_run_naming_the_expectation_and_the_id(settings, sample):
    bad = _corrupt(sample, [10], S.ID, sample.at[3, S.ID])
    with pytest.raises(ContractViolation) as caught:
        validate_catalog(settings, bad)
    message = str(caught.value)
    assert "expect_column_values_to_be_unique" in message and "'id'" in message
    assert sample.at[3, S.ID] in message
    assert [f.expectation for f in caught.value.report.critical] == ["expect_column_values_to_be_unique"]


def test_one_empty_title_is_quarantined_with_its_reason(settings, sample):
    bad = _corrupt(sample, [7], S.TITLE, "   ")
    kept, quarantined, summary = validate_catalog(settings, bad)
    assert len(kept) == len(sample) - 1
    assert quarantined[S.ID].tolist() == [sample.at[7, S.ID]]
    assert quarantined["quarantine_reason"].iloc[0] == "expect_column_values_to_match_regex(title)"
    assert summary["n_quarantined"] == 1
    assert summary["quarantined_by_reason"] == {"expect_column_values_to_match_regex(title)": 1}
    # the validation that decided is the one the Data Docs show (contracts.data_docs)
    page = Path(urlparse(summary["data_docs"]).path)
    assert (
        page.is_file()
        and page.is_relative_to(settings.data_dir / "data_docs")
        and "validations/catalog/" in page.as_posix()
    )
    quiet = settings.with_overrides(**{"contracts.data_docs": False})
    assert "data_docs" not in validate_catalog(quiet, bad)[2]


def test_many_empty_titles_mean_a_broken_feed_and_stop_the_run(settings, sample):
    bad = _corrupt(sample, list(range(0, 2000, 20)), S.TITLE, "")  # 100 rows = 5% > 1%
    with pytest.raises(ContractViolation, match=r"100 rows \(5\.00%\) break row-level rules") as caught:
        validate_catalog(settings, bad)
    assert "expect_column_values_to_match_regex on column 'title'" in str(caught.value)


def test_unknown_entity_types_are_quarantined_or_stop_the_run(settings, sample):
    one = _corrupt(sample, [5], S.TYPE, "podcast")
    _, quarantined, _ = validate_catalog(settings, one)
    assert quarantined["quarantine_reason"].tolist() == ["expect_column_values_to_be_in_set(type)"]
    many = _corrupt(sample, list(range(0, 2000, 10)), S.TYPE, "podcast")
    with pytest.raises(ContractViolation, match="expect_column_values_to_be_in_set on column 'type'"):
        validate_catalog(settings, many)


def test_negative_popularity_and_missing_artists_are_quarantined(settings, sample):
    bad = _corrupt(_corrupt(sample, [1], S.POPULARITY, -3.0), [2], S.ARTISTS, [])
    _, quarantined, summary = validate_catalog(settings, bad)
    reasons = dict(zip(quarantined[S.ID], quarantined["quarantine_reason"]))
    assert reasons == {
        sample.at[1, S.ID]: "expect_column_values_to_be_between(popularity)",
        sample.at[2, S.ID]: "expect_column_values_to_be_between(n_artists)",
    }
    assert summary["n_quarantined"] == 2


def test_the_real_mojibake_artist_in_lastfm_is_quarantined(settings):
    """Last.fm's artists.dat holds one name stored as UTF-8 read as Latin-1 ("BallakÃ© Sissoko")."""
    artists = assign_catalog_fields(adapters.read_lastfm_artists(settings), None, NOW)
    kept, quarantined, _ = validate_catalog(settings, artists)
    assert quarantined[S.TITLE].tolist() == ["BallakÃ© Sissoko"]
    assert "expect_column_values_to_not_match_regex(title)" in quarantined["quarantine_reason"].iloc[0]
    assert len(kept) == len(artists) - 1
