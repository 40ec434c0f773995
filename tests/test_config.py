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
