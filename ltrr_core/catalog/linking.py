"""Entity linking across sources by normalised artist name.

A track's artist names are matched to artist entities of the gazetteer sources (Last.fm by
default); the track records the linked ids, inherits their tags (down-weighted) and takes the
best-known linked artist's reach as its popularity prior. Exact match on a normalised key is
deliberately conservative: fuzzy linking of names would attach wrong tags to homonyms, and the
measured link rate is reported so its coverage is visible.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from .. import schema as S
from ..text import name_key

# "Artist feat. Other", "A & B", "A, B" -> individual names. Only tried when the whole credit
# is not a known artist, so "Simon & Garfunkel" stays one artist.
_CREDIT_SPLIT = re.compile(r"\s+(?:feat\.?|ft\.?|featuring|&|vs\.?)\s+|\s*[,/;]\s*", re.I)


@dataclass(frozen=True)
class LinkReport:
    n_tracks: int
    n_tracks_linked: int
    n_artist_entities_linked: int

    @property
    def track_link_rate(self) -> float:
        return self.n_tracks_linked / self.n_tracks if self.n_tracks else 0.0


def _match_credits(artists: list[str], gazetteer: dict[str, tuple[str, float]]) -> list[tuple[str, float]]:
    matches: list[tuple[str, float]] = []
    for credit in artists:
        hit = gazetteer.get(name_key(credit))
        candidates = (
            [hit]
            if hit
            else [gazetteer.get(name_key(part)) for part in _CREDIT_SPLIT.split(credit) if part and part.strip()]
        )
        for candidate in candidates:
            if candidate and candidate[0] not in (m[0] for m in matches):
                matches.append(candidate)
    return matches


def build_gazetteer(artists: pd.DataFrame) -> dict[str, tuple[str, float]]:
    """name key -> (entity id, popularity); the most popular entity wins a shared name."""
    ranked = artists.sort_values([S.POPULARITY, S.ID], ascending=[False, True])
    gazetteer: dict[str, tuple[str, float]] = {}
    for entity_id, title, popularity in zip(ranked[S.ID], ranked[S.TITLE], ranked[S.POPULARITY]):
        key = name_key(title)
        if key and key not in gazetteer:
            gazetteer[key] = (entity_id, float(popularity))
    return gazetteer


def link_entities(
    frames: dict[str, pd.DataFrame],
    gazetteer_sources: Sequence[str],
    inherited_tag_weight: float,
    max_tags: int,
) -> tuple[pd.DataFrame, LinkReport]:
    """Concatenate the sources and link every non-gazetteer entity to gazetteer artists."""
    catalog = pd.concat(list(frames.values()), ignore_index=True)
    gaz_mask = catalog[S.SOURCE].isin(gazetteer_sources) & (catalog[S.TYPE] == "artist")
    gazetteer = build_gazetteer(catalog[gaz_mask])
    tags_by_id = {
        entity_id: (tags, weights)
        for entity_id, tags, weights in zip(
            catalog.loc[gaz_mask, S.ID], catalog.loc[gaz_mask, S.TAGS], catalog.loc[gaz_mask, S.TAG_WEIGHTS]
        )
    }

    linked_ids: list[list[str]] = []
    new_tags: list[list[str]] = []
    new_weights: list[list[float]] = []
    popularity: list[float] = []
    n_tracks = n_tracks_linked = n_artists_linked = 0
    for is_gaz, etype, artists, tags, weights, pop in zip(
        gaz_mask,
        catalog[S.TYPE],
        catalog[S.ARTISTS],
        catalog[S.TAGS],
        catalog[S.TAG_WEIGHTS],
        catalog[S.POPULARITY],
    ):
        tags, weights = list(tags), list(weights)
        if is_gaz:
            linked_ids.append([])
            new_tags.append(tags)
            new_weights.append(weights)
            popularity.append(float(pop))
            continue
        matches = _match_credits(list(artists), gazetteer)
        linked_ids.append([m[0] for m in matches])
        merged = dict(zip(tags, weights))
        for entity_id, _ in matches:
            for tag, weight in zip(*tags_by_id[entity_id]):
                inherited = round(weight * inherited_tag_weight, 4)
                if inherited > merged.get(tag, 0.0):
                    merged[tag] = inherited
        ranked = sorted(merged.items(), key=lambda item: (-item[1], item[0]))[:max_tags]
        new_tags.append([t for t, _ in ranked])
        new_weights.append([w for _, w in ranked])
        popularity.append(max([float(pop)] + [m[1] for m in matches]))
        if etype == "track":
            n_tracks += 1
            n_tracks_linked += bool(matches)
        elif matches:
            n_artists_linked += 1

    catalog[S.LINKED_ARTIST_IDS] = linked_ids
    catalog[S.TAGS] = new_tags
    catalog[S.TAG_WEIGHTS] = new_weights
    catalog[S.POPULARITY] = popularity
    return catalog, LinkReport(n_tracks, n_tracks_linked, n_artists_linked)
