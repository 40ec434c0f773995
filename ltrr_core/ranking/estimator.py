"""The ranker as an estimator: ``RankerEstimator(config).fit(train, valid, features)`` returns a
``FittedRanker``; nothing else happens in it (no files read, nothing published, no tracking).

Every configured loss is fitted with early stopping on ``valid`` (YetiRank against QueryRMSE, a
pointwise-within-group baseline, by default) and the one with the best validation nDCG@10 is
kept. Given the training rows with raw grades (``uncorrected_train``), the kept loss is fitted on
them too, so the position-bias correction's effect is measured, not assumed. Frames hold
labelled groups only (``ranking.train.labelled_groups``): a ``request_id`` per group, ``label``,
``position`` and the feature columns.

Publishing a fitted ranker is ``FittedRanker.save`` into a directory the ranker store stages
(``ranking.train.train_night``); MLflow tracking is ``ranking.tracking``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import RankerConfig
from ..durable import write_json_atomic
from ..features.ranking import FEATURE_SPEC_VERSION
from ..models.ranker import MODEL_FILE, SPEC_FILE, Ranker

UNCORRECTED_FILE = "uncorrected.cbm"


@dataclass(frozen=True)
class LossFit:
    validation_ndcg: float  # nDCG@10 of the early-stopped model on the validation groups
    best_iteration: int


@dataclass(frozen=True)
class FittedRanker:
    model: Any  # the kept loss's CatBoostRanker
    loss: str
    features: list[str]
    losses: dict[str, LossFit]  # every loss fitted, the kept one included
    uncorrected: Any | None = None  # the kept loss on raw grades, when they were given

    def feature_importance(self) -> dict[str, float]:
        values = self.model.get_feature_importance(type="PredictionValuesChange")
        return dict(zip(self.features, np.round(values, 4).tolist()))

    def save(self, directory: Path, version: str, provenance: dict[str, Any] | None = None) -> Ranker:
        """Write the ranker the runtime loads (``model.cbm`` + ``ranker.json``, and
        ``uncorrected.cbm`` when fitted) into ``directory``; returns it loaded."""
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_model(str(directory / MODEL_FILE))
        if self.uncorrected is not None:
            self.uncorrected.save_model(str(directory / UNCORRECTED_FILE))
        spec = {
            "version": version,
            "feature_spec_version": FEATURE_SPEC_VERSION,
            "feature_names": self.features,
            "loss": self.loss,
            "created_at": datetime.now(UTC).isoformat(),
            **(provenance or {}),
        }
        write_json_atomic(directory / SPEC_FILE, spec)
        return Ranker(directory)


class RankerEstimator:
    def __init__(self, config: RankerConfig):
        self.config = config

    def fit(
        self,
        train: pd.DataFrame,
        valid: pd.DataFrame,
        features: list[str],
        uncorrected_train: pd.DataFrame | None = None,
    ) -> FittedRanker:
        fitted = {str(loss): self._fit_one(str(loss), train, valid, features) for loss in self.config.losses}
        kept = max(fitted, key=lambda name: fitted[name][1])
        uncorrected = (
            self._fit_one(kept, uncorrected_train, valid, features)[0] if uncorrected_train is not None else None
        )
        return FittedRanker(
            fitted[kept][0],
            kept,
            list(features),
            {
                name: LossFit(round(score, 4), int(model.get_best_iteration()))
                for name, (model, score) in fitted.items()
            },
            uncorrected,
        )

    def _fit_one(self, loss: str, train: pd.DataFrame, valid: pd.DataFrame, features: list[str]) -> tuple[Any, float]:
        from catboost import CatBoostRanker

        config = self.config
        model = CatBoostRanker(
            loss_function=loss,
            eval_metric="NDCG:top=10",
            iterations=config.iterations,
            depth=config.depth,
            learning_rate=config.learning_rate,
            thread_count=config.threads,
            random_seed=config.seed,
            allow_writing_files=False,
            verbose=False,
        )
        validation = _pool(valid, features)
        model.fit(_pool(train, features), eval_set=validation, early_stopping_rounds=50)
        # get_best_score() is empty for YetiRank; the shrunk model's own NDCG on the validation set is not.
        curve = model.eval_metrics(validation, ["NDCG:top=10"])
        return model, float(next(iter(curve.values()))[-1])


def _pool(frame: pd.DataFrame, features: list[str]) -> Any:
    from catboost import Pool

    return Pool(
        frame[features].to_numpy(float),
        label=frame["label"].to_numpy(float),
        group_id=pd.factorize(frame["request_id"])[0],
    )
