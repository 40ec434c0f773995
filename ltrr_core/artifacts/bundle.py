"""The bundle (seam 3): a versioned, immutable directory with everything serving needs.

Layout under ``<data_dir>/bundles``::

    <bundle_id>/manifest.json    schema version, created_at, components and their source
                                 versions, package versions, sha256 of every other file
    <bundle_id>/bm25/            the BM25 index of the index build
    <bundle_id>/qu/              QU resources (entity fields, name vocabulary)
    <bundle_id>/query_encoder/   the ONNX query encoder of the index build (model, tokenizer,
                                 spec with its agreement to the document encoder), when it has one;
                                 without it the runtime encodes queries with the torch model
    <bundle_id>/vector_graph/    the HNSW graphs of the index build that answer ``semantic``
                                 (memory-mapped at serving); without them Lance's index answers
    <bundle_id>/q2e/q2e.parquet  the Q2E memory table
    <bundle_id>/retrieval.json   strategies, depth and fusion the runtime serves with
    <bundle_id>/display.parquet  id, type, title, artists: what results show
    <bundle_id>/policy/          the learned retrieval policy (policy.json + model.cbm), if any;
                                 without one the runtime explores around the configured default
    <bundle_id>/ranker/          feature_spec.json (version, strategies, names) and entities.parquet
                                 (the catalog attributes ranking features read), always; the
                                 CatBoost ranker (ranker.json + model.cbm) when one is given --
                                 without it the fusion ranks
    LATEST                       the newest bundle built (promotion has its own pointer)

The Lance vector table is referenced, not copied (hundreds of MB, and Lance keeps every
version): the manifest pins its location, relative to ``data_dir``, and version.

``verify_bundle`` is the only way in: it refuses a bundle whose manifest is missing or of
another schema version, whose files do not match their checksums, that holds a file the
manifest does not list, or any path (in the manifest or on disk, symlinks included) that
leaves the bundle directory.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path, PurePosixPath
from typing import Any

from ..config import Settings
from ..durable import link_or_copy, read_json, sha256_file, write_json_atomic
from ..index.graph import GRAPH_DIR
from ..store import VersionedStore

BUNDLE_SCHEMA_VERSION = "1.0"
MANIFEST = "manifest.json"
PACKAGES = (
    "bm25s",
    "lancedb",
    "pylance",
    "usearch",
    "sentence-transformers",
    "onnxruntime",
    "tokenizers",
    "rapidfuzz",
    "pyarrow",
)


class BundleError(ValueError):
    """A bundle that must not be served; the message names the file and the rule."""


PROMOTED = "PROMOTED"  # the champion's pointer, switched only by promotion after its gates


def bundle_store(settings: Settings) -> VersionedStore:
    """Bundles (``B<stamp>/``), ``LATEST`` the newest built, ``PROMOTED`` the champion."""
    return VersionedStore(
        settings.data_dir / "bundles",
        "bundle",
        "B",
        hint="run `ltrr bundle build` first",
        missing=BundleError,
        other_pointers=(PROMOTED,),
    )


def bundles_root(settings: Settings) -> Path:
    return bundle_store(settings).root


def _package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = package_version(name)
        except Exception:  # noqa: BLE001 - reported, not fatal
            out[name] = "not installed"
    return out


def build_bundle(settings: Settings, policy: Path | None = None, ranker: Path | None = None) -> dict[str, Any]:
    """Assemble a bundle from the current index build and Q2E version, plus ``policy`` (a learned
    policy version directory) and ``ranker`` (a trained ranker directory) when given; returns
    its manifest."""
    from ..index.build import current_build
    from ..memory.build import q2e_store

    build_dir, build_manifest = current_build(settings)
    store = q2e_store(settings)
    q2e_manifest = store.manifest()
    created = datetime.now(UTC)
    bundles = bundle_store(settings)
    bundle_id = bundles.new_version(created)
    with bundles.publish(bundle_id) as staging:
        shutil.copytree(build_dir / "bm25", staging / "bm25")
        shutil.copytree(build_dir / "qu", staging / "qu")
        if (build_dir / "query_encoder").is_dir():
            shutil.copytree(build_dir / "query_encoder", staging / "query_encoder")
        if (build_dir / GRAPH_DIR).is_dir():
            # Hard links where the filesystem allows: the graphs are immutable and large (~1 GB at 1M).
            shutil.copytree(build_dir / GRAPH_DIR, staging / GRAPH_DIR, copy_function=link_or_copy)
        (staging / "q2e").mkdir()
        shutil.copy2(store.path() / "q2e.parquet", staging / "q2e" / "q2e.parquet")
        write_json_atomic(staging / "retrieval.json", settings.retrieval.model_dump(mode="json"))
        _write_display(settings, build_manifest["catalog_version"], staging / "display.parquet")
        ranker_version = _write_ranker(settings, build_manifest["catalog_version"], staging / "ranker", ranker)
        policy_spec = None
        if policy is not None:
            shutil.copytree(policy, staging / "policy")
            policy_spec = json.loads((staging / "policy" / "policy.json").read_text(encoding="utf-8"))["version"]
        vectors = build_manifest["vectors"]
        lance_dir = (settings.data_dir / "indexes" / "lance").resolve()
        manifest = {
            "schema_version": BUNDLE_SCHEMA_VERSION,
            "bundle_id": bundle_id,
            "created_at": created.isoformat(),
            "components": {
                "catalog_version": build_manifest["catalog_version"],
                "index_build": build_manifest["build_id"],
                "q2e_version": q2e_manifest["version"],
                "policy_version": policy_spec,
                "ranker_version": ranker_version,
                "lance": {
                    "path": os.path.relpath(lance_dir, settings.data_dir.resolve()),
                    "table": vectors["table"],
                    "version": int(vectors["table_version"]),
                    "model": vectors["model"],
                    "dim": int(vectors["dim"]),
                },
            },
            "source_runs": {"index_build": build_manifest["build_id"], "q2e": q2e_manifest["version"]},
            "component_versions": _package_versions(),
            "files": _checksums(staging),
        }
        write_json_atomic(staging / MANIFEST, manifest)
    return manifest


def _write_display(settings: Settings, catalog_version: str, path: Path) -> None:
    """What results show (type, title, artists), from the catalog version the indexes were built from."""
    import pyarrow.parquet as pq

    from .. import schema as S
    from ..catalog.store import CatalogStore

    table = (
        CatalogStore(settings.data_dir / "catalog")
        .load_table(catalog_version)
        .select([S.ID, S.TYPE, S.TITLE, S.ARTISTS])
    )
    pq.write_table(table, path, compression="zstd")


def _write_ranker(settings: Settings, catalog_version: str, target: Path, ranker: Path | None) -> str | None:
    """The feature spec and entity attributes every bundle carries, plus the model when given."""
    import pyarrow.parquet as pq

    from ..catalog.store import CatalogStore
    from ..features.ranking import ENTITY_COLUMNS, FEATURE_SPEC_VERSION, feature_names
    from ..models.ranker import MODEL_FILE, SPEC_FILE

    target.mkdir()
    table = CatalogStore(settings.data_dir / "catalog").load_table(catalog_version).select(ENTITY_COLUMNS)
    pq.write_table(table, target / "entities.parquet", compression="zstd")
    strategies = sorted(settings.retrieval.strategies)
    write_json_atomic(
        target / "feature_spec.json",
        {"version": FEATURE_SPEC_VERSION, "strategies": strategies, "names": feature_names(strategies)},
    )
    if ranker is None:
        return None
    for name in (SPEC_FILE, MODEL_FILE, "report.json"):  # the report: what promotion gates read
        if (Path(ranker) / name).is_file():
            shutil.copy2(Path(ranker) / name, target / name)
    return json.loads((target / SPEC_FILE).read_text(encoding="utf-8"))["version"]


def _checksums(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


def latest_bundle(settings: Settings) -> Path:
    return bundle_store(settings).require()


def _inside(root: Path, relative: str) -> Path:
    """The file a manifest path names, or BundleError if that path leaves the bundle."""
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts or relative != pure.as_posix():
        raise BundleError(f"{root}: manifest path {relative!r} is not a plain relative path inside the bundle")
    path = root / pure
    if not path.resolve().is_relative_to(root.resolve()):
        raise BundleError(f"{root}: {relative!r} resolves to {path.resolve()}, outside the bundle")
    return path


def verify_bundle(path: Path, stamps: Path | None = None) -> dict[str, Any]:
    """The manifest of a bundle that verifies completely; BundleError naming what does not.

    ``stamps``: a writable folder where a bundle that verified is stamped with its files' size,
    modification time and inode; while all of them (and the manifest) are unchanged, later
    verifications skip the checksums -- every serving process of a machine would otherwise read
    the whole bundle (about 1.5 GB at 1M entities) before its first answer. Any rewrite of a file
    changes its stamp, so the checksums run again."""
    root = Path(path)
    if not root.is_dir():
        raise BundleError(f"bundle {root} is not a directory")
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"bundle {root} has no {MANIFEST}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleError(f"{manifest_path}: not valid JSON ({error})") from error
    if manifest.get("schema_version") != BUNDLE_SCHEMA_VERSION:
        raise BundleError(
            f"{manifest_path}: schema_version {manifest.get('schema_version')!r}, "
            f"this runtime reads {BUNDLE_SCHEMA_VERSION!r}"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise BundleError(f"{manifest_path}: no 'files' checksums")
    for relative in files:
        if not _inside(root, relative).is_file():
            raise BundleError(f"{root}: {relative} is listed in the manifest but missing")
    stamp = _file_stamp(root, files, manifest_path)
    stamp_path = stamps / f"{root.name}.json" if stamps is not None else None
    if stamp_path is None or _read_stamp(stamp_path) != stamp:
        for relative, expected in files.items():
            actual = sha256_file(_inside(root, relative))
            if actual != expected:
                raise BundleError(
                    f"{root}: {relative} does not match its checksum (manifest {expected[:12]}…, file {actual[:12]}…)"
                )
    for entry in sorted(root.rglob("*")):
        relative = entry.relative_to(root).as_posix()
        if entry.is_symlink() and not entry.resolve().is_relative_to(root.resolve()):
            raise BundleError(f"{root}: {relative} is a link to {entry.resolve()}, outside the bundle")
        if entry.is_file() and relative != MANIFEST and relative not in files:
            raise BundleError(f"{root}: {relative} is not listed in the manifest")
    lance = manifest.get("components", {}).get("lance", {})
    if lance and (
        PurePosixPath(lance.get("path", "")).is_absolute() or ".." in PurePosixPath(lance.get("path", "")).parts
    ):
        raise BundleError(f"{manifest_path}: the Lance table path {lance.get('path')!r} must be relative to data_dir")
    if stamp_path is not None:
        try:
            stamp_path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(stamp_path, stamp)
        except OSError:  # a read-only data directory: every load verifies the checksums
            pass
    return manifest


def _read_stamp(path: Path) -> Any:
    try:
        return read_json(path)
    except (OSError, ValueError):  # none yet, or unreadable: verify the checksums
        return None


def _file_stamp(root: Path, files: dict[str, str], manifest_path: Path) -> dict[str, list[int]]:
    """(size, modification time in ns, inode) of the manifest and of every file it lists."""
    out = {}
    for relative in [MANIFEST, *sorted(files)]:
        info = (manifest_path if relative == MANIFEST else _inside(root, relative)).stat()
        out[relative] = [info.st_size, info.st_mtime_ns, info.st_ino]
    return out
