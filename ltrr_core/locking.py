"""One writer per data directory: an exclusive ``flock`` on ``<data_dir>/.ltrr-writer.lock``.

The flows that write the data dir (nightly, backfill, demo, refresh_platform, content
understanding, index builds, Q2E, training) hold it for their whole run; a second writer waits
up to ``orchestration.lock_wait_seconds`` and is then refused with a message that names the
holder, which the lock file records (pid, host, what it runs, since when).

- The kernel releases a ``flock`` when its holder's process ends, however it ends (``kill -9``
  included): there is no stale lock to clean up. The file itself stays; its record is only read
  while someone holds the lock (it is cleared on release and rewritten by the next holder).
- Re-entrant within a process: nightly -> refresh_platform -> build_indexes, backfill ->
  nightly, demo -> nightly run in one process and share one hold (a depth count per data dir,
  guarded for threads). Tasks never take it: with the Dask runner they run in other processes,
  while the flow's process holds the lock for them.
- Readers (the query runtime, ``ltrr serve``) never take it: logs are append-only files and
  every store switches its pointer atomically.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from .config import Settings

LOCK_FILE = ".ltrr-writer.lock"


@dataclass(frozen=True)
class Holder:
    """Who holds a data dir's writer lock, as its lock file records it."""

    pid: int
    host: str
    what: str
    since: str

    def describe(self) -> str:
        return f"{self.what} (pid {self.pid} on {self.host} since {self.since})"


class DataDirBusy(RuntimeError):
    """Another process is writing the data dir; the message names it and what to do."""

    def __init__(self, data_dir: Path, holder: Holder | None, waited: float):
        self.data_dir, self.holder, self.waited = data_dir, holder, waited
        who = holder.describe() if holder else "another process (its lock file holds no record yet)"
        super().__init__(
            f"data dir {data_dir} is being written by {who}; waited {waited:.0f} s: "
            "retry later or raise orchestration.lock_wait_seconds"
        )


@dataclass
class _Hold:
    fd: int
    depth: int
    holder: Holder


_guard = threading.Lock()  # guards the two dicts below
_held: dict[str, _Hold] = {}  # data dir -> this process's hold
_gates: dict[str, threading.Lock] = {}  # data dir -> one acquiring thread at a time


def lock_path(data_dir: Path) -> Path:
    return Path(data_dir) / LOCK_FILE


def read_holder(data_dir: Path) -> Holder | None:
    """The holder the lock file records (None if empty or unreadable: nobody, or not written yet)."""
    try:
        return Holder(**json.loads(lock_path(data_dir).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def held_here(data_dir: Path) -> bool:
    """Does this process hold the data dir's writer lock?"""
    with _guard:
        return str(Path(data_dir).resolve()) in _held


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _record(fd: int, holder: Holder) -> None:
    data = json.dumps(asdict(holder)).encode("utf-8")
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def _lock(data_dir: Path, what: str, wait_seconds: float, poll_seconds: float) -> _Hold:
    """Take the flock (polling up to ``wait_seconds``) and record who holds it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path(data_dir), os.O_RDWR | os.O_CREAT, 0o644)
    started = time.monotonic()
    while not _try_lock(fd):
        waited = time.monotonic() - started
        if waited >= wait_seconds:
            os.close(fd)
            raise DataDirBusy(data_dir, read_holder(data_dir), waited)
        time.sleep(min(poll_seconds, wait_seconds - waited))
    holder = Holder(os.getpid(), socket.gethostname(), what, datetime.now(UTC).isoformat(timespec="seconds"))
    _record(fd, holder)
    return _Hold(fd, 1, holder)


def _acquire(key: str, data_dir: Path, what: str, wait_seconds: float, poll_seconds: float) -> Holder:
    with _guard:
        gate = _gates.setdefault(key, threading.Lock())
    with gate:
        with _guard:
            if key in _held:
                _held[key].depth += 1
                return _held[key].holder
        hold = _lock(data_dir, what, wait_seconds, poll_seconds)
        with _guard:
            _held[key] = hold
        return hold.holder


def _release(key: str) -> None:
    with _guard:
        hold = _held[key]
        hold.depth -= 1
        if hold.depth:
            return
        del _held[key]
    os.ftruncate(hold.fd, 0)
    fcntl.flock(hold.fd, fcntl.LOCK_UN)
    os.close(hold.fd)


@contextmanager
def hold_data_dir(data_dir: Path, what: str, wait_seconds: float = 0.0, poll_seconds: float = 1.0) -> Iterator[Holder]:
    """Hold ``data_dir``'s writer lock for the block (re-entrant within this process); yields the
    holder (the outermost one when nested). ``DataDirBusy`` if another process keeps it past
    ``wait_seconds``."""
    data_dir = Path(data_dir).resolve()
    key = str(data_dir)
    holder = _acquire(key, data_dir, what, wait_seconds, poll_seconds)
    try:
        yield holder
    finally:
        _release(key)


@contextmanager
def writer_lock(settings: Settings, what: str) -> Iterator[Holder]:
    """``hold_data_dir`` for ``settings.data_dir`` with the configured wait
    (``orchestration.lock_wait_seconds``, ``lock_poll_seconds``)."""
    orchestration = settings.orchestration
    with hold_data_dir(
        settings.data_dir, what, orchestration.lock_wait_seconds, orchestration.lock_poll_seconds
    ) as holder:
        yield holder
