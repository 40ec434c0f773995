"""Retention: old log days and artifact versions go, by configured age and count (``retention``),
never anything serving, a rollback, a training window or a replay still needs.

``plan_retention(settings)`` decides, per kind, what stays (with every reason it stays) and what
goes (with why); ``apply_retention(plan)`` removes it. Planning reads only the stores' own
layout, pointers and manifests:

    logs       <log_dir>/{impressions,feedback}/date=D/ (+ the day's quarantine, replay cache
               and simulated ground truth): the days within ``log_days`` of the newest logged
               day, and every day inside the bandit or ranker training window before it, stay
    bundles    bundles/<B...>: the newest ``bundles_keep``; PROMOTED, LATEST, every bundle the
               promotion history switched or rolled back to, every bundle that answered a request
               on a kept log day (its replay must stay possible)
    index builds, Q2E versions, catalog versions, policies, rankers: the newest N of each, the
               store's pointer (CURRENT / LATEST), and whatever a kept bundle names; a kept index
               build or Q2E version keeps the catalog version it was made from
    lance      table versions older than the oldest version a kept bundle or build pins (and at
               least ``lance_margin_seconds`` older), through Lance's own cleanup

Removal renames a directory to a hidden ``.trash-*`` name in the same parent (atomic: a reader
sees the version whole or not at all; no listing or glob of a store matches hidden names), then
deletes it; a trash directory left by an interrupted removal goes on the next run. Pointers are
never touched. Removing is a write: ``ltrr retention`` and the nightly hold the data dir's
writer lock (``ltrr_core.locking``) while it runs.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from .config import Settings
from .durable import TRASH_PREFIX, read_pointer, remove_tree
from .models.policy import policy_store
from .models.ranker import ranker_store
from .store import VersionedStore

LANCE_FLOOR_TAG = "ltrr-retention-floor"
_LOG_KINDS = ("impressions", "feedback")


@dataclass(frozen=True)
class Removal:
    """One thing to remove: a version directory, or a log day's partitions (several paths)."""

    kind: str
    name: str
    paths: tuple[Path, ...]
    reason: str


@dataclass
class KindPlan:
    """One kind of artifact: what stays (name -> why) and what goes."""

    kind: str
    root: Path
    pointers: tuple[Path, ...]  # the store's pointer files, read again before removing
    kept: dict[str, list[str]] = field(default_factory=dict)
    removals: list[Removal] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "pointers": [str(p) for p in self.pointers],
            "kept": self.kept,
            "remove": [{"name": r.name, "reason": r.reason, "paths": [str(p) for p in r.paths]} for r in self.removals],
        }


@dataclass
class LancePlan:
    """The vector table's versions: those older than the oldest pinned one (by the margin) go."""

    db: Path
    table: str
    versions: list[int]
    pinned: dict[int, list[str]]
    floor: int | None
    removable: list[int]
    margin_seconds: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "db": str(self.db), "pinned": {str(k): v for k, v in self.pinned.items()}}


@dataclass
class RetentionPlan:
    data_dir: Path
    enabled: bool
    kinds: dict[str, KindPlan]
    lance: LancePlan | None

    def removals(self) -> list[Removal]:
        return [r for plan in self.kinds.values() for r in plan.removals]

    def to_dict(self) -> dict[str, Any]:
        return {
            "data_dir": str(self.data_dir),
            "enabled": self.enabled,
            "kinds": {k: p.to_dict() for k, p in self.kinds.items()},
            "lance": self.lance.to_dict() if self.lance else None,
        }


@dataclass
class RetentionResult:
    removed: dict[str, list[str]]  # kind -> names removed
    skipped: list[str]  # planned, not removed, and why
    lance: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- what the logs and the promotion history protect ------------------------------------------


def log_root(settings: Settings) -> Path:
    return settings.data_dir / settings.runtime.log_dir


def served_bundles(settings: Settings, days: list[str] | None = None) -> dict[str, list[str]]:
    """Bundle -> the logged days (all, or ``days``) on which it answered requests."""
    import pyarrow.parquet as pq

    served: dict[str, list[str]] = {}
    for day in days if days is not None else _partition_days(log_root(settings) / "impressions"):
        for path in sorted((log_root(settings) / "impressions" / f"date={day}").glob("*.parquet")):
            for bundle in set(pq.read_table(path, columns=["bundle_id"]).column(0).to_pylist()):
                served.setdefault(bundle, [])
                if day not in served[bundle]:
                    served[bundle].append(day)
    return served


