"""A real `ltrr serve` process under concurrent load, stopped with SIGTERM mid-load: every
answered request is on disk as exactly one impression, and every accepted feedback event too."""

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

import httpx
import pytest
import yaml

from ltrr_core.runtime.logs import read_logs

pytestmark = pytest.mark.slow
QUERIES = ["tayler love", "ghosts deadmau5", "80s female vocalists", "party rock anthem", "coldplay", "songs like adele",
           "metallica one", "lady gaga", "chill electronic", "halo beyonce"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server(q2e_platform, bundle_dir, tmp_path):
    settings, _, config_file = q2e_platform
    config = tmp_path / "serve.yaml"
    # A big buffer and a long flush interval: what reaches the disk is what SIGTERM flushed.
    config.write_text(yaml.safe_dump({"extends": str(config_file), "runtime": {
        "log_dir": str(tmp_path / "logs"), "flush_rows": 100_000, "flush_seconds": 3600}}))
    port = _free_port()
    ltrr = Path(sys.executable).with_name("ltrr")
    output = (tmp_path / "serve.out").open("wb")    # a file, not a pipe nobody drains
    process = subprocess.Popen([str(ltrr), "--config", str(config), "serve", "--port", str(port), "--bundle", str(bundle_dir)],
                               stdout=output, stderr=subprocess.STDOUT, env={**os.environ, "LTRR_ADMIN_TOKEN": "t0k"})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            pytest.fail(f"ltrr serve exited: {(tmp_path / 'serve.out').read_text()[-3000:]}")
        time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("ltrr serve did not answer /healthz within 300 s")
    yield base, process, tmp_path / "logs", tmp_path / "serve.out"
    if process.poll() is None:
        process.kill()
        process.wait()
    output.close()


def test_no_impression_is_lost_under_load_and_sigterm(server):
    base, process, log_root, output = server
    assert httpx.post(f"{base}/admin/reload", timeout=5).status_code == 401
    answered: list[str] = []
    feedback_accepted: list[tuple[str, str]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(worker: int) -> None:
        with httpx.Client(base_url=base, timeout=30) as http:
            i = 0
            while not stop.is_set():
                try:
                    response = http.post("/search", json={"query": QUERIES[(worker + i) % len(QUERIES)],
                                                          "user_id": f"load-{worker}"})
                except httpx.TransportError:
                    return                          # the server went away: nothing was answered
                i += 1
                if response.status_code != 200:
                    continue
                body = response.json()
                with lock:
                    answered.append(body["request_id"])
                if body["results"] and i % 3 == 0:
                    first = body["results"][0]["entity_id"]
                    try:
                        fb = http.post("/feedback", json={"request_id": body["request_id"], "entity_id": first,
                                                          "event": "click", "position": 1})
                    except httpx.TransportError:
                        return
                    if fb.status_code == 200:
                        with lock:
                            feedback_accepted.append((body["request_id"], first))

    with ThreadPoolExecutor(8) as pool:
        for worker in range(8):
            pool.submit(client, worker)
        deadline = time.monotonic() + 120
        while len(answered) < 150 and time.monotonic() < deadline:
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)           # mid-load
        process.wait(timeout=60)
        stop.set()
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status says why it stopped
    assert process.returncode in (0, -signal.SIGTERM), output.read_text()[-3000:]
    assert "Application shutdown complete" in output.read_text()
    assert len(answered) >= 150
    impressions = read_logs(log_root, "impressions")
    assert len(impressions) == len(answered)
    assert set(impressions["request_id"]) == set(answered)
    feedback = read_logs(log_root, "feedback")
    assert set(zip(feedback["request_id"], feedback["entity_id"])) == set(feedback_accepted)
