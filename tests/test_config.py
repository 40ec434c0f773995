import pytest
from pydantic import ValidationError

from ltrr_core.config import DEFAULT_CONFIG, load_settings
from tests.conftest import TEST_CONFIG


def test_default_config_validates_and_resolves_paths():
    settings = load_settings(DEFAULT_CONFIG)
    assert settings.profile == "default"
    assert settings.catalog.profiles["default"] == ["cpcd", "fma", "lastfm"]
    assert settings.data_dir.is_absolute() and settings.shared_data_dir.is_absolute()
    assert settings.shared_path(settings.catalog.paths.cpcd_tracks).is_file()


def test_profile_file_extends_default():
    settings = load_settings(TEST_CONFIG)
    assert settings.catalog.max_rows_per_source == {"fma": 3000, "lastfm": 3000}
    assert settings.bm25.field_weights["title"] == 3  # inherited


def test_unknown_key_and_bad_value_are_rejected_with_the_field_name(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"extends: {DEFAULT_CONFIG}\nbm25:\n  k1: fast\n")
    with pytest.raises(ValidationError, match="bm25.k1"):
        load_settings(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text(f"extends: {DEFAULT_CONFIG}\nvector:\n  nprobe: 3\n")
    with pytest.raises(ValidationError, match="nprobe"):
        load_settings(typo)


def test_unknown_profile_is_rejected(tmp_path):
    with pytest.raises(ValidationError, match="profile 'huge'"):
        load_settings(DEFAULT_CONFIG, profile="huge")


def test_environment_overrides_data_dirs(monkeypatch, tmp_path):
    monkeypatch.setenv("LTRR_DATA_DIR", str(tmp_path / "state"))
    assert load_settings(DEFAULT_CONFIG).data_dir == (tmp_path / "state").resolve()


def test_every_shipped_config_loads_and_explores_at_least_its_floor():
    from ltrr_core.config import PolicyConfig

    assert PolicyConfig().min_epsilon == 0.02  # the documented default floor
    for path in sorted((DEFAULT_CONFIG.parent).glob("*.yaml")):
        settings = load_settings(path)
        assert settings.runtime.policy.epsilon >= settings.runtime.policy.min_epsilon > 0, path
        assert settings.bandit.learner.epsilon >= settings.bandit.learner.min_epsilon > 0, path


@pytest.mark.parametrize(
    ("section", "yaml_body", "message"),
    [
        (
            "runtime.policy",
            "runtime:\n  policy:\n    epsilon: 0\n",
            r"runtime\.policy\.epsilon 0\.0 is below the exploration floor runtime\.policy\.min_epsilon 0\.02",
        ),
        (
            "bandit.learner",
            "bandit:\n  learner:\n    epsilon: 0.01\n",
            r"bandit\.learner\.epsilon 0\.01 is below the exploration floor bandit\.learner\.min_epsilon 0\.02",
        ),
        # A raised floor binds the shipped epsilon (runtime.policy.epsilon is 0.2 in default.yaml).
        (
            "runtime.policy",
            "runtime:\n  policy:\n    min_epsilon: 0.3\n",
            r"runtime\.policy\.epsilon 0\.2 is below the exploration floor runtime\.policy\.min_epsilon 0\.3",
        ),
        # The floor itself cannot be switched off.
        (
            "bandit.learner",
            "bandit:\n  learner:\n    epsilon: 0\n    min_epsilon: 0\n",
            r"bandit\.learner\.min_epsilon",
        ),
    ],
)
def test_an_epsilon_below_the_exploration_floor_is_refused_naming_field_value_and_floor(
    tmp_path, section, yaml_body, message
):
    bad = tmp_path / "no_exploration.yaml"
    bad.write_text(f"extends: {DEFAULT_CONFIG}\n{yaml_body}")
    with pytest.raises(ValidationError, match=message):
        load_settings(bad)
    # the same through a dotted override, the way tests and tools change one value
    with pytest.raises(ValidationError, match=rf"{section}\.(min_)?epsilon"):
        load_settings(DEFAULT_CONFIG).with_overrides(**{f"{section}.epsilon": 0.0})


def test_an_epsilon_at_a_lowered_floor_is_accepted(tmp_path):
    ok = tmp_path / "low_floor.yaml"
    ok.write_text(f"extends: {DEFAULT_CONFIG}\nbandit:\n  learner:\n    epsilon: 0.005\n    min_epsilon: 0.005\n")
    assert load_settings(ok).bandit.learner.epsilon == 0.005
