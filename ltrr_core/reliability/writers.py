"""Every writer of the platform, as the fault harness drives it.

Each writer names its root (where faults fire), builds its input in the parent (``payload``),
runs the real writing code in the child (``write``) and says what a reader sees afterwards
(``seen``). ``write`` calls the same ltrr_core functions the flows call; nothing is re-implemented.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Settings
from ..durable import read_pointer
from ..index.documents import EmbeddingText
from .checks import Seen, hidden_entries, json_lines, manifest_checksums, parquet_files, versioned_store
from .inject import AFTER, DATA, KILL, LANCE, POINTER, PUBLISH, Fault, Scope, injected, lance_fault

Pause = Callable[[OSError], None]


@dataclass
class Context:
    """The harness's platform: settings, a scratch folder outside every store, and inputs made once."""

    settings: Settings
    work: Path
    query: str  # what the champion is asked after every fault
    days: list[date]  # simulated traffic the policy and ranker train on
    impressions: list[dict[str, Any]]  # real runtime records, for the log writer
    candidates: tuple[str, str]  # bundles the promotion cells switch between
    entity_ids: list[str] = field(default_factory=list)
    entity_types: list[str] = field(default_factory=list)
    entity_texts: list[EmbeddingText] = field(default_factory=list)
    encode: Callable[[list[EmbeddingText]], np.ndarray] | None = None


class Writer:
    """One writer: its root and pointers, its fault points, its input, its real code, its reader's view."""

    name = ""
    label = ""  # the real function(s) it runs
    pointers: tuple[str, ...] = ()
    staged_directories = True
    kill_points: tuple[str, ...] = (DATA, PUBLISH, POINTER)
    error_points: tuple[str, ...] = (DATA, POINTER)

    def root(self, settings: Settings) -> Path:
        raise NotImplementedError

    def scope(self, settings: Settings, payload: Any) -> Scope:
        return Scope(self.root(settings), self.pointers, self.staged_directories)

    def faults(self, kind: str) -> list[Fault]:
        return [Fault(kind, point) for point in (self.kill_points if kind == KILL else self.error_points)]

    def injection(
        self, settings: Settings, payload: Any, fault: Fault, report: Callable[[str], None]
    ) -> AbstractContextManager:
        return injected(self.scope(settings, payload), fault, report)

    def payload(self, ctx: Context, run: int) -> Any:
        return run

    def next_payload(self, ctx: Context, payload: Any) -> Any:
        """The input of the run after a fault (the same, unless the writer's input moves on)."""
        return payload

    def write(self, settings: Settings, payload: Any, pause: Pause) -> str:
        raise NotImplementedError

    def seen(self, ctx: Context, payload: Any) -> Seen:
        raise NotImplementedError

    def expected(self, ctx: Context, payload: Any, before: Seen) -> set[str] | None:
        """Record keys that must be present exactly once; None where the writer has no records."""
        return set(before.records) if before.records is not None else None

    def moved(self, before: Seen, after: Seen, payload: Any) -> bool:
        """Did a completed run publish something new?"""
        return after.pointer is not None and after.pointer != before.pointer

    def new_leftovers(self, before: Seen, after: Seen) -> list[str]:
        """Invisible garbage this run left behind."""
        return [item for item in after.leftovers if item not in before.leftovers]

    def notes(self, payload: Any, next_payload: Any) -> list[str]:
        return []


# -- catalog -----------------------------------------------------------------------------


class CatalogWriter(Writer):
    name, label, pointers = "catalog publish", "catalog.publish_catalog -> CatalogStore.publish", ("CURRENT",)

    def root(self, settings: Settings) -> Path:
        return settings.data_dir / "catalog"

    def write(self, settings: Settings, payload: Any, pause: Pause) -> str:
        import pandas as pd

        from ..catalog.pipeline import catalog_store, publish_catalog

        store = catalog_store(settings)
        entities = store.load()
        quarantined = pd.read_parquet(store.version_dir() / "quarantine.parquet")
        version, manifest = publish_catalog(settings, entities, quarantined, {"reliability_run": payload})
        return f"published {version} ({manifest['n_entities']} entities)"

    def seen(self, ctx: Context, payload: Any) -> Seen:
        from ..catalog.store import CatalogStore

        root = self.root(ctx.settings)

        def verify(path: Path) -> str:
            manifest_checksums(path)
            return f"{CatalogStore(root).load_table(path.name).num_rows} entities, checksums verify"

        def records(path: Path) -> Counter:
            return Counter(CatalogStore(root).load_table(path.name).column("id").to_pylist())

        return versioned_store(CatalogStore(root).store, verify, records)


