"""Durable writes: write to a temporary place beside the target, fsync, then rename.

A crash at any point leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _file_mode() -> int:
    """What ``open()`` would give a new file under the process umask (mkstemp gives 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, payload: Any) -> None:
    text = json.dumps(payload, indent=2, sort_keys=True, default=str, ensure_ascii=False)
    write_bytes_atomic(path, (text + "\n").encode("utf-8"))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write_parquet(table: pa.Table, path: Path) -> None:
    """Parquet into a temp file then renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def staged_directory(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; rename it to ``final`` only if the block succeeds.

    ``final`` must not exist yet: published directories are immutable.
    """
    if final.exists():
        raise FileExistsError(f"{final} already exists; published directories are immutable")
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.staging-", dir=final.parent))
    try:
        yield staging
        os.replace(staging, final)
        fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def link_or_copy(source: str, target: str) -> str:
    """``shutil.copytree``'s copy function for immutable artifacts: a hard link where source and
    target share a filesystem, else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
    return target


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def checksum_tree(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, keyed by its relative POSIX path."""
    return {path.relative_to(root).as_posix(): sha256_file(path) for path in sorted(root.rglob("*")) if path.is_file()}


def read_pointer(path: Path) -> str | None:
    """The name a pointer file holds (e.g. the current catalog version), or None."""
    return path.read_text(encoding="utf-8").strip() if path.is_file() else None


def write_pointer(path: Path, target: str) -> None:
    """Switch a pointer atomically: readers see the old target or the new one."""
    write_bytes_atomic(path, (target + "\n").encode("utf-8"))


TRASH_PREFIX = ".trash-"


def remove_tree(path: Path, inside: Path) -> bool:
    """Remove a directory (renamed to a hidden trash name in its parent first, so no reader sees
    it half-removed) or a file; only inside ``inside``. False if it was already gone."""
    path = Path(path)
    if not path.resolve().is_relative_to(Path(inside).resolve()) or path.resolve() == Path(inside).resolve():
        raise ValueError(f"{path} is not inside {inside}: nothing outside it is removed")
    if path.is_file():
        path.unlink()
        return True
    if not path.is_dir():
        return False
    trash = (
        path
        if path.name.startswith(TRASH_PREFIX)
        else path.parent / f"{TRASH_PREFIX}{path.name}-{uuid.uuid4().hex[:8]}"
    )
    if trash != path:
        os.replace(path, trash)
        fsync_dir(path.parent)
    shutil.rmtree(trash)
    return True
