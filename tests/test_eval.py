"""`ltrr eval` and `ltrr eval-beir` print one JSON object of the documented shape."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from ltrr_core.eval.datasets import load_beir, load_cpcd_queries

pytestmark = pytest.mark.slow
REAL = Path(os.environ.get("LTRR_SHARED_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
METRICS = {"ndcg@10", "recall@10", "recall@100", "mrr@10"}


def _check_shape(result: dict, n_queries: int, strategies: set[str]) -> None:
    assert result["n_queries"] == n_queries
    assert set(result["strategies"]) == strategies
    for values in result["strategies"].values():
        assert set(values) == METRICS
        assert all(0.0 <= v <= 1.0 for v in values.values())
        assert values["recall@100"] >= values["recall@10"]


def test_eval_json_on_cpcd_queries(q2e_platform, tmp_path):
    _, _, config_file = q2e_platform
    labels = pd.read_csv(REAL / "cpcd" / "search_results_labeled.train.tsv", sep="\t", dtype=str,
                         keep_default_na=False)
    queries = labels["search_query"].drop_duplicates().iloc[:90]
    subset = labels[labels["search_query"].isin(queries)]
    path = tmp_path / "labels.tsv"
    subset.to_csv(path, sep="\t", index=False)
    expected = len(load_cpcd_queries(path).queries)

    out = CliRunner().invoke(app, ["--config", str(config_file), "eval", "--queries", str(path), "--split", "all",
                                   "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout.strip().splitlines()[-1])
    _check_shape(result, expected, {"lexical", "semantic", "structured", "memory", "hybrid", "memory_predicted_only"})
    assert set(result["cold_start"]) == {"share_reached_predicted_only", "share_reached_blended", "query_match"}
    strategies = result["strategies"]
    assert strategies["lexical"]["recall@100"] > 0.4 and strategies["semantic"]["recall@100"] > 0.3
    assert strategies["hybrid"]["recall@100"] >= max(s["recall@100"] for s in strategies.values()) - 0.05


def test_eval_rejects_a_file_without_the_cpcd_columns(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("query\tdoc\nx\ty\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['search_query', 'track_id', 'label'\]"):
        load_cpcd_queries(path)


def _beir_folder_from_cpcd(root: Path, n_docs: int = 1500) -> Path:
    """A BEIR folder made from real CPCD data: tracks as documents, liked tracks as qrels."""
    tracks = pd.read_csv(REAL / "cpcd" / "tracks.tsv", sep="\t", dtype=str, keep_default_na=False).iloc[:n_docs]
    labels = pd.read_csv(REAL / "cpcd" / "search_results_labeled.train.tsv", sep="\t", dtype=str,
                         keep_default_na=False)
    liked = labels[(labels["label"] == "1") & labels["track_id"].isin(tracks["track_id"])]
    liked = liked.drop_duplicates(["search_query", "track_id"])
    queries = {q: f"q{i}" for i, q in enumerate(liked["search_query"].drop_duplicates())}
    root.mkdir(parents=True)
    with open(root / "corpus.jsonl", "w") as handle:
        for row in tracks.itertuples():
            handle.write(json.dumps({"_id": row.track_id, "title": row.title,
                                     "text": f"{row.artists.replace('|', ', ')} {row.album}"}) + "\n")
    with open(root / "queries.jsonl", "w") as handle:
        for text, qid in queries.items():
            handle.write(json.dumps({"_id": qid, "text": text}) + "\n")
    (root / "qrels").mkdir()
    pd.DataFrame({"query-id": liked["search_query"].map(queries), "corpus-id": liked["track_id"], "score": 1}).to_csv(
        root / "qrels" / "test.tsv", sep="\t", index=False)
    return root


def test_eval_beir_json(tmp_path):
    folder = _beir_folder_from_cpcd(tmp_path / "cpcd-beir")
    _, labelled = load_beir(folder)
    out = CliRunner().invoke(app, ["--config", str(Path(__file__).parents[1] / "configs" / "test.yaml"),
                                   "eval-beir", str(folder), "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout.strip().splitlines()[-1])
    _check_shape(result, len(labelled.queries), {"lexical", "semantic", "hybrid"})
    assert result["n_documents"] == 1500
    assert result["strategies"]["lexical"]["ndcg@10"] > 0.3
    assert result["strategies"]["hybrid"]["ndcg@10"] > 0.3


def test_beir_loader_names_what_is_missing(tmp_path):
    (tmp_path / "corpus.jsonl").write_text('{"_id": "1", "text": "x"}\n')
    with pytest.raises(FileNotFoundError, match="queries.jsonl"):
        load_beir(tmp_path)
