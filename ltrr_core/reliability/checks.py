"""What a reader sees in a store after a fault: the pointer, whether every visible version is
whole, invisible leftovers, and the records the current version holds.

"Visible" is what the platform's readers can reach: the version a pointer names and every
version directory whose name does not start with a dot (the name retention and listings
see). Temporary files and staging directories are dot-named: they are reported as leftovers
(garbage a later run or retention removes), never as versions.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..durable import checksum_tree, read_json, read_pointer
from ..store import VersionedStore


@dataclass
class Seen:
    """What a reader sees in one store right now."""

    pointer: str | None
    summary: str
    problems: list[str] = field(default_factory=list)  # broken or half-written state a reader can reach
    leftovers: list[str] = field(default_factory=list)  # dot-named temp/staging entries: invisible garbage
    records: Counter | None = None  # record key -> copies, where the writer has records
    gaps: list[str] = field(default_factory=list)  # a record missing that the next run restores
    complete: bool | None = None  # the run's whole change is visible (Lance's edit)


def hidden_entries(root: Path, base: Path) -> list[str]:
    """Dot-named entries directly in ``root`` (relative to ``base``)."""
    if not root.is_dir():
        return []
    return [p.relative_to(base).as_posix() for p in sorted(root.iterdir()) if p.name.startswith(".")]


_verified: dict[tuple[str, tuple], str] = {}


def _fingerprint(path: Path) -> tuple:
    return tuple(
        (p.relative_to(path).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(path.rglob("*"))
        if p.is_file()
    )


def verified(path: Path, verify: Callable[[Path], str]) -> str:
    """``verify(path)``, remembered while no file of the (immutable) version changes."""
    key = (str(path), _fingerprint(path))
    if key not in _verified:
        _verified[key] = verify(path)
    return _verified[key]


def manifest_checksums(path: Path, manifest_name: str = "manifest.json") -> dict:
    """The version's manifest, after checking every checksum it lists against the files (and
    that no file is unlisted); ValueError naming the first difference."""
    if not (path / manifest_name).is_file():
        raise ValueError(f"no {manifest_name}")
    manifest = read_json(path / manifest_name)
    expected = manifest.get("checksums") or {}
    actual = {k: v for k, v in checksum_tree(path).items() if k != manifest_name}
    if expected != actual:
        differ = sorted(set(expected) ^ set(actual) | {k for k in expected if k in actual and expected[k] != actual[k]})
        raise ValueError(f"files differ from the manifest's checksums: {differ[:3]}")
    return manifest


def versioned_store(
    store: VersionedStore,
    verify: Callable[[Path], str],
    records: Callable[[Path], Counter] | None = None,
    hidden_in: tuple[Path, ...] = (),
) -> Seen:
    """What a reader finds in ``store``: every visible version directory whole, the store's pointer
    naming one of them, and no leftovers of the writer (staging directories, temporary files).
    Read from the disk directly, not through the store's own methods."""
    root, versions, pointer = store.root, store.versions_root, store.pointer
    problems: list[str] = []
    name = read_pointer(root / pointer)
    for entry in sorted(versions.iterdir()) if versions.is_dir() else []:
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        try:
            verified(entry, verify)
        except Exception as error:  # noqa: BLE001 - any failure to read a visible version is the finding
            problems.append(f"visible version {entry.name} is not whole: {type(error).__name__}: {error}")
    leftovers = [
        item
        for folder in dict.fromkeys((root, versions, *hidden_in))
        for item in hidden_entries(folder, root)
        if not item.endswith(".lock")
    ]
    if not name:
        return Seen(None, f"{pointer} names nothing", problems + [f"{pointer} names no version"], leftovers)
    current = versions / name
    if not current.is_dir():
        return Seen(
            name,
            f"{pointer} -> {name}, missing",
            problems + [f"{pointer} names {name}, which does not exist"],
            leftovers,
        )
    try:
        summary = f"{pointer} -> {name}: {verified(current, verify)}"
    except Exception as error:  # noqa: BLE001 - already a finding of the loop above; say why here too
        return Seen(name, f"{pointer} -> {name}: unreadable ({type(error).__name__}: {error})", problems, leftovers)
    return Seen(name, summary, problems, leftovers, records(current) if records else None)


def parquet_files(root: Path, pattern: str) -> tuple[list[Path], list[str]]:
    """Files matching ``pattern`` under ``root`` that read whole, and problems for those that do not."""
    import pyarrow.parquet as pq

    good, problems = [], []
    for path in sorted(root.glob(pattern)):
        try:
            pq.read_table(path)
            good.append(path)
        except Exception as error:  # noqa: BLE001
            problems.append(
                f"visible file {path.relative_to(root).as_posix()} does not read: {type(error).__name__}: {error}"
            )
    return good, problems


def json_lines(path: Path) -> list[dict]:
    return (
        [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if path.is_file()
        else []
    )