# -- index build: BM25 + QU files, then publish --------------------------------------------


class IndexBuildWriter(Writer):
    name = "index build (BM25 + QU files)"
    label = "index.build: start_build, build_bm25, build_query_resources, finish_vectors, publish_build"
    pointers = ("CURRENT",)

    def root(self, settings: Settings) -> Path:
        return settings.data_dir / "indexes"

    def write(self, settings: Settings, payload: Any, pause: Pause) -> str:
        from ..catalog.store import CatalogNotFound, CatalogStore
        from ..index import build

        store = CatalogStore(settings.data_dir / "catalog")
        version = store.current_version()
        if version is None:
            raise CatalogNotFound(f"no catalog has been published under {store.root}; the index writer needs one")
        entities = store.load(version)
        build_id = build.new_build_id(settings)
        staging = build.start_build(settings, build_id)
        bm25 = build.build_bm25(settings, entities, staging)
        resources = build.build_query_resources(settings, entities, staging)
        plan = build.plan_vectors(settings, entities)
        vectors = build.finish_vectors(settings, plan, [build.encode_texts(settings, plan.todo_texts)], staging)
        manifest = build.publish_build(
            settings, build_id, version, {"bm25": bm25, "query_resources": resources, "vectors": vectors}
        )
        return f"published build {manifest['build_id']} ({bm25['n_documents']} documents)"

    def seen(self, ctx: Context, payload: Any) -> Seen:
        from ..index.bm25 import BM25Index
        from ..query.resources import read_resources

        def verify(path: Path) -> str:
            manifest = manifest_checksums(path)
            index = BM25Index.load(path / "bm25", mmap=True)
            fields, vocabulary = read_resources(path / "qu")
            return (
                f"{len(index.entity_ids)} BM25 documents, {len(fields)} QU entities, {len(vocabulary)} names, "
                f"Lance v{manifest['vectors']['table_version']}; checksums verify"
            )

        def records(path: Path) -> Counter:
            return (
                Counter(np.load(path / "bm25" / "ids.npy", allow_pickle=False).tolist())
                if (path / "bm25" / "ids.npy").is_file()
                else Counter()
            )

        from ..index.build import build_store

        return versioned_store(build_store(ctx.settings), verify, records)


# -- Lance vector table ----------------------------------------------------------------------


@dataclass
class LancePayload:
    ids: list[str]
    types: list[str]
    texts: list[EmbeddingText]
    changed: dict[str, np.ndarray]  # entity id -> its vector, for every row whose text differs from the table
    edited: set[str]  # the rows this run edits


