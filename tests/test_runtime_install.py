"""The runtime installs without the batch stack: `pip install ".[runtime]"` into a fresh virtual
environment, then the gated test bundle answers queries there and over HTTP from `ltrr serve`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

BATCH_ONLY = (
    "torch",
    "prefect",
    "mlflow",
    "great-expectations",
    "great_expectations",
    "scikit-learn",
    "sentence-transformers",
    "transformers",
    "onnx",
    "lancedb",  # the builds write the vector table with it; serving reads it with pylance
)
ANSWER = """
import json, sys
from pathlib import Path
from ltrr_core.config import load_settings
from ltrr_core.runtime.service import load_service
settings = load_settings(Path(sys.argv[1]))
service = load_service(settings, Path(sys.argv[2]))
answers = {q: [r["entity_id"] for r in service.search(q, explore=False).results] for q in sys.argv[3:]}
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "prefect", "mlflow", "great_expectations",
                                                         "sklearn", "transformers", "sentence_transformers",
                                                         "lancedb"})
semantic = type(service.strategies["semantic"].vectors).__name__
print(json.dumps({"answers": answers, "heavy": heavy, "semantic": semantic}))
"""


def test_the_runtime_extra_answers_queries_from_the_gated_bundle_without_the_batch_stack(
    q2e_platform, gated_bundle_dir, tmp_path
):
    venv = tmp_path / "runtime-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # The lock as constraints: the same versions the platform was tested with, from pip's cache.
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"{ROOT}[runtime]", "-c", str(ROOT / "requirements.lock")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    installed = json.loads(
        subprocess.run(
            [str(python), "-m", "pip", "list", "--format", "json"], check=True, capture_output=True, text=True
        ).stdout
    )
    names = {p["name"].lower() for p in installed}
    assert "ltrr" in names and not names & set(BATCH_ONLY), sorted(names & set(BATCH_ONLY))

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the installed package, not the tree
    # The shared test platform, with the served requests' logs kept out of it (other tests read its logs).
    config = tmp_path / "runtime.yaml"
    config.write_text(f"extends: {q2e_platform[2]}\nruntime:\n  log_dir: {tmp_path / 'logs'}\n")
    answered = subprocess.run(
        [str(python), "-c", ANSWER, str(config), str(gated_bundle_dir), "adele hello", "80s rock"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert answered.returncode == 0, answered.stderr[-3000:]
    report = json.loads(answered.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    assert report["semantic"] == "VectorGraph"  # the bundle's memory-mapped graphs answer semantic
    # the same greedy answers as the full install gives from the same bundle
    from ltrr_core.runtime.service import load_service

    full = load_service(q2e_platform[0], gated_bundle_dir)
    assert report["answers"] == {
        q: [r["entity_id"] for r in full.search(q, explore=False).results] for q in ("adele hello", "80s rock")
    }
    assert all(len(ids) == 10 for ids in report["answers"].values())

    port = _free_port()
    server = subprocess.Popen(
        [
            str(venv / "bin" / "ltrr"),
            "--config",
            str(config),
            "serve",
            "--bundle",
            str(gated_bundle_dir),
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        env=env,
        stdout=(tmp_path / "serve.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        import httpx

        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                answer = httpx.post(f"http://127.0.0.1:{port}/search", json={"query": "adele hello"}, timeout=10)
                break
            except httpx.TransportError:
                time.sleep(0.5)
        assert answer.status_code == 200 and answer.json()["results"]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    logged = list((tmp_path / "logs" / "impressions").rglob("*.parquet"))
    assert logged, (tmp_path / "serve.log").read_text()[-3000:]  # the light install logs what it served


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bench_install_measures_this_source_tree_with_its_lock():
    """`ltrr bench-install` installs the tree the CLI runs from (it once looked for the lock in flows/)."""
    from flows.cli.bench import project_root

    assert project_root() == ROOT and (project_root() / "requirements.lock").is_file()
