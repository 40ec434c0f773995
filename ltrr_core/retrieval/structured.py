"""``structured``: field-constrained search from the query's interpretations.

Each QU interpretation becomes a search over catalog fields: artist = X (exact normalised
name), title or album matching the title slot (rapidfuzz similarity, so "love" reaches
"Love Story" and "Lover"), tags/genres/moods as required attributes, and version type and
decade as filters from content understanding. A filter that would leave nothing is dropped
and the interpretation's scores are multiplied by ``relaxed_filter_factor`` (so "live acoustic
ed sheeran" still returns Ed Sheeran when the catalog has no live acoustic recording of his,
below anything that does match). Scores: interpretation probability x match quality x a
popularity tie-breaker, summed over the interpretations that find an entity (its expected
match under the QU distribution).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..config import StructuredConfig
from ..query import Interpretation, QueryUnderstander, QueryUnderstanding
from .base import Candidates, Query

_LIST_FIELDS = {
    "artist": "artists",
    "tag": "tags",
    "genre": "genres",
    "mood": "moods",
    "season": "seasons",
    "version": "version_types",
    "decade": "decades",
}
_FILTER_SLOTS = ("version", "decade")
_TOPIC_SLOTS = ("tag", "genre", "mood", "season")


class StructuredIndex:
    """Postings (slot kind, value) -> entity row numbers over the normalised entity fields."""

    def __init__(self, fields: pd.DataFrame):
        self.ids = fields["id"].to_numpy(dtype=str)
        self.types = fields["type"].to_numpy(dtype=str)
        self.titles = fields["core_title"].tolist()
        self.full_titles = fields["title"].tolist()
        self.albums = fields["album"].tolist()
        popularity = fields["popularity"].to_numpy(dtype=float)
        self.popularity = np.log1p(popularity) / max(math.log1p(popularity.max(initial=0.0)), 1e-9)
        self._postings = _postings(fields, self.types, self.full_titles, self.titles, self.albums)

    def postings(self, kind: str, value: str) -> np.ndarray:
        """Rows whose ``kind`` field holds ``value``, ascending (a row twice if its list holds the
        value twice)."""
        if kind not in self._postings:
            return np.empty(0, dtype=np.int64)
        values, starts, rows = self._postings[kind]
        try:
            at = int(values.get_loc(value))
        except KeyError:
            return np.empty(0, dtype=np.int64)
        return rows[starts[at] : starts[at + 1]]


def _postings(
    fields: pd.DataFrame, types: np.ndarray, titles: list[str], core_titles: list[str], albums: list[str]
) -> dict[str, tuple[pd.Index, np.ndarray, np.ndarray]]:
    """Per field kind, postings in CSR form -- the distinct values (a hashed index), each value's
    start offset, the rows -- built with array operations: a Python loop per value took most of
    the load at 1M entities. Kinds: the list fields (artists, tags, ...) and, for entities other
    than artists, their full and core titles and their album."""
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for kind, column in _LIST_FIELDS.items():
        lists = pa.array(fields[column].to_numpy(), from_pandas=True)  # one C++ pass, no Python loop
        if len(lists.flatten()):
            values = lists.flatten().to_numpy(zero_copy_only=False)
            if not isinstance(values[0], str):
                values = values.astype(str).astype(object)
            pairs[kind] = (values, pc.list_parent_indices(lists).to_numpy().astype(np.int64))
    named = np.flatnonzero(types != "artist")
    full, core = np.asarray(titles, dtype=object)[named], np.asarray(core_titles, dtype=object)[named]
    album = np.asarray(albums, dtype=object)[named]
    has_album = np.array([isinstance(a, str) and a != "" for a in album], dtype=bool)
    differs = core != full
    pairs["title"] = (np.concatenate([full, core[differs]]), np.concatenate([named, named[differs]]))
    pairs["album"] = (album[has_album], named[has_album])
    return {kind: _csr(values, rows) for kind, (values, rows) in pairs.items()}


def _csr(values: np.ndarray, rows: np.ndarray) -> tuple[pd.Index, np.ndarray, np.ndarray]:
    codes, distinct = pd.factorize(values)  # a missing value gets code -1 and no postings
    codes, rows = codes[codes >= 0], rows[codes >= 0]
    order = np.lexsort((rows, codes))
    starts = np.r_[0, np.cumsum(np.bincount(codes, minlength=len(distinct)))].astype(np.int64)
    return pd.Index(distinct), starts, rows[order].astype(np.int64)


@dataclass
class _Match:
    rows: np.ndarray
    quality: np.ndarray
    relaxed: bool = False


class StructuredStrategy:
    name = "structured"

    def __init__(self, index: StructuredIndex, understander: QueryUnderstander, config: StructuredConfig):
        self.index = index
        self.understander = understander
        self.config = config

    def retrieve(self, query: Query, k: int) -> Candidates:
        understanding: QueryUnderstanding = query.understanding or self.understander.understand(query.text)
        best: dict[int, float] = {}
        n_relaxed = 0
        for interpretation in understanding.interpretations:
            match = self.match(interpretation)
            if match is None or not len(match.rows):
                continue
            n_relaxed += match.relaxed
            factor = interpretation.probability * (self.config.relaxed_filter_factor if match.relaxed else 1.0)
            scores = factor * match.quality * (1.0 + self.config.popularity_weight * self.index.popularity[match.rows])
            for row, score in zip(match.rows.tolist(), scores.tolist()):
                best[row] = best.get(row, 0.0) + score
        ranked = sorted(best.items(), key=lambda item: (-item[1], item[0]))[:k]
        return Candidates(
            self.name,
            tuple(self.index.ids[r] for r, _ in ranked),
            tuple(float(s) for _, s in ranked),
            {"n_relaxed_filters": n_relaxed},
        )

    # ------------------------------------------------------------------ one interpretation
    def match(self, interpretation: Interpretation) -> _Match | None:
        match = self._entity_match(interpretation)
        topics = [s for s in interpretation.slots if s.kind in _TOPIC_SLOTS]
        if match is None:
            if not topics and not any(s.kind in _FILTER_SLOTS for s in interpretation.slots):
                return None  # nothing structured to search for: leave it to the other strategies
            match = self._topic_match(interpretation)
            filters = [s for s in interpretation.slots if s.kind in _FILTER_SLOTS]
        else:
            filters = [s for s in interpretation.slots if s.kind in _FILTER_SLOTS + _TOPIC_SLOTS]
        for slot in filters:
            allowed = self.index.postings(slot.kind, slot.value)
            keep = np.isin(match.rows, allowed)
            if keep.any():
                match = _Match(match.rows[keep], match.quality[keep], match.relaxed)
            else:
                match.relaxed = True
        return match

    def _entity_match(self, interpretation: Interpretation) -> _Match | None:
        from rapidfuzz import fuzz

        artist, title, album = (interpretation.first(k) for k in ("artist", "title", "album"))
        rest = " ".join(interpretation.unexplained)
        if artist is not None:
            rows = self.index.postings("artist", artist.value)
            is_artist = self.index.types[rows] == "artist"
            wanted = title or album
            if wanted is None and not rest:
                return _Match(rows, np.where(is_artist, self.config.artist_entity_bonus, 1.0))
            text = wanted.value if wanted else rest
            names = self.index.albums if (album and not title) else self.index.titles
            similarity = np.array([_title_similarity(text, names[r], fuzz) for r in rows]) if len(rows) else np.empty(0)
            if wanted is None:  # leftover words as a soft title hint ("toby keith santa")
                return _Match(rows, 0.5 + 0.5 * similarity / 100.0)
            keep = (similarity >= self.config.min_title_similarity) & ~is_artist
            return _Match(rows[keep], similarity[keep] / 100.0)
        # (Slot confidences are already part of the interpretation's probability.)
        if title is not None:
            rows = self.index.postings("title", title.value)
            return _Match(rows, np.ones(len(rows)))
        if album is not None:
            rows = self.index.postings("album", album.value)
            return _Match(rows, np.ones(len(rows)))
        return None

    def _topic_match(self, interpretation: Interpretation) -> _Match:
        """Entities carrying every topic (tag/genre/mood); with only filters, all entities with them."""
        slots = [s for s in interpretation.slots if s.kind in _TOPIC_SLOTS] or [
            s for s in interpretation.slots if s.kind in _FILTER_SLOTS
        ][:1]
        rows = self.index.postings(slots[0].kind, slots[0].value)
        for slot in slots[1:]:
            rows = np.intersect1d(rows, self.index.postings(slot.kind, slot.value))
        if len(rows) > self.config.max_topic_candidates:
            top = np.argsort(-self.index.popularity[rows], kind="stable")[: self.config.max_topic_candidates]
            rows = rows[top]
        return _Match(rows, np.ones(len(rows)))


def _title_similarity(wanted: str, title: str, fuzz) -> float:
    """Whole-title similarity, or a prefix/partial match slightly below it ("love" vs "lover")."""
    if not title:
        return 0.0
    return max(fuzz.ratio(wanted, title), 0.9 * fuzz.partial_ratio(wanted, title))
