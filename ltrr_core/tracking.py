"""MLflow set-up shared by the training jobs: the tracking store and experiments from config,
artifacts under data_dir (never the working directory)."""

from __future__ import annotations

from .config import Settings

# MLflow 3's UI opens an experiment on its GenAI overview unless the URL asks for the training view.
MODEL_TRAINING_VIEW = "?workflowType=machine_learning"


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


CHALLENGER = "challenger"
NIGHT_TAG = "ltrr.night"  # the day a registered model version learned up to


def register_challenger(settings: Settings, model_name: str, version: str | int, night: str) -> bool:
    """Tag a newly registered model version with its night and point the ``challenger`` alias at
    it, unless the current challenger learned from a later night: a backfill of past dates
    registers its models but never moves the alias backwards. Returns whether the alias moved."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri(settings))
    client.set_model_version_tag(model_name, str(version), NIGHT_TAG, night)
    try:
        current = client.get_model_version_by_alias(model_name, CHALLENGER).tags.get(NIGHT_TAG, "")
    except MlflowException:  # no challenger yet
        current = ""
    if current > night:
        return False
    client.set_registered_model_alias(model_name, CHALLENGER, str(version))
    return True
