"""MLflow set-up shared by the training jobs: the tracking store and experiments from config,
artifacts under data_dir (never the working directory)."""

from __future__ import annotations

from .config import Settings


def tracking_uri(settings: Settings) -> str:
    if settings.mlflow.tracking_uri:
        return settings.mlflow.tracking_uri
    root = settings.data_dir / "mlflow"
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


def use_experiment(settings: Settings, name: str) -> str:
    """Point MLflow at the configured store and experiment (created with artifacts under data_dir)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri(settings))
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        artifacts = (settings.data_dir / "mlflow" / "artifacts" / name).resolve()
        artifacts.mkdir(parents=True, exist_ok=True)
        experiment_id = mlflow.create_experiment(name, artifact_location=artifacts.as_uri())
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id
