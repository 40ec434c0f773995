"""`ltrr eval` and `ltrr eval-beir` print one JSON object of the documented shape."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from ltrr_core.config import SplitsConfig
from ltrr_core.labelled.datasets import load_beir, load_cpcd_queries

pytestmark = pytest.mark.slow
REAL = Path(os.environ.get("LTRR_SHARED_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
METRICS = {"ndcg@10", "recall@10", "recall@100", "mrr@10"}


def _check_shape(result: dict, n_queries: int, strategies: set[str]) -> None:
    assert result["n_queries"] == n_queries
    assert set(result["strategies"]) == strategies
    for values in result["strategies"].values():
        assert set(values) == METRICS


def _cpcd_subset(tmp_path: Path, n_queries: int = 90) -> Path:
    labels = pd.read_csv(REAL / "cpcd" / "search_results_labeled.train.tsv", sep="\t", dtype=str, keep_default_na=False)
    queries = labels["search_query"].drop_duplicates().iloc[:n_queries]
    path = tmp_path / "labels.tsv"
    labels[labels["search_query"].isin(queries)].drop(columns=["conv_id"]).to_csv(path, sep="\t", index=False)
    return path


def test_eval_json_measures_the_served_bundle_beside_the_baselines(q2e_platform, gated_bundle_dir, tmp_path):
    """A CPCD-format file the project never split (no conv_id): served, hybrid, the static
    mixture and every strategy, with paired intervals, seen/unseen slices and candidate hit."""
    _, _, config_file = q2e_platform
    path = _cpcd_subset(tmp_path)
    expected = len(load_cpcd_queries(path, SplitsConfig()).queries)

    out = CliRunner().invoke(
        app,
        [
            "--config",
            str(config_file),
            "eval",
            "--queries",
            str(path),
            "--split",
            "all",
            "--bundle",
            str(gated_bundle_dir),
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout.strip().splitlines()[-1])
    from ltrr_core.models.ranker import SPEC_FILE

    ranked = (gated_bundle_dir / "ranker" / SPEC_FILE).is_file()  # with a ranker: the hybrid pool ranked by it
    systems = {"lexical", "semantic", "structured", "memory", "hybrid", "static_mixture", "served"}
    _check_shape(result, expected, systems | ({"hybrid_ranked"} if ranked else set()))
    assert set(result["views"]) == {"graded", "tracks"}
    assert result["views"]["graded"]["lexical"]["recall@10"] == result["views"]["tracks"]["lexical"]["recall@10"]
    comparisons = {"served-hybrid", "served-static_mixture"} | ({"served-hybrid_ranked"} if ranked else set())
    assert set(result["intervals"]) == comparisons
    assert set(result["intervals"]["served-hybrid"]) == METRICS
    slices = result["slices"]
    assert slices["seen"]["n_queries"] + slices["unseen"]["n_queries"] == expected
    assert slices["seen"]["n_queries"] > 0 and slices["unseen"]["n_queries"] > 0
    assert result["candidate_hit"]["served"]["mean_candidates"] > 0
    assert result["strategies"]["lexical"]["recall@100"] > 0.4 and result["strategies"]["semantic"]["recall@100"] > 0.3


def test_eval_without_a_champion_reports_the_strategies_and_says_why(q2e_platform, tmp_path):
    from ltrr_core.artifacts.champion import NoChampion, serving_bundle

    settings, _, config_file = q2e_platform
    try:
        serving_bundle(settings)
        pytest.skip("a test promoted a champion on the shared platform")
    except NoChampion:
        pass
    path = _cpcd_subset(tmp_path, 30)
    out = CliRunner().invoke(
        app, ["--config", str(config_file), "eval", "--queries", str(path), "--split", "all", "--json"]
    )
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["served"] is None and "promot" in result["served_unavailable"]
    assert {"lexical", "semantic", "hybrid"} <= set(result["strategies"])


def test_eval_rejects_a_file_without_the_cpcd_columns(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("query\tdoc\nx\ty\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['search_query', 'track_id', 'label'\]"):
        load_cpcd_queries(path, SplitsConfig())
    out = CliRunner().invoke(app, ["eval", "--queries", str(path), "--split", "all"])
    assert out.exit_code == 2 and "missing column(s)" in " ".join(out.output.split())


def _beir_folder_from_cpcd(root: Path, n_docs: int = 1500) -> Path:
    """A BEIR folder made from real CPCD data: tracks as documents, liked tracks as qrels."""
    tracks = pd.read_csv(REAL / "cpcd" / "tracks.tsv", sep="\t", dtype=str, keep_default_na=False).iloc[:n_docs]
    labels = pd.read_csv(REAL / "cpcd" / "search_results_labeled.train.tsv", sep="\t", dtype=str, keep_default_na=False)
    liked = labels[(labels["label"] == "1") & labels["track_id"].isin(tracks["track_id"])]
    liked = liked.drop_duplicates(["search_query", "track_id"])
    queries = {q: f"q{i}" for i, q in enumerate(liked["search_query"].drop_duplicates())}
    root.mkdir(parents=True)
    with open(root / "corpus.jsonl", "w") as handle:
        for row in tracks.itertuples():
            handle.write(
                json.dumps(
                    {"_id": row.track_id, "title": row.title, "text": f"{row.artists.replace('|', ', ')} {row.album}"}
                )
                + "\n"
            )
    with open(root / "queries.jsonl", "w") as handle:
        for text, qid in queries.items():
            handle.write(json.dumps({"_id": qid, "text": text}) + "\n")
    (root / "qrels").mkdir()
    pd.DataFrame({"query-id": liked["search_query"].map(queries), "corpus-id": liked["track_id"], "score": 1}).to_csv(
        root / "qrels" / "test.tsv", sep="\t", index=False
    )
    return root


def test_eval_beir_json(tmp_path):
    folder = _beir_folder_from_cpcd(tmp_path / "cpcd-beir")
    _, labelled = load_beir(folder)
    out = CliRunner().invoke(
        app, ["--config", str(Path(__file__).parents[1] / "configs" / "test.yaml"), "eval-beir", str(folder), "--json"]
    )
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout.strip().splitlines()[-1])
    _check_shape(result, len(labelled.queries), {"lexical", "semantic", "hybrid", "rrf_equal"})
    assert result["n_documents"] == 1500
    assert result["strategies"]["lexical"]["ndcg@10"] > 0.3
    assert result["strategies"]["hybrid"]["ndcg@10"] > 0.3
    # Without engagement, hybrid holds against the practitioner's baseline of equal-weight RRF.
    assert result["strategies"]["hybrid"]["ndcg@10"] >= result["strategies"]["rrf_equal"]["ndcg@10"]


def test_beir_loader_names_what_is_missing(tmp_path):
    (tmp_path / "corpus.jsonl").write_text('{"_id": "1", "text": "x"}\n')
    with pytest.raises(FileNotFoundError, match="queries.jsonl"):
        load_beir(tmp_path)
