"""Query understanding on real catalog names and real CPCD queries."""

from __future__ import annotations

import pandas as pd
import pytest

from ltrr_core import query as qu_module
from ltrr_core import text


def test_query_and_index_share_one_normalisation(real_entities):
    from ltrr_core.index.bm25 import BM25Index, BM25Settings

    assert qu_module.normalize is text.normalize
    tracks = real_entities[real_entities["source"] == "cpcd"].head(3000)
    halo = real_entities[
        (real_entities["title"] == "Halo")
        & real_entities["artists"].map(lambda a: a is not None and "Beyoncé" in list(a))
    ].head(1)
    assert len(halo) == 1
    docs = pd.concat([tracks, halo]).drop_duplicates("id")
    documents = [f"{t} {' '.join(a if a is not None else [])}" for t, a in zip(docs["title"], docs["artists"])]
    index = BM25Index.build(docs["id"].tolist(), documents, BM25Settings("lucene", 1.2, 0.75, None, None, {}, "numpy"))
    hits = index.search(["HALO — Beyoncé!!"], 1)[0]
    assert hits and hits[0][0] == halo["id"].iat[0]


@pytest.mark.parametrize(
    ("typo", "artist"),
    [
        ("tayler swift", "taylor swift"),
        ("beyonse", "beyonce"),
        ("eminen", "eminem"),
        ("rihana", "rihanna"),
        ("coldpaly", "coldplay"),
        ("ed sheran", "ed sheeran"),
        ("arianna grande", "ariana grande"),
        ("metalica", "metallica"),
        ("nirvanna", "nirvana"),
        ("britney spars", "britney spears"),
    ],
)
def test_misspelled_real_artist_names_are_recovered(understander, typo, artist):
    understanding = understander.understand(typo)
    assert understanding.corrections, f"{typo!r}: no spelling correction proposed"
    found = [s.value for i in understanding.interpretations for s in i.of_kind("artist")]
    assert found and found[0] == artist, f"{typo!r} -> {found}"


def test_tayler_love_reaches_taylor_swift_and_a_love_tag(understander):
    understanding = understander.understand("tayler love")
    assert "taylor" in understanding.corrections["tayler"]
    best = understanding.best
    assert best.first("artist").display == "Taylor Swift" and best.first("artist").corrected
    slots = {(s.kind, s.value) for i in understanding.interpretations for s in i.slots}
    assert ("title", "love") in slots
    # the partial tag reading: a catalog tag that holds the word (which one depends on the catalog
    # half of the Last.fm tag pairs; "love songs" went to the simulator's truth half)
    assert any(kind == "tag" and "love" in value.split() and value != "love" for kind, value in slots)
    assert ("mood", "romantic") in slots  # the mood content understanding derives from such tags


@pytest.mark.parametrize(
    ("real_query", "expected"),
    [  # typed into CPCD's search box by real people
        ("Taylor Swift Maroon", {("artist", "taylor swift"), ("title", "maroon")}),
        ("Taylor Swift Karma", {("artist", "taylor swift"), ("title", "karma")}),
        ("Dean Martin Christmas", {("artist", "dean martin"), ("season", "christmas")}),
        ("female rap", {("genre", "hip-hop")}),
        (
            "Blessed And Highly Favored (Live) The Clark Sisters",
            {("title", "blessed and highly favored live"), ("artist", "the clark sisters")},
        ),
    ],
)
def test_slot_tagging_on_real_queries(understander, real_query, expected):
    understanding = understander.understand(real_query)
    best = {(s.kind, s.value) for s in understanding.best.slots}
    assert expected <= best, f"{real_query!r}: best reading {best}"
    probabilities = [i.probability for i in understanding.interpretations]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1.0 + 1e-9
    assert len(understanding.interpretations) > 1, "several readings are kept, not just the best"


