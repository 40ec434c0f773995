"""Shared fixtures: settings pointed at temporary directories, and one built platform.

The real data is read from ../shared/data (override with LTRR_SHARED_DATA_DIR). MLflow,
Prefect and every data directory point at temporary paths.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEST_CONFIG = ROOT / "configs" / "test.yaml"

_STATE = Path(tempfile.mkdtemp(prefix="ltrr-tests-"))
from ltrr_core.env import apply_offline_env  # noqa: E402

apply_offline_env(_STATE)
os.environ["PREFECT_HOME"] = str(_STATE / "prefect")

from ltrr_core.config import Settings, load_settings  # noqa: E402


def make_settings(data_dir: Path, **overrides) -> Settings:
    return load_settings(TEST_CONFIG, data_dir=str(data_dir), **overrides)


@pytest.fixture(scope="session")
def test_settings(tmp_path_factory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("platform"))


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def built_platform(test_settings, prefect_harness, tmp_path_factory):
    """Run both real flows once on the test profile; returns (settings, catalog manifest, build manifest)."""
    import yaml

    from flows.build_indexes import build_indexes
    from flows.content_understanding import content_understanding

    config_file = tmp_path_factory.mktemp("config") / "platform.yaml"
    config_file.write_text(yaml.safe_dump({"extends": str(TEST_CONFIG), "data_dir": str(test_settings.data_dir)}))
    catalog_manifest = content_understanding(str(config_file))
    build_manifest = build_indexes(str(config_file))
    return test_settings, catalog_manifest, build_manifest, config_file


@pytest.fixture(scope="session")
def searcher(built_platform):
    from ltrr_core.retrieval.searcher import load_searcher

    return load_searcher(built_platform[0])


@pytest.fixture(scope="session")
def real_entities(tmp_path_factory):
    """Real CPCD tracks + every Last.fm artist, linked and annotated (no indexes): ~33k entities."""
    from ltrr_core.catalog import adapters
    from ltrr_core.catalog.linking import link_entities
    from ltrr_core.catalog.understanding import annotate_rules

    settings = make_settings(tmp_path_factory.mktemp("qu-catalog"), **{"catalog.max_rows_per_source": {}})
    frames = {"cpcd": adapters.read_cpcd_tracks(settings), "lastfm": adapters.read_lastfm_artists(settings)}
    linked, _ = link_entities(
        frames, ["lastfm"], settings.catalog.inherited_tag_weight, settings.catalog.max_tags_per_entity
    )
    return annotate_rules(linked, settings.content_understanding)


@pytest.fixture(scope="session")
def understander(real_entities, test_settings):
    from ltrr_core.query import QueryUnderstander
    from ltrr_core.query.resources import build_vocabulary, entity_fields

    vocabulary = build_vocabulary(
        entity_fields(real_entities), real_entities, test_settings.query_understanding.min_tag_entities
    )
    return QueryUnderstander(vocabulary, test_settings.query_understanding, test_settings.content_understanding)


@pytest.fixture(scope="session")
def q2e_platform(built_platform):
    """The built platform plus one run of the generate_q2e flow."""
    from flows.generate_q2e import generate_q2e

    settings, _, _, config_file = built_platform
    return settings, generate_q2e(str(config_file)), config_file


@pytest.fixture(scope="session")
def bundle_dir(q2e_platform):
    """A bundle built from the test platform and gated (a dry-run promotion whose gates all pass),
    so that `ltrr serve --bundle` may serve it."""
    from ltrr_core.artifacts import build_bundle
    from ltrr_core.promotion import promote

    settings = q2e_platform[0]
    bundle = settings.data_dir / "bundles" / build_bundle(settings)["bundle_id"]
    decision = promote(settings, bundle, dry_run=True)
    assert all(g.passed for g in decision.gates), decision.reasons
    return bundle


@pytest.fixture
def gated_bundle_dir(bundle_dir, q2e_platform):
    """``bundle_dir``, gated again if a test has replaced the promotion history since (gating is
    read from the history: `ltrr serve --bundle` takes only a bundle that passed the gates)."""
    from ltrr_core.artifacts.champion import gated_bundles
    from ltrr_core.promotion import promote

    settings = q2e_platform[0]
    if bundle_dir.name not in gated_bundles(settings):
        decision = promote(settings, bundle_dir, dry_run=True)
        assert all(g.passed for g in decision.gates), decision.reasons
    return bundle_dir
