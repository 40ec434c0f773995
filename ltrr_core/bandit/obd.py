"""The Open Bandit Dataset check: off-policy estimates against a real on-policy truth.

ZOZO logged the same fashion carousel with two policies, uniform random and Bernoulli
Thompson sampling, 10,000 rounds each (``../shared/data/obd``). The random policy's click rate
is known from its own log; estimating it from the Thompson-sampling log with each estimator,
and checking whether the interval covers the on-policy value, tests the estimators on real
logged propensities rather than on data we generated.

Action = the item shown at the round's position (80 items); the uniform policy's probability
of any item at a position is 1/80 (the random log's ``propensity_score``). The reward model for
DM/DR is a smoothed click rate per (item, position), cross-fitted (each fold predicted by a
model fitted on the other folds) so the DR correction is not fitted to its own residuals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import Settings
from .ope import IPS, LoggedFeedback, make_estimators

COLUMNS = ["item_id", "position", "click", "propensity_score"]


def read_obd(path: Path) -> pd.DataFrame:
    """One OBD log, checked: the columns exist, clicks are 0/1, propensities lie in (0, 1]."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"Open Bandit Dataset log {path} does not exist")
    frame = pd.read_csv(path, index_col=0)
    missing = set(COLUMNS) - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
    rules = {
        "click is 0 or 1": frame["click"].isin([0, 1]),
        "propensity_score in (0, 1]": frame["propensity_score"].between(0, 1, inclusive="right"),
        "position >= 1": frame["position"] >= 1,
    }
    for rule, ok in rules.items():
        if not ok.all():
            row = frame.index[~ok.to_numpy()][0]
            raise ValueError(f"{path}: round {row} breaks the rule '{rule}'")
    return frame


class CellRateModel:
    """P(click | item, position) as a click rate shrunk towards the position's rate with
    ``prior`` pseudo-rounds: the carousel's only context signal strong enough to model here."""

    def __init__(self, prior: float):
        self.prior = prior

    def fit(self, frame: pd.DataFrame) -> CellRateModel:
        by_position = frame.groupby("position")["click"].mean()
        cells = frame.groupby(["item_id", "position"])["click"].agg(["sum", "count"])
        base = by_position.reindex(cells.index.get_level_values("position")).to_numpy()
        self.rates = pd.Series((cells["sum"] + self.prior * base) / (cells["count"] + self.prior), index=cells.index)
        self.position_rates = by_position
        return self

    def predict(self, items: np.ndarray, positions: np.ndarray) -> np.ndarray:
        keys = pd.MultiIndex.from_arrays([items, positions], names=["item_id", "position"])
        fallback = self.position_rates.reindex(positions).fillna(self.position_rates.mean()).to_numpy()
        return np.where(keys.isin(self.rates.index), self.rates.reindex(keys).to_numpy(), fallback)


def _cross_fitted(
    frame: pd.DataFrame, items: np.ndarray, prior: float, folds: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(model reward of the logged item, mean model reward over all items at the round's position)."""
    fold = np.random.default_rng(seed).integers(0, folds, size=len(frame))
    logged, uniform = np.zeros(len(frame)), np.zeros(len(frame))
    for k in range(folds):
        model = CellRateModel(prior).fit(frame[fold != k])
        rows = frame[fold == k]
        logged[fold == k] = model.predict(rows["item_id"].to_numpy(), rows["position"].to_numpy())
        grid = model.predict(np.tile(items, len(rows)), np.repeat(rows["position"].to_numpy(), len(items)))
        uniform[fold == k] = grid.reshape(len(rows), len(items)).mean(axis=1)
    return logged, uniform


def ope_obd(settings: Settings) -> dict[str, Any]:
    """Estimate the uniform policy's click rate from the Thompson-sampling log; compare."""
    config = settings.bandit.ope
    logging = read_obd(settings.shared_path(settings.bandit.obd.logging_log))
    target = read_obd(settings.shared_path(settings.bandit.obd.target_log))
    items = np.array(sorted(set(logging["item_id"]) | set(target["item_id"])))
    on_policy = IPS(config.n_bootstrap, config.confidence, config.seed).estimate(
        LoggedFeedback(
            target["click"].to_numpy(float),
            target["propensity_score"].to_numpy(),
            target["propensity_score"].to_numpy(),
        )
    )
    logged, uniform = _cross_fitted(logging, items, config.reward_model_prior, config.cross_fit_folds, config.seed)
    data = LoggedFeedback(
        logging["click"].to_numpy(float),
        logging["propensity_score"].to_numpy(),
        np.full(len(logging), 1.0 / len(items)),
        logged,
        uniform,
    )
    estimators = {}
    for estimator in make_estimators(
        config.estimators, config.n_bootstrap, config.confidence, config.seed, config.max_weight
    ):
        result = estimator.estimate(data)
        low, high = result.ci
        estimators[estimator.name] = {
            **result.to_dict(),
            "covers_on_policy": bool(low <= on_policy.value <= high),
            "relative_error": round((result.value - on_policy.value) / on_policy.value, 3),
        }
    return {
        "on_policy": {"value": round(on_policy.value, 6), "ci": [round(c, 6) for c in on_policy.ci], "n": on_policy.n},
        "estimators": estimators,
        "logging_policy": {
            "name": "bernoulli_thompson_sampling",
            "rounds": len(logging),
            "click_rate": float(logging["click"].mean()),
        },
        "target_policy": {"name": "uniform_random", "n_actions": len(items)},
        "confidence": config.confidence,
    }
