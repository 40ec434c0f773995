"""Flow: the window's logs (contract-checked) -> counterfactual replay -> train the retrieval
policy -> off-policy estimates -> MLflow run + registered model (alias challenger)."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow

from ltrr_core.config import load_settings
from ltrr_core.locking import writer_lock
from tasks.bandit import replay_window, track_policy, train_policy, validate_window_logs


@flow(name="train_bandit", log_prints=True)
def train_bandit(day: str, window_days: int | None = None, config_path: str | None = None) -> dict[str, Any]:
    settings = load_settings(config_path)
    window = window_days or settings.bandit.learner.window_days
    with writer_lock(settings, f"train_bandit {day}"):
        data = validate_window_logs(settings, date.fromisoformat(day), window)
        ranks = replay_window(settings, data)
        policy_dir, report = train_policy(settings, data, ranks)
        tracked = track_policy(settings, policy_dir, report, data, f"train_bandit {day}")
        return {**report, "policy_dir": str(policy_dir), "mlflow": tracked}


if __name__ == "__main__":
    import sys

    train_bandit(sys.argv[1])
