"""Retention on a copy of the test platform with real stores: with keep=1 every old version nothing
needs goes, and the promoted bundle, everything it names, the pointers and the log days inside the
training windows stay -- and the runtime still loads the promoted bundle."""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tests.conftest import TEST_CONFIG

pytestmark = pytest.mark.slow

NEWEST = "2026-03-31"
KEPT_DAYS = ["2026-03-28", "2026-03-29", "2026-03-30", "2026-03-31"]
OLD_DAYS = ["2026-03-01", "2026-03-10"]
RETENTION = {
    "enabled": True,
    "log_days": 2,
    "bundles_keep": 1,
    "catalog_versions_keep": 1,
    "index_builds_keep": 1,
    "q2e_versions_keep": 1,
    "policies_keep": 1,
    "rankers_keep": 1,
    "lance_margin_seconds": 1.0,
}


def _new_lance_version(settings, after_seconds: float) -> int:
    """A new version of the vector table (same rows), created at least ``after_seconds`` after the last."""
    import lancedb

    table = lancedb.connect(str(settings.data_dir / "indexes" / "lance")).open_table(settings.vector.table)
    last = max(v["timestamp"] for v in table.list_versions())
    time.sleep(max(0.0, after_seconds - (datetime.now() - last).total_seconds()))
    row = table.search().limit(1).to_list()[0]
    table.update(where=f"id = '{row['id']}'", values={"type": row["type"]})
    return int(table.version)


def _publish_build(settings, lance_version: int) -> str:
    """An index build through the store's own publish (the current build's files, another Lance version)."""
    from ltrr_core.index.build import current_build, new_build_id, publish_build, start_build

    source, manifest = current_build(settings)
    build_id = new_build_id(settings)
    staging = start_build(settings, build_id)
    for part in ("bm25", "qu"):
        shutil.copytree(source / part, staging / part)
    reports = {k: manifest[k] for k in ("bm25", "query_resources", "vectors")}
    reports["vectors"] = {**reports["vectors"], "table_version": lance_version}
    publish_build(settings, build_id, manifest["catalog_version"], reports)
    return build_id


def _publish_q2e(settings) -> str:
    from ltrr_core.memory.build import q2e_store

    store = q2e_store(settings)
    manifest = store.manifest()
    report = {
        k: v
        for k, v in manifest.items()
        if k
        not in (
            "version",
            "created_at",
            "n_rows",
            "n_queries",
            "n_entities",
            "rows_by_source",
            "rows_by_generator",
            "checksums",
        )
    }
    time.sleep(0.01)  # versions are named by the microsecond
    return store.publish(store.load(), store.load_predicted(), report)["version"]


def _log_day(settings, day: str, bundle_id: str) -> None:
    """One impression and one click on ``day`` served by ``bundle_id`` (the runtime's log writer)."""
    from ltrr_core.logs import LOG_SCHEMA_VERSION, LogWriter

    root = settings.data_dir / settings.runtime.log_dir
    at = datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC)
    request = f"r-{day}"
    impressions = LogWriter(root, "impressions")
    impressions.append(
        {
            "request_id": request,
            "timestamp": at,
            "raw_query": "rock",
            "normalised_query": "rock",
            "plan": "all",
            "depths": "{}",
            "propensity": 1.0,
            "strategy_propensities": "{}",
            "candidates": "{}",
            "shown_ids": ["e1"],
            "shown_scores": [1.0],
            "shown_features": "{}",
            "bundle_id": bundle_id,
            "log_schema_version": LOG_SCHEMA_VERSION,
        }
    )
    impressions.close()
    feedback = LogWriter(root, "feedback")
    feedback.append(
        {
            "request_id": request,
            "timestamp": at + timedelta(seconds=5),
            "entity_id": "e1",
            "event": "click",
            "position": 1,
            "log_schema_version": LOG_SCHEMA_VERSION,
        }
    )
    feedback.close()


def _fake_versions(root: Path, names: list[str], latest: str) -> None:
    from ltrr_core.durable import write_pointer

    for name in names:
        (root / name).mkdir(parents=True)
        (root / name / "spec.json").write_text(json.dumps({"version": name}))
    write_pointer(root / "LATEST", latest)


