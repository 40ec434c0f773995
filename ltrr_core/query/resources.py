"""QU resources built from a catalog version: normalised entity fields and the name vocabulary.

Both are written into the index build (``builds/<id>/qu/``) by the build_indexes flow, so
query understanding and the ``structured`` strategy read exactly the catalog the other
indexes were built from, and the bundle can carry them as files.

``entities.parquet`` holds, per entity, the fields structured search matches on, already
normalised with ``ltrr_core.text.normalize`` (the same function BM25 indexing and querying use).
``vocabulary.parquet`` holds every artist name, title, album and tag with how many entities
carry it and their highest popularity: the dictionary slot tagging and spelling work against.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from .. import schema as S
from ..durable import write_parquet
from ..text import fold, normalize

ENTITIES_FILE = "entities.parquet"
VOCABULARY_FILE = "vocabulary.parquet"
NAME_KINDS = ("artist", "title", "album", "tag")

# "Lover (Live From Paris)" -> "Lover", "Halo - Radio Edit" -> "Halo": the core title people type.
_DECORATION = re.compile(r"\s*[\(\[][^\)\]]*[\)\]]|\s+[-–]\s+.*$")


def core_title(title: object) -> str:
    folded = fold(title)
    stripped = _DECORATION.sub("", folded).strip()
    return normalize(stripped or folded)


def _normalised_list(values: Iterable[object] | None) -> list[str]:
    if values is None:
        return []
    return [n for n in (normalize(v) for v in values) if n]


def entity_fields(entities: pd.DataFrame) -> pd.DataFrame:
    """Per entity: normalised title, core title, artists, album, tags, plus CU attributes."""
    is_artist = entities[S.TYPE].eq("artist").to_numpy()
    artists = [
        [normalize(t)] if artist_row else _normalised_list(a)
        for artist_row, t, a in zip(is_artist, entities[S.TITLE], entities[S.ARTISTS])
    ]

    def as_list(column: str) -> list[list]:
        # A catalog without content understanding (e.g. the generated bench catalog) has no
        # attribute columns: structured search then matches names and tags only.
        if column not in entities.columns:
            return [[] for _ in range(len(entities))]
        return [list(v) if v is not None else [] for v in entities[column]]

    return pd.DataFrame(
        {
            "id": entities[S.ID].astype(str).to_numpy(),
            "type": entities[S.TYPE].astype(str).to_numpy(),
            "title": [normalize(t) for t in entities[S.TITLE]],
            "core_title": [core_title(t) for t in entities[S.TITLE]],
            "artists": artists,
            "album": [normalize(a) for a in entities[S.ALBUM]],
            "tags": [_normalised_list(t) for t in entities[S.TAGS]],
            "genres": as_list(S.GENRES),
            "moods": as_list(S.MOODS),
            "seasons": as_list(S.SEASONS),
            "version_types": as_list(S.VERSION_TYPES),
            "decades": [[int(d) for d in v] for v in as_list(S.DECADES)],
            "popularity": entities[S.POPULARITY].fillna(0.0).astype(float).to_numpy(),
        }
    )


def build_vocabulary(fields: pd.DataFrame, entities: pd.DataFrame, min_tag_entities: int) -> pd.DataFrame:
    """Distinct names by kind with entity counts, top popularity and a display form."""
    popularity = fields["popularity"].to_numpy()
    rows: list[tuple[str, str, str, float]] = []
    display_artists = [
        [t] if kind == "artist" else list(a if a is not None else [])
        for kind, t, a in zip(entities[S.TYPE], entities[S.TITLE], entities[S.ARTISTS])
    ]
    for i, names in enumerate(fields["artists"]):
        rows += [("artist", n, d, popularity[i]) for n, d in zip(names, display_artists[i]) if n]
    is_work = fields["type"].ne("artist").to_numpy()
    for i in np.flatnonzero(is_work).tolist():
        title, core = fields["title"].iat[i], fields["core_title"].iat[i]
        display = str(entities[S.TITLE].iat[i])
        if title:
            rows.append(("title", title, display, popularity[i]))
        if core and core != title:
            rows.append(("title", core, display, popularity[i]))
        if fields["album"].iat[i]:
            rows.append(("album", fields["album"].iat[i], str(entities[S.ALBUM].iat[i]), popularity[i]))
    for i, tags in enumerate(fields["tags"]):
        rows += [("tag", t, t, popularity[i]) for t in tags]
    frame = pd.DataFrame(rows, columns=["kind", "name", "display", "popularity"])
    vocabulary = (
        frame.groupby(["kind", "name"], sort=True)
        .agg(display=("display", "first"), n_entities=("name", "size"), popularity=("popularity", "max"))
        .reset_index()
    )
    keep = vocabulary["kind"].ne("tag") | vocabulary["n_entities"].ge(min_tag_entities)
    return vocabulary[keep].reset_index(drop=True)


def write_resources(entities: pd.DataFrame, out_dir: Path, min_tag_entities: int) -> dict[str, int]:
    fields = entity_fields(entities)
    vocabulary = build_vocabulary(fields, entities, min_tag_entities)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_parquet(pa.Table.from_pandas(fields, preserve_index=False), out_dir / ENTITIES_FILE)
    write_parquet(pa.Table.from_pandas(vocabulary, preserve_index=False), out_dir / VOCABULARY_FILE)
    counts = vocabulary["kind"].value_counts().to_dict()
    return {"n_entities": len(fields), **{f"n_{kind}_names": int(counts.get(kind, 0)) for kind in NAME_KINDS}}


def read_resources(directory: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    for name in (ENTITIES_FILE, VOCABULARY_FILE):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"QU resource {directory / name} is missing; rebuild with `ltrr build-indexes`")
    return pd.read_parquet(directory / ENTITIES_FILE), pd.read_parquet(directory / VOCABULARY_FILE)
