"""A real `ltrr serve` process under concurrent load, stopped with SIGTERM mid-load: every
answered request is on disk as exactly one impression, and every accepted feedback event too."""

from __future__ import annotations

import os
import shutil
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

from ltrr_core.logs import read_logs

pytestmark = pytest.mark.slow
QUERIES = [
    "tayler love",
    "ghosts deadmau5",
    "80s female vocalists",
    "party rock anthem",
    "coldplay",
    "songs like adele",
    "metallica one",
    "lady gaga",
    "chill electronic",
    "halo beyonce",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def server(q2e_platform, gated_bundle_dir, tmp_path):
    bundle_dir = gated_bundle_dir
    settings, _, config_file = q2e_platform
    config = tmp_path / "serve.yaml"
    # A big buffer and a long flush interval: what reaches the disk is what SIGTERM flushed.
    config.write_text(
        yaml.safe_dump(
            {
                "extends": str(config_file),
                "runtime": {"log_dir": str(tmp_path / "logs"), "flush_rows": 100_000, "flush_seconds": 3600},
            }
        )
    )
    port = _free_port()
    ltrr = Path(sys.executable).with_name("ltrr")
    output = (tmp_path / "serve.out").open("wb")  # a file, not a pipe nobody drains
    process = subprocess.Popen(
        [str(ltrr), "--config", str(config), "serve", "--port", str(port), "--bundle", str(bundle_dir)],
        stdout=output,
        stderr=subprocess.STDOUT,
        env={**os.environ, "LTRR_ADMIN_TOKEN": "t0k"},
    )
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
                    response = http.post(
                        "/search", json={"query": QUERIES[(worker + i) % len(QUERIES)], "user_id": f"load-{worker}"}
                    )
                except httpx.TransportError:
                    return  # the server went away: nothing was answered
                i += 1
                if response.status_code != 200:
                    continue
                body = response.json()
                with lock:
                    answered.append(body["request_id"])
                if body["results"] and i % 3 == 0:
                    first = body["results"][0]["entity_id"]
                    try:
                        fb = http.post(
                            "/feedback",
                            json={
                                "request_id": body["request_id"],
                                "entity_id": first,
                                "event": "click",
                                "position": 1,
                            },
                        )
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
        process.send_signal(signal.SIGTERM)  # mid-load
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


def test_serve_refuses_to_start_without_a_gated_bundle(q2e_platform, tmp_path):
    """Before any promotion nothing serves: no PROMOTED pointer, or a bundle no gate has passed."""
    from ltrr_core.artifacts import build_bundle
    from ltrr_core.durable import read_pointer, write_pointer

    settings, _, config_file = q2e_platform
    ltrr = Path(sys.executable).with_name("ltrr")
    empty = tmp_path / "serve.yaml"
    empty.write_text(yaml.safe_dump({"extends": str(config_file), "data_dir": str(tmp_path / "fresh")}))
    refused = subprocess.run(
        [str(ltrr), "--config", str(empty), "serve", "--port", str(_free_port())],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == 1 and "no bundle has been promoted" in " ".join(refused.stderr.split())
    latest = read_pointer(settings.data_dir / "bundles" / "LATEST")
    ungated = settings.data_dir / "bundles" / build_bundle(settings)["bundle_id"]
    write_pointer(settings.data_dir / "bundles" / "LATEST", latest)  # other tests serve the fixture bundle
    refused = subprocess.run(
        [
            str(ltrr),
            "--config",
            str(config_file),
            "serve",
            "--port",
            str(_free_port()),
            "--bundle",
            str(ungated),
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == 1 and "has not passed the promotion gates" in " ".join(refused.stderr.split())
    shutil.rmtree(ungated)


def test_two_workers_keep_answering_while_one_is_stopped_and_log_every_answer_once(
    q2e_platform, gated_bundle_dir, tmp_path
):
    """`ltrr serve --workers 2`: one worker gets SIGTERM under load; the other keeps answering,
    uvicorn's supervisor starts a replacement, and every answered request is on disk exactly once."""
    import psutil

    from ltrr_core.bench.soak import impressions_by_request

    _, _, config_file = q2e_platform
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({"extends": str(config_file), "runtime": {"log_dir": str(tmp_path / "logs")}}))
    port = _free_port()
    ltrr = Path(sys.executable).with_name("ltrr")
    output = (tmp_path / "serve.out").open("wb")
    process = subprocess.Popen(
        [
            str(ltrr),
            "--config",
            str(config),
            "serve",
            "--port",
            str(port),
            "--workers",
            "2",
            "--bundle",
            str(gated_bundle_dir),
        ],
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def workers() -> list[int]:
        """Serving workers alive now: a stopped worker is a zombie until the supervisor reaps it."""
        alive = []
        for child in psutil.Process(process.pid).children():
            try:
                if child.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(child.cmdline()):
                    alive.append(child.pid)
            except psutil.NoSuchProcess:  # gone (ZombieProcess is one) between listing and reading it
                continue
        return alive

    answered, failed = [], []
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not (len(workers()) == 2 and _healthy(base)):
            assert process.poll() is None, (tmp_path / "serve.out").read_text()[-3000:]
            time.sleep(0.5)
        time.sleep(10)  # the second worker loads its bundle too
        first = workers()
        with httpx.Client(base_url=base, timeout=60) as http:
            for i in range(120):
                if i == 30:
                    os.kill(first[0], signal.SIGTERM)
                try:
                    response = http.post("/search", json={"query": QUERIES[i % len(QUERIES)]})
                except httpx.TransportError as error:  # a kept-alive connection to the stopped worker
                    failed.append(repr(error))
                    http.close()
                    http = httpx.Client(base_url=base, timeout=60)
                    response = http.post("/search", json={"query": QUERIES[i % len(QUERIES)]})
                assert response.status_code == 200, response.text
                answered.append(response.json()["request_id"])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (first[0] in workers() or len(workers()) < 2):
            time.sleep(0.5)
        assert first[0] not in workers() and len(workers()) == 2  # replaced by a new worker
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
        output.close()
    on_disk = impressions_by_request(tmp_path / "logs")
    assert len(answered) == 120 and all(on_disk[rid] == 1 for rid in answered) and sum(on_disk.values()) == 120


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
