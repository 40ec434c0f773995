"""The exploration policy logs exact propensities."""

from __future__ import annotations

import numpy as np
import pytest

from ltrr_core.config import PolicyConfig, load_settings
from tests.conftest import TEST_CONFIG


def test_logged_propensities_match_sampling_frequencies():
    from ltrr_core.models.policy import EpsilonDefaultPolicy

    policy = EpsilonDefaultPolicy(load_settings(TEST_CONFIG).runtime.policy)
    rng = np.random.default_rng(3)
    n = 20_000
    decisions = [policy.decide({}, rng) for _ in range(n)]
    probabilities = decisions[0].probabilities
    assert sum(probabilities.values()) == pytest.approx(1.0)
    for plan, p in probabilities.items():
        frequency = sum(d.plan == plan for d in decisions) / n
        assert abs(frequency - p) < 4 * np.sqrt(p * (1 - p) / n), plan
    for decision in decisions[:200]:
        assert decision.probability == probabilities[decision.plan]
        for strategy, depth in decision.depths.items():
            observed = sum(d.depths.get(strategy, 0) == depth for d in decisions) / n
            assert abs(observed - decision.strategy_probabilities[strategy]) < 0.02


def test_propensity_floor_and_config_validation():
    from ltrr_core.models.policy import EpsilonDefaultPolicy

    config = PolicyConfig(plans={"a": {"lexical": 10}, "b": {"semantic": 10}}, default_plan="a", epsilon=0.1)
    probabilities = EpsilonDefaultPolicy(config).probabilities()
    assert probabilities == pytest.approx({"a": 0.95, "b": 0.05})
    # At the exploration floor (epsilon = min_epsilon = 0.02) the unchosen plan keeps 0.02 / 2.
    floor = PolicyConfig(plans=config.plans, default_plan="a", epsilon=0.02)
    assert EpsilonDefaultPolicy(floor).probabilities() == pytest.approx({"a": 0.99, "b": 0.01})
    with pytest.raises(
        ValueError,
        match=r"runtime\.policy\.epsilon 0\.0 is below the exploration floor "
        r"runtime\.policy\.min_epsilon 0\.02",
    ):
        PolicyConfig(plans=config.plans, default_plan="a", epsilon=0.0)
    with pytest.raises(ValueError, match="default_plan 'c' is not one of"):
        PolicyConfig(plans={"a": {"lexical": 10}}, default_plan="c")
    with pytest.raises(ValueError, match="plan 'a' needs at least one strategy"):
        PolicyConfig(plans={"a": {"lexical": 0}}, default_plan="a")