class LanceWriter(Writer):
    name = "Lance write"
    label = "index.vector: plan_vector_update, apply_vector_update (merge_insert)"
    kill_points = (LANCE,)
    error_points = (LANCE,)
    n_changed = 64

    def root(self, settings: Settings) -> Path:
        return settings.data_dir / "indexes" / "lance"

    def table_dir(self, settings: Settings) -> Path:
        return self.root(settings) / f"{settings.vector.table}.lance"

    def injection(
        self, settings: Settings, payload: Any, fault: Fault, report: Callable[[str], None]
    ) -> AbstractContextManager:
        return lance_fault(self.table_dir(settings), fault, report)

    def payload(self, ctx: Context, run: int) -> LancePayload:
        """The catalog's embedding texts with the same ``n_changed`` of them edited anew each run
        (so exactly those rows differ from the table, whether or not the last edit committed)."""
        from ..index.vector import open_db, plan_vector_update

        picks = np.random.default_rng(0).choice(len(ctx.entity_ids), size=self.n_changed, replace=False)
        texts = list(ctx.entity_texts)
        for i in picks:
            texts[i] = texts[i].edited(f" (reliability edit {run})")
        plan = plan_vector_update(
            open_db(self.root(ctx.settings)), ctx.settings.vector.table, ctx.entity_ids, ctx.entity_types, texts
        )
        if ctx.encode is None:
            raise ValueError("the Lance writer's payload needs Context.encode (the harness sets it)")
        vectors = ctx.encode(plan.todo_texts)  # the edit, plus any row an earlier run left different
        return LancePayload(
            ctx.entity_ids,
            ctx.entity_types,
            texts,
            dict(zip(plan.todo_ids, vectors)),
            {ctx.entity_ids[i] for i in picks},
        )

    def write(self, settings: Settings, payload: LancePayload, pause: Pause) -> str:
        from ..index.vector import apply_vector_update, open_db, plan_vector_update

        db = open_db(self.root(settings))
        plan = plan_vector_update(db, settings.vector.table, payload.ids, payload.types, payload.texts)
        dim = len(next(iter(payload.changed.values())))
        vectors = (
            np.stack([payload.changed[i] for i in plan.todo_ids])
            if plan.todo_ids
            else np.zeros((0, dim), dtype=np.float32)
        )
        update = apply_vector_update(db, settings.vector.table, plan, vectors, dim, 0.0)
        return f"Lance table at v{update.table_version}: {update.n_encoded} rows upserted, {update.n_removed} removed"

    def seen(self, ctx: Context, payload: LancePayload) -> Seen:
        from ..index.vector import ID, TEXT_HASH, open_db, text_hash

        settings = ctx.settings
        table = open_db(self.root(settings)).open_table(settings.vector.table)
        rows = table.to_arrow().select([ID, TEXT_HASH]).to_pydict()
        hashes = dict(zip(rows[ID], rows[TEXT_HASH]))
        wanted = {i: text_hash(t.fingerprint) for i, t in zip(payload.ids, payload.texts) if i in payload.edited}
        applied = sum(hashes.get(i) == h for i, h in wanted.items())
        problems = (
            []
            if applied in (0, len(wanted))
            else [f"half an update is visible: {applied} of {len(wanted)} edited rows carry the new text"]
        )
        state = "applied" if applied == len(wanted) else "not applied"
        pinned = self._pinned_versions(ctx)
        for label, version in pinned.items():
            try:
                table.checkout(version)
                table.count_rows()
            except Exception as error:  # noqa: BLE001
                problems.append(f"{label} pins Lance v{version}, which does not open: {error}")
            finally:
                table.checkout_latest()
        files = [f"data/{p.name}" for p in sorted((self.table_dir(settings) / "data").iterdir())]
        summary = (
            f"latest v{table.version}: {table.count_rows()} rows, this run's edit {state}; "
            f"pinned {', '.join(f'{k} v{v}' for k, v in pinned.items())} open"
        )
        return Seen(str(table.version), summary, problems, files, Counter(rows[ID]), complete=applied == len(wanted))

    def new_leftovers(self, before: Seen, after: Seen) -> list[str]:
        """Data files written by a write that never committed: no version references them
        (Lance's cleanup of old versions removes them)."""
        if after.pointer != before.pointer:
            return []
        return [f"{item} (orphan)" for item in after.leftovers if item not in before.leftovers]

    def _pinned_versions(self, ctx: Context) -> dict[str, int]:
        from ..artifacts.champion import promoted_bundle
        from ..durable import read_json
        from ..index.build import current_build

        pinned = {"index build": int(current_build(ctx.settings)[1]["vectors"]["table_version"])}
        champion = promoted_bundle(ctx.settings)
        if champion is not None:
            pinned["champion"] = int(read_json(champion / "manifest.json")["components"]["lance"]["version"])
        return pinned

    def expected(self, ctx: Context, payload: Any, before: Seen) -> set[str] | None:
        return set(ctx.entity_ids)

    def moved(self, before: Seen, after: Seen, payload: Any) -> bool:
        return after.pointer != before.pointer and bool(after.complete)


# -- Q2E -----------------------------------------------------------------------------------


