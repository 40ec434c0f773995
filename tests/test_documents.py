"""How entities become index text."""

import numpy as np

from ltrr_core import schema as S
from ltrr_core.index.bm25 import weighted_document
from ltrr_core.index.build import blend_embeddings
from ltrr_core.index.documents import EmbeddingText, descriptor_terms, document_fields, embedding_input, embedding_text

ROW = {
    S.TYPE: "track",
    S.TITLE: "Last Christmas",
    S.ARTISTS: ["Wham!"],
    S.ALBUM: "Music from the Edge of Heaven",
    S.TAGS: ["pop", "80s", "Electronic", "new wave"],
    S.GENRES: ["pop", "electronic", "soul-rnb"],
    S.MOODS: ["happy"],
    S.VERSION_TYPES: [],
    S.SEASONS: ["christmas"],
    S.DECADES: [1980],
}


def test_descriptors_merge_tags_and_derived_attributes_without_repeats():
    assert descriptor_terms(ROW, max_tags=8) == [
        "pop",
        "80s",
        "Electronic",
        "new wave",
        "soul rnb",
        "happy",
        "christmas",
        "1980s",
    ]
    assert descriptor_terms(ROW, max_tags=1)[:2] == ["pop", "electronic"]


def test_fields_and_texts():
    fields = document_fields(ROW, max_tags=8)
    assert fields["artists"] == "Wham!" and fields["description"] == ""
    assert embedding_text(ROW, 8).startswith("Last Christmas by Wham! from Music from the Edge of Heaven. pop, 80s")
    artist = {S.TYPE: "artist", S.TITLE: "Wham!", S.ARTISTS: ["Wham!"], S.TAGS: ["pop"]}
    assert embedding_text(artist, 8) == "Wham!. pop"
    weighted = weighted_document({"title": "a", "artists": "b", "tags": "c"}, {"title": 2, "artists": 1, "tags": 0})
    assert weighted.split() == ["a", "a", "b"]


def test_embedding_input_keeps_the_name_line_apart_from_the_descriptors():
    text = embedding_input(ROW, 8, name_weight=0.7)
    assert text.name == "Last Christmas by Wham! from Music from the Edge of Heaven"
    assert text.full == embedding_text(ROW, 8) and text.full.startswith(text.name + ". pop")
    # Weight 0 is the whole text alone, fingerprinted as before blends existed (no re-encoding).
    assert embedding_input(ROW, 8, name_weight=0.0).fingerprint == embedding_text(ROW, 8)
    # The blend's weight is part of what a vector is a function of: changing it re-encodes.
    assert text.fingerprint != embedding_input(ROW, 8, name_weight=0.5).fingerprint


class _Letters:
    """An encoder whose vector of a text counts its letters a, b, c: easy to blend by hand."""

    dim = 3

    def encode(self, texts, show_progress=False):
        return np.array([[t.count(c) for c in "abc"] for t in texts], dtype=np.float32)


def test_blend_is_the_weighted_sum_of_the_two_embeddings():
    texts = [EmbeddingText("ab", "ab. cc", 0.75), EmbeddingText("a", "a", 0.75), EmbeddingText("b", "b. c", 0.0)]
    vectors = blend_embeddings(_Letters(), texts)
    np.testing.assert_allclose(vectors[0], 0.75 * np.array([1, 1, 0]) + 0.25 * np.array([1, 1, 2]))
    np.testing.assert_allclose(vectors[1], [1, 0, 0])  # nothing to describe: the name line itself
    np.testing.assert_allclose(vectors[2], [0, 1, 1])  # weight 0: the whole text
    assert blend_embeddings(_Letters(), []).shape == (0, 3)
