"""The one split of the real data: CPCD conversations (train / simulate / heldout), Last.fm tag
assignments (catalog / truth) and Last.fm users (platform / simulate) -- disjoint by
construction, stable, and respected by everything that learns or tunes."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from ltrr_core.config import SplitsConfig
from ltrr_core.eval.fusion_sweep import sweep_fusion
from ltrr_core.labelled.datasets import LabelledQueries, load_cpcd_queries
from ltrr_core.memory.build import load_engagement
from ltrr_core.splits import (
    SplitRefused,
    cpcd_part,
    cpcd_rows,
    lastfm_user_part,
    query_slice,
    read_cpcd_file,
    seen_queries,
    tag_assignment_part,
)
from tests.conftest import ROOT, make_settings

REAL = Path(os.environ.get("LTRR_SHARED_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
CPCD = REAL / "cpcd" / "search_results_labeled.train.tsv"
LASTFM = REAL / "lastfm-hetrec2011"


def test_cpcd_parts_are_disjoint_by_conversation_and_cover_every_one():
    config = SplitsConfig()
    frame = read_cpcd_file(CPCD)
    parts = {p: set(cpcd_rows(CPCD, config, (p,))["conv_id"]) for p in ("train", "simulate", "heldout")}
    assert not parts["train"] & parts["simulate"] and not parts["train"] & parts["heldout"]
    assert not parts["simulate"] & parts["heldout"]
    assert parts["train"] | parts["simulate"] | parts["heldout"] == set(frame["conv_id"])
    total = len(set(frame["conv_id"]))
    for part, share in (("heldout", 0.2), ("simulate", 0.2), ("train", 0.6)):
        assert abs(len(parts[part]) / total - share) < 0.03, part
    # every turn of a conversation lands in the same part
    assert (
        cpcd_rows(CPCD, config, ("heldout",)).groupby("conv_id")["turn"].count().sum()
        == frame[frame["conv_id"].isin(parts["heldout"])].shape[0]
    )


def test_split_is_a_stable_function_of_the_seed():
    config = SplitsConfig()
    # known answers of the default seed: any machine, any Python, any run
    assert [cpcd_part(c, config) for c in ("00079c9c8dd7b55a", "00fa033e6cba483e", "0163adc141d14122")] == [
        "train",
        "simulate",
        "heldout",
    ]
    assert [tag_assignment_part("52", t, config) for t in ("13", "14", "15", "16")] == [
        "catalog",
        "truth",
        "catalog",
        "truth",
    ]
    assert [lastfm_user_part(u, config) for u in ("2", "3", "4", "7")] == [
        "platform",
        "platform",
        "simulate",
        "simulate",
    ]
    conversations = sorted(set(read_cpcd_file(CPCD)["conv_id"]))[:400]
    first = [cpcd_part(c, config) for c in conversations]
    other = [cpcd_part(c, SplitsConfig(seed="another-seed")) for c in conversations]
    assert sum(a != b for a, b in zip(first, other)) > 100  # a different seed is a different split


def test_a_split_without_a_train_part_is_refused():
    with pytest.raises(ValueError, match="leaves no train part"):
        SplitsConfig(cpcd_heldout=0.5, cpcd_simulate=0.5)


def test_seen_slice_is_the_train_query_texts(test_settings):
    seen = seen_queries(test_settings)
    train = read_cpcd_file(CPCD)
    train = train[train["conv_id"].map(lambda c: cpcd_part(c, test_settings.splits) == "train")]
    some_train_query = next(q for q in train["search_query"] if q)
    assert query_slice(some_train_query, seen) == "seen"
    assert query_slice(some_train_query.upper() + "  ", seen) == "seen"  # normalised text
    assert query_slice("zzqx no one typed this", seen) == "unseen"
    heldout = load_cpcd_queries(CPCD, test_settings.splits, "heldout")
    share_seen = sum(query_slice(q, seen) == "seen" for q in heldout.queries) / len(heldout.queries)
    assert 0.08 < share_seen < 0.4  # about a fifth of held-out queries were also typed in train


def test_sweeps_refuse_anything_but_train(tmp_path):
    labelled = LabelledQueries({"q": "q"}, {"q": {"cpcd:1": 1}}, split="heldout")
    with pytest.raises(SplitRefused, match="fusion-sweep tunes on the train part"):
        sweep_fusion(None, labelled, ["ndcg@10"], 10)
    # refused before anything is loaded: an empty data directory is enough
    config = ROOT / "configs" / "test.yaml"
    for command, split in (("bm25-sweep", "heldout"), ("fusion-sweep", "simulate"), ("bm25-sweep", "all")):
        out = CliRunner().invoke(
            app, ["--config", str(config), command, "--split", split], env={"LTRR_DATA_DIR": str(tmp_path)}
        )
        assert out.exit_code == 2 and "tunes on the train part" in out.output, (command, split, out.output)
    assert not any(tmp_path.iterdir())


def test_memory_engagement_reads_only_train_conversations(tmp_path):
    """The memory index's CPCD input is the same whether or not the other parts exist: it
    cannot have read them."""
    frame = read_cpcd_file(CPCD)
    config = SplitsConfig()
    only_train = tmp_path / "only_train.tsv"
    frame[frame["conv_id"].map(lambda c: cpcd_part(c, config) == "train")].to_csv(only_train, sep="\t", index=False)
    full = make_settings(tmp_path / "a", **{"memory.use_runtime_logs": False})
    trimmed = make_settings(
        tmp_path / "b", **{"memory.use_runtime_logs": False, "catalog.paths.cpcd_labels": str(only_train)}
    )
    engaged_full, engaged_trimmed = load_engagement(full), load_engagement(trimmed)
    assert len(engaged_full) > 10_000
    pd.testing.assert_frame_equal(engaged_full, engaged_trimmed)
    other = set(frame[frame["conv_id"].map(lambda c: cpcd_part(c, config) != "train")]["conv_id"])
    assert not set(engaged_full["request_id"].str.split(":").str[0]) & other


def _tag_ids() -> dict[str, str]:
    names = pd.read_csv(LASTFM / "tags.dat", sep="\t", dtype=str, encoding="latin-1", keep_default_na=False)
    return {v.strip(): k for k, v in zip(names["tagID"], names["tagValue"])}


def test_catalog_tags_come_only_from_the_catalog_part(test_settings):
    from ltrr_core.catalog.adapters import read_lastfm_artists

    artists = read_lastfm_artists(test_settings, nrows=300)
    ids = _tag_ids()
    pairs = [(e.split(":")[1], ids[t]) for e, tags in zip(artists["id"], artists["tags"]) for t in tags]
    assert len(pairs) > 1000
    assert {tag_assignment_part(a, t, test_settings.splits) for a, t in pairs} == {"catalog"}
    raw = pd.read_csv(LASTFM / "user_taggedartists.dat", sep="\t", dtype=str)
    raw = raw[raw["artistID"].isin(set(artists["id"].str.split(":").str[1]))]
    truth_pairs = {
        (a, t)
        for a, t in zip(raw["artistID"], raw["tagID"])
        if tag_assignment_part(a, t, test_settings.splits) == "truth"
    }
    assert len(truth_pairs) > 1000 and not truth_pairs & set(pairs)  # the split held real pairs back


def test_popularity_counts_only_the_platform_users(test_settings):
    from ltrr_core.catalog.adapters import read_lastfm_artists

    artists = read_lastfm_artists(test_settings, nrows=50).set_index("id")
    plays = pd.read_csv(LASTFM / "user_artists.dat", sep="\t", dtype=str)
    duran_duran = "lastfm:" + next(
        a
        for a, n in zip(*pd.read_csv(LASTFM / "artists.dat", sep="\t", dtype=str, usecols=["id", "name"]).T.values)
        if n == "Duran Duran"
    )
    listeners = plays[plays["artistID"] == duran_duran.split(":")[1]]["userID"]
    platform = sum(lastfm_user_part(u, test_settings.splits) == "platform" for u in listeners)
    assert 0 < platform < len(listeners)
    assert artists.at[duran_duran, "popularity"] == platform


LOADERS = {"project_cpcd_queries", "load_cpcd_queries", "cpcd_engagement", "cpcd_rows", "parts_of"}
EVALUATIONS = {
    "ltrr_core/eval/policy_nights.py",
    "ltrr_core/ranking/evaluate.py",
    "ltrr_core/ranking/memory_modes.py",  # held-out read only to confirm a choice made on the train part
    "flows/cli/evaluate.py",
}


def _part_literals(path: Path) -> set[tuple[str, str]]:
    """(loader, part) for every call of a CPCD loader with a literal part in ``path``."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            if name in LOADERS:
                for arg in [*node.args, *(k.value for k in node.keywords)]:
                    for sub in ast.walk(arg):
                        if isinstance(sub, ast.Constant) and sub.value in ("train", "simulate", "heldout", "all"):
                            found.add((name, sub.value))
    return found


def test_only_evaluations_name_the_heldout_part_and_only_the_simulator_the_simulate_part():
    root = Path(__file__).resolve().parents[1]
    for path in [*root.glob("ltrr_core/**/*.py"), *root.glob("flows/**/*.py"), *root.glob("tasks/*.py")]:
        relative = str(path.relative_to(root))
        parts = {part for _, part in _part_literals(path)}
        if "heldout" in parts:
            assert relative in EVALUATIONS or relative.startswith("ltrr_core/eval/"), relative
        if "simulate" in parts:
            assert relative.startswith("ltrr_core/simulate/"), relative
    # the scan sees the calls it polices
    assert ("project_cpcd_queries", "heldout") in _part_literals(root / "ltrr_core/eval/policy_nights.py")
    assert ("cpcd_engagement", "simulate") in _part_literals(root / "ltrr_core/simulate/world.py")
    learners = ["ltrr_core/memory/build.py"]
    assert all(_part_literals(root / p) == {("cpcd_engagement", "train")} for p in learners)
