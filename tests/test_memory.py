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