class Q2EWriter(Writer):
    name, label, pointers = "Q2E publish", "memory.store.Q2EStore.publish", ("CURRENT",)

    def root(self, settings: Settings) -> Path:
        return settings.data_dir / "q2e"

    def write(self, settings: Settings, payload: Any, pause: Pause) -> str:
        from ..memory.build import q2e_store

        store = q2e_store(settings)
        manifest = store.publish(store.load(), store.load_predicted(), {"reliability_run": payload})
        return f"published {manifest['version']} ({manifest['n_rows']} rows)"

    def seen(self, ctx: Context, payload: Any) -> Seen:
        import pandas as pd

        root = self.root(ctx.settings)

        def verify(path: Path) -> str:
            manifest = manifest_checksums(path)
            rows = len(pd.read_parquet(path / "q2e.parquet"))
            if rows != manifest["n_rows"]:
                raise ValueError(f"q2e.parquet holds {rows} rows, the manifest {manifest['n_rows']}")
            return f"{rows} rows, checksums verify"

        def records(path: Path) -> Counter:
            frame = pd.read_parquet(path / "q2e.parquet", columns=["query", "entity_id"])
            return Counter(frame["query"] + "\t" + frame["entity_id"])

        from ..memory.store import Q2EStore

        return versioned_store(Q2EStore(root).store, verify, records)


# -- interaction logs ------------------------------------------------------------------------


@dataclass
class LogPayload:
    root: Path
    acks: Path  # request ids whose flush returned, one per line (fsynced)
    batches: list[list[dict[str, Any]]]
    start: int = 0  # the first batch this run appends


class LogWriterCase(Writer):
    """Appends batches of real impression records; every ``batch`` appends flush (``flush_rows``).
    A record is acknowledged when the flush that wrote it returns -- the writer's durability
    point. Faults fire in the second batch's flush, so one batch is already acknowledged."""

    name, label = "log append", "logs.LogWriter.append/flush -> durable.write_parquet"
    staged_directories = False
    kill_points = (DATA, PUBLISH)
    error_points = (DATA,)
    batch, n_batches = 10, 3

    def scope(self, settings: Settings, payload: LogPayload) -> Scope:
        return Scope(payload.root, (), staged_directories=False)

    def faults(self, kind: str) -> list[Fault]:
        return [replace(f, skip=1) for f in super().faults(kind)]

    def payload(self, ctx: Context, run: int) -> LogPayload:
        root = ctx.work / f"logs-run{run}"
        records = [
            dict(r, request_id=f"run{run}-{i:03d}")
            for i, r in enumerate(ctx.impressions[: self.batch * self.n_batches])
        ]
        return LogPayload(
            root,
            ctx.work / f"acks-run{run}.txt",
            [records[i : i + self.batch] for i in range(0, len(records), self.batch)],
        )

    def next_payload(self, ctx: Context, payload: LogPayload) -> LogPayload:
        """After a kill the next process serves new traffic: the batch that was in flight died with
        the killed process's memory (never acknowledged), so the run goes on from the one after."""
        acked = _acked(payload.acks)
        done = max((i for i, batch in enumerate(payload.batches) if batch[0]["request_id"] in acked), default=-1)
        return replace(payload, start=done + 2)

    def notes(self, payload: LogPayload, next_payload: LogPayload) -> list[str]:
        lost = payload.batches[payload.start : next_payload.start]
        lost = [b for b in lost if b[0]["request_id"] not in _acked(payload.acks)]
        return (
            [
                f"{sum(map(len, lost))} records appended but never acknowledged (the batch in flush) died with "
                "the killed process"
            ]
            if lost
            else []
        )

    def write(self, settings: Settings, payload: LogPayload, pause: Pause) -> str:
        from ..logs import LogWriter

        writer = LogWriter(payload.root, "impressions", flush_rows=self.batch, flush_seconds=1e9)
        for batch in payload.batches[payload.start :]:
            try:
                for record in batch:
                    writer.append(record)  # the batch's last append flushes
            except OSError as error:
                pause(error)  # the parent looks at the disk while the rows wait
                writer.flush()  # the same process retries: the rows were kept
            _ack(payload.acks, [r["request_id"] for r in batch])
        writer.close()
        return f"appended {sum(len(b) for b in payload.batches[payload.start :])} records, {writer.n_written} written"

    def seen(self, ctx: Context, payload: LogPayload) -> Seen:
        base = payload.root / "impressions"
        files, problems = parquet_files(base, "date=*/*.parquet") if base.is_dir() else ([], [])
        import pyarrow.parquet as pq

        ids = Counter(i for f in files for i in pq.read_table(f, columns=["request_id"]).column(0).to_pylist())
        leftovers = [item for folder in sorted(base.glob("date=*")) for item in hidden_entries(folder, payload.root)]
        acked = _acked(payload.acks)
        return Seen(
            None,
            f"{len(files)} finished files, {sum(ids.values())} records ({len(acked)} acknowledged)",
            problems,
            leftovers,
            ids,
        )

    def expected(self, ctx: Context, payload: LogPayload, before: Seen) -> set[str] | None:
        return _acked(payload.acks)

    def moved(self, before: Seen, after: Seen, payload: Any) -> bool:
        return True


