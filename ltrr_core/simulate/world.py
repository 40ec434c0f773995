"""The simulated world: real people, real intents; only the behaviour on top is generated.

Everything here is read from the real data sets:

* **users** are the Last.fm HetRec users of the ``simulate`` part of the user split
  (``ltrr_core.splits``) with their real listening profile (artists by play count) and the
  tags they gave; the platform's popularity counts only the other part;
* **intents** are what a user searches for, with the entities that satisfy it (grade 2 =
  intended, 1 = related):
  - ``cpcd_query``: a real CPCD search from the ``simulate`` part of the conversations (never
    ``train``, which the memory index learns from, nor ``heldout``, the evaluation set) with
    the tracks the person liked;
  - ``artist``: one of the user's own top artists (by play count), its tracks as related;
  - ``tag``: a Last.fm tag (the user's own when they tagged anything) with the artists most
    often given that tag -- counted on the ``truth`` part of the (artist, tag) pairs only,
    which the catalog, the structured strategy and every feature never read;
  - ``similar``: "songs like X" for one of the user's artists, satisfied by the artists X's
    listeners also play most (co-listening lift among the simulated people's real profiles).

The intended entities are ground truth for evaluation: the simulator keeps them in its own
files and never passes them to the runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from ..config import Settings
from ..memory.engagement import cpcd_engagement
from ..splits import lastfm_user_rows, tag_assignment_rows
from ..text import normalize

LASTFM_PREFIX = "lastfm:"
USER_PREFIX = "lastfm-user:"
TRACKS_PER_ARTIST = 10


@dataclass(frozen=True)
class Intent:
    kind: str  # cpcd_query | artist | tag | similar
    key: str  # stable id of the intent, e.g. "artist:lastfm:89"
    text: str  # what the person has in mind before typing variants
    relevant: dict[str, int]  # entity id -> grade (2 intended, 1 related)
    title: str | None = None  # a title a partial query can be cut from
    slot: dict[str, str] | None = None  # {"tag": ...} / {"artist": ...} for phrasings


@dataclass(frozen=True)
class User:
    user_id: str
    artists: tuple[str, ...]  # catalog ids of the user's artists, most played first
    weights: tuple[float, ...]  # their play counts
    tags: tuple[str, ...]  # tags the user gave, most used first


class World:
    def __init__(self, settings: Settings, entities: pd.DataFrame):
        self.config = settings.simulate
        self.entities = entities.set_index("id", drop=False)
        known = set(entities["id"])
        self._tracks_by_artist = _tracks_by_artist_name(entities)
        paths = settings.catalog.paths
        plays = lastfm_user_rows(
            pd.read_csv(settings.shared_path(paths.lastfm_user_artists), sep="\t"), settings.splits, "simulate"
        )
        plays["entity_id"] = LASTFM_PREFIX + plays["artistID"].astype(str)
        plays = plays[plays["entity_id"].map(known.__contains__)]
        tagged = pd.read_csv(settings.shared_path(paths.lastfm_user_tagged), sep="\t")
        tag_names = pd.read_csv(settings.shared_path(paths.lastfm_tags), sep="\t", encoding="latin-1")
        tagged = tagged.merge(tag_names, on="tagID")
        tagged["entity_id"] = LASTFM_PREFIX + tagged["artistID"].astype(str)
        tagged = tagged[tagged["entity_id"].map(known.__contains__)]
        self.users = _users(plays, lastfm_user_rows(tagged, settings.splits, "simulate"))
        self.tag_intents = self._tag_intents(tag_assignment_rows(tagged, settings.splits, "truth"))
        self.cpcd_intents = self._cpcd_intents(settings, known)
        self._listens, self._artist_index, self._artist_ids = _listening_matrix(plays)
        self._similar: dict[str, tuple[str, ...]] = {}
        if not self.users or not self.cpcd_intents or not self.tag_intents:
            raise ValueError(
                f"simulated world is empty: {len(self.users)} users, {len(self.cpcd_intents)} CPCD "
                f"intents, {len(self.tag_intents)} tags -- is the catalog built from all sources?"
            )

    # -- intents --------------------------------------------------------------------------
    def _cpcd_intents(self, settings: Settings, known: set[str]) -> list[Intent]:
        rows = cpcd_engagement(settings.shared_path(settings.catalog.paths.cpcd_labels), settings.splits, "simulate")
        liked = rows[(rows["event"] == "like") & rows["entity_id"].map(known.__contains__)]
        intents = []
        for request_id, group in liked.groupby("request_id", sort=True):
            ids = list(dict.fromkeys(group["entity_id"]))
            intents.append(
                Intent(
                    "cpcd_query",
                    f"cpcd_query:{request_id}",
                    group["query"].iloc[0],
                    {i: 2 for i in ids},
                    title=str(self.entities.at[ids[0], "title"]),
                )
            )
        return intents

    def _tag_intents(self, tagged: pd.DataFrame) -> dict[str, Intent]:
        counts = tagged.groupby(["tagValue", "entity_id"]).size().rename("n").reset_index()
        artists_per_tag = counts.groupby("tagValue")["entity_id"].nunique()
        keep = artists_per_tag[artists_per_tag >= self.config.tag_min_artists].index
        intents = {}
        top = self.config.relevant_per_tag
        for tag, group in counts[counts["tagValue"].isin(keep)].groupby("tagValue"):
            ranked = group.sort_values(["n", "entity_id"], ascending=[False, True])["entity_id"].head(top).tolist()
            relevant = {e: (2 if i < top // 2 else 1) for i, e in enumerate(ranked)}
            intents[str(tag)] = Intent("tag", f"tag:{tag}", str(tag), relevant, slot={"tag": str(tag)})
        return intents

    def artist_intent(self, artist_id: str) -> Intent:
        name = str(self.entities.at[artist_id, "title"])
        relevant = {t: 1 for t in self._tracks_by_artist.get(normalize(name), ())}
        relevant[artist_id] = 2
        return Intent("artist", f"artist:{artist_id}", name, relevant, title=name, slot={"artist": name})

    def similar_intent(self, artist_id: str) -> Intent | None:
        similar = self._similar_artists(artist_id)
        if not similar:
            return None
        name = str(self.entities.at[artist_id, "title"])
        half = max(1, len(similar) // 2)
        relevant = {a: (2 if i < half else 1) for i, a in enumerate(similar)}
        return Intent("similar", f"similar:{artist_id}", name, relevant, slot={"artist": name})

    def _similar_artists(self, artist_id: str) -> tuple[str, ...]:
        if artist_id not in self._similar:
            self._similar[artist_id] = _co_listened(
                self._listens,
                self._artist_index.get(artist_id),
                self._artist_ids,
                self.config.similar_min_listeners,
                self.config.relevant_per_similar,
            )
        return self._similar[artist_id]

    # -- drawing --------------------------------------------------------------------------
    def draw(self, user: User, rng: np.random.Generator) -> Intent:
        """One intent for this user; the kind by ``intent_mix``, profile kinds from their own taste."""
        kinds = list(self.config.intent_mix)
        weights = np.array([self.config.intent_mix[k] for k in kinds], dtype=float)
        kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
        if kind == "tag":
            own = [t for t in user.tags if t in self.tag_intents]
            pool = own or sorted(self.tag_intents)
            return self.tag_intents[pool[int(rng.integers(len(pool)))]]
        if kind in ("artist", "similar") and user.artists:
            weights = np.array(user.weights, dtype=float)
            artist = user.artists[int(rng.choice(len(weights), p=weights / weights.sum()))]
            intent = self.artist_intent(artist) if kind == "artist" else self.similar_intent(artist)
            if intent is not None:
                return intent
        return self.cpcd_intents[int(rng.integers(len(self.cpcd_intents)))]

    def context_of(self, user: User) -> dict[str, Any]:
        """What a client knows about the person: their taste profile (top tags), not their intent."""
        return {"profile_top_tags": list(user.tags[:3])}


def _users(plays: pd.DataFrame, tagged: pd.DataFrame) -> list[User]:
    tags = (
        tagged.groupby(["userID", "tagValue"])
        .size()
        .rename("n")
        .reset_index()
        .sort_values(["userID", "n", "tagValue"], ascending=[True, False, True])
        .groupby("userID")["tagValue"]
        .apply(lambda s: tuple(str(t) for t in s.head(10)))
    )
    users = []
    for user, group in plays.sort_values(["userID", "weight"], ascending=[True, False]).groupby("userID"):
        top = group.head(50)
        users.append(
            User(
                f"{USER_PREFIX}{user}", tuple(top["entity_id"]), tuple(top["weight"].astype(float)), tags.get(user, ())
            )
        )
    return users


def _tracks_by_artist_name(entities: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    tracks = entities[entities["type"] == "track"][["id", "artists", "popularity"]]
    exploded = tracks.explode("artists").dropna(subset=["artists"])
    exploded["name"] = exploded["artists"].map(normalize)
    exploded = exploded.sort_values(["popularity", "id"], ascending=[False, True])
    top = exploded.groupby("name", sort=False).head(TRACKS_PER_ARTIST)
    return {name: tuple(ids) for name, ids in top.groupby("name", sort=False)["id"]}


def _listening_matrix(plays: pd.DataFrame) -> tuple[sparse.csc_matrix, dict[str, int], np.ndarray]:
    users = {u: i for i, u in enumerate(sorted(plays["userID"].unique()))}
    artist_ids = np.array(sorted(plays["entity_id"].unique()))
    index = {a: i for i, a in enumerate(artist_ids)}
    matrix = sparse.csc_matrix(
        (np.ones(len(plays)), (plays["userID"].map(users), plays["entity_id"].map(index))),
        shape=(len(users), len(artist_ids)),
    )
    return matrix, index, artist_ids


def _co_listened(
    matrix: sparse.csc_matrix, column: int | None, artist_ids: np.ndarray, min_listeners: int, top: int
) -> tuple[str, ...]:
    """Artists X's listeners also play, ranked by shared listeners / sqrt(artist's listeners) --
    plain co-counts would rank the most popular artists first for every X."""
    if column is None:
        return ()
    listeners = matrix[:, column]
    shared = np.asarray((matrix.T @ listeners).todense()).ravel()
    popularity = np.asarray(matrix.sum(axis=0)).ravel()
    shared[column] = 0
    score = np.where(shared >= min_listeners, shared / np.sqrt(np.maximum(popularity, 1)), 0.0)
    order = np.argsort(-score, kind="stable")[:top]
    return tuple(str(artist_ids[i]) for i in order if score[i] > 0)
