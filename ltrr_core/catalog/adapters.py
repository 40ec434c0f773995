"""Source adapters: each real data set mapped into the entity schema's source fields.

An adapter only reads and maps; linking across sources happens in ``linking``. Files are read
as strings. CPCD, FMA and Wikidata files were written by a CSV writer (fields with tabs or
quotes are quoted, quotes doubled), so they are parsed with CSV quoting; the original
GroupLens files of Last.fm are not ("Weird Al" Yankovic is a literal name), so quoting is off.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from .. import schema as S
from ..config import Settings
from ..splits import lastfm_user_rows, tag_assignment_rows


def _read_tsv(path: Path, nrows: int | None, encoding: str = "utf-8", csv_quoted: bool = True) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(
            f"source file {path} is missing; set shared_data_dir (or LTRR_SHARED_DATA_DIR) to the "
            "folder holding the real data sets (see README: Data)"
        )
    quoting = csv.QUOTE_MINIMAL if csv_quoted else csv.QUOTE_NONE
    return pd.read_csv(
        path, sep="\t", dtype=str, keep_default_na=False, nrows=nrows, encoding=encoding, quoting=quoting
    )


def _empty_to_none(series: pd.Series) -> pd.Series:
    stripped = series.str.strip()
    return stripped.where(stripped != "", None)


def _frame(columns: dict[str, object], n_rows: int) -> pd.DataFrame:
    """A frame with every source field, defaults filled, in schema order."""
    defaults: dict[str, object] = {
        S.ALBUM: None,
        S.DESCRIPTION: None,
        S.POPULARITY: 0.0,
        S.SOURCE_ID: None,
        S.CLUSTER_ID: None,
    }
    data = {}
    for name in S.HASHED_COLUMNS:
        if name in columns:
            data[name] = columns[name]
        elif name in (S.TAGS, S.TAG_WEIGHTS, S.LINKED_ARTIST_IDS, S.ARTISTS):
            data[name] = [[] for _ in range(n_rows)]
        else:
            data[name] = [defaults.get(name)] * n_rows
    return pd.DataFrame(data)


def read_cpcd_tracks(settings: Settings, nrows: int | None = None) -> pd.DataFrame:
    """CPCD tracks.tsv -> tracks (YouTube ids, artists joined with '|', duplicate clusters)."""
    raw = _read_tsv(settings.shared_path(settings.catalog.paths.cpcd_tracks), nrows)
    artists = [[a.strip() for a in value.split("|") if a.strip()] for value in raw["artists"]]
    return _frame(
        {
            S.ID: "cpcd:" + raw["track_id"],
            S.TYPE: "track",
            S.TITLE: raw["title"],
            S.ARTISTS: artists,
            S.ALBUM: _empty_to_none(raw["album"]),
            S.SOURCE: "cpcd",
            S.SOURCE_ID: raw["track_id"],
            S.CLUSTER_ID: _empty_to_none(raw["cluster_id"]),
        },
        len(raw),
    )


def read_fma_tracks(settings: Settings, nrows: int | None = None) -> pd.DataFrame:
    """FMA tracks.tsv -> tracks with their FMA top-level genre(s) as own tags (weight 1)."""
    raw = _read_tsv(settings.shared_path(settings.catalog.paths.fma_tracks), nrows)
    tags = [[t.strip() for t in value.split("|") if t.strip()] for value in raw["tags"]]
    return _frame(
        {
            S.ID: raw["id"],
            S.TYPE: "track",
            S.TITLE: raw["title"],
            S.ARTISTS: [[a] if a.strip() else [] for a in raw["artist"]],
            S.ALBUM: _empty_to_none(raw["album"]),
            S.TAGS: tags,
            S.TAG_WEIGHTS: [[1.0] * len(t) for t in tags],
            S.SOURCE: "fma",
            S.SOURCE_ID: raw["id"],
        },
        len(raw),
    )


def read_lastfm_artists(settings: Settings, nrows: int | None = None) -> pd.DataFrame:
    """Last.fm HetRec artists with tags weighted by how many users applied them.

    Weight = users who applied the tag to this artist / users who applied its most used tag,
    so every artist's strongest tag has weight 1. Popularity = number of HetRec users with the
    artist among their most played (listener reach; play counts are too skewed to compare).

    Only the ``catalog`` part of the (artist, tag) pairs and the ``platform`` part of the users
    are read (``ltrr_core.splits``): the other parts are the simulator's truth and people.
    """
    paths = settings.catalog.paths
    artists = _read_tsv(settings.shared_path(paths.lastfm_artists), nrows, csv_quoted=False)
    tag_names = _read_tsv(settings.shared_path(paths.lastfm_tags), None, encoding="latin-1", csv_quoted=False)
    tagged = tag_assignment_rows(
        _read_tsv(settings.shared_path(paths.lastfm_user_tagged), None, csv_quoted=False), settings.splits, "catalog"
    )
    plays = lastfm_user_rows(
        _read_tsv(settings.shared_path(paths.lastfm_user_artists), None, csv_quoted=False), settings.splits, "platform"
    )

    tag_value = dict(zip(tag_names["tagID"], tag_names["tagValue"].str.strip()))
    counts = tagged.groupby(["artistID", "tagID"])["userID"].nunique().rename("n_users").reset_index()
    counts = counts[counts["n_users"] >= settings.catalog.min_tag_users]
    counts["weight"] = counts["n_users"] / counts.groupby("artistID")["n_users"].transform("max")
    counts = counts.sort_values(["artistID", "n_users", "tagID"], ascending=[True, False, True])
    counts = counts.groupby("artistID").head(settings.catalog.max_tags_per_entity)
    tags_by_artist: dict[str, tuple[list[str], list[float]]] = {}
    for artist_id, group in counts.groupby("artistID", sort=False):
        tags_by_artist[artist_id] = (
            [tag_value.get(t, "") for t in group["tagID"]],
            [round(float(w), 4) for w in group["weight"]],
        )
    listeners = plays.groupby("artistID")["userID"].nunique()

    ids = artists["id"]
    return _frame(
        {
            S.ID: "lastfm:" + ids,
            S.TYPE: "artist",
            S.TITLE: artists["name"],
            S.ARTISTS: [[name] for name in artists["name"]],
            S.TAGS: [tags_by_artist.get(i, ([], []))[0] for i in ids],
            S.TAG_WEIGHTS: [tags_by_artist.get(i, ([], []))[1] for i in ids],
            S.POPULARITY: [float(listeners.get(i, 0)) for i in ids],
            S.SOURCE: "lastfm",
            S.SOURCE_ID: ids,
        },
        len(artists),
    )


def read_wikidata_artists(settings: Settings, nrows: int | None = None) -> pd.DataFrame:
    """Wikidata artist names (ASCII-transliterated) with country / FMA-genre tags."""
    raw = _read_tsv(settings.shared_path(settings.catalog.paths.wikidata_artists), nrows)
    tags = [[t.strip() for t in value.split("|") if t.strip()] for value in raw["tags"]]
    return _frame(
        {
            S.ID: raw["id"],
            S.TYPE: "artist",
            S.TITLE: raw["name"],
            S.ARTISTS: [[name] for name in raw["name"]],
            S.TAGS: tags,
            S.TAG_WEIGHTS: [[1.0] * len(t) for t in tags],
            S.SOURCE: "wikidata",
            S.SOURCE_ID: raw["id"],
        },
        len(raw),
    )


ADAPTERS: dict[str, Callable[[Settings, int | None], pd.DataFrame]] = {
    "cpcd": read_cpcd_tracks,
    "fma": read_fma_tracks,
    "lastfm": read_lastfm_artists,
    "wikidata": read_wikidata_artists,
}


def read_sources(settings: Settings) -> dict[str, pd.DataFrame]:
    """Every source of the configured profile, mapped into the entity schema."""
    caps = settings.catalog.max_rows_per_source
    return {name: ADAPTERS[name](settings, caps.get(name)) for name in settings.catalog.profiles[settings.profile]}
