"""Off-policy estimators on synthetic problems with known truth, and on the real OBD logs."""

from __future__ import annotations

import numpy as np
import pytest

from ltrr_core.bandit import IPS, SNIPS, DirectMethod, DoublyRobust, LoggedFeedback, SwitchDR, effective_sample_size

N_CONTEXTS, N_ACTIONS, ROUNDS, SEEDS = 5, 4, 2000, 60
TRUE_RATE = np.random.default_rng(123).uniform(0.05, 0.6, size=(N_CONTEXTS, N_ACTIONS))


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


LOGGING = _softmax(np.random.default_rng(1).normal(size=(N_CONTEXTS, N_ACTIONS)))
TARGET = 0.8 * np.eye(N_ACTIONS)[TRUE_RATE.argmax(axis=1)] + 0.2 / N_ACTIONS  # mostly the best action
TRUTH = float((TARGET * TRUE_RATE).sum(axis=1).mean())  # contexts are uniform


def _logged(seed: int, model: np.ndarray) -> LoggedFeedback:
    rng = np.random.default_rng(seed)
    x = rng.integers(N_CONTEXTS, size=ROUNDS)
    a = np.array([rng.choice(N_ACTIONS, p=LOGGING[c]) for c in x])
    r = (rng.random(ROUNDS) < TRUE_RATE[x, a]).astype(float)
    return LoggedFeedback(r, LOGGING[x, a], TARGET[x, a], model[x, a], (TARGET * model).sum(axis=1)[x])


WRONG_MODEL = np.full((N_CONTEXTS, N_ACTIONS), 0.3)


@pytest.mark.parametrize(
    ("estimator", "model"),
    [
        (IPS(n_bootstrap=300), WRONG_MODEL),
        (SNIPS(n_bootstrap=300), WRONG_MODEL),
        (DoublyRobust(n_bootstrap=300), WRONG_MODEL),  # unbiased with a wrong model: propensities are exact
        (DirectMethod(n_bootstrap=300), TRUE_RATE),  # unbiased only with the right model
    ],
)
def test_estimators_are_unbiased_and_their_intervals_cover(estimator, model):
    estimates = [estimator.estimate(_logged(seed, model)) for seed in range(SEEDS)]
    values = np.array([e.value for e in estimates])
    assert abs(values.mean() - TRUTH) < 3 * values.std(ddof=1) / np.sqrt(SEEDS) + 1e-3, (values.mean(), TRUTH)
    coverage = np.mean([e.ci[0] <= TRUTH <= e.ci[1] for e in estimates])
    assert coverage >= 0.85, coverage  # nominal 0.95; bootstrap percentile intervals run a little narrow


def test_direct_method_with_a_wrong_model_is_biased_and_dr_repairs_it():
    dm = np.mean([DirectMethod(n_bootstrap=100).estimate(_logged(s, WRONG_MODEL)).value for s in range(20)])
    dr = np.mean([DoublyRobust(n_bootstrap=100).estimate(_logged(s, WRONG_MODEL)).value for s in range(20)])
    assert abs(dm - TRUTH) > 0.1 and abs(dr - TRUTH) < 0.03


def test_switch_dr_is_dr_below_the_threshold_and_dm_above():
    data = _logged(0, WRONG_MODEL)
    assert SwitchDR(max_weight=1e9, n_bootstrap=100).estimate(data).value == pytest.approx(
        DoublyRobust(n_bootstrap=100).estimate(data).value
    )
    assert SwitchDR(max_weight=1.0 + 1e-9, n_bootstrap=100).estimate(
        LoggedFeedback(
            data.reward,
            data.logging_propensity,
            data.logging_propensity * 2,
            data.model_reward_logged,
            data.model_value_target,
        )
    ).value == pytest.approx(data.model_value_target.mean())


def test_effective_sample_size():
    assert effective_sample_size(np.ones(50)) == pytest.approx(50)
    assert effective_sample_size(np.array([1.0] + [0.0] * 99)) == pytest.approx(1)


# A hand-built log of 4 rounds, every number below computed by hand:
#   reward r            1     0     1     0
#   logging p           0.5   0.5   0.25  0.25
#   target  pi          1.0   0.0   0.5   0.75
#   weight  w = pi / p  2     0     2     3        sum w = 7, sum w^2 = 17
#   model q(x, a_log)   0.6   0.2   0.4   0.1
#   model sum_a pi q    0.6   0.3   0.5   0.2
HAND = LoggedFeedback(
    np.array([1.0, 0.0, 1.0, 0.0]),
    np.array([0.5, 0.5, 0.25, 0.25]),
    np.array([1.0, 0.0, 0.5, 0.75]),
    np.array([0.6, 0.2, 0.4, 0.1]),
    np.array([0.6, 0.3, 0.5, 0.2]),
)


