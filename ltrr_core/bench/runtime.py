"""Runtime benchmark: the query runtime over HTTP on 127.0.0.1 with concurrent clients.

Per-stage latency comes from the server's own decision trace (``timings_ms``: QU, each
strategy, ranking, total), end-to-end latency and throughput from the clients. At the real
catalog the runtime is a separate ``ltrr serve`` process on the platform's promoted bundle, so
its cold start and resident memory are the runtime's alone. At the generated 1M catalog the
service is assembled in the bench process from the components it just built and served from
a thread: clients and server share a process (and the GIL), so that throughput is a lower
bound, and memory is the bench process's growth while assembling the service.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base: str, process: subprocess.Popen, seconds: float, query: str | None = None) -> None:
    """Poll ``/healthz`` -- or, with ``query``, ``/search`` until it answers that query: the cold
    start a user sees -- until it answers 200; RuntimeError if the server exits or ``seconds`` pass."""
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ltrr serve exited with {process.returncode} before answering")
        try:
            answer = (
                httpx.post(f"{base}/search", json={"query": query}, timeout=5)
                if query
                else httpx.get(f"{base}/healthz", timeout=1)
            )
            if answer.status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05 if query else 0.25)
    raise RuntimeError(f"ltrr serve did not answer {'/search' if query else '/healthz'} within {seconds:.0f} s")


def _percentiles(values: list[float]) -> str:
    return f"{np.percentile(values, 50):.1f} / {np.percentile(values, 99):.1f}" if values else "n/a"


def http_load(base_url: str, queries: list[str], concurrency: int, n_requests: int) -> dict[str, Any]:
    """``n_requests`` searches from ``concurrency`` client threads, each with its own connection."""
    import httpx

    latencies: list[float] = []
    stages: dict[str, list[float]] = {}
    errors = 0
    lock = threading.Lock()
    counter = iter(range(n_requests))

    def worker() -> None:
        nonlocal errors
        with httpx.Client(base_url=base_url, timeout=60) as client:
            for i in counter:
                started = time.perf_counter()
                response = client.post(
                    "/search", json={"query": queries[i % len(queries)], "user_id": f"bench-{i % 50}"}
                )
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    if response.status_code != 200:
                        errors += 1
                        continue
                    latencies.append(elapsed)
                    for stage, ms in response.json()["timings_ms"].items():
                        stages.setdefault(stage, []).append(ms)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for _ in range(concurrency):
            pool.submit(worker)
    seconds = time.perf_counter() - started
    return {
        "concurrency": concurrency,
        "requests": n_requests,
        "errors": errors,
        "throughput_rps": round(len(latencies) / seconds, 1),
        "end_to_end_ms": _percentiles(latencies),
        "stages_ms": {stage: _percentiles(stages[stage]) for stage in sorted(stages, key=_stage_order)},
    }


def _stage_order(stage: str) -> tuple[int, str]:
    """qu first, then the strategies, then rank and total."""
    return ({"qu": 0, "rank": 2, "total": 3}.get(stage, 1), stage)


def _load_levels(base_url: str, queries: list[str], settings: Settings) -> list[dict[str, Any]]:
    http_load(base_url, queries, 1, 10)  # warm connections and caches
    return [http_load(base_url, queries, c, settings.bench.http_requests) for c in settings.bench.http_concurrency]


def bench_serve_process(
    settings: Settings, config_path: Path, bundle: Path, queries: list[str], log_dir: Path, workers: int = 1
) -> dict[str, Any]:
    """A real ``ltrr serve [--workers N]`` process: cold start to the first answered search, RSS
    of each serving process, HTTP load."""
    import yaml

    config = log_dir / "bench-serve.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        yaml.safe_dump(
            {
                "extends": str(Path(config_path).resolve()),
                "data_dir": str(settings.data_dir),
                "runtime": {
                    "log_dir": str(log_dir / "logs"),
                    # every level sends the same queries: measure misses
                    "query_cache_size": 0,
                },
            }
        )
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    ltrr = Path(sys.executable).with_name("ltrr")
    started = time.perf_counter()
    process = subprocess.Popen(
        [
            str(ltrr),
            "--config",
            str(config),
            "serve",
            "--port",
            str(port),
            "--bundle",
            str(bundle),
            "--workers",
            str(workers),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ),
    )
    try:
        wait_healthy(base, process, 3600, query=queries[0])
        cold_start = time.perf_counter() - started
        _wait_workers_loaded(process.pid, workers, 600)
        rss_ready = _serving_rss(process.pid, workers)
        levels = _load_levels(base, queries, settings)
        rss_loaded = _serving_rss(process.pid, workers)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    return {
        "workers": workers,
        "cold_start_s": round(cold_start, 1),
        "rss_mb": f"{rss_ready} ready, {rss_loaded} after load (per serving process)",
        "levels": levels,
    }


def _serving_rss(pid: int, workers: int) -> list[int]:
    """RSS (MiB) of each process that serves: the process itself, or uvicorn's worker processes."""
    import psutil

    parent = psutil.Process(pid)
    processes = (
        [parent] if workers == 1 else [c for c in parent.children(recursive=True) if c.memory_info().rss > 100 * 2**20]
    )
    return [round(p.memory_info().rss / 2**20) for p in processes]


def _wait_workers_loaded(pid: int, workers: int, timeout_s: float) -> None:
    """Until every worker holds a loaded bundle (a serving process past 300 MiB), so the load levels
    measure all of them, not the first one while the others still load."""
    deadline = time.monotonic() + timeout_s
    while len([mb for mb in _serving_rss(pid, workers) if mb > 300]) < workers:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{workers} workers were not all loaded within {timeout_s} s")
        time.sleep(0.1)


def bench_in_process(
    service, queries: list[str], settings: Settings, log_dir: Path, rss_growth_mb: float
) -> dict[str, Any]:
    """The service served by uvicorn from a thread of this process (see module docstring)."""
    import uvicorn

    from ..runtime.http import create_app

    port = free_port()
    app = create_app(service, log_dir / "logs", lambda: service, None)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.1)
    try:
        levels = _load_levels(f"http://127.0.0.1:{port}", queries, settings)
    finally:
        server.should_exit = True
        thread.join(timeout=60)
    return {"cold_start_s": None, "rss_mb": f"+{rss_growth_mb:.0f} (bench process growth)", "levels": levels}
