"""One MLflow run per nightly bandit training: parameters, metrics, the interval plot, the
window's dataset digest, and the policy as a registered model version with alias ``challenger``;
one per nightly evaluation (``ltrr bandit evaluate``): per-night metrics, the pooled comparison,
the learning-curve plot."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import Settings
from ..models.policy import LearnedPolicy
from ..tracking import register_challenger, use_experiment
from .plots import plot_intervals, plot_nights


def log_training_run(
    settings: Settings, policy_dir: Path, report: dict[str, Any], outcomes: pd.DataFrame, run_name: str
) -> dict[str, Any]:
    import mlflow
    from catboost import CatBoostClassifier
    from mlflow.models import infer_signature

    use_experiment(settings, settings.mlflow.bandit_experiment)
    ope = report["ope"]
    with mlflow.start_run(run_name=run_name) as run:
        mlflow.log_params(
            {
                "window": ",".join(report["window"]),
                "held_out": report["held_out"],
                "policy_version": report["version"],
                **{
                    f"learner.{k}": v
                    for k, v in settings.bandit.learner.model_dump().items()
                    if not isinstance(v, dict)
                },
            }
        )
        metrics = {f"training.{k}": v for k, v in report["training"].items() if isinstance(v, (int, float))}
        metrics["logging_policy.value"] = ope["logging_policy"]["estimate"]
        for name, estimate in ope["learned_policy"].items():
            metrics[f"learned.{name}.estimate"] = estimate["estimate"]
            metrics[f"learned.{name}.ci_low"], metrics[f"learned.{name}.ci_high"] = estimate["ci"]
            metrics[f"learned.{name}.ess"] = estimate["ess"]
        metrics["learned.greedy_candidates"] = ope["learned_greedy_candidates"]
        mlflow.log_metrics(metrics)
        digestible = outcomes.drop(columns=["policy_features"]).astype(str)
        # mlflow.data registers from_pandas at import time via setattr, so its stubs don't show it.
        dataset = mlflow.data.from_pandas(  # type: ignore[attr-defined]
            digestible, name=f"logs {report['window'][0]}..{report['window'][-1]}"
        )
        mlflow.log_input(dataset, context="training")
        with tempfile.TemporaryDirectory() as tmp:
            plot = plot_intervals(
                {
                    "estimators": ope["learned_policy"],
                    "on_policy": {"value": ope["logging_policy"]["estimate"], "ci": ope["logging_policy"]["ci"]},
                },
                Path(tmp) / "ope_intervals.png",
                f"learned policy vs logging policy (band), held out {report['held_out']}",
            )
            mlflow.log_artifact(str(plot))
        mlflow.log_dict(report, "report.json")
        model = CatBoostClassifier()
        model.load_model(str(policy_dir / "model.cbm"))
        example = policy_input_example(LearnedPolicy(policy_dir), outcomes)
        info = mlflow.catboost.log_model(
            model,
            name="policy",
            signature=infer_signature(example, model.predict_proba(example)[:, 1]),
            input_example=example,
            registered_model_name=settings.mlflow.policy_model_name,
            extra_files=[str(policy_dir / "policy.json")],
        )
        version = info.registered_model_version
        challenger = register_challenger(settings, settings.mlflow.policy_model_name, version, report["window"][-1])
    return {
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "model_version": version,
        "experiment": settings.mlflow.bandit_experiment,
        "challenger": challenger,
    }


def log_evaluation_run(settings: Settings, nights: list[dict[str, Any]], pooled: dict[str, Any]) -> str:
    """Per night (step = night index) the hit rates and the OPE check; the pooled comparison as
    metrics; the learning-curve plot and the whole evaluation as JSON. Returns the run id."""
    import mlflow

    experiment_id = use_experiment(settings, settings.mlflow.bandit_experiment)
    with mlflow.start_run(
        run_name=f"evaluate {nights[0]['day']}..{nights[-1]['day']}", experiment_id=experiment_id
    ) as run:
        mlflow.log_params(
            {
                "nights": len(nights),
                "first_day": nights[0]["day"],
                "queries_per_day": nights[0]["simulation"]["requests"],
            }
        )
        for step, night in enumerate(nights):
            m = night["candidate_hit_rate"]
            metrics = {
                "served": m["served"],
                "oracle": m["oracle"],
                "measured_value": night["measured_value"],
                **{f"alone.{k}": v for k, v in m["single_strategies"].items()},
            }
            learned = m.get("learned")
            if learned:
                metrics.update(
                    {
                        "learned": learned["hit_rate"],
                        "learned.candidates": learned["avg_candidates"],
                        "best_static_mixture.hindsight": learned["best_static_mixture"]["hit_rate"],
                    }
                )
                prior = learned.get("static_from_previous_day")
                if prior:
                    metrics["best_static_mixture.previous_day"] = prior["best_static_mixture"]["hit_rate"]
            if "previous_estimate" in night:
                metrics["previous_estimate"] = night["previous_estimate"]["estimate"]
            mlflow.log_metrics(metrics, step=step)
        if pooled:
            summary = {"pooled.learned": pooled["learned"]}
            for name, row in pooled["baselines"].items():
                summary[f"pooled.{name}"] = row["hit_rate"]
                summary[f"pooled.learned_minus_{name}.ci_low"], summary[f"pooled.learned_minus_{name}.ci_high"] = row[
                    "learned_minus_ci"
                ]
            mlflow.log_metrics(summary)
        with tempfile.TemporaryDirectory() as tmp:
            mlflow.log_artifact(str(plot_nights(nights, Path(tmp) / "nights.png")))
        mlflow.log_dict({"nights": nights, "pooled": pooled}, "evaluation.json")
    return run.info.run_id


def policy_input_example(policy: LearnedPolicy, outcomes: pd.DataFrame, requests: int = 2) -> pd.DataFrame:
    """What the policy model reads, as MLflow shows it: the first logged requests' context
    features, each beside every plan's per-strategy depths (``LearnedPolicy.hit_matrix``)."""
    logged = [json.loads(f) if isinstance(f, str) and f else {} for f in outcomes["policy_features"].head(requests)]
    contexts = np.array([[row.get(f, 0.0) for f in policy.feature_names] for row in logged or [{}]], dtype=float)
    depths = np.array([[policy.plans[p].get(s, 0) for s in policy.strategies] for p in policy.plan_names], dtype=float)
    rows = np.hstack([np.repeat(contexts, len(depths), axis=0), np.tile(depths, (len(contexts), 1))])
    return pd.DataFrame(rows, columns=[*policy.feature_names, *(f"depth:{s}" for s in policy.strategies)])