def protected_bundles(settings: Settings, days: list[str] | None = None) -> dict[str, list[str]]:
    """Bundles nothing may remove, with why: the PROMOTED and LATEST pointers, every bundle the
    promotion history switched or rolled back to, every bundle that served a logged day (all
    days, or ``days``: those retention keeps)."""
    from .artifacts.bundle import bundle_store
    from .artifacts.champion import history

    out: dict[str, list[str]] = {}
    store = bundle_store(settings)
    for pointer in reversed(store.pointers):
        if bundle := store.read_pointer(pointer):
            out.setdefault(bundle, []).append(f"{pointer} pointer")
    for entry in history(settings):
        if entry["action"] in ("switched", "rollback"):
            what = "promoted" if entry["action"] == "switched" else "rolled back to"
            out.setdefault(entry["bundle_id"], []).append(f"{what} on {entry.get('decided_at', '?')} (rollback chain)")
    for bundle, served_days in served_bundles(settings, days).items():
        out.setdefault(bundle, []).append(f"served requests on {', '.join(served_days)}")
    return out


# -- planning ---------------------------------------------------------------------------------


def _partition_days(folder: Path) -> list[str]:
    """The days of a log kind's ``date=YYYY-MM-DD`` partitions (anything else there is left alone)."""
    days = (p.name.split("=", 1)[1] for p in folder.glob("date=*") if p.is_dir())
    return sorted(d for d in days if re.fullmatch(r"\d{4}-\d{2}-\d{2}", d))


def _log_day_paths(settings: Settings, day: str) -> tuple[Path, ...]:
    root = log_root(settings)
    candidates = [root / kind / f"date={day}" for kind in _LOG_KINDS]
    candidates += [root / "quarantine" / kind / f"date={day}" for kind in _LOG_KINDS]
    candidates += sorted((root / "replay").glob(f"*/date={day}.parquet"))
    candidates.append(settings.data_dir / settings.simulate.out_dir / "truth" / f"date={day}")
    return tuple(p for p in candidates if p.exists())


def _log_keep_reasons(settings: Settings, day: str, newest: date) -> list[str]:
    d = date.fromisoformat(day)
    retention, learner, ranker = settings.retention, settings.bandit.learner, settings.ranker
    reasons = []
    if d > newest:
        reasons.append(f"after the newest logged day {newest}")
    if d > newest - timedelta(days=retention.log_days):
        reasons.append(f"within retention.log_days ({retention.log_days}) of the newest logged day {newest}")
    if d > newest - timedelta(days=learner.window_days):
        reasons.append(f"bandit training window (bandit.learner.window_days {learner.window_days}, ending {newest})")
    if d >= newest - timedelta(days=ranker.window_days):
        reasons.append(f"ranker training window (ranker.window_days {ranker.window_days} before {newest})")
    return reasons


def plan_logs(settings: Settings) -> KindPlan:
    """Keep the log days within ``log_days`` of the newest logged day and every day a training
    window ending on it reads; the rest go with their quarantine, replay cache and ground truth."""
    from .logs import logged_days

    root = log_root(settings)
    plan = KindPlan("logs", root, ())
    logged = logged_days(root)
    days = sorted(set(_partition_days(root / "impressions")) | set(_partition_days(root / "feedback")))
    if not logged:
        plan.kept = {day: ["no impressions logged yet"] for day in days}
        return plan
    newest = date.fromisoformat(logged[-1])
    for day in days:
        reasons = _log_keep_reasons(settings, day, newest)
        if reasons:
            plan.kept[day] = reasons
        else:
            plan.removals.append(
                Removal(
                    "logs",
                    day,
                    _log_day_paths(settings, day),
                    f"more than retention.log_days ({settings.retention.log_days}) before "
                    f"{newest}, outside every training window",
                )
            )
    for folder in [root / kind for kind in _LOG_KINDS] + [root / "quarantine" / kind for kind in _LOG_KINDS]:
        plan.removals += _trash(folder, "logs")
    return plan


def _trash(folder: Path, kind: str) -> list[Removal]:
    """What interrupted removals left in a log folder (versioned stores list theirs: ``trash()``)."""
    if not folder.is_dir():
        return []
    return [
        Removal(kind, p.name, (p,), "left over by an interrupted removal")
        for p in sorted(folder.iterdir())
        if p.name.startswith(TRASH_PREFIX)
    ]


