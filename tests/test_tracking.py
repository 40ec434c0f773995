"""MLflow registry: the challenger alias follows the newest night, never a backfilled older one."""

from __future__ import annotations

from mlflow import MlflowClient

from ltrr_core.config import load_settings
from ltrr_core.tracking import CHALLENGER, NIGHT_TAG, register_challenger, tracking_uri


def test_a_backfill_of_past_nights_does_not_move_the_challenger_backwards(tmp_path):
    settings = load_settings(None, data_dir=str(tmp_path))
    client = MlflowClient(tracking_uri(settings))
    client.create_registered_model("ranker")
    versions = [client.create_model_version("ranker", str(tmp_path / f"model-{i}")).version for i in range(4)]

    assert register_challenger(settings, "ranker", versions[0], "2026-01-03")
    assert register_challenger(settings, "ranker", versions[1], "2026-01-05")  # the nightly moves it forward
    assert not register_challenger(settings, "ranker", versions[2], "2026-01-04")  # a backfill of an older date
    challenger = client.get_model_version_by_alias("ranker", CHALLENGER)
    assert challenger.version == versions[1] and challenger.tags[NIGHT_TAG] == "2026-01-05"
    assert client.get_model_version("ranker", versions[2]).tags[NIGHT_TAG] == "2026-01-04"  # registered, tagged
    assert register_challenger(settings, "ranker", versions[3], "2026-01-05")  # a re-run of the same night moves it
    assert client.get_model_version_by_alias("ranker", CHALLENGER).version == versions[3]
