"""MusicRecoNER (Deezer Research): real Reddit music requests with annotated artist and work
mentions. The QU test set (``ltrr_core.eval.qu_mentions``) and a source of real phrasings for the
simulator (``ltrr_core.simulate.phrasings``) read it through this one reader."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..text import normalize

GOLD_TYPES = {"Artist": "artist", "WoA": "work"}


def load_musicreco_ner(directory: Path) -> tuple[list[str], dict[str, list[tuple[str, str]]]]:
    """(request texts, request -> [(normalised mention, artist|work)]) over all four sets."""
    queries: list[str] = []
    gold: dict[str, list[tuple[str, str]]] = {}
    files = sorted(Path(directory).glob("musicreconer_ds*_queries.csv"))
    if not files:
        raise FileNotFoundError(f"no musicreconer_ds*_queries.csv under {directory}")
    for query_file in files:
        truth_file = query_file.with_name(query_file.name.replace("_queries", "_ground-truth_linked"))
        frame = pd.read_csv(query_file, dtype=str, keep_default_na=False)
        truth = pd.read_csv(truth_file, dtype=str, keep_default_na=False)
        for column, where in (("preprocessed", query_file), ("mention", truth_file), ("type", truth_file)):
            if column not in (frame.columns if where is query_file else truth.columns):
                raise ValueError(f"{where}: missing column {column!r}")
        queries += [q for q in frame["preprocessed"] if q.strip()]
        for mention, kind, query in zip(truth["mention"], truth["type"], truth["query"]):
            if kind in GOLD_TYPES and normalize(mention):
                gold.setdefault(query, []).append((normalize(mention), GOLD_TYPES[kind]))
    return list(dict.fromkeys(queries)), gold