@pytest.mark.parametrize(
    ("estimator", "value"),
    [
        (IPS(n_bootstrap=100), 1.0),  # (2 + 0 + 2 + 0) / 4
        (SNIPS(n_bootstrap=100), 4 / 7),  # (2 + 0 + 2 + 0) / (2 + 0 + 2 + 3) = 0.571429
        (DirectMethod(n_bootstrap=100), 0.4),  # (0.6 + 0.3 + 0.5 + 0.2) / 4
        # DR: mean of v + w (r - q) = mean(0.6 + 0.8, 0.3 + 0, 0.5 + 1.2, 0.2 - 0.3) = 3.3 / 4
        (DoublyRobust(n_bootstrap=100), 0.825),
        # switch-DR at 2.5: round 4's weight 3 > 2.5 keeps only its model term 0.2: 3.6 / 4
        (SwitchDR(max_weight=2.5, n_bootstrap=100), 0.9),
    ],
)
def test_each_estimator_on_a_hand_built_log(estimator, value):
    result = estimator.estimate(HAND)
    assert result.value == pytest.approx(value, abs=1e-12) and result.n == 4
    assert np.isfinite(result.ci).all()  # SNIPS: a resample of only round 2 (w = 0) is 0, not NaN
    # Kish ESS of the UNCLIPPED weights, the same for every estimator: 7^2 / 17 = 2.882353
    assert result.ess == pytest.approx(49 / 17, abs=1e-12)
    if isinstance(estimator, SwitchDR):
        # clipped at 2.5: (2 + 0 + 2 + 2.5)^2 / (4 + 0 + 4 + 6.25) = 42.25 / 14.25 = 2.964912
        assert result.ess_clipped == pytest.approx(42.25 / 14.25, abs=1e-12)
        assert result.to_dict()["ess"] == 2.9 and result.to_dict()["ess_clipped"] == 3.0
    else:
        assert result.ess_clipped is None and "ess_clipped" not in result.to_dict()


def test_the_bootstrap_interval_has_the_known_width_and_excludes_the_unweighted_answer():
    """400 rounds, half of them the target's action A (logging 0.5, target 1: w = 2), half B
    (w = 0). A rewards 180 of 200, B 40 of 200. IPS = 2 * 180 / 400 = 0.9; its terms are 2 on
    180 rounds and 0 on 220: variance 4 * 0.45 - 0.81 = 0.99, standard error sqrt(0.99 / 400) =
    0.04975, so the 95% interval is about 0.9 -+ 1.96 * 0.04975 = [0.8025, 0.9975]. The logged
    mean 220 / 400 = 0.55 (the logging policy's value, what forgetting the weights gives) and
    the weightless 180 / 400 = 0.45 lie far outside it."""
    a = np.arange(400) < 200
    reward = np.where(a, np.arange(400) < 180, np.arange(400) < 240).astype(float)
    data = LoggedFeedback(reward, np.full(400, 0.5), np.where(a, 1.0, 0.0))
    assert reward[a].sum() == 180 and reward[~a].sum() == 40
    ips = IPS(n_bootstrap=2000).estimate(data)
    assert ips.value == pytest.approx(0.9, abs=1e-12)
    assert ips.ci[0] == pytest.approx(0.8025, abs=0.01) and ips.ci[1] == pytest.approx(0.9975, abs=0.01)
    assert not ips.ci[0] <= 0.55 <= ips.ci[1] and not ips.ci[0] <= 0.45 <= ips.ci[1]
    # SNIPS: 360 / sum w = 360 / 400 = 0.9 as well; ESS: 400^2 / (200 * 4) = 200 (half the log)
    snips = SNIPS(n_bootstrap=2000).estimate(data)
    assert snips.value == pytest.approx(0.9, abs=1e-12) and snips.ess == pytest.approx(200.0, abs=1e-9)
    assert not snips.ci[0] <= 0.55 <= snips.ci[1]


def _gate_on(tmp_path, estimate: dict, min_ess: float):
    import json

    from ltrr_core.config import load_settings
    from ltrr_core.promotion import gate_policy
    from tests.conftest import TEST_CONFIG

    bundle = tmp_path / f"bundle-{len(list(tmp_path.iterdir()))}"
    (bundle / "policy").mkdir(parents=True)
    (bundle / "policy" / "report.json").write_text(
        json.dumps({"ope": {"learned_policy": {"switch_dr": estimate}, "logging_policy": {"estimate": -1.0}}})
    )
    return gate_policy(load_settings(TEST_CONFIG).with_overrides(**{"promotion.min_ess": min_ess}), bundle)