def _plan_versions(
    kind: str, store: VersionedStore, keep: int, setting: str, protected: dict[str, list[str]]
) -> KindPlan:
    """Newest ``keep`` + what the store's pointers name + ``protected`` stay; the other versions go."""
    names = store.versions()
    root = store.versions_root
    pointers = tuple(store.pointer_file(name) for name in store.pointers)
    plan = KindPlan(kind, root, pointers)
    reasons: dict[str, list[str]] = {name: [f"newest {keep} (retention.{setting})"] for name in names[-keep:]}
    for pointer in pointers:
        if target := read_pointer(pointer):
            reasons.setdefault(target, []).append(f"{pointer.name} pointer")
    for name, why in protected.items():
        reasons.setdefault(name, []).extend(why)
    plan.kept = {name: reasons[name] for name in names if name in reasons}
    plan.removals = [
        Removal(
            kind, name, (root / name,), f"older than the newest {keep} (retention.{setting}); nothing kept names it"
        )
        for name in names
        if name not in reasons
    ]
    plan.removals += [Removal(kind, p.name, (p,), "left over by an interrupted removal") for p in store.trash()]
    return plan


def _manifest(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _named(manifests: dict[str, dict[str, Any]], key_path: tuple[str, ...], label: str) -> dict[str, list[str]]:
    """Component -> "named by <label> <id>" for every kept manifest naming it at ``key_path``."""
    out: dict[str, list[str]] = {}
    for owner, manifest in manifests.items():
        value: Any = manifest
        for key in key_path:
            value = value.get(key) if isinstance(value, dict) else None
        if value:
            out.setdefault(str(value), []).append(f"named by {label} {owner}")
    return out


def _merge(*maps: dict[str, list[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for mapping in maps:
        for name, why in mapping.items():
            out.setdefault(name, []).extend(why)
    return out


def plan_lance(settings: Settings, pins: dict[int, list[str]], unknown: list[str]) -> LancePlan | None:
    """The table's versions older than the oldest pinned one by at least the margin (none if a
    kept bundle or build does not say which version it reads)."""
    from .index.build import indexes_root

    db_path = indexes_root(settings) / "lance"
    table_name, margin = settings.vector.table, settings.retention.lance_margin_seconds
    if not (db_path / f"{table_name}.lance").is_dir():
        return None
    table = _open_table(db_path, table_name)
    stamps = {int(v["version"]): v["timestamp"] for v in table.list_versions()}
    versions = sorted(stamps)
    if unknown:
        return LancePlan(
            db_path,
            table_name,
            versions,
            pins,
            None,
            [],
            margin,
            f"{', '.join(unknown)} name(s) no Lance version (manifest unreadable?): nothing is removed",
        )
    if not pins:
        return LancePlan(
            db_path, table_name, versions, {}, None, [], margin, "no kept bundle or index build pins a version"
        )
    floor = min(pins)
    if floor not in stamps:
        return LancePlan(
            db_path,
            table_name,
            versions,
            pins,
            floor,
            [],
            margin,
            f"pinned version {floor} is not in the table: nothing is removed",
        )
    cut = stamps[floor] - timedelta(seconds=margin)
    removable = [v for v in versions if v < floor and stamps[v] <= cut]
    return LancePlan(
        db_path,
        table_name,
        versions,
        pins,
        floor,
        removable,
        margin,
        f"versions before {floor} (the oldest pinned) created at least {margin:g} s before it",
    )


def _open_table(db_path: Path, table_name: str):
    import lancedb

    return lancedb.connect(str(db_path)).open_table(table_name)


def plan_retention(settings: Settings) -> RetentionPlan:
    """What ``apply_retention`` would remove, and why everything else stays."""
    from .artifacts.bundle import bundle_store
    from .catalog.store import CatalogStore
    from .index.build import build_store
    from .memory.build import q2e_store

    config = settings.retention
    logs = plan_logs(settings)
    bundles = _plan_versions(
        "bundles",
        bundle_store(settings),
        config.bundles_keep,
        "bundles_keep",
        protected_bundles(settings, list(logs.kept)),
    )
    bundle_manifests = {b: _manifest(bundles.root / b / "manifest.json") for b in bundles.kept}
    by_bundles = {
        key: _named(bundle_manifests, ("components", key), "bundle")
        for key in ("index_build", "q2e_version", "catalog_version", "policy_version", "ranker_version")
    }
    builds = _plan_versions(
        "index_builds", build_store(settings), config.index_builds_keep, "index_builds_keep", by_bundles["index_build"]
    )
    build_manifests = {b: _manifest(builds.root / b / "manifest.json") for b in builds.kept}
    q2e = _plan_versions(
        "q2e_versions",
        q2e_store(settings).store,
        config.q2e_versions_keep,
        "q2e_versions_keep",
        by_bundles["q2e_version"],
    )
    q2e_manifests = {q: _manifest(q2e.root / q / "manifest.json") for q in q2e.kept}
    catalog = _plan_versions(
        "catalog_versions",
        CatalogStore(settings.data_dir / "catalog").store,
        config.catalog_versions_keep,
        "catalog_versions_keep",
        _merge(
            by_bundles["catalog_version"],
            _named(build_manifests, ("catalog_version",), "index build"),
            _named(q2e_manifests, ("catalog_version",), "Q2E version"),
        ),
    )
    policies = _plan_versions(
        "policies", policy_store(settings), config.policies_keep, "policies_keep", by_bundles["policy_version"]
    )
    rankers = _plan_versions(
        "rankers", ranker_store(settings), config.rankers_keep, "rankers_keep", by_bundles["ranker_version"]
    )
    kinds = {p.kind: p for p in (logs, bundles, builds, q2e, catalog, policies, rankers)}
    return RetentionPlan(
        settings.data_dir,
        config.enabled,
        kinds,
        plan_lance(settings, *_lance_pins(settings, bundle_manifests, build_manifests)),
    )


def _lance_pins(
    settings: Settings, bundles: dict[str, dict[str, Any]], builds: dict[str, dict[str, Any]]
) -> tuple[dict[int, list[str]], list[str]]:
    """(version of the vector table -> the kept bundles and index builds that read it, the kept
    ones whose manifest names no Lance version at all: then no version may go)."""
    pins: dict[int, list[str]] = {}
    unknown: list[str] = []
    for label, manifests, key in (("bundle", bundles, ("components", "lance")), ("index build", builds, ("vectors",))):
        for owner, manifest in manifests.items():
            ref = manifest.get(key[0]) or {}
            ref = (ref.get(key[1]) or {}) if len(key) > 1 else ref
            version = ref.get("version", ref.get("table_version"))
            if version is None:
                unknown.append(f"{label} {owner}")
            elif ref.get("table") == settings.vector.table:
                pins.setdefault(int(version), []).append(f"{label} {owner}")
    return pins, unknown


# -- removing ---------------------------------------------------------------------------------


def _pointed_at(plan: KindPlan) -> set[str]:
    return {t for t in (read_pointer(p) for p in plan.pointers) if t}


def apply_lance(plan: LancePlan) -> dict[str, Any]:
    """Lance's cleanup of the planned versions: the oldest pinned version is tagged first (Lance then
    refuses, rather than deletes, should the cut ever reach it), the cut is placed ``margin``
    before it. Runs Lance's optimize (compaction included), so the table gets a newer version."""
    if not plan.removable:
        return {"removed_versions": [], "reason": plan.reason}
    if plan.floor is None:
        raise ValueError(f"Lance plan for {plan.table} lists removable versions but no pinned floor version")
    table = _open_table(plan.db, plan.table)
    stamps = {int(v["version"]): v["timestamp"] for v in table.list_versions()}
    tags = table.tags.list()
    if LANCE_FLOOR_TAG in tags:
        table.tags.update(LANCE_FLOOR_TAG, plan.floor)
    else:
        table.tags.create(LANCE_FLOOR_TAG, plan.floor)
    # list_versions gives naive local times (datetime.fromtimestamp), hence a naive local now.
    older_than = datetime.now() - stamps[plan.floor] + timedelta(seconds=plan.margin_seconds)
    table.optimize(cleanup_older_than=older_than, delete_unverified=False)
    left = sorted(int(v["version"]) for v in table.list_versions())
    return {"removed_versions": [v for v in plan.removable if v not in left], "floor": plan.floor, "versions_now": left}


def apply_retention(plan: RetentionPlan) -> RetentionResult:
    """Remove what ``plan`` removes. Each store's pointers are read again first: a version a
    pointer has moved to since planning stays."""
    if not plan.enabled:
        return RetentionResult({}, ["retention.enabled is false: nothing removed"], None)
    removed: dict[str, list[str]] = {}
    skipped: list[str] = []
    for kind in plan.kinds.values():
        pointed = _pointed_at(kind)
        for removal in kind.removals:
            if removal.name in pointed:
                skipped.append(f"{kind.kind} {removal.name}: a pointer names it now")
                continue
            if any([remove_tree(path, plan.data_dir) for path in removal.paths]):
                removed.setdefault(kind.kind, []).append(removal.name)
    lance = apply_lance(plan.lance) if plan.lance else None
    return RetentionResult(removed, skipped, lance)


def run_retention(settings: Settings) -> dict[str, Any]:
    """Plan and apply (the nightly's ``retention`` step); the caller holds the writer lock."""
    if not settings.retention.enabled:
        return {"status": "skipped", "reason": "retention.enabled is false"}
    result = apply_retention(plan_retention(settings))
    return {
        "status": "ran",
        "removed": result.removed,
        "skipped": result.skipped,
        "lance_removed_versions": (result.lance or {}).get("removed_versions", []),
    }