@pytest.fixture
def history(q2e_platform, tmp_path):
    """A platform with history: bundle A0 (old build b1, Q2E q1, Lance L1) served two old days; B
    (b2, q2, L2) is promoted and served the recent days; C (b3, q3, L3) is the latest build."""
    from ltrr_core.artifacts import build_bundle, bundles_root
    from ltrr_core.artifacts.champion import HISTORY
    from ltrr_core.config import load_settings
    from ltrr_core.durable import write_pointer
    from ltrr_core.index.build import current_build
    from ltrr_core.memory.build import q2e_store

    data = tmp_path / "data"
    shutil.copytree(
        q2e_platform[0].data_dir,
        data,
        ignore=shutil.ignore_patterns(
            "bundles", "logs", "policies", "rankers", "nightly", "mlflow", "simulation", ".ltrr-writer.lock"
        ),
    )
    config = tmp_path / "retention.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "extends": str(TEST_CONFIG),
                "data_dir": str(data),
                "retention": RETENTION,
                "bandit": {"learner": {"window_days": 2}},
                "ranker": {"window_days": 3},
            }
        )
    )
    settings = load_settings(config)
    catalog_version = (data / "catalog" / "CURRENT").read_text().strip()
    old_catalog = "v20000101T000000000000Z"
    shutil.copytree(data / "catalog" / "versions" / catalog_version, data / "catalog" / "versions" / old_catalog)
    b1, q1 = current_build(settings)[1]["build_id"], q2e_store(settings).current_version()
    a0 = build_bundle(settings)["bundle_id"]
    l1 = current_build(settings)[1]["vectors"]["table_version"]
    margin = RETENTION["lance_margin_seconds"]
    l2 = _new_lance_version(settings, 1.5 * margin)
    b2, q2 = _publish_build(settings, l2), _publish_q2e(settings)
    b = build_bundle(settings)["bundle_id"]
    write_pointer(bundles_root(settings) / "PROMOTED", b)  # promoted: the pointer and its history entry
    (bundles_root(settings) / HISTORY).write_text(
        json.dumps({"action": "switched", "bundle_id": b, "previous": None, "decided_at": "2026-03-27T02:00:00+00:00"})
        + "\n"
    )
    l3 = _new_lance_version(settings, 0)
    b3, q3 = _publish_build(settings, l3), _publish_q2e(settings)
    c = build_bundle(settings)["bundle_id"]
    for day in OLD_DAYS:
        _log_day(settings, day, a0)
    for day in KEPT_DAYS:
        _log_day(settings, day, b)
    logs = settings.data_dir / settings.runtime.log_dir
    (logs / "quarantine" / "impressions" / f"date={OLD_DAYS[0]}").mkdir(parents=True)
    (logs / "replay" / "depth=100").mkdir(parents=True)
    (logs / "replay" / "depth=100" / f"date={OLD_DAYS[0]}.parquet").write_bytes(b"cache")
    _fake_versions(
        data / settings.bandit.out_dir,
        ["P20260301T020000000000Z", "P20260302T020000000000Z"],
        "P20260302T020000000000Z",
    )
    _fake_versions(
        data / settings.ranker.out_dir,
        ["R20260301T020000000000Z", "R20260302T020000000000Z"],
        "R20260302T020000000000Z",
    )
    (bundles_root(settings) / ".trash-B20000101T000000000000Z-0badc0de").mkdir()  # an interrupted removal
    ids = dict(
        catalog=catalog_version,
        old_catalog=old_catalog,
        b1=b1,
        b2=b2,
        b3=b3,
        q1=q1,
        q2=q2,
        q3=q3,
        a0=a0,
        b=b,
        c=c,
        l1=l1,
        l2=l2,
        l3=l3,
    )
    return settings, config, ids


def _pointers(settings) -> dict[str, str]:
    data = settings.data_dir
    files = [
        "catalog/CURRENT",
        "indexes/CURRENT",
        "q2e/CURRENT",
        "bundles/PROMOTED",
        "bundles/LATEST",
        f"{settings.bandit.out_dir}/LATEST",
        f"{settings.ranker.out_dir}/LATEST",
    ]
    return {f: (data / f).read_text() for f in files}