def test_the_promotion_gate_reads_the_unclipped_ess_and_refuses_what_clipping_would_pass(tmp_path):
    """10 rounds: 8 with logging = target = 0.5 (w = 1), 2 with logging 0.2, target 0.8 (w = 4).
    Unclipped: sum w = 16, sum w^2 = 8 + 32 = 40, ESS = 256 / 40 = 6.4. Clipped at 2:
    sum = 8 + 4 = 12, sum^2 = 8 + 8 = 16, ESS = 144 / 16 = 9.0. With min_ess 8 the clipped ESS
    would pass the gate; the unclipped one refuses it."""
    logging = np.array([0.5] * 8 + [0.2] * 2)
    target = np.array([0.5] * 8 + [0.8] * 2)
    data = LoggedFeedback(np.ones(10), logging, target, np.full(10, 0.5), np.full(10, 0.5))
    result = SwitchDR(max_weight=2.0, n_bootstrap=100).estimate(data)
    assert result.ess == pytest.approx(6.4, abs=1e-12) and result.ess_clipped == pytest.approx(9.0, abs=1e-12)
    report = result.to_dict()
    assert report["ess"] == 6.4 and report["ess_clipped"] == 9.0

    refused = _gate_on(tmp_path, report, min_ess=8)
    assert not refused.passed and report["ess_clipped"] >= 8
    assert "effective sample size 6.4 (unclipped weights) below 8" in refused.reason
    assert refused.numbers["ess"] == 6.4 and refused.numbers["ess_clipped"] == 9.0
    assert _gate_on(tmp_path, report, min_ess=6).passed  # 6.4 >= 6: the same report passes a lower floor
    # A report from before the split carries the clipped ESS under "ess": refused, not trusted.
    legacy = {k: v for k, v in report.items() if k != "ess_clipped"} | {"ess": 9.0}
    old = _gate_on(tmp_path, legacy, min_ess=8)
    assert not old.passed and "predates the unclipped ESS" in old.reason


@pytest.mark.parametrize("bad", [0.0, 1.5, np.nan, -0.1])
def test_broken_propensities_are_refused_naming_the_round(bad):
    propensities = np.array([0.5, bad, 0.5])
    with pytest.raises(ValueError, match=r"round 1: logging propensity .* not in \(0, 1\]"):
        LoggedFeedback(np.zeros(3), propensities, np.full(3, 0.5))


def test_model_based_estimators_need_a_model():
    with pytest.raises(ValueError, match="needs a reward model"):
        DoublyRobust(n_bootstrap=100).estimate(LoggedFeedback(np.zeros(3), np.full(3, 0.5), np.full(3, 0.5)))


def test_obd_uniform_policy_value_from_the_thompson_sampling_log(test_settings):
    from ltrr_core.bandit.obd import ope_obd

    report = ope_obd(test_settings)
    truth = report["on_policy"]["value"]
    assert report["on_policy"]["n"] == 10_000 and 0.002 < truth < 0.006  # 38 clicks in 10,000 random rounds
    assert truth == pytest.approx(38 / 10_000)
    for name in ("ips", "snips", "dr", "switch_dr"):
        result = report["estimators"][name]
        assert result["covers_on_policy"], (name, result, truth)
    # The same weights, the same (unclipped) ESS for every estimator; switching at max_weight
    # bounds switch-DR's variance, and its clipped ESS (reported beside, never gated on) is larger.
    estimators = report["estimators"]
    assert len({estimators[name]["ess"] for name in ("ips", "snips", "dm", "dr", "switch_dr")}) == 1
    assert estimators["switch_dr"]["ess"] < 1000 < estimators["switch_dr"]["ess_clipped"]


def test_obd_log_with_a_broken_propensity_is_refused(tmp_path, test_settings):
    import pandas as pd

    from ltrr_core.bandit.obd import read_obd

    frame = pd.read_csv(test_settings.shared_path(test_settings.bandit.obd.logging_log), index_col=0, nrows=20)
    frame.loc[7, "propensity_score"] = 0.0
    frame.to_csv(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match=r"round 7 breaks the rule 'propensity_score in \(0, 1\]'"):
        read_obd(tmp_path / "bad.csv")


def test_ope_obd_command_prints_the_documented_json_and_a_plot(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    ltrr = Path(sys.executable).with_name("ltrr")
    out = subprocess.run(
        [str(ltrr), "bandit", "ope-obd", "--json", "--plot", str(tmp_path / "obd.png")],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    report = json.loads(out.stdout)
    assert set(report["on_policy"]) >= {"value", "ci"}
    for name in ("ips", "snips", "dr"):
        assert set(report["estimators"][name]) >= {"estimate", "ci", "ess"}
    assert (tmp_path / "obd.png").stat().st_size > 10_000
