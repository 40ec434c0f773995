"""One writer per data directory: real processes contend for the lock; a killed holder frees it;
nested flows in one process share it; a nightly is refused while another process writes."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from ltrr_core.locking import LOCK_FILE, DataDirBusy, held_here, hold_data_dir, read_holder, writer_lock
from tests.conftest import ROOT, TEST_CONFIG, make_settings

_HOLD = """
import sys, time
from ltrr_core.locking import hold_data_dir
with hold_data_dir(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""

_TRY = """
import sys
from ltrr_core.locking import DataDirBusy, hold_data_dir
try:
    with hold_data_dir(sys.argv[1], "second process"):
        print("acquired")
except DataDirBusy as error:
    print("refused:", error)
"""


def _hold_in_child(data_dir: Path, what: str, seconds: float = 120) -> subprocess.Popen:
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(data_dir), what, str(seconds)], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert child.stdout.readline().strip() == "held"
    return child


def _try_in_child(data_dir: Path) -> str:
    return subprocess.run(
        [sys.executable, "-c", _TRY, str(data_dir)], capture_output=True, text=True, cwd=ROOT, check=True, timeout=60
    ).stdout.strip()


def _free(data_dir: Path) -> bool:
    """Can a new open file description lock it now (i.e. nobody, this process included, holds it)?"""
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_a_second_process_is_refused_naming_the_holder_and_a_killed_holder_frees_the_lock(tmp_path):
    data = tmp_path / "data"
    holder = _hold_in_child(data, "nightly 2026-01-03")
    try:
        with pytest.raises(DataDirBusy) as refused:
            with hold_data_dir(data, "backfill 2026-01-01..2026-01-03"):
                pytest.fail("two writers on one data dir")
        message = str(refused.value)
        assert message.startswith(
            f"data dir {data.resolve()} is being written by nightly 2026-01-03 (pid {holder.pid} on "
        )
        assert "waited 0 s: retry later or raise orchestration.lock_wait_seconds" in message
        assert refused.value.holder.what == "nightly 2026-01-03" and refused.value.holder.pid == holder.pid
        assert _try_in_child(data).startswith("refused: data dir")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # kill -9 left no stale lock: the kernel released it with the process.
    assert holder.returncode == -signal.SIGKILL
    with hold_data_dir(data, "after the kill") as mine:
        assert mine.pid == os.getpid() and read_holder(data).what == "after the kill"
    assert _try_in_child(data) == "acquired"


def test_a_writer_configured_to_wait_gets_the_lock_when_the_holder_finishes(tmp_path):
    data = tmp_path / "data"
    settings = make_settings(data, **{"orchestration.lock_wait_seconds": 30.0, "orchestration.lock_poll_seconds": 0.1})
    holder = _hold_in_child(data, "build_indexes", seconds=1.5)
    started = time.monotonic()
    with writer_lock(settings, "nightly 2026-01-04") as mine:
        waited = time.monotonic() - started
        assert mine.what == "nightly 2026-01-04"
    holder.wait(30)
    assert 0.5 < waited < 30


def test_the_lock_is_reentrant_within_a_process_and_shared_by_its_threads(tmp_path):
    data = tmp_path / "data"
    with hold_data_dir(data, "backfill") as outer:
        with hold_data_dir(data, "nightly 2026-01-03") as inner:  # backfill -> nightly
            with hold_data_dir(data, "build_indexes") as innermost:  # -> refresh_platform -> build_indexes
                assert inner == innermost == outer
        seen = []

        def in_a_thread() -> None:
            with hold_data_dir(data, "task thread") as shared:
                seen.append(shared)

        thread = threading.Thread(target=in_a_thread)
        thread.start()
        thread.join(10)
        assert seen == [outer]
        assert held_here(data) and not _free(data)
        assert _try_in_child(data).startswith("refused: data dir") and "being written by backfill" in _try_in_child(
            data
        )
    assert not held_here(data) and _free(data)
    assert read_holder(data) is None  # cleared on release


def test_the_deployments_have_a_concurrency_limit(test_settings):
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy

    from flows.deploy import deployments

    for deployment in deployments(test_settings, str(TEST_CONFIG)):
        assert deployment.concurrency_limit == test_settings.orchestration.deployment_concurrency_limit == 1
        assert deployment.concurrency_options.collision_strategy == ConcurrencyLimitStrategy.ENQUEUE


def test_a_nightly_is_refused_while_another_process_writes_the_data_dir(prefect_harness, tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app
    from flows.nightly import nightly, refresh_platform

    data = tmp_path / "data"
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"extends": str(TEST_CONFIG), "data_dir": str(data)}))
    holder = _hold_in_child(data, "nightly 2026-01-03")
    try:
        with pytest.raises(DataDirBusy, match=r"being written by nightly 2026-01-03 \(pid \d+"):
            nightly("2026-01-04", None, str(config))
        cli = CliRunner().invoke(app, ["--config", str(config), "nightly", "--date", "2026-01-04"])
        assert cli.exit_code == 1 and "being written by nightly 2026-01-03" in cli.output
        assert not (data / "nightly").exists()  # refused before writing anything
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # A flow inside a process that holds the lock runs (how nightly's subflows share it).
    with hold_data_dir(data, "nightly 2026-01-04"):
        assert refresh_platform(str(config), None, ["validate_logs"]) == {}
