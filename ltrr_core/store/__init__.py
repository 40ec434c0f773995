"""One versioned store behind every artifact kind (seam 2): immutable version directories and
named pointer files.

Each kind is one ``VersionedStore`` with its layout as parameters:

    kind              root (under data_dir)     versions in   prefix  publish switches
    catalog version   catalog/                  versions/     v       CURRENT
    index build       indexes/                  builds/       b       CURRENT
    Q2E version       q2e/                      versions/     q       CURRENT
    policy            <bandit.out_dir>/         (the root)    P       LATEST
    ranker            <ranker.out_dir>/         (the root)    R       LATEST
    bundle            bundles/                  (the root)    B       LATEST (+ PROMOTED, switched by
                                                                        promotion after its gates)

A version's name is its prefix and a UTC timestamp, so names sort by age. ``publish`` stages
the version in a hidden sibling directory and renames it into place only when the block that
writes it succeeds; the pointer switches after that with an atomic rename, so a reader sees the
previous version or the new one, never half of one. Every path of a store comes from here
(``path``, ``pointer_file``), the one place to change for object storage.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..durable import TRASH_PREFIX, fsync_dir, read_json, read_pointer, remove_tree, staged_directory, write_pointer

VERSION_STAMP = r"\d{8}T\d{6}\d*Z"
MANIFEST = "manifest.json"


class NotPublished(FileNotFoundError):
    """A store holds no version where one was asked for (nothing published, a pointer that names
    nothing, or a version that does not exist); the message says how to make one."""


@dataclass(frozen=True)
class VersionedStore:
    root: Path
    kind: str  # what one version is, for messages: "catalog version", "bundle", ...
    prefix: str  # the first character(s) of every version name
    pointer: str = "LATEST"  # the pointer ``publish`` switches
    versions_dir: str = ""  # where versions live, relative to root ("" = beside the pointers)
    hint: str = ""  # how to publish one, for the error when there is none
    missing: type[Exception] = NotPublished  # what a missing version raises
    other_pointers: tuple[str, ...] = ()  # pointers switched elsewhere (the bundles' PROMOTED)

    @property
    def pointers(self) -> tuple[str, ...]:
        return (self.pointer, *self.other_pointers)

    @property
    def versions_root(self) -> Path:
        return self.root / self.versions_dir if self.versions_dir else self.root

    def new_version(self, now: datetime | None = None) -> str:
        return f"{self.prefix}{(now or datetime.now(UTC)).strftime('%Y%m%dT%H%M%S%fZ')}"

    def path(self, version: str) -> Path:
        return self.versions_root / version

    def versions(self) -> list[str]:
        """Published versions, oldest first (staging and trash directories are hidden)."""
        pattern = re.compile(re.escape(self.prefix) + VERSION_STAMP)
        folder = self.versions_root
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and pattern.fullmatch(p.name))

    def pointer_file(self, name: str | None = None) -> Path:
        return self.root / (name or self.pointer)

    def read_pointer(self, name: str | None = None) -> str | None:
        """The version the pointer ``name`` (default: the store's own) names, or None."""
        return read_pointer(self.pointer_file(name))

    def pointed(self, name: str | None = None) -> Path | None:
        version = self.read_pointer(name)
        return self.path(version) if version else None

    def require(self, version: str | None = None, pointer: str | None = None) -> Path:
        """The directory of ``version`` (default: what ``pointer`` names); ``missing`` saying
        what is absent and how to make it otherwise."""
        name = version or self.read_pointer(pointer)
        if not name:
            how = f"; {self.hint}" if self.hint else ""
            raise self.missing(f"no {self.kind} under {self.root} ({pointer or self.pointer} names none){how}")
        path = self.path(name)
        if not path.is_dir():
            raise self.missing(f"{self.kind} {name} does not exist under {self.versions_root}")
        return path

    def manifest(self, version: str | None = None, name: str = MANIFEST) -> Any:
        return read_json(self.require(version) / name)

    @contextmanager
    def publish(self, version: str, switch: bool = True) -> Iterator[Path]:
        """Yield a staging directory to write ``version`` into; when the block succeeds it is
        renamed into place and (``switch``) the store's pointer is switched to it."""
        self._check_name(version)
        with staged_directory(self.path(version)) as staging:
            yield staging
        if switch:
            write_pointer(self.pointer_file(), version)

    def adopt(self, staged: Path, version: str) -> Path:
        """Rename a directory staged elsewhere in the store (an index build, staged across steps)
        into place as ``version`` and switch the pointer; returns the version's directory."""
        self._check_name(version)
        final = self.path(version)
        if final.exists():
            raise FileExistsError(f"{final} already exists; published {self.kind}s are immutable")
        os.replace(staged, final)
        fsync_dir(final.parent)
        write_pointer(self.pointer_file(), version)
        return final

    def point(self, name: str, version: str) -> None:
        """Switch the pointer ``name`` (e.g. PROMOTED) to an existing ``version``."""
        self.require(version)
        write_pointer(self.pointer_file(name), version)

    def trash(self) -> list[Path]:
        """What interrupted removals left behind."""
        folder = self.versions_root
        return sorted(p for p in folder.iterdir() if p.name.startswith(TRASH_PREFIX)) if folder.is_dir() else []

    def remove(self, version: str) -> bool:
        """Remove a version no pointer names (renamed to a hidden trash name first, so no reader
        sees it half-removed); False if it was already gone."""
        if version in {self.read_pointer(name) for name in self.pointers}:
            raise ValueError(f"{self.kind} {version} is named by a pointer of {self.root}; it cannot be removed")
        return remove_tree(self.path(version), self.root)

    def _check_name(self, version: str) -> None:
        if not re.fullmatch(re.escape(self.prefix) + VERSION_STAMP, version):
            raise ValueError(f"{version!r} is not a {self.kind} name ({self.prefix} and a UTC timestamp)")
