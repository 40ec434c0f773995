"""How an entity becomes text for each index: one place, used at build and at eval time.

Content-understanding attributes (genres, moods, version types, seasons, decades) join the
tags field, so that "christmas songs" or "80s rock" meet entities whose own text never says so.
"""

from __future__ import annotations

from typing import Any

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
    derived = [t.replace("-", " ") for column in (S.GENRES, S.MOODS, S.VERSION_TYPES, S.SEASONS) for t in _strings(row.get(column))]
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


def embedding_text(row: dict[str, Any], max_tags: int) -> str:
    """One sentence-like line for the sentence encoder."""
    fields = document_fields(row, max_tags)
    parts = [fields["title"]]
    if fields["artists"] and row.get(S.TYPE) != "artist":
        parts.append(f"by {fields['artists']}")
    if fields["album"]:
        parts.append(f"from {fields['album']}")
    text = " ".join(parts)
    if fields["tags"]:
        text += ". " + ", ".join(descriptor_terms(row, max_tags))
    if fields["description"]:
        text += ". " + fields["description"]
    return text
