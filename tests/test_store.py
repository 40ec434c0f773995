"""The one versioned store behind every artifact kind: atomic publish, listing, pointers, removal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ltrr_core.artifacts.bundle import PROMOTED, BundleError, bundle_store
from ltrr_core.catalog.store import CatalogNotFound, CatalogStore
from ltrr_core.config import load_settings
from ltrr_core.durable import read_pointer
from ltrr_core.index.build import IndexNotBuilt, build_store
from ltrr_core.memory.build import q2e_store
from ltrr_core.models.policy import policy_store
from ltrr_core.models.ranker import ranker_store
from ltrr_core.store import NotPublished, VersionedStore

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _store(tmp_path, **kw) -> VersionedStore:
    return VersionedStore(tmp_path / "things", "thing", "T", hint="run `make things` first", **kw)


def _publish(store: VersionedStore, when: datetime, text: str = "x") -> str:
    version = store.new_version(when)
    with store.publish(version) as staging:
        (staging / "payload.txt").write_text(text)
    return version


def test_publish_renames_a_whole_version_into_place_then_switches_the_pointer(tmp_path):
    store = _store(tmp_path, versions_dir="versions")
    first = _publish(store, T0, "one")
    second = _publish(store, T0 + timedelta(seconds=1), "two")
    assert store.versions() == [first, second]
    assert store.read_pointer() == second == read_pointer(tmp_path / "things" / "LATEST")
    assert (store.require() / "payload.txt").read_text() == "two"
    assert (store.require(first) / "payload.txt").read_text() == "one"
    assert store.path(first).parent == tmp_path / "things" / "versions"


def test_a_failed_publish_leaves_no_version_and_the_pointer_where_it_was(tmp_path):
    store = _store(tmp_path)
    kept = _publish(store, T0)
    with (
        pytest.raises(RuntimeError, match="writer died"),
        store.publish(store.new_version(T0 + timedelta(1))) as staging,
    ):
        (staging / "half.txt").write_text("half")
        raise RuntimeError("writer died")
    assert store.versions() == [kept]
    assert store.read_pointer() == kept
    assert [p.name for p in store.root.iterdir() if p.name.startswith(".")] == []


def test_published_versions_are_immutable_and_names_are_checked(tmp_path):
    store = _store(tmp_path)
    version = _publish(store, T0)
    with pytest.raises(FileExistsError, match="immutable"), store.publish(version):
        pass
    with pytest.raises(ValueError, match="'T-latest' is not a thing name"), store.publish("T-latest"):
        pass


def test_listing_hides_staging_trash_pointers_and_other_kinds(tmp_path):
    store = _store(tmp_path)
    version = _publish(store, T0)
    (store.root / ".T20260101T000000000000Z.staging-abc").mkdir()
    (store.root / ".trash-T20250101T000000000000Z-1234").mkdir()
    (store.root / "P20260101T000000000000Z").mkdir()  # another prefix
    (store.root / "promotions.jsonl").write_text("")
    assert store.versions() == [version]
    assert [p.name for p in store.trash()] == [".trash-T20250101T000000000000Z-1234"]


def test_missing_versions_raise_the_kinds_error_with_how_to_make_one(tmp_path):
    store = _store(tmp_path)
    with pytest.raises(NotPublished, match=r"no thing under .*things \(LATEST names none\); run `make things` first"):
        store.require()
    _publish(store, T0)
    with pytest.raises(NotPublished, match="thing T20990101T000000000000Z does not exist"):
        store.require("T20990101T000000000000Z")
    assert store.pointed("PROMOTED") is None


def test_named_pointers_switch_only_to_published_versions_and_protect_them_from_removal(tmp_path):
    store = _store(tmp_path, other_pointers=("PROMOTED",))
    old = _publish(store, T0)
    new = _publish(store, T0 + timedelta(seconds=1))
    store.point("PROMOTED", old)
    assert store.read_pointer("PROMOTED") == old and store.read_pointer() == new
    with pytest.raises(NotPublished):
        store.point("PROMOTED", "T20990101T000000000000Z")
    assert store.read_pointer("PROMOTED") == old
    with pytest.raises(ValueError, match="named by a pointer"):
        store.remove(old)
    store.point("PROMOTED", new)
    assert store.remove(old) and store.versions() == [new]
    assert not store.remove(old)


def test_adopt_publishes_a_version_staged_across_steps(tmp_path):
    store = _store(tmp_path, pointer="CURRENT", versions_dir="builds")
    staged = store.versions_root / ".staging-x"
    staged.mkdir(parents=True)
    (staged / "part.txt").write_text("built in steps")
    version = store.new_version(T0)
    assert store.adopt(staged, version) == store.path(version)
    assert not staged.exists() and store.read_pointer("CURRENT") == version
    with pytest.raises(FileExistsError):
        store.adopt(store.versions_root, version)


def test_every_artifact_kind_is_one_versioned_store_with_its_own_layout(tmp_path):
    settings = load_settings(data_dir=str(tmp_path))
    stores = {
        "catalog": CatalogStore(settings.data_dir / "catalog").store,
        "index builds": build_store(settings),
        "q2e": q2e_store(settings).store,
        "policies": policy_store(settings),
        "rankers": ranker_store(settings),
        "bundles": bundle_store(settings),
    }
    assert all(isinstance(s, VersionedStore) for s in stores.values())
    assert len({s.versions_root for s in stores.values()}) == len({s.prefix for s in stores.values()}) == 6
    assert stores["bundles"].pointers == ("LATEST", PROMOTED)
    # each kind's own error, so callers catching it keep working
    with pytest.raises(CatalogNotFound, match="ltrr content-understanding"):
        stores["catalog"].require()
    with pytest.raises(IndexNotBuilt, match="ltrr build-indexes"):
        stores["index builds"].require()
    with pytest.raises(BundleError, match="ltrr bundle build"):
        stores["bundles"].require()
