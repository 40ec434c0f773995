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
TARGET = 0.8 * np.eye(N_ACTIONS)[TRUE_RATE.argmax(axis=1)] + 0.2 / N_ACTIONS   # mostly the best action
TRUTH = float((TARGET * TRUE_RATE).sum(axis=1).mean())                           # contexts are uniform


def _logged(seed: int, model: np.ndarray) -> LoggedFeedback:
    rng = np.random.default_rng(seed)
    x = rng.integers(N_CONTEXTS, size=ROUNDS)
    a = np.array([rng.choice(N_ACTIONS, p=LOGGING[c]) for c in x])
    r = (rng.random(ROUNDS) < TRUE_RATE[x, a]).astype(float)
    return LoggedFeedback(r, LOGGING[x, a], TARGET[x, a], model[x, a], (TARGET * model).sum(axis=1)[x])


WRONG_MODEL = np.full((N_CONTEXTS, N_ACTIONS), 0.3)


@pytest.mark.parametrize(("estimator", "model"), [
    (IPS(n_bootstrap=300), WRONG_MODEL),
    (SNIPS(n_bootstrap=300), WRONG_MODEL),
    (DoublyRobust(n_bootstrap=300), WRONG_MODEL),     # unbiased with a wrong model: propensities are exact
    (DirectMethod(n_bootstrap=300), TRUE_RATE),       # unbiased only with the right model
])
def test_estimators_are_unbiased_and_their_intervals_cover(estimator, model):
    estimates = [estimator.estimate(_logged(seed, model)) for seed in range(SEEDS)]
    values = np.array([e.value for e in estimates])
    assert abs(values.mean() - TRUTH) < 3 * values.std(ddof=1) / np.sqrt(SEEDS) + 1e-3, (values.mean(), TRUTH)
    coverage = np.mean([e.ci[0] <= TRUTH <= e.ci[1] for e in estimates])
    assert coverage >= 0.85, coverage          # nominal 0.95; bootstrap percentile intervals run a little narrow


def test_direct_method_with_a_wrong_model_is_biased_and_dr_repairs_it():
    dm = np.mean([DirectMethod(n_bootstrap=100).estimate(_logged(s, WRONG_MODEL)).value for s in range(20)])
    dr = np.mean([DoublyRobust(n_bootstrap=100).estimate(_logged(s, WRONG_MODEL)).value for s in range(20)])
    assert abs(dm - TRUTH) > 0.1 and abs(dr - TRUTH) < 0.03


def test_switch_dr_is_dr_below_the_threshold_and_dm_above():
    data = _logged(0, WRONG_MODEL)
    assert SwitchDR(max_weight=1e9, n_bootstrap=100).estimate(data).value == pytest.approx(
        DoublyRobust(n_bootstrap=100).estimate(data).value)
    assert SwitchDR(max_weight=1.0 + 1e-9, n_bootstrap=100).estimate(
        LoggedFeedback(data.reward, data.logging_propensity, data.logging_propensity * 2, data.model_reward_logged,
                       data.model_value_target)).value == pytest.approx(data.model_value_target.mean())


def test_effective_sample_size():
    assert effective_sample_size(np.ones(50)) == pytest.approx(50)
    assert effective_sample_size(np.array([1.0] + [0.0] * 99)) == pytest.approx(1)


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
    assert report["on_policy"]["n"] == 10_000 and 0.002 < truth < 0.006      # 38 clicks in 10,000 random rounds
    for name in ("ips", "snips", "dr", "switch_dr"):
        result = report["estimators"][name]
        assert result["ci"][0] <= result["estimate"] <= result["ci"][1]
        assert result["covers_on_policy"], (name, result, truth)
    assert report["estimators"]["ips"]["ess"] < 1000 < report["estimators"]["switch_dr"]["ess"]


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
    out = subprocess.run([str(ltrr), "bandit", "ope-obd", "--json", "--plot", str(tmp_path / "obd.png")],
                         capture_output=True, text=True, timeout=300, check=True)
    report = json.loads(out.stdout)
    assert set(report["on_policy"]) >= {"value", "ci"}
    for name in ("ips", "snips", "dr"):
        assert set(report["estimators"][name]) >= {"estimate", "ci", "ess"}
    assert (tmp_path / "obd.png").stat().st_size > 10_000
