"""Drive the real SearchService with simulated people, one day at a time, writing real logs.

Each simulated day: request times drawn from the hourly traffic profile; for each request a
Last.fm user, an intent from the user's world, the query they type, a search through the
runtime (the policy samples its plan and the recorder writes the impression exactly as the
HTTP API does), then clicks, streams, likes and skips from the click model, recorded as
feedback. Ground truth (intent, intended entities, grades, variant) goes to
``<data_dir>/<simulate.out_dir>/truth/date=D/`` -- beside the logs, never in them.

A day is seeded by (seed, date) -- the people, their queries, the request ids and the service's
seed, from which every draw of the runtime derives -- so re-simulating a day from the same bundle
reproduces it. The simulator drives any service with ``search`` and a ``seed`` (``Searcher``):
the caller loads it, so simulation does not import the runtime.
Logs are append-only: a day that already has impressions is refused rather than doubled.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

from ..config import Settings
from ..durable import write_parquet
from ..logs import logged_days
from ..logs.recorder import InteractionRecorder
from ..query import InvalidQuery
from .clicks import make_click_model
from .phrasings import PhrasingTemplates, mine_templates
from .variants import typed_query
from .world import World

POSITIONS = 10


class DayAlreadyLogged(ValueError):
    """Simulating a day that already has logs would double it (logs are append-only)."""


@dataclass
class DaySummary:
    day: str
    requests: int = 0
    invalid_queries: int = 0
    clicks: int = 0
    streams: int = 0
    likes: int = 0
    skips: int = 0
    success_at_10: float = 0.0  # share of requests showing an intended entity
    mrr_at_10: float = 0.0  # of the first intended entity shown
    ctr_by_position: list[float] = field(default_factory=list)
    expected_ctr_by_position: list[float] = field(default_factory=list)  # from the click model
    by_intent: dict[str, int] = field(default_factory=dict)
    success_by_intent: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def truth_root(settings: Settings) -> Path:
    return settings.data_dir / settings.simulate.out_dir / "truth"


def days_to_simulate(settings: Settings, log_root: Path, n_days: int, start: date | None = None) -> list[date]:
    """``n_days`` from ``start``, or from the day after the last logged day, or from the config."""
    done = logged_days(log_root)
    if start is None:
        start = (
            (date.fromisoformat(done[-1]) + timedelta(days=1))
            if done
            else date.fromisoformat(settings.simulate.start_date)
        )
    days = [start + timedelta(days=i) for i in range(n_days)]
    clash = sorted(set(d.isoformat() for d in days) & set(done))
    if clash:
        raise DayAlreadyLogged(
            f"day(s) {clash} already have impressions under {log_root}; logs are append-only, "
            f"so pick a start date after {done[-1]} (or omit --start-date)"
        )
    return days


class Searcher(Protocol):
    """What the simulator drives: the runtime's ``SearchService`` (or anything that answers alike)."""

    seed: int

    def search(
        self,
        text: str,
        user_id: str | None = None,
        context: dict[str, Any] | None = None,
        k: int | None = None,
        request_id: str | None = None,
        explain: bool = False,
    ) -> Any: ...


