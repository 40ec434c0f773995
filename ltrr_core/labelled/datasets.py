"""Labelled query sets: CPCD-style TSV files and BEIR folders."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..config import Settings, SplitsConfig
from ..splits import cpcd_rows, parts_of


@dataclass(frozen=True)
class LabelledQueries:
    """query id -> text, and query id -> {relevant entity id: grade}; ``split``: which part of the
    conversation split they come from (``all`` for a whole file or a BEIR set)."""

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    split: str = "all"


def load_cpcd_queries(
    path: Path, splits: SplitsConfig, split: str = "all", id_prefix: str = "cpcd:"
) -> LabelledQueries:
    """Every distinct search query with its relevant (label 1) tracks; queries with none are skipped.

    The query text is the id: the same typed query in two conversations is one query whose
    relevant set is the union of the likes. ``split`` ("train" / "simulate" / "heldout" / "all")
    keeps the conversations of one part of the split (``ltrr_core.splits``); ``all`` reads any
    CPCD-format file whole, also one without ``conv_id``.
    """
    frame = cpcd_rows(path, splits, parts_of(split))
    liked = frame[(frame["label"] == "1") & (frame["search_query"] != "")]
    qrels: dict[str, dict[str, int]] = {}
    for query, track in zip(liked["search_query"], liked["track_id"]):
        qrels.setdefault(query, {})[id_prefix + track] = 1
    return LabelledQueries({q: q for q in qrels}, qrels, split)


def project_cpcd_queries(settings: Settings, split: str) -> LabelledQueries:
    """One part of the project's own CPCD file (``catalog.paths.cpcd_labels``)."""
    return load_cpcd_queries(settings.shared_path(settings.catalog.paths.cpcd_labels), settings.splits, split)


def _read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        raise FileNotFoundError(f"BEIR folder is missing {path.name} ({path})")
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_beir(directory: Path, split: str = "test") -> tuple[pd.DataFrame, LabelledQueries]:
    """(corpus with columns _id, title, text; the labelled queries of ``qrels/<split>.tsv``)."""
    directory = Path(directory)
    corpus = pd.DataFrame(_read_jsonl(directory / "corpus.jsonl"))
    for column in ("_id", "text"):
        if column not in corpus.columns:
            raise ValueError(f"{directory / 'corpus.jsonl'}: records need '{column}'")
    if "title" not in corpus.columns:
        corpus["title"] = ""
    corpus["_id"] = corpus["_id"].astype(str)
    queries = {str(q["_id"]): q["text"] for q in _read_jsonl(directory / "queries.jsonl")}
    qrels_path = directory / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        raise FileNotFoundError(f"BEIR folder is missing qrels/{split}.tsv ({qrels_path})")
    qrels_frame = pd.read_csv(qrels_path, sep="\t", dtype=str)
    if list(qrels_frame.columns[:3]) != ["query-id", "corpus-id", "score"]:
        raise ValueError(f"{qrels_path}: header must be 'query-id corpus-id score', got {list(qrels_frame.columns)}")
    qrels: dict[str, dict[str, int]] = {}
    for qid, doc, score in zip(qrels_frame["query-id"], qrels_frame["corpus-id"], qrels_frame["score"]):
        if int(score) > 0:
            qrels.setdefault(qid, {})["beir:" + doc] = int(score)
    missing = [q for q in qrels if q not in queries]
    if missing:
        raise ValueError(f"{qrels_path}: query ids {missing[:5]} have no text in queries.jsonl")
    return corpus, LabelledQueries({q: queries[q] for q in qrels}, qrels)
