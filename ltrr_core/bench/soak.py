"""Soak: ``ltrr serve --workers N`` under steady load for minutes, with hot reloads every
``reload_every_s`` and one worker stopped by SIGTERM half way (uvicorn's supervisor starts a
new one). Everything runs on 127.0.0.1 and every loop is bounded in time.

The server runs on a sandbox data directory beside the platform: its ``indexes`` links to the
platform's (the Lance table the bundles pin), its ``bundles`` holds two copies of the promoted
champion -- the second under a new id, same files and checksums -- so the soak can move the
sandbox's ``PROMOTED`` pointer back and forth without touching the platform's. Every worker
watches that pointer and reloads.

1. Capacity: ``capacity_clients`` closed-loop clients for ``capacity_seconds`` -> requests/s.
2. Soak: an open-loop schedule at ``load_fraction`` x capacity (request i is due at i / rate;
   lateness is reported, so queueing is not hidden), sent by ``client_threads`` threads. A request
   counts as answered on a 200; a 503 is retried after its Retry-After (what the header is for)
   up to ``max_retries`` times and counted; anything else is a failure.
3. The server is stopped with SIGTERM; every impression file on disk (all workers) is read and
   its request ids compared with the ids answered: each must be there exactly once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts.bundle import MANIFEST
from ..artifacts.champion import POINTER, serving_bundle
from ..config import Settings, SoakConfig
from ..durable import write_json_atomic, write_pointer
from .runtime import free_port, wait_healthy


@dataclass
class SoakResult:
    minutes: float
    workers: int
    capacity_rps: float
    target_rps: float
    scheduled: int
    answered: int
    failed: int
    failures: dict[str, int]
    retried_503: int
    reloads: int
    bundles_served: dict[str, int]
    worker_restarted: bool
    restart_note: str
    impressions_on_disk: int
    impressions_missing: int
    impressions_duplicated: int
    latency_ms: dict[str, float]
    max_lateness_ms: float
    started_at: str
    champion: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def prepare_sandbox(settings: Settings, root: Path) -> tuple[Path, list[str]]:
    """The sandbox data dir and the two bundle ids its pointer alternates between."""
    champion = serving_bundle(settings)
    if root.exists():
        shutil.rmtree(root)
    (root / "bundles").mkdir(parents=True)
    (root / "indexes").symlink_to((settings.data_dir / "indexes").resolve(), target_is_directory=True)
    first = root / "bundles" / champion.name
    shutil.copytree(champion, first)
    second = root / "bundles" / f"{champion.name}-soak"
    shutil.copytree(champion, second)
    manifest = json.loads((second / MANIFEST).read_text(encoding="utf-8"))
    write_json_atomic(second / MANIFEST, {**manifest, "bundle_id": second.name})  # files and checksums unchanged
    write_pointer(root / "bundles" / POINTER, first.name)
    return root, [first.name, second.name]


def _start_server(config_path: Path, sandbox: Path, workers: int, port: int, log: Path) -> subprocess.Popen:
    import yaml

    config = sandbox / "soak.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "extends": str(Path(config_path).resolve()),
                "data_dir": str(sandbox),
                "runtime": {"log_dir": str(sandbox / "logs"), "reload_poll_seconds": 1.0},
            }
        )
    )
    ltrr = Path(sys.executable).with_name("ltrr")
    return subprocess.Popen(
        [str(ltrr), "--config", str(config), "serve", "--port", str(port), "--workers", str(workers)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=dict(os.environ),
        start_new_session=True,
    )


def measure_capacity(base: str, queries: list[str], clients: int, seconds: float) -> float:
    """Closed loop: ``clients`` threads each sending the next query as soon as the last is answered."""
    import httpx

    done = 0
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(worker: int) -> None:
        nonlocal done
        with httpx.Client(base_url=base, timeout=60) as http:
            i = worker
            while time.monotonic() < deadline:
                if http.post("/search", json={"query": queries[i % len(queries)]}).status_code == 200:
                    with lock:
                        done += 1
                i += clients

    threads = [threading.Thread(target=client, args=(w,)) for w in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done / (time.monotonic() - started)


class _OpenLoop:
    """Request i is due at start + i / rate; a pool of threads sends them (bounded by ``until``)."""

    def __init__(self, base: str, queries: list[str], rate: float, seconds: float, config: SoakConfig):
        self.base, self.queries, self.rate, self.config = base, queries, rate, config
        self.n = int(rate * seconds)
        self.next = 0
        self.lock = threading.Lock()
        self.answered: list[str] = []
        self.bundles: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.retried = 0
        self.latencies: list[float] = []
        self.lateness = 0.0

    def _take(self) -> int | None:
        with self.lock:
            if self.next >= self.n:
                return None
            self.next += 1
            return self.next - 1

    def _send(self, http, i: int) -> None:
        body = {"query": self.queries[i % len(self.queries)], "user_id": f"soak-{i % 100}"}
        started = time.perf_counter()
        for attempt in range(self.config.max_retries + 1):
            try:
                response = http.post("/search", json=body)
            except Exception as error:  # noqa: BLE001 - every transport failure is counted by kind
                with self.lock:
                    self.failures[type(error).__name__] += 1
                return
            if response.status_code == 503 and attempt < self.config.max_retries:
                with self.lock:
                    self.retried += 1
                time.sleep(float(response.headers.get("retry-after", "1")))
                continue
            break
        with self.lock:
            if response.status_code == 200:
                payload = response.json()
                self.answered.append(payload["request_id"])
                self.bundles[payload["bundle_id"]] += 1
                self.latencies.append((time.perf_counter() - started) * 1000)
            else:
                self.failures[f"HTTP {response.status_code}"] += 1

    def run(self, start: float) -> None:
        import httpx

        def sender() -> None:
            with httpx.Client(base_url=self.base, timeout=60) as http:
                while (i := self._take()) is not None:
                    due = start + i / self.rate
                    wait = due - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    else:
                        with self.lock:
                            self.lateness = max(self.lateness, -wait * 1000)
                    self._send(http, i)

        threads = [threading.Thread(target=sender) for _ in range(self.config.client_threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def _worker_pids(pid: int) -> list[int]:
    import psutil

    alive = []
    for child in psutil.Process(pid).children():
        try:  # a stopped worker is a zombie until the supervisor reaps it: not a worker
            command = " ".join(child.cmdline()) if child.status() != psutil.STATUS_ZOMBIE else ""
        except psutil.NoSuchProcess:
            continue
        if "multiprocessing" in command and "resource_tracker" not in command:
            alive.append(child.pid)
    return alive


def _disturb(
    sandbox: Path,
    ids: list[str],
    process: subprocess.Popen,
    config: SoakConfig,
    seconds: float,
    start: float,
    stop: threading.Event,
    out: dict[str, object],
) -> None:
    """Flip the pointer every ``reload_every_s``; SIGTERM one worker at ``restart_at_fraction``."""
    reloads, restarted = 0, False
    next_reload = start + config.reload_every_s
    restart_at = start + seconds * config.restart_at_fraction
    while not stop.wait(0.2):
        now = time.monotonic()
        if now >= next_reload:
            reloads += 1
            write_pointer(sandbox / "bundles" / POINTER, ids[reloads % 2])
            next_reload += config.reload_every_s
        if not restarted and now >= restart_at:
            restarted = True
            before = _worker_pids(process.pid)
            if before:
                os.kill(before[0], signal.SIGTERM)
                out["restart_note"] = f"SIGTERM to worker {before[0]} at {now - start:.0f} s"
                out["stopped"] = before[0]
            else:
                out["restart_note"] = "no worker process found to stop"
    out["reloads"] = reloads
    after = _worker_pids(process.pid)
    out["worker_restarted"] = bool(out.get("stopped")) and out["stopped"] not in after and len(after) == config.workers


def impressions_by_request(log_root: Path) -> Counter[str]:
    """Every request id in every impression file on disk (not the reader's deduplicated view)."""
    import pyarrow.parquet as pq

    return Counter(
        rid
        for part in (log_root / "impressions").rglob("*.parquet")
        for rid in pq.read_table(part, columns=["request_id"]).column(0).to_pylist()
    )


def run_soak(settings: Settings, config_path: Path, queries: list[str], workdir: Path) -> SoakResult:
    config = settings.bench.soak
    sandbox, ids = prepare_sandbox(settings, workdir / "soak")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = _start_server(config_path, sandbox, config.workers, port, workdir / "soak-serve.log")
    try:
        wait_healthy(base, process, 600)
        time.sleep(5)  # the other workers finish loading too
        capacity = measure_capacity(base, queries, config.capacity_clients, config.capacity_seconds)
        seconds = config.minutes * 60
        loop = _OpenLoop(base, queries, capacity * config.load_fraction, seconds, config)
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        start, stop = time.monotonic(), threading.Event()
        disturbed: dict[str, Any] = {}  # filled by _disturb: reloads (int), restart_note (str), worker_restarted
        disturber = threading.Thread(
            target=_disturb, args=(sandbox, ids, process, config, seconds, start, stop, disturbed)
        )
        disturber.start()
        loop.run(start)
        stop.set()
        disturber.join()
    finally:
        process.send_signal(signal.SIGTERM)  # the supervisor stops its workers; each flushes its logs
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    on_disk = impressions_by_request(sandbox / "logs")
    answered = Counter(loop.answered)
    soak_on_disk = Counter({rid: n for rid, n in on_disk.items() if rid in answered})
    return SoakResult(
        minutes=config.minutes,
        workers=config.workers,
        capacity_rps=round(capacity, 1),
        target_rps=round(loop.rate, 1),
        scheduled=loop.n,
        answered=len(loop.answered),
        failed=sum(loop.failures.values()),
        failures=dict(loop.failures),
        retried_503=loop.retried,
        reloads=int(disturbed.get("reloads", 0)),
        bundles_served=dict(loop.bundles),
        worker_restarted=bool(disturbed.get("worker_restarted")),
        restart_note=str(disturbed.get("restart_note", "")),
        impressions_on_disk=sum(soak_on_disk.values()),
        impressions_missing=sum(1 for rid in answered if rid not in soak_on_disk),
        impressions_duplicated=sum(n - 1 for n in soak_on_disk.values() if n > 1),
        latency_ms={f"p{q}": round(float(np.percentile(loop.latencies, q)), 1) for q in (50, 95, 99)}
        if loop.latencies
        else {},
        max_lateness_ms=round(loop.lateness, 1),
        started_at=started_at,
        champion=ids[0],
    )


def render_soak(result: SoakResult, machine: str, command: str) -> str:
    ok = (
        result.failed == 0
        and result.impressions_missing == 0
        and result.impressions_duplicated == 0
        and result.worker_restarted
        and result.reloads > 0
    )
    lines = [
        "# Soak: the runtime under steady load, hot reloads and a worker restart",
        "",
        f"Written by `{command}` at {result.started_at} on {machine}. Everything on 127.0.0.1.",
        "",
        f"`ltrr serve --workers {result.workers}` on a sandbox of the platform (two copies of the promoted champion "
        f"{result.champion}, the pointer flipping between them); open-loop load at {result.target_rps} requests/s "
        f"= {result.target_rps / result.capacity_rps:.0%} of the {result.capacity_rps} requests/s measured closed-loop "
        f"just before, for {result.minutes:g} minutes.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| requests scheduled / answered (200) | {result.scheduled} / {result.answered} |",
        f"| failed requests | {result.failed} {result.failures or ''} |",
        f"| 503 retried after Retry-After (then answered or counted above) | {result.retried_503} |",
        f"| hot reloads (pointer flips) / requests answered per bundle | {result.reloads} / {result.bundles_served} |",
        f"| worker restart | {result.restart_note}; replaced by a new worker: {'yes' if result.worker_restarted else 'no'} |",
        f"| impressions on disk for the answered requests | {result.impressions_on_disk} "
        f"(missing {result.impressions_missing}, duplicated {result.impressions_duplicated}) |",
        f"| end-to-end latency p50 / p95 / p99 (ms) | {result.latency_ms.get('p50')} / {result.latency_ms.get('p95')} / "
        f"{result.latency_ms.get('p99')} |",
        f"| most a request was sent late (client pool saturated) | {result.max_lateness_ms} ms |",
        "",
        f"**Outcome: {'zero failed requests, impressions == answered, under reloads and a worker restart' if ok else 'NOT clean: see the rows above'}.**",
    ]
    return "\n".join(lines) + "\n"