class Simulator:
    def __init__(
        self,
        settings: Settings,
        world: World,
        service: Searcher,
        recorder: InteractionRecorder,
        truth_dir: Path | None = None,
        phrasings: PhrasingTemplates | None = None,
    ):
        self.settings, self.world, self.service, self.recorder = settings, world, service, recorder
        self.truth_dir = truth_dir or truth_root(settings)
        self.config = settings.simulate
        # Tag and "songs like" phrasings mined from real requests (memoised per process).
        self.phrasings = phrasings or (mine_templates(settings) if self.config.phrasing_source == "mined" else None)
        self.click_model = make_click_model(self.config.click_model)

    def request_times(self, day: date, n: int, rng: np.random.Generator) -> list[datetime]:
        weights = np.array(self.config.hourly_traffic, dtype=float)
        hours = rng.choice(24, size=n, p=weights / weights.sum())
        seconds = np.sort(hours * 3600 + rng.uniform(0, 3600, size=n))
        midnight = datetime.combine(day, time(0), tzinfo=UTC)
        return [midnight + timedelta(seconds=float(s)) for s in seconds]

    def run_day(self, day: date, n_requests: int, progress: Callable[[], None] | None = None) -> DaySummary:
        rng = np.random.default_rng([self.config.seed, day.toordinal()])
        # The runtime's draws derive from (its seed, request id): seed it for the day.
        self.service.seed = int(
            np.random.SeedSequence([self.config.seed, day.toordinal(), 1]).generate_state(1, np.uint64)[0] >> 1
        )
        end_of_day = datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC) - timedelta(microseconds=1)
        summary, truth = DaySummary(day.isoformat()), []
        clicks, expected, ranks, kinds = np.zeros(POSITIONS), np.zeros(POSITIONS), [], []
        for when in self.request_times(day, n_requests, rng):
            user = self.world.users[int(rng.integers(len(self.world.users)))]
            intent = self.world.draw(user, rng)
            text, variant = typed_query(intent, self.config, rng, self.phrasings)
            context = {"hour": when.hour, "weekday": when.weekday(), **self.world.context_of(user)}
            request_id = uuid.UUID(bytes=rng.bytes(16), version=4).hex
            try:
                response = self.service.search(text, user.user_id, context, request_id=request_id)
            except InvalidQuery:
                summary.invalid_queries += 1
                continue
            self.recorder.record_search(response, user.user_id, context, when)
            shown = [r["entity_id"] for r in response.results]
            grades = [intent.relevant.get(e, 0) for e in shown]
            for fb in self.click_model.simulate(grades, rng):
                at = min(when + timedelta(seconds=fb.delay), end_of_day)
                self.recorder.record_feedback(request_id, shown[fb.position - 1], fb.event, fb.position, fb.seconds, at)
                setattr(summary, fb.event + "s", getattr(summary, fb.event + "s") + 1)
                if fb.event == "click" and fb.position <= POSITIONS:
                    clicks[fb.position - 1] += 1
            n = min(len(grades), POSITIONS)
            expected[:n] += self.click_model.click_probabilities(grades)[:n]
            ranks.append(next((i + 1 for i, g in enumerate(grades[:POSITIONS]) if g == 2), None))
            kinds.append(intent.kind)
            truth.append(
                {
                    "request_id": request_id,
                    "timestamp": when,
                    "user_id": user.user_id,
                    "intent_kind": intent.kind,
                    "intent_key": intent.key,
                    "variant": variant,
                    "query": text,
                    "relevant_ids": list(intent.relevant),
                    "relevant_grades": list(intent.relevant.values()),
                }
            )
            summary.by_intent[intent.kind] = summary.by_intent.get(intent.kind, 0) + 1
            if progress:
                progress()
        self.recorder.flush()
        self._write_truth(day, truth)
        summary.requests = len(truth)
        if truth:
            summary.success_at_10 = round(sum(r is not None for r in ranks) / len(ranks), 4)
            summary.mrr_at_10 = round(sum(1 / r for r in ranks if r) / len(ranks), 4)
            summary.ctr_by_position = [round(c / len(truth), 4) for c in clicks]
            summary.expected_ctr_by_position = [round(e / len(truth), 4) for e in expected]
            found = pd.Series([r is not None for r in ranks]).groupby(pd.Series(kinds)).mean()
            summary.success_by_intent = {k: round(float(v), 4) for k, v in found.items()}
        return summary

    def _write_truth(self, day: date, rows: list[dict[str, Any]]) -> None:
        frame = pd.DataFrame(
            rows,
            columns=[
                "request_id",
                "timestamp",
                "user_id",
                "intent_kind",
                "intent_key",
                "variant",
                "query",
                "relevant_ids",
                "relevant_grades",
            ],
        )
        write_parquet(
            pa.Table.from_pandas(frame, preserve_index=False),
            self.truth_dir / f"date={day.isoformat()}" / "truth.parquet",
        )


def read_truth(root: Path, day: str | None = None) -> pd.DataFrame:
    """Ground truth of simulated requests under ``root`` (``truth_root(settings)``): evaluation only."""
    files = sorted(Path(root).glob(f"date={day or '*'}/truth.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()


def query_kinds(truth: pd.DataFrame) -> list[str]:
    """The query type an evaluation breaks results down by: the intent kind, or ``misspelled``
    when the typed query carries a misspelling (whatever the intent)."""
    return truth["intent_kind"].where(~truth["variant"].str.contains("misspelling"), "misspelled").tolist()


def simulate(
    settings: Settings,
    service: Searcher,
    n_days: int,
    queries_per_day: int | None = None,
    start: date | None = None,
    progress: Callable[[int], Callable[[], None]] | None = None,
) -> list[DaySummary]:
    """Simulate ``n_days`` against ``service`` (loaded by the caller, e.g. from the promoted
    bundle), writing impressions and feedback under the runtime's log directory."""
    from ..catalog.store import CatalogStore

    log_root = settings.data_dir / settings.runtime.log_dir
    days = days_to_simulate(settings, log_root, n_days, start)
    world = World(settings, CatalogStore(settings.data_dir / "catalog").load())
    recorder = InteractionRecorder(log_root, settings.runtime)
    simulator = Simulator(settings, world, service, recorder)
    n = queries_per_day or settings.simulate.queries_per_day
    try:
        return [simulator.run_day(day, n, progress(n) if progress else None) for day in days]
    finally:
        recorder.close()
