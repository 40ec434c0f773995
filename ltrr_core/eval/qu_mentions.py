"""Mention detection of query understanding on MusicRecoNER (real Reddit music requests).

Gold: the annotated Artist and WoA (work of art: song or album) mentions of each request.
Predicted: the artist / title+album spans of QU's most likely interpretation. A prediction is
correct when its normalised span equals a gold mention of the same type (strict) or shares at
least half of its tokens with one (lenient). Recall is also reported over "in-catalog" gold
mentions, those whose text is a name of that kind in the catalog vocabulary: QU can only tag
what the catalog knows, so that recall is what the tagger itself misses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..query import InvalidQuery, QueryUnderstander
from ..query.musicreconer import load_musicreco_ner

SLOT_TYPES = {"artist": "artist", "title": "work", "album": "work"}


def _overlaps(predicted: str, mention: str) -> bool:
    a, b = set(predicted.split()), set(mention.split())
    return len(a & b) >= 0.5 * max(len(a), len(b))


def evaluate_mentions(
    understander: QueryUnderstander, directory: Path, catalog_names: dict[str, set[str]]
) -> dict[str, Any]:
    queries, gold = load_musicreco_ner(directory)
    counts = {
        t: {"predicted": 0, "gold": 0, "strict": 0, "lenient": 0, "gold_in_catalog": 0, "found_in_catalog": 0}
        for t in ("artist", "work")
    }
    refused = 0
    for query in queries:
        try:
            best = understander.understand(query).best
        except InvalidQuery:
            refused += 1
            continue
        predicted = [(s.text, SLOT_TYPES[s.kind]) for s in (best.slots if best else ()) if s.kind in SLOT_TYPES]
        wanted = gold.get(query, [])
        for text, kind in predicted:
            counts[kind]["predicted"] += 1
            counts[kind]["strict"] += any(text == m and kind == k for m, k in wanted)
            counts[kind]["lenient"] += any(_overlaps(text, m) and kind == k for m, k in wanted)
        for mention, kind in wanted:
            counts[kind]["gold"] += 1
            if mention in catalog_names[kind]:
                counts[kind]["gold_in_catalog"] += 1
                counts[kind]["found_in_catalog"] += any(text == mention and k == kind for text, k in predicted)
    out: dict[str, Any] = {"n_requests": len(queries), "n_refused": refused}
    for kind, c in counts.items():
        out[kind] = {
            "precision": round(c["strict"] / max(c["predicted"], 1), 4),
            "recall": round(c["strict"] / max(c["gold"], 1), 4),
            "precision_lenient": round(c["lenient"] / max(c["predicted"], 1), 4),
            "recall_in_catalog": round(c["found_in_catalog"] / max(c["gold_in_catalog"], 1), 4),
            "n_gold": c["gold"],
            "n_gold_in_catalog": c["gold_in_catalog"],
            "n_predicted": c["predicted"],
        }
    return out


def catalog_names(vocabulary: pd.DataFrame) -> dict[str, set[str]]:
    kinds = vocabulary["kind"]
    return {
        "artist": set(vocabulary.loc[kinds == "artist", "name"]),
        "work": set(vocabulary.loc[kinds.isin(["title", "album"]), "name"]),
    }
