"""How an entity becomes text for each index: one place, used at build and at eval time.

Content-understanding attributes (genres, moods, version types, seasons, decades) join the
tags field, so that "christmas songs" or "80s rock" meet entities whose own text never says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from .. import schema as S


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value if v is not None and v == v]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def descriptor_terms(row: dict[str, Any], max_tags: int) -> list[str]:
    """Tags (strongest first) plus the attributes content understanding derived."""
    terms: list[str] = []
    seen: set[str] = set()
    derived = [
        t.replace("-", " ")
        for column in (S.GENRES, S.MOODS, S.VERSION_TYPES, S.SEASONS)
        for t in _strings(row.get(column))
    ]
    for term in _strings(row.get(S.TAGS))[:max_tags] + derived + [f"{d}s" for d in _strings(row.get(S.DECADES))]:
        key = term.casefold().replace("-", " ")
        if key not in seen:  # "Electronic" (tag) and "electronic" (genre) once
            seen.add(key)
            terms.append(term)
    return terms


def document_fields(row: dict[str, Any], max_tags: int) -> dict[str, str]:
    """The searchable fields of an entity, as plain text."""
    return {
        "title": _text(row.get(S.TITLE)),
        "artists": " ".join(_strings(row.get(S.ARTISTS))),
        "album": _text(row.get(S.ALBUM)),
        "tags": " ".join(descriptor_terms(row, max_tags)),
        "description": _text(row.get(S.DESCRIPTION)),
    }


def name_line(fields: dict[str, str], entity_type: Any) -> str:
    """ "title by artists from album": what a lookup query names."""
    parts = [fields["title"]]
    if fields["artists"] and entity_type != "artist":
        parts.append(f"by {fields['artists']}")
    if fields["album"]:
        parts.append(f"from {fields['album']}")
    return " ".join(parts)


def embedding_text(row: dict[str, Any], max_tags: int) -> str:
    """One sentence-like line for the sentence encoder: the name line, then the descriptors."""
    fields = document_fields(row, max_tags)
    text = name_line(fields, row.get(S.TYPE))
    if fields["tags"]:
        text += ". " + ", ".join(descriptor_terms(row, max_tags))
    if fields["description"]:
        text += ". " + fields["description"]
    return text


@dataclass(frozen=True)
class EmbeddingText:
    """What an entity's vector is made of: ``name_weight`` x the name line's embedding +
    (1 - ``name_weight``) x the whole text's (name line and descriptors). Name queries meet the
    sharp name vector, descriptive ones the descriptors; the blend is one vector, so a dot
    product scores both at the price of one search. ``name_weight`` 0: the whole text alone."""

    name: str
    full: str
    name_weight: float

    @property
    def fingerprint(self) -> str:
        """What the vector is a function of (the vector table re-encodes a row when it changes);
        with ``name_weight`` 0 the whole text alone, as before blends existed."""
        return self.full if self.name_weight == 0 else f"{self.name_weight:g}\x1f{self.name}\x1f{self.full}"

    def edited(self, suffix: str) -> EmbeddingText:
        return EmbeddingText(self.name, self.full + suffix, self.name_weight)


def embedding_input(row: dict[str, Any], max_tags: int, name_weight: float) -> EmbeddingText:
    fields = document_fields(row, max_tags)
    return EmbeddingText(name_line(fields, row.get(S.TYPE)), embedding_text(row, max_tags), name_weight)


def _first_artist(artists: Any) -> str:
    return str(next(iter(artists), "")) if artists is not None else ""


def query_like_sample(entities: pd.DataFrame, n: int) -> list[str]:
    """Query-like texts for an encoder export's gate from entities (``title``, ``artists``): every k-th
    title, and "title artist" for half of them."""
    titles = entities[S.TITLE].astype(str).tolist()
    artists = [_first_artist(a) for a in entities[S.ARTISTS]]
    step = max(1, len(titles) // max(1, n))
    picked = list(range(0, len(titles), step))[:n]
    texts = [titles[i] if j % 2 == 0 or not artists[i] else f"{titles[i]} {artists[i]}" for j, i in enumerate(picked)]
    return [t for t in texts if t and t.strip()]
