"""Child-side fault injection: one fault, fired once, at one point of a writer's filesystem writes.

Installed only in the child process that runs the writer (nothing in production code changes).
The Python writers are reached through the calls every write of this project goes through:

- ``data``: the first bytes written into a file under the writer's root -- a Python-level write
  (``open`` / ``os.fdopen``: half of that write's bytes reach the file, then the fault fires) or,
  for files written by native code (Arrow's Parquet writer, CatBoost's ``save_model``), the
  ``os.fsync`` of that file (all its bytes written, none yet durable or renamed);
- ``publish``: the ``os.replace`` that renames a staged version (a directory; for the log writer,
  a finished file) to its final name -- the fault fires before the rename happens;
- ``pointer``: the switch of the store's pointer file (CURRENT / LATEST / PROMOTED): a kill fires
  at its ``os.replace`` (the new pointer written and synced beside it, not yet renamed), an
  error at the write of its temporary file (half written);
- ``after-pointer``: the first write under the root after the pointer switched (promotion
  records the switch in its history there).

``kill -9`` is the child sending itself SIGKILL; ``ENOSPC`` and ``EIO`` raise ``OSError`` with
that errno from the wrapped call, as the kernel would.

Lance writes from Rust, where none of these calls are seen. For it (``lance``): a kill is a
watcher thread that SIGKILLs the child as soon as the write's first new data file appears in
the table directory (data being written, the commit not yet made); an error is the kernel's own:
``RLIMIT_FSIZE`` makes the write of a data file past ``LANCE_FILE_LIMIT`` bytes fail with
``EFBIG`` (SIGXFSZ ignored) -- an errno Python cannot choose, the closest real write failure
reachable inside a native writer without root.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import resource
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KILL, ENOSPC, EIO = "kill -9", "ENOSPC", "EIO"
FAULTS = (KILL, ENOSPC, EIO)
ERRNO = {ENOSPC: errno.ENOSPC, EIO: errno.EIO}
DATA, PUBLISH, POINTER, AFTER, LANCE = "data", "publish", "pointer", "after-pointer", "lance"
LANCE_FILE_LIMIT = 64 * 1024
_WRITE_MODES = set("wax+")


@dataclass(frozen=True)
class Fault:
    """``kind`` (kill -9 / ENOSPC / EIO) fired at ``point``, after ``skip`` earlier matches pass."""

    kind: str
    point: str
    skip: int = 0


@dataclass(frozen=True)
class Scope:
    """The writer's root directory, the pointer files (names directly under it) it switches, and
    whether it publishes staged directories (else finished files: the log writer)."""

    root: Path
    pointers: tuple[str, ...] = ()
    staged_directories: bool = True


def _fd_path(fd: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return None


class Injector:
    """Wraps ``open``, ``io.open``, ``os.fdopen``, ``os.fsync``, ``os.replace`` and ``os.rename``;
    ``report(where)`` is called (before a kill, or before raising) with where the fault fired."""

    def __init__(self, scope: Scope, fault: Fault, report: Callable[[str], None]):
        self.root = scope.root.resolve()
        self.pointers = {self.root / name for name in scope.pointers}
        self.staged_directories = scope.staged_directories
        self.fault, self.report = fault, report
        self.fired: str | None = None
        self.switched = False
        self._seen = 0
        self._saved: dict[tuple[Any, str], Any] = {}

    # -- matching -------------------------------------------------------------------------
    def _under_root(self, path: Path | None) -> bool:
        return path is not None and Path(path).resolve().is_relative_to(self.root)

    def _is_pointer_temp(self, path: Path) -> bool:
        return any(path.parent == p.parent and path.name.startswith(f".{p.name}.") for p in self.pointers)

    def _matches_write(self, path: Path | None) -> bool:
        if self.fired or path is None or not self._under_root(path):
            return False
        path = Path(path).resolve()
        if self.fault.point == DATA:
            return True
        if self.fault.point == AFTER:
            return self.switched
        return (
            self.fault.point == POINTER
            and self.fault.kind != KILL
            and (path in self.pointers or self._is_pointer_temp(path))
        )

    def _matches_rename(self, src: Path, dst: Path) -> bool:
        if self.fired or not self._under_root(dst):
            return False
        dst = Path(dst).resolve()
        if self.fault.point == POINTER:
            return self.fault.kind == KILL and dst in self.pointers
        if self.fault.point == PUBLISH:
            if self.staged_directories:
                return Path(src).is_dir()
            return dst not in self.pointers and not self._is_pointer_temp(Path(src).resolve())
        return False

    def _due(self) -> bool:
        self._seen += 1
        return self._seen > self.fault.skip

    # -- firing ---------------------------------------------------------------------------
    def fire(self, where: str, path: Path | None = None) -> None:
        self.fired = where
        self.report(where)
        if self.fault.kind == KILL:
            os.kill(os.getpid(), signal.SIGKILL)
        code = ERRNO[self.fault.kind]
        raise OSError(code, f"{os.strerror(code)} (injected: {where})", str(path) if path else None)

    def _relative(self, path: Path | str) -> str:
        resolved = Path(path).resolve()
        return resolved.relative_to(self.root).as_posix() if resolved.is_relative_to(self.root) else str(path)

    # -- wrappers -------------------------------------------------------------------------
    def _wrap_file(self, handle: Any, path: Path | None, mode: str) -> Any:
        if path is None or not (_WRITE_MODES & set(mode)) or not self._under_root(path):
            return handle
        return _FaultingFile(handle, Path(path), self)

    def install(self) -> None:
        real_open, real_fdopen = builtins.open, os.fdopen
        real_fsync, real_replace, real_rename = os.fsync, os.replace, os.rename

        def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            handle = real_open(file, mode, *args, **kwargs)
            path = Path(os.fsdecode(file)) if isinstance(file, (str, bytes, os.PathLike)) else None
            return self._wrap_file(handle, path, mode)

        def fdopen(fd: int, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            return self._wrap_file(real_fdopen(fd, mode, *args, **kwargs), _fd_path(fd), mode)

        def fsync(fd: Any) -> None:
            number = fd if isinstance(fd, int) else fd.fileno()
            path = _fd_path(number)
            if path is not None and path.is_file() and self._matches_write(path) and self._due():
                self.fire(f"fsync of {self._relative(path)} (written by native code, not yet renamed)", path)
            real_fsync(fd)

        def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            if self._matches_rename(Path(os.fspath(src)), Path(os.fspath(dst))) and self._due():
                self.fire(f"rename {self._relative(src)} -> {self._relative(dst)} (before it happens)", Path(dst))
            real_replace(src, dst, *args, **kwargs)
            self.switched = self.switched or Path(os.fspath(dst)).resolve() in self.pointers

        def rename(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            if self._matches_rename(Path(os.fspath(src)), Path(os.fspath(dst))) and self._due():
                self.fire(f"rename {self._relative(src)} -> {self._relative(dst)} (before it happens)", Path(dst))
            real_rename(src, dst, *args, **kwargs)

        for owner, name, value in (
            (builtins, "open", open_),
            (io, "open", open_),
            (os, "fdopen", fdopen),
            (os, "fsync", fsync),
            (os, "replace", replace),
            (os, "rename", rename),
        ):
            self._saved[(owner, name)] = getattr(owner, name)
            setattr(owner, name, value)

    def uninstall(self) -> None:
        for (owner, name), value in self._saved.items():
            setattr(owner, name, value)
        self._saved.clear()


class _FaultingFile:
    """A writable file under the writer's root: at the fault, half of the write reaches the file first."""

    def __init__(self, handle: Any, path: Path, injector: Injector):
        self._handle, self._path, self._injector = handle, path, injector

    def write(self, data: Any) -> int:
        if len(data) and self._injector._matches_write(self._path) and self._injector._due():
            half = len(data) // 2
            self._handle.write(data[:half])
            self._handle.flush()
            self._injector.fire(
                f"write of {self._injector._relative(self._path)} ({half} of {len(data)} bytes written)", self._path
            )
        return self._handle.write(data)

    def __enter__(self) -> _FaultingFile:
        self._handle.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self._handle.__exit__(*exc)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._handle)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


