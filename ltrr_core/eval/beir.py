"""Evaluate the lexical, semantic and hybrid strategies on any BEIR-format folder.

The corpus is indexed in a temporary data directory with the same build functions the
platform uses for its catalog (documents become entities of type ``document``), so a BEIR
number measures the platform's own code path.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from .. import schema as S
from ..config import FusionConfig, Settings
from ..index import build
from ..labelled.datasets import load_beir
from ..retrieval.searcher import load_searcher
from .offline import evaluate_searcher

RRF_EQUAL = "rrf_equal"


def corpus_entities(corpus: pd.DataFrame) -> pd.DataFrame:
    n = len(corpus)
    return pd.DataFrame(
        {
            S.ID: "beir:" + corpus["_id"],
            S.TYPE: "document",
            S.TITLE: corpus["title"].fillna("").astype(str),
            S.ARTISTS: [[] for _ in range(n)],
            S.ALBUM: None,
            S.DESCRIPTION: corpus["text"].fillna("").astype(str),
            S.TAGS: [[] for _ in range(n)],
            S.TAG_WEIGHTS: [[] for _ in range(n)],
            S.POPULARITY: 0.0,
            S.SOURCE: "beir",
        }
    )


def evaluate_beir(settings: Settings, directory: Path, split: str = "test") -> dict[str, Any]:
    corpus, labelled = load_beir(directory, split)
    entities = corpus_entities(corpus)
    with tempfile.TemporaryDirectory(prefix="ltrr-beir-") as workdir:
        scoped = settings.with_overrides(
            **{
                "data_dir": workdir,
                # Documents have a title and a body; weight them equally, as BEIR baselines do.
                "bm25.field_weights": {"title": 1, "description": 1},
                # No catalog fields (artists, tags) and no logs: structured and memory have nothing to use.
                "retrieval.strategies": ["lexical", "semantic"],
            }
        )
        build_id = build.new_build_id(scoped)
        out_dir = build.start_build(scoped, build_id)
        reports = {
            "bm25": build.build_bm25(scoped, entities, out_dir),
            "vectors": build.build_vectors(scoped, entities, out_dir),
        }
        build.publish_build(scoped, build_id, f"beir:{Path(directory).name}", reports)
        searcher = load_searcher(scoped)
        # The baseline a practitioner would use on a new corpus: equal-weight RRF (k=60) of the
        # same strategies; `hybrid` is the configured fusion.
        equal = FusionConfig(method="rrf", rrf_k=60, weights={name: 1.0 for name in searcher.strategies})
        result = evaluate_searcher(
            searcher, labelled, settings.eval.metrics, settings.eval.depth, baselines={RRF_EQUAL: equal}
        )
    result["n_documents"] = len(entities)
    return result
