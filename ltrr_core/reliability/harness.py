"""Run every writer under every fault in a child process, then look at what a reader sees.

One cell = (writer, fault at one point):

1. what a reader sees before (must be whole);
2. a child process runs the real writer with the fault armed (``inject``): it is SIGKILLed or
   gets the OSError at that point;
3. what a reader sees after: the pointer still names a whole version, no visible version is
   half-written, acknowledged records are there exactly once; the champion (PROMOTED) still
   verifies, loads in a fresh runtime and answers a query;
4. the next run (a new child, no fault; for the log writer's ENOSPC/EIO, the same process
   retrying its flush) completes and publishes; the same checks again.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, date
from pathlib import Path
from typing import Any

from ..config import Settings
from . import warm
from .checks import Seen
from .inject import FAULTS, KILL, POINTER, PUBLISH, Fault
from .writers import WRITERS, Context, Writer

# Promotion's smoke gate times the candidate against the champion; on a shared 2-core machine
# the harness tests the pointer write, not latency. Training sizes are cut to a few seconds.
HARNESS_OVERRIDES: dict[str, Any] = {
    "promotion.latency_budget_ms": 600_000.0,
    "promotion.first_champion_latency_budget_ms": 600_000.0,
    "promotion.latency_regression_tolerance": 100.0,
    "promotion.latency_slack_ms": 600_000.0,
    "promotion.smoke_repeats": 1,
    "promotion.smoke_queries": ["taylor swift", "rock", "bohemian rhapsody queen"],
    "ranker.min_requests": 5,
    "ranker.iterations": 30,
    "bandit.learner.min_engaged_requests": 10,
    "bandit.learner.iterations": 30,
    "bandit.ope.n_bootstrap": 100,
    # The writers' durability does not depend on what the models learn from: the simulated days
    # alone, not the real CPCD replay (minutes of retrieval per learner run, in every child).
    "ranker.sources": ["logs"],
    "bandit.learner.sources": ["logs"],
}
TRAFFIC = (40, 30, 15)  # simulated requests on each of three days (train / validate / evaluate)
CHILD_TIMEOUT_S = 900.0
_PRELOAD = [
    "pandas",
    "pyarrow.parquet",
    "numpy",
    "catboost",
    "torch",
    "sentence_transformers",
    "mlflow",
    "ltrr_core.reliability.writers",
    "ltrr_core.catalog.pipeline",
    "ltrr_core.index.build",
    "ltrr_core.memory.build",
    "ltrr_core.bandit.learner",
    "ltrr_core.ranking.train",
    "ltrr_core.promotion",
    "ltrr_core.runtime.service",
    "ltrr_core.logs",
    "ltrr_core.reliability.warm",
]


# -- the child process ---------------------------------------------------------------------------


def _child_main(conn: Any, writer: Writer, settings: Settings, payload: Any, fault: Fault | None) -> None:
    def report(where: str) -> None:
        conn.send(("hit", where))

    def pause(error: OSError) -> None:
        conn.send(("paused", f"{type(error).__name__}: {error}"))
        conn.recv()

    try:
        if fault is None:
            summary = writer.write(settings, payload, pause)
        else:
            with writer.injection(settings, payload, fault, report):
                summary = writer.write(settings, payload, pause)
        conn.send(("done", summary))
    except BaseException as error:  # noqa: BLE001 - the child reports how it ended, whatever it was
        conn.send(("raised", f"{type(error).__name__}: {error}"))
    finally:
        conn.close()


@dataclass
class ChildRun:
    """How a child ended: ``completed`` (its summary), or raised, or killed; where the fault hit."""

    hit: str | None = None
    ended: str = ""
    completed: bool = False
    killed: bool = False
    paused: str | None = None
    seconds: float = 0.0


class Child:
    def __init__(self, writer: Writer, settings: Settings, payload: Any, fault: Fault | None):
        context = _context()
        self.conn, child_conn = context.Pipe()
        self.process = context.Process(
            target=_child_main, args=(child_conn, writer, settings, payload, fault), daemon=True
        )
        self.started = time.perf_counter()
        self.run = ChildRun()
        self.process.start()
        child_conn.close()

    def wait(self) -> ChildRun:
        """Until the child pauses (a caught fault it will retry after ``resume``) or ends."""
        deadline = self.started + CHILD_TIMEOUT_S
        while time.perf_counter() < deadline:
            if self.conn.poll(0.05):
                try:
                    kind, text = self.conn.recv()
                except EOFError:
                    break
                if kind == "hit":
                    self.run.hit = text
                elif kind == "paused":
                    self.run.paused = text
                    return self.run
                else:
                    self.run.completed, self.run.ended = kind == "done", text
            elif not self.process.is_alive():
                break
        else:
            self.process.kill()
            self.run.ended = f"timed out after {CHILD_TIMEOUT_S:.0f} s"
        self.process.join(30)
        if self.process.exitcode == -9 and not self.run.ended:
            self.run.killed, self.run.ended = True, "killed (SIGKILL)"
        elif not self.run.ended:
            self.run.ended = f"exited with code {self.process.exitcode} without a word"
        self.run.seconds = time.perf_counter() - self.started
        return self.run

    def resume(self) -> ChildRun:
        self.run.paused = None
        self.conn.send("go")
        return self.wait()


def _context() -> Any:
    """A forkserver with the heavy libraries loaded once (no lancedb: it starts a thread at import,
    which must not be forked); each child is forked from it, fresh, in a fraction of a second."""
    from multiprocessing import forkserver

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    previous = os.environ.get(warm.ENV)
    os.environ[warm.ENV] = "1"  # read by the forkserver as it starts, and by nothing else
    try:
        forkserver.ensure_running()
    finally:
        if previous is None:
            os.environ.pop(warm.ENV, None)
        else:
            os.environ[warm.ENV] = previous
    return context


def run_child(writer: Writer, settings: Settings, payload: Any, fault: Fault | None = None) -> ChildRun:
    child = Child(writer, settings, payload, fault)
    run = child.wait()
    while run.paused:
        run = child.resume()
    return run


# -- one cell ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    writer: str
    fault: str
    point: str
    fired: str | None  # where the fault hit (None: the writer never reached the point)
    child: str  # how the faulted run ended
    after: str  # what a reader saw after the fault
    problems: list[str]  # broken or half-written state a reader could reach (empty: none)
    leftovers: list[str]  # invisible garbage after the fault (dot-named temps, staging, orphans)
    lost: int | None  # acknowledged records missing (None: the writer has no records)
    duplicated: int | None
    next_run: str
    next_ok: bool
    champion: str
    champion_ok: bool
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.fired is not None
            and not self.problems
            and not self.lost
            and not self.duplicated
            and self.next_ok
            and self.champion_ok
        )


def champion_serves(settings: Settings, query: str) -> tuple[bool, str]:
    """PROMOTED verifies, a fresh runtime loads it, and it answers ``query`` with results."""
    from ..artifacts.champion import serving_bundle
    from ..runtime.service import load_service

    try:
        bundle = serving_bundle(settings)
        results = load_service(settings, bundle).search(query).results
    except Exception as error:  # noqa: BLE001 - any failure to serve is the finding
        return False, f"{type(error).__name__}: {error}"
    return bool(results), f"{bundle.name} answers {query!r} with {len(results)} results"


def _damage(writer: Writer, ctx: Context, payload: Any, before: Seen, seen: Seen) -> tuple[int | None, int | None]:
    expected = writer.expected(ctx, payload, before)
    if expected is None or seen.records is None:
        return None, None
    present: Counter = seen.records
    return len(expected - set(present)), sum(n - 1 for n in present.values() if n > 1)


def run_cell(ctx: Context, writer: Writer, fault: Fault, run: int) -> Outcome:
    started = time.perf_counter()
    payload = writer.payload(ctx, run)
    before = writer.seen(ctx, payload)
    child = Child(writer, ctx.settings, payload, fault)
    faulted = replace(child.wait())  # a snapshot: the log writer's child goes on after a pause
    after = writer.seen(ctx, payload)
    lost, duplicated = _damage(writer, ctx, payload, before, after)
    champion_ok, champion = champion_serves(ctx.settings, ctx.query)
    how = faulted.paused or faulted.ended
    if faulted.paused:  # the log writer kept its rows: its retry is the next run
        next_run, next_payload = child.resume(), payload
    else:
        next_payload = writer.next_payload(ctx, payload)
        next_run = run_child(writer, ctx.settings, next_payload)
    final = writer.seen(ctx, next_payload)
    lost_next, duplicated_next = _damage(writer, ctx, next_payload, before, final)
    champion_next_ok, champion_next = champion_serves(ctx.settings, ctx.query)
    problems = (
        [f"before the fault: {p}" for p in before.problems]
        + after.problems
        + [f"after the next run: {p}" for p in final.problems + final.gaps]
    )
    moved = writer.moved(before, final, next_payload)
    return Outcome(
        writer=writer.name,
        fault=fault.kind,
        point=fault.point,
        fired=faulted.hit,
        child=how,
        after=after.summary,
        problems=problems,
        leftovers=writer.new_leftovers(before, after),
        lost=_worst(lost, lost_next),
        duplicated=_worst(duplicated, duplicated_next),
        next_run=(next_run.ended if next_run.completed else f"FAILED: {next_run.ended}")
        + ("" if moved else " (published nothing new)"),
        next_ok=next_run.completed and moved and not final.problems and not final.gaps,
        champion=champion if champion_ok and champion_next_ok else f"{champion}; after the next run: {champion_next}",
        champion_ok=champion_ok and champion_next_ok,
        seconds=round(time.perf_counter() - started, 1),
        notes=_notes(writer, before, after, faulted.completed)
        + writer.notes(payload, next_payload)
        + [f"until the next run: {gap}" for gap in after.gaps],
    )


def _worst(a: int | None, b: int | None) -> int | None:
    return None if a is None and b is None else max(a or 0, b or 0)


def _notes(writer: Writer, before: Seen, after: Seen, completed: bool) -> list[str]:
    notes = []
    if completed:
        notes.append("the faulted run completed: the fault never reached the writer")
    if before.pointer is not None and after.pointer != before.pointer:
        notes.append(f"the pointer moved during the faulted run ({before.pointer} -> {after.pointer})")
    return notes


def chosen_faults(writer: Writer, kind: str, every_point: bool) -> list[Fault]:
    """Every point of ``kind``; or one: a kill at the rename that publishes (else at the pointer
    switch, else the first point), an error at the first data write."""
    points = writer.faults(kind)
    if every_point:
        return points
    if kind == KILL:
        return [
            next((f for f in points if f.point == PUBLISH), next((f for f in points if f.point == POINTER), points[0]))
        ]
    return points[:1]


def ensure_published(ctx: Context, writer: Writer) -> None:
    """A writer whose store is still empty (policy, ranker) publishes once normally first."""
    if writer.pointers and writer.seen(ctx, writer.payload(ctx, 0)).pointer is None:
        run = run_child(writer, ctx.settings, writer.payload(ctx, 0))
        if not run.completed:
            raise RuntimeError(f"{writer.name}: the first (unfaulted) run failed: {run.ended}")


# -- the platform the harness runs on ---------------------------------------------------------


def harness_settings(settings: Settings) -> Settings:
    return settings.with_overrides(**HARNESS_OVERRIDES)


def prepare(settings: Settings, work: Path, query: str = "taylor swift") -> Context:
    """On a built platform (catalog, index build, Q2E): a promoted champion and a second gated
    bundle, three days of simulated traffic, real impression records, the catalog's embedding texts."""
    from ..artifacts import build_bundle, bundles_root
    from ..artifacts.champion import promoted_bundle
    from ..catalog.store import CatalogStore
    from ..index.build import encode_texts
    from ..index.documents import embedding_input
    from ..logs import impression_record
    from ..promotion import promote
    from ..runtime.service import load_service

    work.mkdir(parents=True, exist_ok=True)
    root = bundles_root(settings)
    champion = promoted_bundle(settings)
    if champion is None:
        champion = root / build_bundle(settings)["bundle_id"]
        decision = promote(settings, champion)
        if not decision.promoted:
            raise RuntimeError(f"the harness's first champion failed its gates: {decision.reasons}")
    candidate = root / build_bundle(settings)["bundle_id"]
    service = load_service(settings, champion)
    entities = CatalogStore(settings.data_dir / "catalog").load()
    days = _simulate(settings, service, entities)
    impressions = [
        impression_record(service.search(q), None, {}, _noon(days[0])) for q in _queries(entities, LOG_RECORDS)
    ]
    rows = entities.to_dict("records")
    return Context(
        settings,
        work,
        query,
        days,
        impressions,
        (champion.name, candidate.name),
        entities["id"].tolist(),
        entities["type"].tolist(),
        [embedding_input(r, settings.embedding.max_tags_in_text, settings.embedding.name_weight) for r in rows],
        lambda texts: encode_texts(settings, texts).vectors,
    )


