"""The ranker artifact as the runtime loads it: ``ranker.json`` (feature spec, loss, provenance)
and ``model.cbm`` (CatBoost's native format: no pickles). Loading needs catboost and numpy,
nothing of the training stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Settings
from ..features.ranking import FEATURE_SPEC_VERSION
from ..store import VersionedStore

SPEC_FILE = "ranker.json"
MODEL_FILE = "model.cbm"


class RankerError(ValueError):
    """A ranker artifact the runtime must not use; the message names the rule."""


class Ranker:
    def __init__(self, directory: Path, model_file: str = MODEL_FILE):
        from catboost import CatBoost

        directory = Path(directory)
        self.spec: dict[str, Any] = json.loads((directory / SPEC_FILE).read_text(encoding="utf-8"))
        if self.spec.get("feature_spec_version") != FEATURE_SPEC_VERSION:
            raise RankerError(
                f"{directory / SPEC_FILE}: feature spec version {self.spec.get('feature_spec_version')!r}; "
                f"this runtime computes version {FEATURE_SPEC_VERSION}"
            )
        self.version: str = self.spec["version"]
        self.feature_names: list[str] = self.spec["feature_names"]
        self.model = CatBoost()
        self.model.load_model(str(directory / model_file))

    def check_features(self, names: list[str]) -> None:
        if names != self.feature_names:
            raise RankerError(
                f"ranker {self.version} was trained on features {self.feature_names}, the runtime computes {names}"
            )

    def score(self, features: np.ndarray) -> np.ndarray:
        if not len(features):
            return np.zeros(0)
        return np.asarray(self.model.predict(features), dtype=float)

    def explain(self, features: np.ndarray, top: int) -> list[list[dict[str, float]]]:
        """Per row: the ``top`` features by absolute SHAP contribution to its score."""
        from catboost import Pool

        if not len(features) or top <= 0:
            return [[] for _ in range(len(features))]
        shap = self.model.get_feature_importance(Pool(features), type="ShapValues")[:, :-1]
        out = []
        for row in shap:
            order = np.argsort(-np.abs(row))[:top]
            out.append([{"feature": self.feature_names[i], "contribution": round(float(row[i]), 4)} for i in order])
        return out


def ranker_store(settings: Settings) -> VersionedStore:
    """Trained rankers (``R<stamp>/``: model.cbm, ranker.json, report.json), ``LATEST`` the newest."""
    return VersionedStore(
        settings.data_dir / settings.ranker.out_dir, "ranker", "R", hint="run `ltrr ranker train` first"
    )
