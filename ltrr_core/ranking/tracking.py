"""One MLflow run per ranker training: parameters, metrics (validation per loss, evaluation-day
nDCG@10 / MRR@10 overall and by query type for the ranker, the fusion baseline and the
champion -- logged side by side so runs compare in the MLflow UI), the feature-importance and
examination plots, the training days' dataset digest, and the model as a registered version
with alias ``challenger``."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import Settings
from ..tracking import register_challenger, use_experiment


def _flat_metrics(report: dict[str, Any]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for loss, values in report["losses"].items():
        metrics[f"validation.{loss}.ndcg_at_10"] = values["validation_ndcg@10"]
    for position, value in enumerate((report.get("position_bias") or {}).get("examination", []), start=1):
        metrics[f"examination.position_{position}"] = value
    for name, scores in report["evaluation"].items():
        if not isinstance(scores, dict) or "ndcg@10" not in scores:
            continue
        for metric in ("ndcg@10", "mrr@10"):
            if scores.get(metric) is not None:
                metrics[f"{name}.{metric.replace('@', '_at_')}"] = scores[metric]
        for kind, values in scores.get("by_query_type", {}).items():
            metrics[f"{name}.{kind}.ndcg_at_10"] = values["ndcg@10"]
    return metrics


def _plots(report: dict[str, Any], directory: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    importance = pd.Series(report["feature_importance"]).sort_values().tail(20)
    fig, ax = plt.subplots(figsize=(7, 6))
    importance.plot.barh(ax=ax)
    ax.set_title(f"feature importance (PredictionValuesChange), {report['loss']}")
    fig.tight_layout()
    fig.savefig(directory / "feature_importance.png", dpi=110)
    plt.close(fig)
    if not (report.get("position_bias") or {}).get("examination"):
        return [directory / "feature_importance.png"]  # real engagement only: no clicks by position
    examination = report["position_bias"]["examination"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(range(1, len(examination) + 1), examination, marker="o", label="estimated (EM, PBM)")
    ax.set_xlabel("position")
    ax.set_ylabel("examination relative to position 1")
    ax.set_ylim(0, 1.05)
    ax.legend()
    fig.tight_layout()
    fig.savefig(directory / "examination.png", dpi=110)
    plt.close(fig)
    return [directory / "feature_importance.png", directory / "examination.png"]


def _dataset_name(report: dict[str, Any]) -> str:
    days = report["train_days"]
    parts = [f"logged {days[0]}..{days[-1]}"] if days else []
    if "real" in report:
        parts.append("real CPCD train queries")
    return "ranking rows " + " + ".join(parts)


def log_ranker_run(
    settings: Settings, ranker_dir: Path, report: dict[str, Any], training_rows: pd.DataFrame, run_name: str
) -> dict[str, Any]:
    import mlflow
    from catboost import CatBoostRanker
    from mlflow.models import infer_signature

    # The experiment goes to start_run explicitly: the nightly trains policy and ranker in two
    # threads, and MLflow's "current experiment" is process-wide.
    experiment_id = use_experiment(settings, settings.mlflow.ranker_experiment)
    with mlflow.start_run(run_name=run_name, experiment_id=experiment_id) as run:
        mlflow.log_params(
            {
                "sources": ",".join(report.get("sources", ["logs"])),
                "train_days": ",".join(report["train_days"]) or "none",
                "validation_day": report["validation_day"] or "real validation queries",
                "evaluation_day": report["evaluation_day"],
                "loss": report["loss"],
                "ranker_version": report["version"],
                "champion": report["champion"] or "none",
                **{
                    f"ranker.{k}": v for k, v in settings.ranker.model_dump().items() if not isinstance(v, (dict, list))
                },
                "ranker.position_bias.method": settings.ranker.position_bias.method,
            }
        )
        mlflow.log_metrics(_flat_metrics(report))
        # mlflow.data registers from_pandas at import time via setattr, so its stubs don't show it.
        dataset = mlflow.data.from_pandas(  # type: ignore[attr-defined]
            training_rows.astype(str), name=_dataset_name(report)
        )
        mlflow.log_input(dataset, context="training")
        with tempfile.TemporaryDirectory() as tmp:
            for plot in _plots(report, Path(tmp)):
                mlflow.log_artifact(str(plot))
        mlflow.log_dict(report, "report.json")
        model = CatBoostRanker()
        model.load_model(str(ranker_dir / "model.cbm"))
        example = ranker_input_example(ranker_dir, training_rows)
        info = mlflow.catboost.log_model(
            model,
            name="ranker",
            signature=infer_signature(example, model.predict(example)),
            input_example=example,
            registered_model_name=settings.mlflow.ranker_model_name,
            extra_files=[str(ranker_dir / "ranker.json")],
        )
        version = info.registered_model_version
        challenger = register_challenger(settings, settings.mlflow.ranker_model_name, version, report["evaluation_day"])
    return {
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "model_version": version,
        "experiment": settings.mlflow.ranker_experiment,
        "challenger": challenger,
    }


def ranker_input_example(ranker_dir: Path, training_rows: pd.DataFrame, rows: int = 5) -> pd.DataFrame:
    """What the ranker model reads, as MLflow shows it: the first training rows' feature values,
    in the spec's column order (``ranker.json``); a missing value stays NaN, as at serving."""
    names = json.loads((Path(ranker_dir) / "ranker.json").read_text(encoding="utf-8"))["feature_names"]
    return training_rows[names].head(rows).astype(float).reset_index(drop=True)
