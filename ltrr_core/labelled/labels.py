"""The grading rule of every labelled evaluation: what counts as relevant, and how much.

CPCD likes are tracks, but the catalog also holds artist entities, which every strategy returns
for name queries. The rule, the same as the simulator's grades (2 intended, 1 related):

* a liked track is **intended** (grade ``eval.liked_track_grade``, 2);
* the artist entity of a liked track -- an entity of type ``artist`` whose normalised title is
  one of the track's artists -- is **related** (grade ``eval.liked_track_artist_grade``, 1).

nDCG uses the grades; hit-style metrics (recall, MRR, candidate hit) count intended entities
only, so an artist entity neither helps nor hurts them. Each evaluation also reports the
``tracks`` view (artist entities ignored, as if they were misses) once, beside ``graded``.
"""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from ..config import EvalConfig
from ..text import normalize
from .datasets import LabelledQueries

VIEWS = ("graded", "tracks")
HIT_METRICS = ("recall", "mrr", "hit_rate", "precision", "map")


def artist_entities_by_name(display: pd.DataFrame) -> dict[str, list[str]]:
    """normalised artist name -> ids of the catalog's artist entities with that title.
    ``display``: id (index or column), type, title."""
    frame = display.reset_index() if "id" not in display.columns else display
    artists = frame[frame["type"] == "artist"]
    out: dict[str, list[str]] = defaultdict(list)
    for entity_id, title in zip(artists["id"], artists["title"]):
        out[normalize(str(title))].append(str(entity_id))
    return dict(out)


def graded_labels(labelled: LabelledQueries, display: pd.DataFrame, config: EvalConfig) -> LabelledQueries:
    """The labelled queries with the rule applied: liked tracks at the intended grade, their
    artist entities at the related grade (never lowering an entity that is itself liked)."""
    frame = display.reset_index() if "id" not in display.columns else display
    track_artists = {
        str(i): list(a) if a is not None else []
        for i, a, t in zip(frame["id"], frame["artists"], frame["type"])
        if t == "track"
    }
    by_name = artist_entities_by_name(display)
    qrels: dict[str, dict[str, int]] = {}
    for qid, relevant in labelled.qrels.items():
        graded = {entity: config.liked_track_grade for entity in relevant}
        for entity in relevant:
            for name in track_artists.get(entity, []):
                for artist in by_name.get(normalize(str(name)), []):
                    graded.setdefault(artist, config.liked_track_artist_grade)
        qrels[qid] = graded
    return LabelledQueries(labelled.queries, qrels, labelled.split)


def intended(qrels: dict[str, dict[str, int]], config: EvalConfig) -> dict[str, dict[str, int]]:
    """Only the intended entities (binary): what hit-style metrics count."""
    return {q: {e: 1 for e, g in r.items() if g >= config.liked_track_grade} for q, r in qrels.items()}


def qrels_for(
    metric: str, view: str, graded: dict[str, dict[str, int]], config: EvalConfig
) -> dict[str, dict[str, int]]:
    """The qrels a metric is computed on in a view: graded nDCG in ``graded``, intended otherwise."""
    if view == "graded" and metric.split("@")[0] not in HIT_METRICS:
        return graded
    return intended(graded, config)
