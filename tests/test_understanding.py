"""Content understanding on real catalog text."""

from __future__ import annotations

import pytest

from ltrr_core import schema as S
from ltrr_core.catalog import adapters
from ltrr_core.catalog.linking import link_entities
from ltrr_core.catalog.understanding import Rules, annotate_rules, find_decades, understand_catalog
from ltrr_core.config import load_settings
from tests.conftest import TEST_CONFIG, make_settings

RULES = Rules.from_config(load_settings(TEST_CONFIG).content_understanding)


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Tennessee Whiskey (Live at the CMA Awards)", ["live"]),
        ("Live Your Life", []),
        ("Live and Let Die", []),
        ("I'm Real (Murder Remix)", ["remix"]),
        ("Everybody Loves to Cha Cha (Karaoke Version) [Originally Performed by Sam Cooke]", ["cover", "karaoke"]),
        ("Wonderwall (Remastered)", ["remaster"]),
        ("Medley: Summer Love / Set the Mood (Prelude) (Clean)", ["clean"]),
        ("Layla (Acoustic)", ["acoustic"]),
    ],
)
def test_version_types_are_found_only_where_catalogs_mark_them(title, expected):
    from ltrr_core.text import fold

    assert RULES.version_types(fold(title)) == expected


def test_seasons_and_decades():
    assert RULES.seasons_of("give love on christmas day") == ["christmas"]
    assert RULES.seasons_of("santa tell me") == ["christmas"]
    assert find_decades("80s") == [1980]
    assert find_decades("best of the '90s and 2000s") == [1990, 2000]
    assert find_decades("19 songs") == []


def test_tag_vocabulary_maps_lastfm_tags_to_the_fma_genre_taxonomy():
    assert RULES.genres_of_tag("Hip-Hop") == ["hip-hop"]
    assert RULES.genres_of_tag("hip hop") == ["hip-hop"]
    assert RULES.genres_of_tag("pop rock") == ["rock", "pop"]
    assert RULES.genres_of_tag("Soul-RnB") == ["soul-rnb"]
    assert RULES.genres_of_tag("seen live") == []
    assert RULES.moods_of_tag("chillout") == ["chill"]
    assert RULES.moods_of_tag("love songs") == ["romantic"]


@pytest.fixture(scope="module")
def annotated_cpcd(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("cu"), **{"catalog.max_rows_per_source": {"lastfm": 3000}})
    frames = {"cpcd": adapters.read_cpcd_tracks(settings), "lastfm": adapters.read_lastfm_artists(settings, 3000)}
    linked, _ = link_entities(frames, ["lastfm"], 0.8, 20)
    return annotate_rules(linked, settings.content_understanding)


def test_real_cpcd_titles_get_version_and_season_attributes(annotated_cpcd):
    tracks = annotated_cpcd[annotated_cpcd[S.SOURCE] == "cpcd"]
    marked_live = tracks[tracks[S.TITLE].str.contains(r"\(live\b", case=False, regex=True)]
    assert len(marked_live) > 100
    assert marked_live[S.VERSION_TYPES].map(lambda v: "live" in v).mean() > 0.99
    remixes = tracks[tracks[S.TITLE].str.contains(r"\(.*remix\)", case=False, regex=True)]
    assert remixes[S.VERSION_TYPES].map(lambda v: "remix" in v).all()
    christmas = tracks[tracks[S.SEASONS].map(lambda s: "christmas" in s)]
    assert len(christmas) > 50
    assert tracks[S.SCRIPT].eq("Latin").mean() > 0.95
    assert set(tracks[S.LANGUAGE].dropna()) <= set(load_settings(TEST_CONFIG).content_understanding.language.candidates)


def test_linked_tracks_get_genres_and_moods_from_artist_tags(annotated_cpcd):
    tracks = annotated_cpcd[(annotated_cpcd[S.SOURCE] == "cpcd") & (annotated_cpcd[S.LINKED_ARTIST_IDS].map(len) > 0)]
    assert tracks[S.GENRES].map(len).gt(0).mean() > 0.9
    assert set(tracks[S.GENRE_SOURCE].dropna()) == {"tags"}
    britney = tracks[tracks[S.ARTISTS].map(lambda a: "Britney Spears" in list(a))]
    assert britney[S.GENRES].map(lambda g: "pop" in g).all()


def test_genre_classifier_reports_held_out_precision_recall_and_labels_untagged(tmp_path):
    settings = make_settings(tmp_path)
    # A random sample of FMA (the file is grouped by artist, so its head is a few genres only).
    fma = adapters.read_fma_tracks(settings).sample(10_000, random_state=0).reset_index(drop=True)
    frames = {
        "fma": fma,
        "cpcd": adapters.read_cpcd_tracks(settings, 2000),
        "lastfm": adapters.read_lastfm_artists(settings, 3000),
    }
    linked, _ = link_entities(frames, ["lastfm"], 0.8, 20)
    enriched, report = understand_catalog(linked, settings.content_understanding)
    evaluation = report.classifier
    assert evaluation["evaluated"] and evaluation["n_test"] > 500
    per_genre = evaluation["per_genre"]
    assert {"rock", "electronic", "hip-hop"} <= set(per_genre)
    # Held-out artists: clearly better than chance per genre, and its confident answers beat
    # always answering the most frequent genre.
    assert evaluation["balanced_accuracy"] > 2 * evaluation["chance_balanced_accuracy"]
    assert evaluation["accuracy_at_threshold"] > evaluation["majority_baseline_accuracy"]
    predicted = enriched[enriched[S.GENRE_SOURCE] == "classifier"]
    assert report.counts["genre_from_classifier"] == len(predicted) > 0
    assert (predicted[S.GENRE_CONFIDENCE] >= settings.content_understanding.classifier.min_confidence).all()