LOG_RECORDS = 30


def _noon(day: date) -> Any:
    from datetime import datetime
    from datetime import time as clock

    return datetime.combine(day, clock(12), tzinfo=UTC)


def _queries(entities: Any, n: int) -> list[str]:
    titles = entities.loc[entities["type"] == "track", "title"].dropna()
    return titles.sample(n=n, random_state=0).tolist()


def _simulate(settings: Settings, service: Any, entities: Any) -> list[date]:
    """Three days of simulated traffic through the champion (skipped when logged already)."""
    from ..logs import logged_days
    from ..logs.recorder import InteractionRecorder
    from ..simulate import Simulator, World

    days = [date(2026, 4, d) for d in (1, 2, 3)]
    log_root = settings.data_dir / settings.runtime.log_dir
    if set(d.isoformat() for d in days) <= set(logged_days(log_root)):
        return days
    recorder = InteractionRecorder(log_root, settings.runtime)
    simulator = Simulator(settings, World(settings, entities), service, recorder)
    for day, n in zip(days, TRAFFIC):
        simulator.run_day(day, n)
    recorder.close()
    return days


def run_all(
    ctx: Context,
    writers: list[str] | None = None,
    faults: tuple[str, ...] = FAULTS,
    every_point: bool = True,
    progress: Any = None,
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for name in writers or list(WRITERS):
        writer = WRITERS[name]
        ensure_published(ctx, writer)
        for kind in faults:
            for fault in chosen_faults(writer, kind, every_point):
                outcomes.append(run_cell(ctx, writer, fault, run=len(outcomes) + 1))
                if progress:
                    progress(outcomes[-1])
    return outcomes
