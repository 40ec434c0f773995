"""The Q2E memory index: observed statistics, the Bayesian blend, lookup, the CPCD split."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ltrr_core.config import MemoryConfig
from ltrr_core.memory import MemoryIndex, blend, observed_statistics, posterior_score

REAL = Path(os.environ.get("LTRR_SHARED_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
CONFIG = MemoryConfig()
NOW = pd.Timestamp("2026-11-25", tz="UTC")


@hsettings(max_examples=200, deadline=None)
@given(
    predicted=st.floats(0.001, 0.999),
    true_rate=st.floats(0.0, 1.0),
    strength=st.floats(0.5, 50.0),
    steps=st.lists(st.integers(1, 200), min_size=2, max_size=6),
)
def test_blend_moves_from_predicted_to_observed_as_evidence_grows(predicted, true_rate, strength, steps):
    """With no evidence the score is the prediction; with N impressions at rate r, the prior's
    weight is m/(m+N) and the distance to r shrinks monotonically towards zero."""
    assert posterior_score(predicted, 0.0, 0.0, strength) == pytest.approx(predicted)
    counts = np.cumsum(steps).astype(float)
    scores = posterior_score(predicted, true_rate * counts, counts, strength)
    distance = np.abs(scores - true_rate)
    assert np.all(np.diff(distance) <= 1e-12)
    expected = strength / (strength + counts) * abs(predicted - true_rate)
    assert np.allclose(distance, expected)
    big = posterior_score(predicted, true_rate * 1e7, 1e7, strength)
    assert abs(big - true_rate) < 1e-4


def _rows(*rows):
    frame = pd.DataFrame(rows, columns=["request_id", "query", "entity_id", "position", "event"])
    frame["position"] = frame["position"].astype("Int64")
    frame["timestamp"] = NOW
    return frame


def test_observed_statistics_are_position_aware_and_count_an_impression_once():
    engagement = _rows(
        ("r1", "Halo", "e1", 1, "impression"),
        ("r1", "Halo", "e1", 1, "click"),  # same impression: strongest event wins
        ("r1", "Halo", "e1", 1, "like"),
        ("r1", "halo!", "e2", 5, "impression"),
        ("r2", "HALO", "e2", None, "stream"),
    )
    stats = observed_statistics(engagement, CONFIG).set_index("entity_id")
    assert set(stats["query"]) == {"halo"}
    assert stats.loc["e1", "n_impressions"] == pytest.approx(1.0)
    assert stats.loc["e1", "n_engaged"] == pytest.approx(1.0)
    assert stats.loc["e2", "n_impressions"] == pytest.approx(CONFIG.examination_by_position[4] + 1.0)
    assert stats.loc["e2", "n_engaged"] == pytest.approx(CONFIG.event_weights["stream"])


def test_unknown_events_are_refused_by_name():
    with pytest.raises(ValueError, match="'purchase'"):
        observed_statistics(_rows(("r1", "q", "e", 1, "purchase")), CONFIG)


def test_blend_adds_new_logged_queries_and_keeps_sources_apart():
    predicted = pd.DataFrame(
        {
            "query": ["halo", "halo"],
            "entity_id": ["e1", "e3"],
            "score": [0.6, 0.2],
            "generator": ["templates", "templates"],
        }
    )
    observed = observed_statistics(
        _rows(("r1", "halo", "e1", 1, "like"), ("r2", "beyonce halo", "e1", 1, "like")), CONFIG
    )
    table = blend(predicted, observed, CONFIG, NOW).set_index(["query", "entity_id"])
    assert table.loc[("halo", "e3"), "source"] == "predicted"
    assert table.loc[("halo", "e3"), "score"] == pytest.approx(0.2)
    assert table.loc[("halo", "e1"), "source"] == "observed"
    assert table.loc[("halo", "e1"), "score"] == pytest.approx((5 * 0.6 + 1) / 6)
    new = table.loc[("beyonce halo", "e1")]
    assert new["source"] == "observed" and np.isnan(new["predicted_score"])
    assert new["score"] == pytest.approx((5 * CONFIG.base_rate + 1) / 6)


def test_lookup_exact_then_near_duplicate_with_match_quality():
    table = pd.DataFrame(
        {
            "query": ["love story taylor swift", "love story taylor swift", "halo"],
            "entity_id": ["ls", "other", "halo"],
            "score": [0.8, 0.1, 0.5],
            "source": "predicted",
            "predicted_score": [0.8, 0.1, 0.5],
            "n_impressions": 0.0,
            "n_engaged": 0.0,
            "generator": "templates",
            "updated_at": NOW,
        }
    )
    index = MemoryIndex(table, CONFIG)
    exact, meta = index.lookup("love story taylor swift", 10)
    assert [e for e, _ in exact] == ["ls", "other"] and meta["match"] == "exact" and meta["match_quality"] == 1.0
    fuzzy, meta = index.lookup("taylor swift love story", 10)  # word order
    assert fuzzy[0][0] == "ls" and meta["match"] == "fuzzy"
    near, meta = index.lookup("love storry taylor swift", 10)  # a typo
    assert near[0][0] == "ls" and 0.88 <= meta["match_quality"] < 1.0
    assert near[0][1] == pytest.approx(0.8 * meta["match_quality"])
    assert index.lookup("bohemian rhapsody", 10) == ([], {"match": "none", "match_quality": 0.0, "matched_queries": []})


_WORDS = st.sampled_from(["love", "story", "taylor", "swift", "halo", "rock", "80s", "x"])


@hsettings(max_examples=60, deadline=None)
@given(st.lists(st.lists(_WORDS, max_size=5).map(" ".join), min_size=1, max_size=30, unique=True))
def test_the_token_blocking_index_holds_exactly_the_stored_queries_with_each_token(queries):
    """The CSR token index built by Arrow (load time) against its definition: for every token, the
    positions of the stored queries whose words include it, ascending, each once."""
    table = pd.DataFrame({"query": queries, "entity_id": "e", "score": 0.5, "predicted_score": 0.5})
    index = MemoryIndex(table, CONFIG)
    for token in {t for q in index.queries for t in q.split()} | {"absent"}:
        expected = [p for p, q in enumerate(index.queries) if token in q.split()]
        assert index._holding(token).tolist() == expected


def test_without_observations_is_the_blend_of_the_rest_on_real_cpcd_engagement():
    """Cross-fitting's memory: taking one fold of conversations out of a blended table gives the
    table ``blend`` makes from the other folds alone, without the log-neighbour predictions of the
    queries the fold searched -- every pair's evidence, score and source, and no pair that only
    the removed conversations had observed or taught."""
    from ltrr_core.config import SplitsConfig
    from ltrr_core.memory.blend import without_observations
    from ltrr_core.memory.engagement import cpcd_engagement
    from ltrr_core.splits import unit_hash

    engagement = cpcd_engagement(REAL / "cpcd" / "search_results_labeled.train.tsv", SplitsConfig(), "train")
    conversations = engagement["request_id"].str.rsplit(":", n=1).str[0]
    engagement = engagement[conversations.isin(sorted(conversations.unique())[:400])].reset_index(drop=True)
    in_fold = engagement["request_id"].str.rsplit(":", n=1).str[0].map(lambda c: unit_hash("fold", c) < 0.3).to_numpy()
    observed = observed_statistics(engagement, CONFIG)
    # Predictions for every other observed pair and for pairs nobody saw (a hash as the score).
    pairs = pd.concat(
        [observed[["query", "entity_id"]].iloc[::2], observed[["query", "entity_id"]].assign(entity_id="x")]
    )
    predicted = pairs.assign(score=[unit_hash("p", f"{q}|{e}") for q, e in zip(pairs["query"], pairs["entity_id"])])
    predicted = predicted.drop_duplicates(["query", "entity_id"]).reset_index(drop=True)
    # Every third prediction learned from the query's engagement (log neighbours): it goes with the fold.
    predicted["generator"] = np.where(predicted.index % 3 == 0, "log_neighbours", "templates")
    fold = observed_statistics(engagement[in_fold], CONFIG)

    removed = without_observations(blend(predicted, observed, CONFIG, NOW), fold, CONFIG, ["log_neighbours"])
    learned = (predicted["generator"] == "log_neighbours") & predicted["query"].isin(set(fold["query"]))
    assert learned.any() and (~learned & (predicted["generator"] == "log_neighbours")).any()
    rest = blend(predicted[~learned], observed_statistics(engagement[~in_fold], CONFIG), CONFIG, NOW)
    assert in_fold.any() and (~in_fold).any() and len(removed) < len(blend(predicted, observed, CONFIG, NOW))
    keys = ["query", "entity_id"]
    assert set(map(tuple, removed[keys].to_numpy())) == set(map(tuple, rest[keys].to_numpy()))
    joined = removed.merge(rest, on=keys, suffixes=("", "_rest"))
    for column in ("score", "n_impressions", "n_engaged"):
        assert np.allclose(joined[column], joined[f"{column}_rest"])
    assert (joined["source"] == joined["source_rest"]).all()
