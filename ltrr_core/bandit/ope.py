"""Off-policy evaluation: the value a target policy would have had, from another policy's logs.

Each estimator is a small class with one ``estimate(data)`` returning a point estimate, a
bootstrap percentile interval and the effective sample size (Kish: (sum w)^2 / sum w^2) of the
UNCLIPPED importance weights w = pi_target / pi_logging -- the same number for every estimator on
the same data, DM included: it says how much of the log supports the target policy, whatever an
estimator then does with the weights. Clipping or switching bounds an estimator's variance but
creates no support: the ESS of clipped weights is larger and overstates what the log says about
the target policy, so it is reported beside it (``ess_clipped``, where an estimator clips) and is
never what a gate reads (``promotion.min_ess`` reads ``ess``). The estimators are the standard ones
(Dudík et al. 2011, Swaminathan & Joachims 2015, Wang et al. 2017):

* ``IPS``: mean of w * r, w = pi_target(a|x) / pi_logging(a|x); unbiased with exact propensities.
* ``SNIPS``: sum(w r) / sum(w); slightly biased, much lower variance when weights are heavy.
* ``DirectMethod``: mean of the reward model's value of the target policy; biased by the model,
  and its interval only covers the sampling of rounds, not the model's own error (read it as a
  lower bound on the uncertainty). It uses no weights, but its ESS is still the weights' one:
  n rounds of a log that rarely took the target's actions do not check the model where it counts.
* ``DoublyRobust``: DM plus the IPS-weighted residual of the model; unbiased if either is right.
* ``SwitchDR``: DR where the weight is at most ``max_weight`` and DM alone beyond it (Wang et
  al. 2017): trades a little bias for bounded variance. Reports ``ess_clipped``, the Kish ESS of
  min(w, max_weight), beside the unclipped ``ess``.

Hand-written rather than taken from ``obp``: its latest release (0.5.7) installs only on
Python < 3.11 and this stack runs 3.11; the estimators are a few lines of numpy each, checked
against known truth in the tests, and the bootstrap is vectorised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LoggedFeedback:
    """Per logged round: the reward, the logging and target probabilities of the logged action,
    and (for DM/DR) the reward model's prediction for the logged action and its expected value
    under the target policy, sum_a pi_target(a|x) q(x, a)."""

    reward: np.ndarray
    logging_propensity: np.ndarray
    target_propensity: np.ndarray
    model_reward_logged: np.ndarray | None = None
    model_value_target: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.reward)
        for name in ("logging_propensity", "target_propensity", "model_reward_logged", "model_value_target"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"{name} has {len(value)} rows, reward has {n}")
        p = np.asarray(self.logging_propensity, dtype=float)
        bad = np.flatnonzero(~np.isfinite(p) | (p <= 0) | (p > 1))
        if len(bad):
            raise ValueError(
                f"round {bad[0]}: logging propensity {p[bad[0]]!r} is not in (0, 1]; "
                f"importance weights need exact, positive propensities"
            )

    @property
    def weights(self) -> np.ndarray:
        return np.asarray(self.target_propensity, dtype=float) / np.asarray(self.logging_propensity, dtype=float)

    def needs_model(self, estimator: str) -> None:
        if self.model_reward_logged is None or self.model_value_target is None:
            raise ValueError(f"{estimator} needs a reward model: pass model_reward_logged and model_value_target")


@dataclass(frozen=True)
class Estimate:
    """``ess``: Kish ESS of the unclipped importance weights; ``ess_clipped``: of the weights
    clipped at the estimator's ``max_weight`` (None where the estimator does not clip)."""

    value: float
    ci: tuple[float, float]
    ess: float
    n: int
    ess_clipped: float | None = None

    def to_dict(self) -> dict:
        out = {
            "estimate": round(self.value, 6),
            "ci": [round(c, 6) for c in self.ci],
            "ess": round(self.ess, 1),
            "n": self.n,
        }
        if self.ess_clipped is not None:
            out["ess_clipped"] = round(self.ess_clipped, 1)
        return out


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2; 0 when no weight is positive."""
    weights = np.asarray(weights, dtype=float)
    total = weights.sum()
    return float(total * total / np.square(weights).sum()) if total > 0 else 0.0


def _ratio(top, bottom):
    """top / bottom, 0 where bottom is 0: a (re)sample in which the target policy puts no weight
    on any logged action supports no value (as IPS gives 0 there), rather than NaN -- one NaN
    resample would turn the whole percentile interval into NaN."""
    top, bottom = np.asarray(top, dtype=float), np.asarray(bottom, dtype=float)
    return np.divide(top, bottom, out=np.zeros_like(top), where=bottom > 0)


class _Estimator:
    """A per-round term whose mean (or ratio of means) is the estimate; bootstrapped over rounds."""

    name = "estimator"

    def __init__(self, n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0):
        self.n_bootstrap, self.confidence, self.seed = n_bootstrap, confidence, seed

    def terms(self, data: LoggedFeedback) -> tuple[np.ndarray, np.ndarray | None]:
        """(numerator terms, denominator terms or None for a plain mean)."""
        raise NotImplementedError

    def ess(self, data: LoggedFeedback) -> float:
        """Kish ESS of the unclipped importance weights (the same for every estimator)."""
        return effective_sample_size(data.weights)

    def ess_clipped(self, data: LoggedFeedback) -> float | None:
        """Kish ESS of the weights as the estimator bounds them; None where it does not."""
        return None

    def estimate(self, data: LoggedFeedback) -> Estimate:
        numerator, denominator = self.terms(data)
        n = len(numerator)
        value = _ratio(numerator.sum(), denominator.sum()) if denominator is not None else numerator.mean()
        rng = np.random.default_rng(self.seed)
        samples = np.empty(self.n_bootstrap)
        for start in range(0, self.n_bootstrap, 100):  # 100 resamples at a time bounds memory
            stop = min(start + 100, self.n_bootstrap)
            index = rng.integers(0, n, size=(stop - start, n))
            top = numerator[index].sum(axis=1)
            samples[start:stop] = _ratio(top, denominator[index].sum(axis=1)) if denominator is not None else top / n
        alpha = (1 - self.confidence) / 2
        low, high = np.quantile(samples, [alpha, 1 - alpha])
        return Estimate(float(value), (float(low), float(high)), self.ess(data), n, self.ess_clipped(data))


class IPS(_Estimator):
    name = "ips"

    def terms(self, data):
        return data.weights * data.reward, None


class SNIPS(_Estimator):
    name = "snips"

    def terms(self, data):
        return data.weights * data.reward, data.weights


class DirectMethod(_Estimator):
    name = "dm"

    def terms(self, data):
        data.needs_model(self.name)
        return np.asarray(data.model_value_target, dtype=float), None


class DoublyRobust(_Estimator):
    name = "dr"

    def terms(self, data):
        data.needs_model(self.name)
        residual = data.reward - data.model_reward_logged
        return data.model_value_target + data.weights * residual, None


class SwitchDR(_Estimator):
    name = "switch_dr"

    def __init__(self, max_weight: float = 10.0, **kwargs):
        super().__init__(**kwargs)
        self.max_weight = max_weight

    def terms(self, data):
        data.needs_model(self.name)
        weights = data.weights
        keep = weights <= self.max_weight
        residual = data.reward - data.model_reward_logged
        return data.model_value_target + np.where(keep, weights * residual, 0.0), None

    def ess_clipped(self, data):
        return effective_sample_size(np.minimum(data.weights, self.max_weight))


ESTIMATORS = {cls.name: cls for cls in (IPS, SNIPS, DirectMethod, DoublyRobust, SwitchDR)}


def make_estimators(
    names: Sequence[str], n_bootstrap: int, confidence: float, seed: int, max_weight: float
) -> list[_Estimator]:
    unknown = set(names) - set(ESTIMATORS)
    if unknown:
        raise ValueError(f"unknown OPE estimator(s) {sorted(unknown)}; known: {sorted(ESTIMATORS)}")
    return [
        SwitchDR(max_weight, n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
        if n == "switch_dr"
        else ESTIMATORS[n](n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
        for n in names
    ]
