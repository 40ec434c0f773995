"""The entity schema: one Arrow schema for catalog entities of every kind (seam 1).

Column names are constants so that adapters, contracts, indexes and features agree. The
schema is versioned; readers refuse a catalog written with another major version.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pyarrow as pa

ENTITY_SCHEMA_VERSION = "1.0"

ID = "id"
TYPE = "type"
TITLE = "title"
ARTISTS = "artists"
ALBUM = "album"
DESCRIPTION = "description"
TAGS = "tags"
TAG_WEIGHTS = "tag_weights"
POPULARITY = "popularity"
ADDED_AT = "added_at"
CONTENT_HASH = "content_hash"
SOURCE = "source"
SOURCE_ID = "source_id"
CLUSTER_ID = "cluster_id"
LINKED_ARTIST_IDS = "linked_artist_ids"

# Content-understanding attributes (filled by ltrr_core.catalog.understanding).
VERSION_TYPES = "version_types"
SEASONS = "seasons"
YEAR = "year"
DECADES = "decades"
LANGUAGE = "language"
SCRIPT = "script"
GENRES = "genres"
GENRE_SOURCE = "genre_source"
GENRE_CONFIDENCE = "genre_confidence"
MOODS = "moods"

_STR_LIST = pa.list_(pa.string())

# Fields every source adapter fills. CONTENT_HASH covers exactly these (minus ADDED_AT), so a
# change in any of them is a change of the entity.
SOURCE_FIELDS: list[pa.Field] = [
    pa.field(ID, pa.string(), nullable=False),
    pa.field(TYPE, pa.string(), nullable=False),
    pa.field(TITLE, pa.string()),
    pa.field(ARTISTS, _STR_LIST),
    pa.field(ALBUM, pa.string()),
    pa.field(DESCRIPTION, pa.string()),
    pa.field(TAGS, _STR_LIST),
    pa.field(TAG_WEIGHTS, pa.list_(pa.float32())),
    pa.field(POPULARITY, pa.float64()),
    pa.field(SOURCE, pa.string(), nullable=False),
    pa.field(SOURCE_ID, pa.string()),
    pa.field(CLUSTER_ID, pa.string()),
    pa.field(LINKED_ARTIST_IDS, _STR_LIST),
]

CATALOG_FIELDS: list[pa.Field] = [
    pa.field(ADDED_AT, pa.timestamp("us", tz="UTC")),
    pa.field(CONTENT_HASH, pa.string(), nullable=False),
]

ATTRIBUTE_FIELDS: list[pa.Field] = [
    pa.field(VERSION_TYPES, _STR_LIST),
    pa.field(SEASONS, _STR_LIST),
    pa.field(YEAR, pa.int16()),
    pa.field(DECADES, pa.list_(pa.int16())),
    pa.field(LANGUAGE, pa.string()),
    pa.field(SCRIPT, pa.string()),
    pa.field(GENRES, _STR_LIST),
    pa.field(GENRE_SOURCE, pa.string()),
    pa.field(GENRE_CONFIDENCE, pa.float32()),
    pa.field(MOODS, _STR_LIST),
]

SOURCE_SCHEMA = pa.schema(SOURCE_FIELDS)
ENTITY_SCHEMA = pa.schema(
    SOURCE_FIELDS + CATALOG_FIELDS + ATTRIBUTE_FIELDS,
    metadata={b"ltrr.entity_schema_version": ENTITY_SCHEMA_VERSION.encode()},
)

HASHED_COLUMNS = [f.name for f in SOURCE_FIELDS]


def content_hash(record: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of an entity's source fields."""
    canonical = {name: _canonical(record.get(name)) for name in HASHED_COLUMNS}
    payload = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _canonical(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float):
        return None if value != value else round(value, 6)
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value
