"""The bundle: built from the real test platform, refused when tampered with."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from typer.testing import CliRunner

from flows.cli import app
from ltrr_core.artifacts import BundleError, verify_bundle

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundle(bundle_dir):
    return bundle_dir, json.loads((bundle_dir / "manifest.json").read_text())


@pytest.fixture
def copy(bundle, tmp_path):
    target = tmp_path / "bundle"
    shutil.copytree(bundle[0], target, symlinks=True)
    return target


def test_a_built_bundle_verifies_and_lists_every_file(bundle, q2e_platform):
    path, manifest = bundle
    assert verify_bundle(path) == manifest
    files = set(manifest["files"])
    assert {
        "retrieval.json",
        "display.parquet",
        "q2e/q2e.parquet",
        "qu/vocabulary.parquet",
        "qu/entities.parquet",
    } <= files
    assert any(f.startswith("bm25/") for f in files)
    on_disk = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()} - {"manifest.json"}
    assert on_disk == files
    lance = manifest["components"]["lance"]
    assert (q2e_platform[0].data_dir / lance["path"]).is_dir() and lance["version"] >= 1
    assert (path.parent / manifest["bundle_id"]).is_dir()


def test_a_flipped_byte_is_refused(copy):
    target = copy / "q2e" / "q2e.parquet"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"q2e/q2e.parquet does not match its checksum"):
        verify_bundle(copy)


def test_a_stamped_bundle_skips_the_checksums_until_a_file_changes(copy, tmp_path, monkeypatch):
    """Serving processes verify a bundle once per machine: a stamp of every file's size, time and
    inode stands in for the checksums while nothing changed, and a rewritten file is hashed again."""
    import ltrr_core.artifacts.bundle as bundle_module

    stamps = tmp_path / "stamps"
    assert (copy / "vector_graph" / "spec.json").is_file()  # the graphs travel in the bundle, checksummed
    manifest = verify_bundle(copy, stamps=stamps)
    assert (stamps / f"{copy.name}.json").is_file()
    hashed = []
    real_sha = bundle_module.sha256_file
    monkeypatch.setattr(bundle_module, "sha256_file", lambda path: hashed.append(path) or real_sha(path))
    assert verify_bundle(copy, stamps=stamps) == manifest and hashed == []
    (copy / "qu" / "injected.pkl").write_bytes(b"\x80\x04")  # the listing is checked on every load
    with pytest.raises(BundleError, match="qu/injected.pkl is not listed in the manifest"):
        verify_bundle(copy, stamps=stamps)
    (copy / "qu" / "injected.pkl").unlink()
    target = copy / "q2e" / "q2e.parquet"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))  # same size, same inode: only the time moved
    with pytest.raises(BundleError, match=r"q2e/q2e.parquet does not match its checksum"):
        verify_bundle(copy, stamps=stamps)


def test_a_manifest_path_escaping_the_bundle_is_refused(copy, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("not part of the bundle")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["../outside.txt"] = "0" * 64
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"'../outside.txt' is not a plain relative path"):
        verify_bundle(copy)


def test_a_symlink_leaving_the_bundle_is_refused(copy, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "vocabulary.parquet").write_bytes((copy / "qu" / "vocabulary.parquet").read_bytes())
    shutil.rmtree(copy / "qu")
    os.symlink(outside, copy / "qu")
    with pytest.raises(BundleError, match="outside the bundle"):
        verify_bundle(copy)


@pytest.mark.parametrize("damage", ["missing_file", "extra_file", "bad_json", "old_schema"])
def test_other_damage_is_refused_with_the_file_named(copy, damage):
    if damage == "missing_file":
        (copy / "retrieval.json").unlink()
        expected = "retrieval.json is listed in the manifest but missing"
    elif damage == "extra_file":
        (copy / "qu" / "injected.pkl").write_bytes(b"\x80\x04")
        expected = "qu/injected.pkl is not listed in the manifest"
    elif damage == "bad_json":
        (copy / "manifest.json").write_text("{not json")
        expected = "manifest.json: not valid JSON"
    else:
        manifest = json.loads((copy / "manifest.json").read_text())
        manifest["schema_version"] = "0.1"
        (copy / "manifest.json").write_text(json.dumps(manifest))
        expected = "schema_version '0.1'"
    with pytest.raises(BundleError, match=expected):
        verify_bundle(copy)


def test_bundle_cli_builds_and_refuses(q2e_platform, copy):
    _, _, config_file = q2e_platform
    built = CliRunner().invoke(app, ["--config", str(config_file), "bundle", "build"])
    assert built.exit_code == 0, built.output
    ok = CliRunner().invoke(app, ["--config", str(config_file), "bundle", "verify"])
    assert ok.exit_code == 0 and "verifies" in ok.output
    (copy / "retrieval.json").write_text("{}")
    refused = CliRunner().invoke(app, ["--config", str(config_file), "bundle", "verify", str(copy)])
    assert refused.exit_code == 1 and "bundle refused" in refused.output and "retrieval.json" in refused.output
