"""Labelled query sets: CPCD-style TSV files and BEIR folders."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

REQUIRED_CPCD_COLUMNS = ("search_query", "track_id", "label")


@dataclass(frozen=True)
class LabelledQueries:
    """query id -> text, and query id -> {relevant entity id: grade}."""

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load_cpcd_queries(path: Path, id_prefix: str = "cpcd:", split: str = "all",
                      heldout_fraction: float = 0.2, split_seed: str = "") -> LabelledQueries:
    """Every distinct search query with its relevant (label 1) tracks; queries with none are skipped.

    The query text is the id: the same typed query in two conversations is one query whose
    relevant set is the union of the likes. ``split`` ("train" / "heldout" / "all") keeps the
    conversations of one side of the stable conversation split (ltrr_core.memory.engagement),
    so the memory index can learn from train conversations and be evaluated on held-out ones.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"labelled query file {path} does not exist")
    # CPCD's file is CSV-quoted: some typed queries contain tabs and quotes.
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in REQUIRED_CPCD_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; a CPCD-style file needs {list(REQUIRED_CPCD_COLUMNS)}")
    bad = frame[~frame["label"].isin(["-1", "0", "1"])]
    if len(bad):
        row = bad.index[0]
        raise ValueError(f"{path}: row {row + 2} has label {bad.iloc[0]['label']!r}; labels must be -1, 0 or 1")
    if split not in ("all", "train", "heldout"):
        raise ValueError(f"split must be all, train or heldout, got {split!r}")
    if split != "all":
        from ..memory.engagement import conversation_split

        if "conv_id" not in frame.columns:
            raise ValueError(f"{path}: a {split!r} split needs the conv_id column")
        frame = frame[frame["conv_id"].map(lambda c: conversation_split(c, heldout_fraction, split_seed) == split)]
    frame["search_query"] = frame["search_query"].str.strip()
    liked = frame[(frame["label"] == "1") & (frame["search_query"] != "")]
    qrels: dict[str, dict[str, int]] = {}
    for query, track in zip(liked["search_query"], liked["track_id"]):
        qrels.setdefault(query, {})[id_prefix + track] = 1
    return LabelledQueries({q: q for q in qrels}, qrels)


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
