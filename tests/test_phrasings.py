"""Tag and "songs like" phrasings are templates mined from real requests (MusicRecoNER, CPCD):
enough of them, one slot each, the real mention cut out, no held-out conversation read, the
same every time, and typed_query fills them with the intent's value."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from ltrr_core.query.musicreconer import load_musicreco_ner
from ltrr_core.simulate import phrasings
from ltrr_core.simulate.phrasings import SLOTS, clean, fill, mine_templates
from ltrr_core.simulate.variants import typed_query
from ltrr_core.simulate.world import Intent
from ltrr_core.splits import cpcd_part
from tests.conftest import make_settings


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return make_settings(tmp_path_factory.mktemp("phrasings"))


@pytest.fixture(scope="module")
def mined(settings):
    return mine_templates(settings)


def _words(phrase: str, text: str) -> bool:
    return re.search(rf"(?<!\S){re.escape(phrase)}(?!\S)", text) is not None


def _slot_value(template: str, example: str, slot: str) -> str:
    """What the template's slot stood for in the real sentence it was mined from."""
    prefix, suffix = template.split(slot)
    assert example.startswith(prefix) and example.endswith(suffix), (template, example)
    return example[len(prefix) : len(example) - len(suffix)].strip()


def test_at_least_50_templates_per_kind_from_both_sources_each_with_exactly_one_slot(settings, mined):
    counts = mined.counts()
    for kind in ("artist", "tag"):
        assert counts[kind]["total"] >= 50, counts
        assert counts[kind]["musicreconer"] >= 25 and counts[kind]["cpcd"] >= 25, counts
    assert len(set(mined.artist)) == len(mined.artist) and len(set(mined.tag)) == len(mined.tag)
    for kind, templates in (("artist", mined.artist), ("tag", mined.tag)):
        assert list(templates) == sorted(templates)
        for text in templates:
            assert text.count("{") == text.count("}") == 1 and text.count(SLOTS[kind]) == 1, text
            assert 2 <= len(text.split()) <= settings.simulate.phrasing_max_tokens, text
            assert re.fullmatch(r"[0-9a-z]+( [0-9a-z]+)*", text.replace(SLOTS[kind], "x")), text  # normalised


def test_known_answer_a_real_reddit_request(mined):
    # musicreconer_ds1: "I love Radiohead's Kid A. Something similar? Kinda a bit like Aphex Twin maybe."
    # Its first sentence names an artist and an album (two entities: no template); its second
    # names Aphex Twin (annotated Artist), which becomes the slot.
    by_text = {(m.kind, m.text): m for m in mined.mined}
    found = by_text[("artist", "kinda a bit like {artist} maybe")]
    assert found.sources == ("musicreconer",)
    assert found.example == "kinda a bit like aphex twin maybe"
    assert not [m for m in mined.mined if "radiohead" in m.text or "aphex" in m.text or "kid a" in m.example]


def test_the_real_mention_is_cut_out_of_every_template(settings, mined):
    queries, gold = load_musicreco_ner(settings.shared_path(settings.simulate.phrasing_musicreconer_dir))
    mentions_of: dict[str, set[str]] = {}
    for query in queries:
        for sentence in query.split("|"):
            mentions_of.setdefault(clean(sentence), set()).update(m for m, _ in gold.get(query, []))
    tag_names = {
        clean(line.split("\t", 1)[1])
        for line in settings.shared_path(settings.catalog.paths.lastfm_tags)
        .read_text(encoding="latin-1")
        .splitlines()[1:]
    }
    for m in mined.mined:
        value = _slot_value(m.text, m.example, SLOTS[m.kind])
        assert value and fill(m.text, {m.kind: value}) == m.example
        assert not _words(value, m.text), m  # the mention itself does not stay behind
        if m.kind == "tag":
            assert value in tag_names, m
        if "musicreconer" in m.sources and m.example in mentions_of:
            kept = [x for x in mentions_of[m.example] if _words(x, m.text)]
            assert not kept, (m, kept)  # nor any other annotated mention
            if m.kind == "artist":
                assert value in mentions_of[m.example], m


def test_a_second_name_the_conversation_does_not_know_keeps_the_sentence_out(settings, mined):
    # Real CPCD utterances naming one of the conversation's artists and another artist the
    # conversation's tracks do not hold; as templates they would keep "tupac" / "nickle back".
    said = {
        clean(sentence)
        for line in settings.shared_path(settings.simulate.phrasing_cpcd_dialogs)
        .read_text(encoding="utf-8")
        .splitlines()
        for turn in json.loads(line)["turns"]
        for sentence in phrasings._CPCD_SENTENCE.split(turn["user_query"])
    }
    assert "artists similar to warren g or tupac kinda thing" in said and "linkin park nickle back" in said
    assert not [t for t in mined.artist + mined.tag if _words("tupac", t) or _words("nickle back", t)]
    assert "artists similar to {artist}" in mined.artist  # the same phrasing without a second name


def test_no_held_out_cpcd_conversation_is_mined(settings, mined):
    allowed, held_out = set(), set()
    path = settings.shared_path(settings.simulate.phrasing_cpcd_dialogs)
    for line in path.read_text(encoding="utf-8").splitlines():
        conversation = json.loads(line)
        part = cpcd_part(conversation["id"], settings.splits)
        for turn in conversation["turns"]:
            for sentence in phrasings._CPCD_SENTENCE.split(turn["user_query"]):
                (allowed if part in settings.simulate.phrasing_cpcd_parts else held_out).add(clean(sentence))
    from_cpcd = [m for m in mined.mined if m.sources == ("cpcd",)]
    assert from_cpcd and all(m.example in allowed for m in from_cpcd)
    assert held_out - allowed  # the split did keep sentences out


def test_mining_is_deterministic(settings, mined):
    phrasings._mine.cache_clear()
    again = mine_templates(settings)
    assert again is not mined and again == mined


def test_typed_query_fills_a_mined_template_with_the_slot_value(settings, mined):
    config = settings.simulate.model_copy(update={"misspelling_rate": 0.0})
    rng = np.random.default_rng(0)
    cases = [
        (Intent("tag", "tag:shoegaze", "shoegaze", {}, slot={"tag": "shoegaze"}), mined.tag, "tag_phrasing"),
        (Intent("similar", "similar:x", "Aphex Twin", {}, slot={"artist": "Aphex Twin"}), mined.artist, "songs_like"),
    ]
    for intent, templates, variant_name in cases:
        value = next(iter(intent.slot.values()))
        expected = {fill(t, intent.slot) for t in templates}
        texts = set()
        for _ in range(300):
            text, variant = typed_query(intent, config, rng, mined)
            assert variant == variant_name and value in text and text in expected, text
            texts.add(text)
        assert len(texts) > 50  # drawn from the mined templates, not a handful of fixed ones
    with pytest.raises(ValueError, match="mine_templates"):
        typed_query(cases[0][0], config, rng)
    fixed = config.model_copy(update={"phrasing_source": "fixed"})
    text, _ = typed_query(cases[0][0], fixed, rng)
    assert text in {p.replace("{tag}", "shoegaze") for p in fixed.tag_phrasings}


def test_too_few_templates_or_a_missing_file_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="musicreco-ner"):
        mine_templates(make_settings(tmp_path, **{"simulate.min_mined_templates": 100_000}))
    with pytest.raises(FileNotFoundError, match="no-such-dialogs.jsonl"):
        mine_templates(make_settings(tmp_path, **{"simulate.phrasing_cpcd_dialogs": "cpcd/no-such-dialogs.jsonl"}))
