"""Choose BM25 tokenisation by measurement: each variant indexed and scored on labelled queries.

Variants differ in stemming, stopwords and field weights; every one is built with the same
code as the platform's index (``index.build.build_bm25``'s document text and ``BM25Index``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .. import schema as S
from ..config import Settings
from ..index.bm25 import BM25Index, BM25Settings, weighted_document
from ..index.documents import document_fields
from ..labelled.datasets import LabelledQueries
from ..retrieval.base import Candidates
from ..splits import require_train

VARIANTS: dict[str, dict[str, Any]] = {
    "no stemming, no stopwords, equal fields": {
        "stemmer": None,
        "stopwords": None,
        "field_weights": {"title": 1, "artists": 1, "album": 1, "tags": 1},
    },
    "english stemmer, equal fields": {
        "stemmer": "english",
        "stopwords": None,
        "field_weights": {"title": 1, "artists": 1, "album": 1, "tags": 1},
    },
    "english stemmer + english stopwords, equal fields": {
        "stemmer": "english",
        "stopwords": "en",
        "field_weights": {"title": 1, "artists": 1, "album": 1, "tags": 1},
    },
    "english stemmer, title/artists x2": {
        "stemmer": "english",
        "stopwords": None,
        "field_weights": {"title": 2, "artists": 2, "album": 1, "tags": 1},
    },
    "english stemmer, title/artists x3, no tags": {
        "stemmer": "english",
        "stopwords": None,
        "field_weights": {"title": 3, "artists": 3, "album": 1, "tags": 0},
    },
    "english stemmer, title/artists x3": {
        "stemmer": "english",
        "stopwords": None,
        "field_weights": {"title": 3, "artists": 3, "album": 1, "tags": 1},
    },
    "no stemming, title/artists x3": {
        "stemmer": None,
        "stopwords": None,
        "field_weights": {"title": 3, "artists": 3, "album": 1, "tags": 1},
    },
    "no stemming, title/artists x2": {
        "stemmer": None,
        "stopwords": None,
        "field_weights": {"title": 2, "artists": 2, "album": 1, "tags": 1},
    },
}


def sweep_bm25(settings: Settings, entities: pd.DataFrame, labelled: LabelledQueries) -> dict[str, dict[str, float]]:
    from .offline import evaluate_runs

    require_train(labelled.split, "bm25-sweep")
    rows = entities.to_dict("records")
    fields = [document_fields(r, settings.embedding.max_tags_in_text) for r in rows]
    texts = [labelled.queries[q] for q in labelled.queries]
    results: dict[str, dict[str, float]] = {}
    for name, change in VARIANTS.items():
        variant = BM25Settings.from_config(settings.bm25.model_copy(update=change))
        documents = [weighted_document(f, variant.field_weights) for f in fields]
        index = BM25Index.build(entities[S.ID].tolist(), documents, variant)
        candidates = [Candidates.from_pairs("lexical", pairs) for pairs in index.search(texts, settings.eval.depth)]
        scores = evaluate_runs(
            labelled, {"lexical": candidates}, settings.retrieval.fusion, settings.eval.metrics, settings.eval.depth
        )
        results[name] = scores["strategies"]["lexical"]
    return results
