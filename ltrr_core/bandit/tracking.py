"""One MLflow run per nightly bandit training: parameters, metrics, the interval plot, the
window's dataset digest, and the policy as a registered model version with alias ``challenger``."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import Settings
from ..tracking import use_experiment
from .plots import plot_intervals


def log_training_run(settings: Settings, policy_dir: Path, report: dict[str, Any], outcomes: pd.DataFrame,
                     run_name: str) -> dict[str, Any]:
    import mlflow
    from catboost import CatBoostClassifier
    from mlflow import MlflowClient

    use_experiment(settings, settings.mlflow.bandit_experiment)
    ope = report["ope"]
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.log_params({"window": ",".join(report["window"]), "held_out": report["held_out"],
                           "policy_version": report["version"],
                           **{f"learner.{k}": v for k, v in settings.bandit.learner.model_dump().items()
                              if not isinstance(v, dict)}})
        metrics = {f"training.{k}": v for k, v in report["training"].items() if isinstance(v, (int, float))}
        metrics["logging_policy.value"] = ope["logging_policy"]["estimate"]
        for name, estimate in ope["learned_policy"].items():
            metrics[f"learned.{name}.estimate"] = estimate["estimate"]
            metrics[f"learned.{name}.ci_low"], metrics[f"learned.{name}.ci_high"] = estimate["ci"]
            metrics[f"learned.{name}.ess"] = estimate["ess"]
        metrics["learned.greedy_candidates"] = ope["learned_greedy_candidates"]
        mlflow.log_metrics(metrics)
        digestible = outcomes.drop(columns=["policy_features"]).astype(str)
        mlflow.log_input(mlflow.data.from_pandas(digestible, name=f"logs {report['window'][0]}..{report['window'][-1]}"),
                         context="training")
        with tempfile.TemporaryDirectory() as tmp:
            plot = plot_intervals({"estimators": ope["learned_policy"],
                                   "on_policy": {"value": ope["logging_policy"]["estimate"],
                                                 "ci": ope["logging_policy"]["ci"]}},
                                  Path(tmp) / "ope_intervals.png",
                                  f"learned policy vs logging policy (band), held out {report['held_out']}")
            mlflow.log_artifact(str(plot))
        mlflow.log_dict(report, "report.json")
        model = CatBoostClassifier()
        model.load_model(str(policy_dir / "model.cbm"))
        info = mlflow.catboost.log_model(model, name="policy", registered_model_name=settings.mlflow.policy_model_name,
                                         extra_files=[str(policy_dir / "policy.json")])
        version = info.registered_model_version
        MlflowClient().set_registered_model_alias(settings.mlflow.policy_model_name, "challenger", version)
    return {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id, "model_version": version, "experiment": settings.mlflow.bandit_experiment}
