"""Flow: real engagement (CPCD train searches over the served bundle's retrieval) and/or the logs of
the days before D (contract-checked), per ``ranker.sources`` -> training set (contract-checked) ->
CatBoost ranker (losses compared, early stopping on the validation part) -> evaluation against the
fusion and the champion -> MLflow run + registered model (alias challenger)."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow

from ltrr_core.config import load_settings
from ltrr_core.locking import writer_lock
from tasks.ranker import split_days, track_ranker, train_ranker


@flow(name="train_ranker", log_prints=True)
def train_ranker_flow(day: str, window_days: int | None = None, config_path: str | None = None) -> dict[str, Any]:
    settings = load_settings(config_path)
    window = window_days or settings.ranker.window_days
    with writer_lock(settings, f"train_ranker {day}"):
        if "logs" in settings.ranker.sources:
            split_days(settings, date.fromisoformat(day), window)
        ranker_dir, report, rows = train_ranker(settings, date.fromisoformat(day), window)
        tracked = track_ranker(settings, ranker_dir, report, rows, f"train_ranker {day}")
        return {**report, "ranker_dir": str(ranker_dir), "mlflow": tracked}


if __name__ == "__main__":
    import sys

    train_ranker_flow(sys.argv[1])
