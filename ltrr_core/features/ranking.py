"""Ranking features of a (query, candidate) pair: one function, at serving time and offline.

The runtime computes them for the fused candidates, ranks with them, and logs each shown
result's values together with the inputs they came from (its per-strategy ranks and scores);
the QU output, the request context and each strategy's meta are logged with the impression
anyway. Training reads the logged values; the parity test recomputes them from the logged
inputs with this same function and the bundle's entity table, and demands equality.

Inputs are plain data (the QU ``to_dict()`` form, dicts, the entity table) so the offline
path needs no live service. Text matching uses rapidfuzz (C++, already the QU's fuzzy
matcher) rather than hand-written similarity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import FusionConfig
from ..text import normalize

FEATURE_SPEC_VERSION = 1
ENTITY_COLUMNS = [
    "id",
    "type",
    "title",
    "artists",
    "tags",
    "genres",
    "moods",
    "seasons",
    "version_types",
    "decades",
    "year",
    "popularity",
]
_SLOT_FIELDS = {
    "artist": "artists",
    "title": "title",
    "tag": "tags",
    "genre": "genres",
    "mood": "moods",
    "season": "seasons",
    "version": "version_types",
    "decade": "decades",
}
_MATCHED_SLOTS = ("artist", "title", "tag", "genre", "mood", "season", "version", "decade")
_CATALOG_FEATURES = (
    "title_similarity",
    "title_artist_similarity",
    "artist_in_query",
    "popularity",
    "year",
    "is_artist",
    "profile_tag_overlap",
)
_QUERY_FEATURES = (
    "intent_lookup",
    "intent_browse",
    "n_tokens",
    "n_corrected_tokens",
    "best_interpretation_probability",
)


def feature_names(strategies: Sequence[str]) -> list[str]:
    """The spec: names in order. Strategies are the bundle's, sorted, so adding one adds columns."""
    per_strategy = [f"{s}_{part}" for s in sorted(strategies) for part in ("found", "reciprocal_rank", "score")]
    return [
        *per_strategy,
        "n_strategies",
        "fusion_score",
        "memory_match_quality",
        "memory_exact",
        *[f"slot_match_{k}" for k in _MATCHED_SLOTS],
        *_CATALOG_FEATURES,
        *_QUERY_FEATURES,
    ]


class EntityAttributes:
    """The catalog attributes the features read (bundle ``ranker/entities.parquet``), normalised on
    first use and kept: loading reads the columns only, so a runtime's cold start does not pay
    for the whole catalog, and each request normalises at most its new candidates."""

    def __init__(self, frame: pd.DataFrame):
        self._position = pd.Index(frame["id"])
        if not self._position.is_unique:
            repeated = self._position[self._position.duplicated()].unique()[:5].tolist()
            raise ValueError(f"entity attributes: ids must be unique, repeated: {repeated}")
        self._columns = {column: frame[column].to_numpy() for column in frame.columns if column != "id"}
        self._rows: dict[str, dict[str, Any]] = {}

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> EntityAttributes:
        return cls(frame.reset_index(drop=True))

    @classmethod
    def load(cls, path: Path) -> EntityAttributes:
        return cls(pd.read_parquet(path, columns=ENTITY_COLUMNS))

    def get(self, entity_id: str) -> dict[str, Any] | None:
        row = self._rows.get(entity_id)
        if row is None:
            try:
                position = self._position.get_loc(entity_id)
            except KeyError:
                return None
            row = self._rows[entity_id] = self._normalised(int(position))  # racing threads write equal rows
        return row

    def _normalised(self, i: int) -> dict[str, Any]:
        def column(name: str) -> Any:
            values = self._columns.get(name)
            return None if values is None else values[i]

        def values(name: str) -> frozenset:
            items = column(name)
            return frozenset(normalize(v) for v in items) if items is not None else frozenset()

        year, decades = column("year"), column("decades")
        return {
            "type": column("type"),
            "title": normalize(column("title") or ""),
            "artists": values("artists"),
            "tags": values("tags"),
            "genres": values("genres"),
            "moods": values("moods"),
            "seasons": values("seasons"),
            "version_types": values("version_types"),
            "decades": frozenset(str(int(d)) for d in (decades if decades is not None else [])),
            "year": float(year) if year is not None and not pd.isna(year) else math.nan,
            "popularity": float(column("popularity") or 0.0),
        }


def _slot_matches(entity: dict[str, Any], slot: dict[str, Any]) -> bool:
    field = _SLOT_FIELDS[slot["kind"]]
    value = normalize(str(slot["value"]))
    if field == "title":
        return value == entity["title"]
    return value in entity.get(field, ())


def candidate_features(
    qu: dict[str, Any],
    context: dict[str, Any],
    strategy_meta: dict[str, dict[str, Any]],
    candidates: list[tuple[str, dict[str, tuple[int, float]]]],
    entities: EntityAttributes,
    strategies: Sequence[str],
    fusion: FusionConfig,
) -> np.ndarray:
    """(n_candidates, n_features) in ``feature_names(strategies)`` order.

    ``qu``: QueryUnderstanding.to_dict(); ``strategy_meta``: each strategy's Candidates.meta;
    ``candidates``: (entity id, {strategy: (rank, score)}) as the fusion found them."""
    from rapidfuzz import fuzz

    query = qu.get("normalised", "")
    intent = qu.get("intent", {})
    interpretations = qu.get("interpretations", [])
    best_p = interpretations[0]["probability"] if interpretations else 0.0
    query_part = [
        float(intent.get("lookup", 0.0)),
        float(intent.get("browse", 0.0)),
        float(len(qu.get("tokens", []))),
        float(len(qu.get("corrections", {}))),
        float(best_p),
    ]
    memory = strategy_meta.get("memory", {})
    memory_quality = float(memory.get("match_quality", 0.0))
    memory_exact = float(memory.get("match") == "exact")
    profile = {normalize(t) for t in context.get("profile_top_tags") or []}
    ordered = sorted(strategies)
    rows = []
    for entity_id, found_by in candidates:
        entity = entities.get(entity_id)
        row: list[float] = []
        for s in ordered:
            rank, score = found_by.get(s, (None, None))
            row += [
                float(rank is not None),
                1.0 / rank if rank else 0.0,
                float(score) if score is not None else math.nan,
            ]
        fusion_score = sum(fusion.weights.get(s, 1.0) / (fusion.rrf_k + r) for s, (r, _) in found_by.items())
        row += [
            float(len(found_by)),
            fusion_score,
            memory_quality * ("memory" in found_by),
            memory_exact * ("memory" in found_by),
        ]
        if entity is None:  # not in the entity table: catalog features unknown
            row += [math.nan] * (len(_MATCHED_SLOTS) + len(_CATALOG_FEATURES))
        else:
            for kind in _MATCHED_SLOTS:
                row.append(
                    sum(
                        i["probability"]
                        * max(
                            (s["confidence"] for s in i["slots"] if s["kind"] == kind and _slot_matches(entity, s)),
                            default=0.0,
                        )
                        for i in interpretations
                    )
                )
            artists = " ".join(sorted(entity["artists"]))
            row += [
                fuzz.token_set_ratio(query, entity["title"]) / 100.0,
                fuzz.token_set_ratio(query, f"{entity['title']} {artists}") / 100.0,
                float(any(a and a in query for a in entity["artists"])),
                entity["popularity"],
                entity["year"],
                float(entity["type"] == "artist"),
                len(profile & entity["tags"]) / len(profile) if profile else 0.0,
            ]
        rows.append(row + query_part)
    return np.array(rows, dtype=float).reshape(len(rows), len(feature_names(strategies)))