@contextmanager
def injected(scope: Scope, fault: Fault, report: Callable[[str], None]) -> Iterator[Injector]:
    """The Python-level injector, installed for the block."""
    injector = Injector(scope, fault, report)
    injector.install()
    try:
        yield injector
    finally:
        injector.uninstall()


# -- Lance (native writer) ----------------------------------------------------------------


def _data_files(table_dir: Path) -> set[str]:
    data = table_dir / "data"
    return {entry.name for entry in os.scandir(data)} if data.is_dir() else set()


@contextmanager
def lance_fault(table_dir: Path, fault: Fault, report: Callable[[str], None]) -> Iterator[None]:
    """Kill on the first new data file of the table, or make file writes past
    ``LANCE_FILE_LIMIT`` bytes fail in the kernel (EFBIG)."""
    if fault.kind == KILL:
        before = _data_files(table_dir)
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                new = _data_files(table_dir) - before
                if new:
                    report(f"new data file data/{sorted(new)[0]} appeared: the write is under way, not committed")
                    os.kill(os.getpid(), signal.SIGKILL)
                stop.wait(0.0005)

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
        return
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    previous_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (LANCE_FILE_LIMIT, previous_limit[1]))
    try:
        yield
    except Exception as error:
        if "os error 27" in str(error) or "File too large" in str(error):
            report(
                f"the kernel failed a write of Lance's data file past {LANCE_FILE_LIMIT} bytes with EFBIG "
                f"(RLIMIT_FSIZE, standing in for {fault.kind})"
            )
        raise
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, previous_limit)
        signal.signal(signal.SIGXFSZ, previous_handler)