def test_retention_keeps_what_serving_rollback_training_and_replay_need_and_removes_the_rest(history):
    from typer.testing import CliRunner

    from flows.cli import app
    from ltrr_core.artifacts import bundles_root
    from ltrr_core.logs import logged_days
    from ltrr_core.retention import plan_retention, run_retention
    from ltrr_core.runtime import load_service

    settings, config, ids = history
    plan = plan_retention(settings)
    removed = {kind: sorted(r.name for r in p.removals) for kind, p in plan.kinds.items()}
    assert removed == {
        "logs": OLD_DAYS,
        "bundles": sorted([ids["a0"], ".trash-B20000101T000000000000Z-0badc0de"]),
        "index_builds": [ids["b1"]],
        "q2e_versions": [ids["q1"]],
        "catalog_versions": [ids["old_catalog"]],
        "policies": ["P20260301T020000000000Z"],
        "rankers": ["R20260301T020000000000Z"],
    }
    kept = {kind: p.kept for kind, p in plan.kinds.items()}
    assert sorted(kept["bundles"]) == sorted([ids["b"], ids["c"]])
    assert {"PROMOTED pointer", "promoted on 2026-03-27T02:00:00+00:00 (rollback chain)"} <= set(
        kept["bundles"][ids["b"]]
    )
    assert f"served requests on {', '.join(KEPT_DAYS)}" in kept["bundles"][ids["b"]]
    assert kept["index_builds"][ids["b2"]] == [f"named by bundle {ids['b']}"]  # only the promoted bundle needs it
    assert kept["q2e_versions"][ids["q2"]] == [f"named by bundle {ids['b']}"]
    assert sorted(kept["logs"]) == KEPT_DAYS
    assert kept["logs"]["2026-03-28"] == [f"ranker training window (ranker.window_days 3 before {NEWEST})"]
    assert plan.lance.floor == ids["l2"] and ids["l1"] in plan.lance.removable
    assert not set(plan.lance.removable) & {ids["l2"], ids["l3"]}
    old_day = [r for r in plan.kinds["logs"].removals if r.name == OLD_DAYS[0]][0]
    assert {p.relative_to(settings.data_dir).as_posix() for p in old_day.paths} == {
        f"logs/impressions/date={OLD_DAYS[0]}",
        f"logs/feedback/date={OLD_DAYS[0]}",
        f"logs/quarantine/impressions/date={OLD_DAYS[0]}",
        f"logs/replay/depth=100/date={OLD_DAYS[0]}.parquet",
    }

    pointers = _pointers(settings)
    dry = CliRunner().invoke(app, ["--config", str(config), "retention", "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["plan"]["kinds"]["bundles"]["remove"][0]["name"] == ids["a0"]
    assert (bundles_root(settings) / ids["a0"]).is_dir()  # a dry run removes nothing

    applied = CliRunner().invoke(app, ["--config", str(config), "retention", "--json"])
    assert applied.exit_code == 0, applied.output
    result = json.loads(applied.stdout)["result"]
    assert result["removed"]["bundles"] == [ids["a0"], ".trash-B20000101T000000000000Z-0badc0de"]
    assert ids["l1"] in result["lance"]["removed_versions"]
    assert sorted(p.name for p in bundles_root(settings).iterdir() if p.is_dir()) == sorted([ids["b"], ids["c"]])
    assert sorted(p.name for p in (settings.data_dir / "indexes" / "builds").iterdir()) == sorted(
        [ids["b2"], ids["b3"]]
    )
    assert sorted(p.name for p in (settings.data_dir / "q2e" / "versions").iterdir()) == sorted([ids["q2"], ids["q3"]])
    assert [p.name for p in (settings.data_dir / "catalog" / "versions").iterdir()] == [ids["catalog"]]
    logs = settings.data_dir / settings.runtime.log_dir
    assert logged_days(logs) == logged_days(logs, "feedback") == KEPT_DAYS
    assert not (logs / "replay" / "depth=100" / f"date={OLD_DAYS[0]}.parquet").exists()
    assert _pointers(settings) == pointers  # pointers are never touched
    versions = {int(v["version"]) for v in _table(settings).list_versions()}
    assert ids["l1"] not in versions and {ids["l2"], ids["l3"]} <= versions

    # The runtime still loads and answers from the promoted bundle (Lance checked out at its version).
    service = load_service(settings.with_overrides(**{"runtime.seed": 1}), bundles_root(settings) / ids["b"])
    assert service.search("taylor swift").results
    # A second run has nothing left to remove; disabled, the nightly step skips.
    assert run_retention(settings)["removed"] == {}
    assert run_retention(settings.with_overrides(**{"retention.enabled": False}))["status"] == "skipped"


def _table(settings):
    import lancedb

    return lancedb.connect(str(settings.data_dir / "indexes" / "lance")).open_table(settings.vector.table)


def test_removal_stays_inside_the_data_dir(tmp_path):
    from ltrr_core.durable import remove_tree

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    with pytest.raises(ValueError, match="is not inside .*data: nothing outside it is removed"):
        remove_tree(outside, tmp_path / "data")
    (tmp_path / "data" / "v1").mkdir(parents=True)
    assert remove_tree(tmp_path / "data" / "v1", tmp_path / "data")
    assert list((tmp_path / "data").iterdir()) == []