def _ack(path: Path, ids: list[str]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("".join(f"{i}\n" for i in ids))
        handle.flush()
        os.fsync(handle.fileno())


def _acked(path: Path) -> set[str]:
    return set(path.read_text(encoding="utf-8").split()) if path.is_file() else set()


# -- learned policy and ranker ------------------------------------------------------------------


class PolicyWriter(Writer):
    name, label, pointers = (
        "policy save",
        "bandit.learner.train_night (load_window, replay_window, train_night)",
        ("LATEST",),
    )

    def root(self, settings: Settings) -> Path:
        from ..bandit.learner import policies_root

        return policies_root(settings)

    def payload(self, ctx: Context, run: int) -> tuple[date, int]:
        return ctx.days[-1], len(ctx.days)

    def write(self, settings: Settings, payload: tuple[date, int], pause: Pause) -> str:
        from ..bandit import learner, training
        from ..runtime import bundle_loader

        window = learner.load_window(settings, *payload)
        ranks = learner.replay_window(
            settings, window.outcomes, training.action_strategies(settings), bundle_loader(settings)
        )
        path, _ = learner.train_night(settings, window, ranks)
        return f"published policy {path.name}"

    def seen(self, ctx: Context, payload: Any) -> Seen:
        from ..models.policy import LearnedPolicy

        def verify(path: Path) -> str:
            policy = LearnedPolicy(path)
            if policy.version != path.name:
                raise ValueError(f"policy.json names version {policy.version}")
            report = _report(path / "report.json")
            return f"policy {policy.version} loads ({len(policy.plan_names)} plans), report of {len(report['window'])} day(s)"

        from ..models.policy import policy_store

        return versioned_store(policy_store(ctx.settings), verify)


class RankerWriter(Writer):
    name, label, pointers = "ranker save", "ranking.train.train_night", ("LATEST",)

    def root(self, settings: Settings) -> Path:
        from ..ranking.train import rankers_root

        return rankers_root(settings)

    def payload(self, ctx: Context, run: int) -> date:
        return ctx.days[-1]

    def write(self, settings: Settings, payload: date, pause: Pause) -> str:
        from ..ranking import train
        from ..runtime import bundle_loader

        path, report, _ = train.train_night(settings, payload, bundle_loader(settings))
        return f"published ranker {path.name} (loss {report['loss']})"

    def seen(self, ctx: Context, payload: Any) -> Seen:
        from ..models.ranker import Ranker

        def verify(path: Path) -> str:
            ranker = Ranker(path)
            if ranker.version != path.name:
                raise ValueError(f"ranker.json names version {ranker.version}")
            report = _report(path / "report.json")
            return f"ranker {ranker.version} loads ({len(ranker.feature_names)} features), evaluated on {report['evaluation_day']}"

        from ..models.ranker import ranker_store

        return versioned_store(ranker_store(ctx.settings), verify)


def _report(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ValueError(f"no {path.name}")
    return json.loads(path.read_text(encoding="utf-8"))


# -- bundle and promotion -------------------------------------------------------------------------


class BundleWriter(Writer):
    name, label, pointers = "bundle build", "artifacts.bundle.build_bundle", ("LATEST",)

    def root(self, settings: Settings) -> Path:
        from ..artifacts import bundles_root

        return bundles_root(settings)

    def write(self, settings: Settings, payload: Any, pause: Pause) -> str:
        from ..artifacts import build_bundle

        manifest = build_bundle(settings)
        return f"built bundle {manifest['bundle_id']} ({len(manifest['files'])} files)"

    def seen(self, ctx: Context, payload: Any) -> Seen:
        from ..artifacts import verify_bundle

        def verify(path: Path) -> str:
            return f"{len(verify_bundle(path)['files'])} files verify"

        from ..artifacts.bundle import bundle_store

        return versioned_store(bundle_store(ctx.settings), verify)


class PromotionWriter(Writer):
    """``promote`` records its decision (promotions.jsonl, rewritten atomically), switches
    PROMOTED, then records the switch. ``data`` is the decision record; ``pointer`` is PROMOTED;
    ``after-pointer`` is the record of the switch."""

    name, label, pointers = "promotion pointer", "promotion.promote (gates, record, PROMOTED)", ("PROMOTED",)
    kill_points = (DATA, POINTER, AFTER)
    error_points = (DATA, POINTER, AFTER)

    def root(self, settings: Settings) -> Path:
        from ..artifacts import bundles_root

        return bundles_root(settings)

    def payload(self, ctx: Context, run: int) -> str:
        """The candidate: whichever of the two prepared bundles is not the champion now."""
        from ..artifacts.champion import promoted_bundle

        champion = promoted_bundle(ctx.settings)
        return ctx.candidates[1] if champion is not None and champion.name == ctx.candidates[0] else ctx.candidates[0]

    def write(self, settings: Settings, payload: str, pause: Pause) -> str:
        from ..artifacts import bundles_root
        from ..promotion import promote

        decision = promote(settings, bundles_root(settings) / payload)
        if not decision.promoted:
            raise RuntimeError(f"{payload} was not promoted: {decision.reasons}")
        return f"promoted {payload}"

    def seen(self, ctx: Context, payload: Any) -> Seen:
        from ..artifacts import verify_bundle
        from ..artifacts.champion import HISTORY
        from ..artifacts.champion import POINTER as PROMOTED

        root = self.root(ctx.settings)
        name = read_pointer(root / PROMOTED)
        problems: list[str] = []
        try:
            history = json_lines(root / HISTORY)
        except ValueError as error:
            history = []
            problems.append(f"{HISTORY} does not parse: {error}")
        switches = [e for e in history if e["action"] in ("switched", "rollback")]
        recorded = switches[-1]["bundle_id"] if switches else None
        gaps = [] if recorded == name else [f"{HISTORY} lacks the switch to {name} (its last switch names {recorded})"]
        try:
            files = len(verify_bundle(root / name)["files"]) if name else 0
            summary = f"PROMOTED -> {name}: {files} files verify; " + (
                "the history records the switch" if not gaps else "the history lacks the switch"
            )
        except Exception as error:  # noqa: BLE001
            problems.append(f"PROMOTED names {name}, which does not verify: {error}")
            summary = f"PROMOTED -> {name}: does not verify"
        leftovers = [item for item in hidden_entries(root, root) if not item.endswith(".lock")]
        return Seen(name, summary, problems, leftovers, gaps=gaps)

    def next_payload(self, ctx: Context, payload: str) -> str:
        """The bundle that is not the champion now (the faulted run may have switched already)."""
        return self.payload(ctx, 0)

    def moved(self, before: Seen, after: Seen, payload: Any) -> bool:
        return after.pointer == payload


WRITERS: dict[str, Writer] = {
    w.name: w
    for w in (
        CatalogWriter(),
        IndexBuildWriter(),
        LanceWriter(),
        Q2EWriter(),
        LogWriterCase(),
        PolicyWriter(),
        RankerWriter(),
        BundleWriter(),
        PromotionWriter(),
    )
}
