"""The static baselines the learned policy is judged against, on a table with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ltrr_core.config import load_settings
from ltrr_core.eval.policy_nights import night_metrics, pooled_agreement, pooled_comparison

PLANS = {"a25": {"a": 25}, "b25": {"b": 25}, "a25+b25": {"a": 25, "b": 25}, "a100": {"a": 100}}


@pytest.fixture(scope="module")
def settings():
    return load_settings()


def _hits(rng: np.random.Generator, n: int, rates: list[float]) -> np.ndarray:
    return (rng.random((n, len(rates))) < np.array(rates)).astype(np.int8)


def test_the_previous_day_baseline_is_picked_on_that_day_and_scored_on_the_test_day(settings):
    rng = np.random.default_rng(0)
    # Test day: b25 is the better 25-candidate plan; on the previous day a25 was.
    hits = _hits(rng, 4000, [0.50, 0.70, 0.80, 0.85])
    prior_rates = np.array([0.72, 0.60, 0.78, 0.86])
    greedy = ["a25"] * 4000  # a 25-candidate policy
    metrics, paired = night_metrics(settings, hits, PLANS, greedy, pd.Series(["x"] * 4000), greedy, prior_rates)
    learned = metrics["learned"]
    assert learned["avg_candidates"] == 25
    assert learned["best_static"]["plan"] == "b25"  # hindsight: the test day's best
    prior = learned["static_from_previous_day"]
    assert prior["best_static"]["plan"] == "a25" and prior["best_static"]["previous_day_hit_rate"] == 0.72
    assert prior["best_static"]["hit_rate"] == pytest.approx(hits[:, 0].mean(), abs=1e-4)
    # At a 25-candidate budget no mixture can include a 50- or 100-candidate plan.
    assert set(prior["best_static_mixture"]["plans"]) <= {"a25", "b25"}
    assert set(paired) == {
        "learned",
        "best_static",
        "best_static_mixture",
        "previous_day_best_static",
        "previous_day_best_static_mixture",
    }
    assert all(len(v) == 4000 for v in paired.values())


def test_the_mixture_matches_the_budget_exactly_and_interpolates_the_hull(settings):
    rng = np.random.default_rng(1)
    hits = _hits(rng, 6000, [0.50, 0.55, 0.80, 0.90])
    rates = hits.mean(axis=0)
    greedy = ["a25"] * 3000 + ["a100"] * 3000  # averages 62.5 candidates
    metrics, _ = night_metrics(settings, hits, PLANS, greedy, pd.Series(["x"] * 6000), greedy, rates)
    mixture = metrics["learned"]["static_from_previous_day"]["best_static_mixture"]
    costs = {n: sum(d.values()) for n, d in PLANS.items()}
    expected_cost = sum(share * costs[n] for n, share in mixture["plans"].items())
    assert expected_cost == pytest.approx(62.5, abs=0.1)
    # Mixing a25+b25 (50) with a100 beats every other pair on this hull: 0.5 * 0.80 + 0.5 * 0.90
    # would cost 75; at 62.5 the weights are 0.75 / 0.25.
    assert mixture["plans"] == {"a25+b25": 0.75, "a100": 0.25}
    assert mixture["hit_rate"] == pytest.approx(0.75 * rates[2] + 0.25 * rates[3], abs=1e-4)


def test_pooling_nights_narrows_the_interval_around_the_true_gap(settings):
    rng = np.random.default_rng(2)
    nights = []
    for _ in range(6):
        base = (rng.random(300) < 0.75).astype(float)
        better = np.maximum(base, (rng.random(300) < 0.12).astype(float))  # true gap 0.25 * 0.12 = 0.03
        nights.append({"learned": better, "previous_day_best_static_mixture": base})
    one = pooled_comparison(nights[:1], 0.95)["baselines"]["previous_day_best_static_mixture"]["learned_minus_ci"]
    pooled = pooled_comparison(nights, 0.95)
    ci = pooled["baselines"]["previous_day_best_static_mixture"]["learned_minus_ci"]
    assert pooled["nights"] == 6 and pooled["requests"] == 1800
    assert ci[0] <= 0.03 <= ci[1] and ci[0] > 0
    assert ci[1] - ci[0] < (one[1] - one[0]) / 2
    assert pooled_comparison([], 0.95) == {}


def test_pooled_agreement_combines_the_nights_errors():
    nights = [{"day": "d0"}] + [
        {
            "previous_estimate": {
                "measured_minus_estimate": d,
                "agreement_margin": 0.06,
                "agrees": abs(d) <= 0.06,
                "covers_measured": abs(d) <= 0.02,
            }
        }
        for d in (0.05, -0.03, 0.04, -0.07, 0.01, 0.0)
    ]
    pooled = pooled_agreement(nights, 0.95)
    assert pooled["nights"] == 6 and pooled["nights_agreeing"] == 5 and pooled["nights_strictly_covered"] == 2
    assert pooled["mean_measured_minus_estimate"] == pytest.approx(0.0, abs=1e-9)
    # six independent nights: the margin shrinks by sqrt(6)
    assert pooled["ci"][1] == pytest.approx(0.06 / np.sqrt(6), abs=1e-3) and pooled["agrees"]
    biased = [{"previous_estimate": {**n["previous_estimate"], "measured_minus_estimate": 0.05}} for n in nights[1:]]
    assert not pooled_agreement(biased, 0.95)["agrees"]
    assert pooled_agreement([{"day": "d0"}], 0.95) == {}


def test_served_oracle_regret_and_singles_by_hand(settings):
    """Four requests, three plans: every number computed by hand (a swapped column, an oracle
    taken as the served plan's best, or a regret off by the drawn plans would fail)."""
    plans = {"lexical": {"lexical": 100}, "semantic": {"semantic": 100}, "both": {"lexical": 100, "semantic": 100}}
    hits = np.array([[1, 0, 1], [0, 1, 1], [1, 0, 1], [0, 0, 0]], dtype=np.int8)
    served = ["lexical", "lexical", "semantic", "both"]
    metrics, _ = night_metrics(settings, hits, plans, served, pd.Series(["q", "q", "t", "t"]))
    assert metrics["served"] == 0.25  # only request 1's drawn plan found it
    assert metrics["oracle"] == 0.75 and metrics["regret"] == 0.5
    assert metrics["avg_candidates"] == 125.0  # (100 + 100 + 100 + 200) / 4
    assert metrics["best_static"] == {"plan": "lexical", "hit_rate": 0.5}  # "both" costs 200 > 125
    assert metrics["single_strategies"] == {"lexical": 0.5, "semantic": 0.25}
    assert metrics["by_query_type"]["t"] == {"n": 2, "served": 0.0, "best_static": 0.5, "oracle": 0.5}
