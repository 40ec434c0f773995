"""Graded labels from feedback, and position bias estimated from the same logs.

**Labels.** Each shown result gets the weight of its strongest event (``ranker.labels``:
like 3 > stream 2 > click 1; skip and shown-not-clicked 0).

**Position bias.** People click what they look at, and they look at the top. A click at
position k therefore says less about relevance than the same click at position 1 would
if nobody looked at k. Two estimators of the examination curve theta_k (relative to position 1):

* ``randomized`` (default): the runtime shuffles the shown top k of a configured share of
  requests (RandTop-k, Joachims et al. 2017; ``ranker.position_bias.randomize_share``, logged
  per impression). There relevance is independent of position, so clicks by position measure
  examination alone. We fit the power law theta_k = k^-eta by maximum likelihood of where the
  clicks of each shuffled request fell (conditional on its number of clicks, which removes
  the request's unknown attractiveness), and report the raw click-through ratios beside it.
  Measured choice: on the simulator's logs queries rarely recur with the same results at other
  positions, and the EM below then drifts towards theta = 1 everywhere (a singleton
  (query, entity) explains its own click with gamma = 1).
* ``em``: the position-based click model P(click | q, d, k) = theta_k * gamma_(q,d) fitted by
  expectation-maximisation (Chuklin, Markov and de Rijke, *Click Models for Web Search*, 2015,
  ch. 4) on every logged (query, entity, position, clicked). Identifiable where the same
  (query, entity) is shown at several positions -- head queries with varied rankings.

The correction is inverse-propensity weighting of the labels (Joachims, Swaminathan and
Schnabel, *Unbiased Learning-to-Rank with Biased Feedback*, WSDM 2017): a positive label at
position k is divided by max(theta_k, floor), an unbiased estimate of relevance under the
model, with the floor bounding the variance. The click-model packages on PyPI are stale
(``clickmodels`` 1.0.2 from 2014, ``pyclickmodels`` 0.0.2 from 2021, Cython builds) and want
session files, not arrays; the EM is the few vectorised lines below.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..config import PositionBiasConfig, RankerConfig


def graded_labels(shown: pd.DataFrame, feedback: pd.DataFrame, config: RankerConfig) -> pd.Series:
    """Per shown row (request_id, entity_id): the weight of its strongest event, 0 if none."""
    weights = feedback.assign(weight=feedback["event"].map(config.labels).fillna(0.0))
    strongest = weights.groupby(["request_id", "entity_id"])["weight"].max()
    keys = pd.MultiIndex.from_frame(shown[["request_id", "entity_id"]])
    return pd.Series(strongest.reindex(keys).fillna(0.0).to_numpy(float), index=shown.index, name="grade")


def clicked(shown: pd.DataFrame, feedback: pd.DataFrame) -> np.ndarray:
    """Per shown row: did the person click it (any event on it starts with a click)."""
    events = set(zip(feedback["request_id"], feedback["entity_id"]))
    return np.array([(r, e) in events for r, e in zip(shown["request_id"], shown["entity_id"])], dtype=float)


@dataclass
class PositionBias:
    """Examination probability by position, relative to position 1."""

    examination: np.ndarray  # index 0 = position 1
    iterations: int
    n_impressions: int
    method: str = "em"
    eta: float | None = None  # power-law exponent (randomized)
    raw_ratios: list[float] | None = None  # click-through by position / position 1 (randomized)
    n_clicks: int | None = None

    def weights(self, positions: np.ndarray, floor: float) -> np.ndarray:
        theta = np.maximum(self.examination, floor)
        index = np.clip(np.asarray(positions, dtype=int) - 1, 0, len(theta) - 1)
        return 1.0 / theta[index]

    def to_dict(self) -> dict:
        out = {
            "method": self.method,
            "examination": [round(float(x), 4) for x in self.examination],
            "iterations": self.iterations,
            "n_impressions": self.n_impressions,
        }
        extras = {"eta": self.eta, "raw_ratios": self.raw_ratios, "n_clicks": self.n_clicks}
        return {**out, **{k: v for k, v in extras.items() if v is not None}}


def fit_position_bias(
    queries: np.ndarray,
    entities: np.ndarray,
    positions: np.ndarray,
    clicks: np.ndarray,
    config: PositionBiasConfig,
    tolerance: float = 1e-6,
) -> PositionBias:
    """EM for the position-based model on logged impressions (positions 1-based)."""
    n_positions = config.positions
    keep = (positions >= 1) & (positions <= n_positions)
    pairs = pd.factorize(pd.Series(queries[keep]).astype(str) + "\x1f" + pd.Series(entities[keep]).astype(str))[0]
    k = positions[keep].astype(int) - 1
    c = clicks[keep].astype(float)
    theta = np.full(n_positions, 0.5)
    gamma = np.full(pairs.max() + 1 if len(pairs) else 0, 0.5)
    k_count = np.maximum(np.bincount(k, minlength=n_positions), 1)
    g_count = np.bincount(pairs, minlength=len(gamma))
    iteration = 0
    for iteration in range(1, config.iterations + 1):  # noqa: B007 - the count is reported after the loop
        t, r = theta[k], gamma[pairs]
        no_click = np.maximum(1.0 - t * r, 1e-12)
        examined = c + (1 - c) * t * (1 - r) / no_click
        relevant = c + (1 - c) * (1 - t) * r / no_click
        new_theta = np.bincount(k, weights=examined, minlength=n_positions) / k_count
        gamma = np.bincount(pairs, weights=relevant, minlength=len(gamma)) / np.maximum(g_count, 1)
        converged = np.abs(new_theta - theta).max() < tolerance
        theta = new_theta
        if converged:
            break
    relative = theta / theta[0] if theta[0] > 0 else theta
    return PositionBias(np.clip(relative, 0.0, 1.0), iteration, int(keep.sum()))


def fit_position_bias_randomized(
    requests: np.ndarray, positions: np.ndarray, clicks: np.ndarray, config: PositionBiasConfig
) -> PositionBias:
    """Power-law examination from shuffled requests: maximise, over eta, the log-likelihood of
    each click's position given the positions its request showed (theta_k = k^-eta)."""
    from scipy.optimize import minimize_scalar

    keep = (positions >= 1) & (positions <= config.positions)
    frame = pd.DataFrame(
        {"request": requests[keep], "position": positions[keep].astype(int), "click": clicks[keep].astype(float)}
    )
    clicked = frame[frame["click"] > 0]
    shown = frame.groupby("request")["position"].apply(np.array)
    if clicked.empty:
        return PositionBias(np.ones(config.positions), 0, int(keep.sum()), method="randomized (no clicks)")
    log_k = np.log(clicked["position"].to_numpy(float))
    requests_of_clicks = clicked["request"].to_numpy()
    shown_lists = [shown[r] for r in requests_of_clicks]
    max_len = max(len(x) for x in shown_lists)
    padded = np.full((len(shown_lists), max_len), np.nan)
    for i, x in enumerate(shown_lists):
        padded[i, : len(x)] = x
    log_shown = np.log(padded)

    def negative_log_likelihood(eta: float) -> float:
        normaliser = np.log(np.nansum(np.exp(-eta * log_shown), axis=1))
        return float((eta * log_k + normaliser).sum())

    eta = float(minimize_scalar(negative_log_likelihood, bounds=(0.0, 5.0), method="bounded").x)
    ks = np.arange(1, config.positions + 1)
    per_position = frame.groupby("position")["click"].mean().reindex(ks)
    raw = (per_position / per_position.iloc[0]).fillna(0.0).to_numpy() if per_position.iloc[0] > 0 else None
    return PositionBias(
        ks**-eta,
        1,
        int(keep.sum()),
        method="randomized",
        eta=round(eta, 4),
        raw_ratios=None if raw is None else [round(float(x), 4) for x in raw],
        n_clicks=int(len(clicked)),
    )


def no_position_bias(positions: int) -> PositionBias:
    return PositionBias(np.ones(positions), 0, 0, method="none")
