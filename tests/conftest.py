"""Shared fixtures: settings pointed at temporary directories, and one built platform.

The real data is read from ../shared/data (override with LTRR_SHARED_DATA_DIR). MLflow,
Prefect and every data directory point at temporary paths.
"""

from __future__ import annotations

import os
import pickle
import shutil
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


@pytest.fixture(scope="session", autouse=True)
def _encoder_exports(tmp_path_factory):
    """One ONNX export cache for the run (exports are keyed by weights, precision and libraries):
    every test platform, the workers' copies and the flows' subprocesses export each encoder once."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    os.environ["LTRR_ENCODER_EXPORTS"] = str(root / "encoder-exports")
    yield
    os.environ.pop("LTRR_ENCODER_EXPORTS", None)


@pytest.fixture(scope="session")
def test_settings(tmp_path_factory) -> Settings:
    return make_settings(tmp_path_factory.mktemp("platform"))


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


# The fixtures that need the built platform (directly or through another fixture).
PLATFORM_FIXTURES = frozenset({"built_platform", "q2e_platform", "searcher", "bundle_dir", "gated_bundle_dir"})


def _build_platform(config_file: Path, out: Path) -> None:
    """Both real flows and generate_q2e on the test profile; their returns pickled to ``out``."""
    from flows.build_indexes import build_indexes
    from flows.content_understanding import content_understanding
    from flows.generate_q2e import generate_q2e

    catalog_manifest = content_understanding(str(config_file))
    build_manifest = build_indexes(str(config_file))
    q2e_manifest = generate_q2e(str(config_file))
    out.write_bytes(pickle.dumps((catalog_manifest, build_manifest, q2e_manifest)))


def _platform_config(data_dir: Path, directory: Path) -> Path:
    import yaml

    config_file = directory / "platform.yaml"
    config_file.write_text(yaml.safe_dump({"extends": str(TEST_CONFIG), "data_dir": str(data_dir)}))
    return config_file


@pytest.fixture(scope="session")
def _platform(test_settings, prefect_harness, tmp_path_factory):
    """The test platform, built once per run: (settings, catalog manifest, build manifest, Q2E
    manifest, config file). Under pytest-xdist the first worker to ask builds it in the run's
    shared temporary directory (a file lock) and every worker copies it into its own data
    directory, so that tests which write to the platform do not see each other's writes."""
    data_dir = test_settings.data_dir
    config_file = _platform_config(data_dir, tmp_path_factory.mktemp("config"))
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        manifests = tmp_path_factory.mktemp("manifests") / "platform.pickle"
        _build_platform(config_file, manifests)
    else:
        from filelock import FileLock

        shared = tmp_path_factory.getbasetemp().parent / "shared-platform"  # this run's, all workers'
        shared.mkdir(exist_ok=True)
        manifests = shared / "platform.pickle"
        with FileLock(str(shared / "build.lock")):
            if not manifests.exists():
                _build_platform(_platform_config(shared / "data", shared), manifests)
        shutil.copytree(shared / "data", data_dir, dirs_exist_ok=True)
    catalog_manifest, build_manifest, q2e_manifest = pickle.loads(manifests.read_bytes())
    return test_settings, catalog_manifest, build_manifest, q2e_manifest, config_file


@pytest.fixture(scope="session")
def built_platform(_platform):
    """The built platform: (settings, catalog manifest, build manifest, config file). Its Q2E
    table is built too (``q2e_platform``)."""
    settings, catalog_manifest, build_manifest, _, config_file = _platform
    return settings, catalog_manifest, build_manifest, config_file


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
def q2e_platform(_platform):
    """The built platform plus its run of the generate_q2e flow: (settings, Q2E manifest, config file)."""
    settings, _, _, q2e_manifest, config_file = _platform
    return settings, q2e_manifest, config_file


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


# Modules that take minutes (make test --durations=15), longest first: among the modules that need
# the platform they are scheduled first, so that the two workers finish together.
LONG_MODULES = (
    "tests/test_nightly.py",
    "tests/test_reliability.py",
    "tests/test_runtime_install.py",
    "tests/test_api_properties.py",
    "tests/test_ranker.py",
    "tests/test_incremental.py",
    "tests/test_eval.py",
)


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``--dist loadscope``: a module's tests stay on one worker, so a module
    fixture is set up once): first the longest module that needs the built platform (the worker
    that runs it builds the platform), then every module that needs none (the other worker runs
    them meanwhile), then the other platform modules, long ones first. The order is the same on
    every worker, as xdist requires."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    modules: dict[str, list] = {}
    for item in items:
        modules.setdefault(item.nodeid.split("::")[0], []).append(item)
    needs = {name: any(PLATFORM_FIXTURES & set(i.fixturenames) for i in group) for name, group in modules.items()}
    rank = {name: position for position, name in enumerate(LONG_MODULES)}
    platform = sorted((name for name in modules if needs[name]), key=lambda name: rank.get(name, len(rank)))
    order = platform[:1] + [name for name in modules if not needs[name]] + platform[1:]
    items[:] = [item for name in order for item in modules[name]]