def test_decade_version_and_intent(understander):
    browse = understander.understand("80s female vocalists")
    assert {("decade", "1980"), ("tag", "female vocalists")} <= {(s.kind, s.value) for s in browse.best.slots}
    assert max(browse.intent, key=browse.intent.get) == "browse"
    mixed = understander.understand("live acoustic ed sheeran")
    assert {("version", "live"), ("version", "acoustic"), ("artist", "ed sheeran")} <= {
        (s.kind, s.value) for s in mixed.best.slots
    }
    assert max(mixed.intent, key=mixed.intent.get) == "mixed"
    lookup = understander.understand("Taylor Swift Anti-Hero")
    assert max(lookup.intent, key=lookup.intent.get) == "lookup"
    assert abs(sum(lookup.intent.values()) - 1.0) < 1e-3


def test_understanding_is_a_loggable_typed_object(understander):
    import json

    understanding = understander.understand("Ghosts deadmau5")
    payload = json.loads(json.dumps(understanding.to_dict()))
    assert payload["raw"] == "Ghosts deadmau5" and payload["normalised"] == "ghosts deadmau5"
    assert payload["interpretations"][0]["slots"][0]["kind"] in {"title", "artist"}
    features = understanding.features()
    assert features["slot_artist"] > 0 and features["n_tokens"] == 2.0
    assert all(isinstance(v, float) for v in features.values())


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("", "empty"),
        ("   \t ", "empty"),
        ("x" * 10_000, "10000 characters; the limit is 512"),
        ("?!... --- !!!", "no letters or digits"),
        (None, "must be text"),
    ],
)
def test_bad_queries_get_a_clear_error(understander, bad, message):
    with pytest.raises(qu_module.InvalidQuery, match=message):
        understander.understand(bad)


def test_control_characters_are_removed_not_fatal(understander):
    understanding = understander.understand("hal\x00o\x07 \x1b beyonce")
    assert understanding.normalised == "hal o beyonce"
    assert understanding.interpretations


def test_structured_puts_the_more_popular_of_two_equal_matches_first(real_entities, test_settings):
    from ltrr_core.query import QueryUnderstander
    from ltrr_core.query.resources import build_vocabulary, entity_fields
    from ltrr_core.retrieval.base import Query
    from ltrr_core.retrieval.structured import StructuredIndex, StructuredStrategy

    halo = real_entities[real_entities["title"].isin(["Halo"])].head(1)
    twins = halo.loc[halo.index.repeat(2)].reset_index(drop=True)
    twins["id"] = ["halo-rare", "halo-popular"]
    twins["popularity"] = [1.0, 500.0]
    others = real_entities[real_entities["type"] == "artist"].head(200)
    entities = pd.concat([twins, others], ignore_index=True)
    fields = entity_fields(entities)
    understander = QueryUnderstander(
        build_vocabulary(fields, entities, 1), test_settings.query_understanding, test_settings.content_understanding
    )
    strategy = StructuredStrategy(StructuredIndex(fields), understander, test_settings.structured)
    result = strategy.retrieve(Query("halo"), 10)
    assert result.ids[:2] == ("halo-popular", "halo-rare")
    assert result.scores[0] > result.scores[1]


def test_structured_postings_hold_exactly_the_rows_with_each_value_on_real_entities(real_entities):
    """The CSR postings (built with Arrow at load) against their definition, on the real catalog's
    normalised fields: each list value's rows, and titles and albums of entities other than artists."""
    from ltrr_core.query.resources import entity_fields
    from ltrr_core.retrieval.structured import _LIST_FIELDS, StructuredIndex

    fields = entity_fields(real_entities)
    index = StructuredIndex(fields)
    expected: dict[tuple[str, str], list[int]] = {}
    for kind, column in _LIST_FIELDS.items():
        for row, values in enumerate(fields[column]):
            for value in values:
                expected.setdefault((kind, str(value)), []).append(row)
    for row, (entity_type, title, core, album) in enumerate(
        zip(fields["type"], fields["title"], fields["core_title"], fields["album"])
    ):
        if entity_type != "artist":
            for value in {title, core}:
                expected.setdefault(("title", value), []).append(row)
            if isinstance(album, str) and album:
                expected.setdefault(("album", album), []).append(row)
    assert len(expected) > 10_000 and {kind for kind, _ in expected} >= {"artist", "tag", "title", "album", "decade"}
    for (kind, value), rows in expected.items():
        assert index.postings(kind, value).tolist() == rows, (kind, value)
    assert index.postings("artist", "no such artist").size == 0 and index.postings("nothing", "x").size == 0
