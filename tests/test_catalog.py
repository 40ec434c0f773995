"""Ingestion of the real sources into the entity schema, linking, and the versioned store."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from ltrr_core import schema as S
from ltrr_core.catalog import adapters
from ltrr_core.catalog.pipeline import assign_catalog_fields, ingest_catalog
from tests.conftest import make_settings


@pytest.fixture(scope="module")
def small_settings(tmp_path_factory):
    return make_settings(
        tmp_path_factory.mktemp("catalog"),
        **{"catalog.max_rows_per_source": {"fma": 500, "lastfm": 2000}},
    )


@pytest.fixture(scope="module")
def ingested(small_settings):
    return ingest_catalog(small_settings, now=datetime(2026, 11, 1, tzinfo=UTC))


def test_sources_map_into_the_entity_schema(ingested):
    entities, report = ingested
    assert report["rows_by_source"] == {"cpcd": 15418, "fma": 500, "lastfm": 2000}
    table = pa.Table.from_pandas(entities[S.ENTITY_SCHEMA.names[:15]], preserve_index=False)
    assert set(S.SOURCE_SCHEMA.names) <= set(table.column_names)
    assert set(entities[S.TYPE]) == {"track", "artist"}
    assert entities[S.ID].is_unique
    assert (entities[S.POPULARITY] >= 0).all()
    assert entities[S.CONTENT_HASH].str.fullmatch(r"[0-9a-f]{64}").all()


def test_cpcd_tracks_keep_all_credited_artists(ingested):
    entities, _ = ingested
    track = entities.set_index(S.ID).loc["cpcd:s_IwrqvM618"]
    assert track[S.TITLE] == "all the good girls go to hell"
    assert list(track[S.ARTISTS]) == ["Billie Eilish"]
    assert track[S.ALBUM] == "WHEN WE ALL FALL ASLEEP, WHERE DO WE GO?"


def test_lastfm_tags_are_weighted_by_users_and_decoded_from_latin1(small_settings):
    artists = adapters.read_lastfm_artists(small_settings, nrows=2000)
    row = artists.set_index(S.TITLE).loc["Britney Spears"]
    weights = list(row[S.TAG_WEIGHTS])
    assert weights[0] == 1.0 and weights == sorted(weights, reverse=True)
    assert "pop" in list(row[S.TAGS])[:3]
    assert row[S.POPULARITY] > 100  # listeners among the 1,892 HetRec users
    all_tags = {t for tags in artists[S.TAGS] for t in tags}
    assert not any("Ã" in t for t in all_tags), "tags.dat must be read as Latin-1"


def test_tracks_link_to_lastfm_artists_and_inherit_their_tags(ingested, small_settings):
    entities, report = ingested
    by_id = entities.set_index(S.ID)
    lastfm = by_id[by_id[S.SOURCE] == "lastfm"]
    britney = lastfm.index[lastfm[S.TITLE] == "Britney Spears"][0]
    britney_tracks = by_id[by_id[S.ARTISTS].map(lambda a: "Britney Spears" in list(a)) & (by_id[S.SOURCE] == "cpcd")]
    assert len(britney_tracks) > 0
    for _, track in britney_tracks.iterrows():
        assert britney in list(track[S.LINKED_ARTIST_IDS])
        assert "pop" in list(track[S.TAGS])
        assert max(track[S.TAG_WEIGHTS]) <= small_settings.catalog.inherited_tag_weight
        assert track[S.POPULARITY] == lastfm.loc[britney, S.POPULARITY]
    assert report["linking"]["n_tracks_linked"] > 1000


def test_added_at_survives_reingest_and_new_entities_get_the_run_time(ingested):
    entities, _ = ingested
    later = datetime(2026, 11, 20, tzinfo=UTC)
    previous = entities.iloc[:-5]
    again = assign_catalog_fields(entities[S.HASHED_COLUMNS], previous, later)
    assert (again[S.ADDED_AT].iloc[:-5] == entities[S.ADDED_AT].iloc[:-5]).all()
    assert (again[S.ADDED_AT].iloc[-5:] == later).all()
    assert (again[S.CONTENT_HASH] == entities[S.CONTENT_HASH]).all()


def test_missing_source_file_names_the_setting(tmp_path):
    settings = make_settings(tmp_path, shared_data_dir=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="shared_data_dir"):
        ingest_catalog(settings)


def test_wikidata_artists_for_the_large_profile(small_settings):
    artists = adapters.read_wikidata_artists(small_settings, nrows=5000)
    assert len(artists) == 5000 and set(artists[S.TYPE]) == {"artist"}
    assert artists[S.ID].str.startswith("wdart:").all()
    tagged = artists[artists[S.TAGS].map(len) > 0]
    assert tagged[S.TAGS].map(lambda t: all(":" in x or x[0].isupper() for x in t)).all()
    assert tagged[S.TAG_WEIGHTS].map(lambda w: all(x == 1.0 for x in w)).all()
