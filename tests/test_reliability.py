"""Fault injection at every write (ltrr_core.reliability): every writer of the platform killed
(SIGKILL) and failed (ENOSPC) at its writes in a child process, on a copy of the test platform;
a writer that writes in place is caught by the same checks; the log writer keeps the rows of a
failed flush; promotion restores a switch record that a crash lost."""

from __future__ import annotations

import errno
import os
import re
import shutil
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ltrr_core.reliability.writers import CatalogWriter
from tests.conftest import make_settings


@pytest.fixture(scope="module")
def harness(q2e_platform, tmp_path_factory):
    """The session's test platform copied (catalog, index build, Q2E), a champion promoted in
    the copy, three small simulated days, real impression records."""
    from ltrr_core.reliability import harness_settings, prepare

    root = tmp_path_factory.mktemp("reliability")
    for part in ("catalog", "indexes", "q2e"):
        shutil.copytree(q2e_platform[0].data_dir / part, root / "data" / part)
    return prepare(harness_settings(make_settings(root / "data")), root / "work")


@pytest.mark.slow
def test_every_writer_survives_kill_and_enospc_at_its_write(harness):
    from ltrr_core.reliability import ENOSPC, KILL, WRITERS, run_all

    outcomes = run_all(harness, faults=(KILL, ENOSPC), every_point=False)
    assert {(o.writer, o.fault) for o in outcomes} == {(w, f) for w in WRITERS for f in (KILL, ENOSPC)}
    for o in outcomes:
        where = f"{o.writer} x {o.fault} at {o.point}"
        assert o.fired, f"{where}: the fault never fired ({o.child})"
        assert o.problems == [], f"{where}: {o.problems}"
        assert not o.lost and not o.duplicated, f"{where}: {o.lost} lost, {o.duplicated} duplicated"
        assert o.next_ok, f"{where}: next run {o.next_run}"
        assert o.champion_ok, f"{where}: champion {o.champion}"
        if o.fault == KILL:
            assert o.child == "killed (SIGKILL)", where
        else:
            assert "No space left on device" in o.child or "EFBIG" in o.fired, where


class InPlaceCatalog(CatalogWriter):
    """The catalog's real publish with its durable helpers swapped for in-place writes: the
    version directory and its files at their final names, CURRENT rewritten with ``open('w')``."""

    name = "catalog publish, written in place"

    def write(self, settings, payload, pause):
        import pyarrow.parquet as pq

        from ltrr_core import store as versioned
        from ltrr_core.catalog import store

        @contextmanager
        def in_place(final: Path):
            final.mkdir(parents=True)
            yield final

        def parquet_in_place(table, path: Path) -> None:
            pq.write_table(table, path)
            fd = os.open(path, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)

        versioned.staged_directory, store.write_parquet = in_place, parquet_in_place
        versioned.write_pointer = lambda path, target: path.write_text(target + "\n", encoding="utf-8")
        return super().write(settings, payload, pause)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind, point, finding",
    [
        ("kill -9", "data", r"^visible version v\w+ is not whole: ValueError: no manifest.json"),
        ("ENOSPC", "pointer", r"^CURRENT names v\w*, which does not exist"),
    ],
)
def test_a_writer_that_writes_in_place_is_caught(harness, kind, point, finding, tmp_path):
    from ltrr_core.reliability import Fault, run_cell

    store = harness.settings.data_dir / "catalog"
    shutil.copytree(store, tmp_path / "catalog")
    try:
        outcome = run_cell(harness, InPlaceCatalog(), Fault(kind, point), run=900 + len(kind))
    finally:  # the harness's platform stays whole for other tests
        shutil.rmtree(store)
        shutil.copytree(tmp_path / "catalog", store)
    assert outcome.fired
    assert not outcome.ok
    assert any(re.search(finding, p) for p in outcome.problems), outcome.problems


def _feedback(i: int, when: datetime) -> dict:
    return {
        "request_id": f"r{i}",
        "timestamp": when,
        "entity_id": f"cpcd:{i}",
        "event": "click",
        "position": 1,
        "seconds": None,
        "log_schema_version": "1.0",
    }


def test_a_failed_flush_keeps_its_rows_and_the_next_flush_writes_each_once(tmp_path, monkeypatch):
    """Two days in one flush; the second day's file hits ENOSPC: the first day's file stays,
    the second day's rows go back to the buffer, the retry writes them; nothing twice."""
    import pyarrow.parquet as pq

    from ltrr_core.logs import store as logs

    real, calls = logs.write_parquet, []

    def failing_once(table, path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(table, path)

    monkeypatch.setattr(logs, "write_parquet", failing_once)
    writer = logs.LogWriter(tmp_path, "feedback", flush_rows=10_000, flush_seconds=3600)
    t0 = datetime(2026, 11, 24, 23, 59, 59, tzinfo=UTC)
    for i in range(20):
        writer.append(_feedback(i, t0 + timedelta(milliseconds=100 * i)))
    with pytest.raises(OSError, match="No space left"):
        writer.flush()
    assert writer.n_written == 10 and len(writer._buffer) == 10  # day one written, day two kept
    assert writer.flush() == 10
    raw = [r for f in sorted(tmp_path.rglob("*.parquet")) for r in pq.read_table(f).column("request_id").to_pylist()]
    assert sorted(raw) == sorted(f"r{i}" for i in range(20))  # every row once, no de-duplication needed
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()]  # the failed temp file was removed


def test_the_injector_fails_a_durable_write_halfway_and_the_target_never_appears(tmp_path):
    from ltrr_core.durable import write_bytes_atomic
    from ltrr_core.reliability.inject import ENOSPC, Fault, Scope, injected

    hits: list[str] = []
    with injected(Scope(tmp_path), Fault(ENOSPC, "data"), hits.append):
        with pytest.raises(OSError) as raised:
            write_bytes_atomic(tmp_path / "x.json", b"0123456789")
    assert raised.value.errno == errno.ENOSPC
    assert len(hits) == 1 and hits[0].startswith("write of .x.json.") and hits[0].endswith("(5 of 10 bytes written)")
    assert list(tmp_path.iterdir()) == []
    write_bytes_atomic(tmp_path / "x.json", b"0123456789")  # uninstalled: writes again
    assert (tmp_path / "x.json").read_bytes() == b"0123456789"


def test_a_switch_whose_record_a_crash_lost_is_restored_from_the_pointer(tmp_path):
    """PROMOTED was switched to B, then the process died before recording it."""
    import json

    from ltrr_core.artifacts.champion import HISTORY, POINTER, history
    from ltrr_core.promotion import reconcile_history

    settings = make_settings(tmp_path)
    root = tmp_path / "bundles"
    root.mkdir()
    (root / HISTORY).write_text(json.dumps({"action": "switched", "bundle_id": "A", "previous": None}) + "\n")
    (root / POINTER).write_text("B\n")
    entry = reconcile_history(settings)
    assert entry["bundle_id"] == "B" and entry["previous"] == "A" and entry["reconciled"]
    assert reconcile_history(settings) is None  # recorded once
    assert [e["bundle_id"] for e in history(settings)] == ["A", "B"]
