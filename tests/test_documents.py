"""How entities become index text."""

from ltrr_core import schema as S
from ltrr_core.index.bm25 import weighted_document
from ltrr_core.index.documents import descriptor_terms, document_fields, embedding_text

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
    assert descriptor_terms(ROW, max_tags=8) == ["pop", "80s", "Electronic", "new wave", "soul rnb", "happy", "christmas", "1980s"]
    assert descriptor_terms(ROW, max_tags=1)[:2] == ["pop", "electronic"]


def test_fields_and_texts():
    fields = document_fields(ROW, max_tags=8)
    assert fields["artists"] == "Wham!" and fields["description"] == ""
    assert embedding_text(ROW, 8).startswith("Last Christmas by Wham! from Music from the Edge of Heaven. pop, 80s")
    artist = {S.TYPE: "artist", S.TITLE: "Wham!", S.ARTISTS: ["Wham!"], S.TAGS: ["pop"]}
    assert embedding_text(artist, 8) == "Wham!. pop"
    weighted = weighted_document({"title": "a", "artists": "b", "tags": "c"}, {"title": 2, "artists": 1, "tags": 0})
    assert weighted.split() == ["a", "a", "b"]
