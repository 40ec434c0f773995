"""The real Prefect flows on real data: outputs, manifests, and a failed contract changing nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ltrr_core.catalog import CatalogStore
from ltrr_core.contracts import ContractViolation
from ltrr_core.durable import read_pointer
from ltrr_core.index.build import current_build

pytestmark = pytest.mark.slow
REAL = Path(os.environ.get("LTRR_SHARED_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))


def test_flows_publish_a_catalog_and_an_index_build(built_platform):
    settings, catalog_manifest, build_manifest, _ = built_platform
    assert catalog_manifest["n_entities"] == 15418 + 3000 + 3000 - catalog_manifest["n_quarantined"]
    assert catalog_manifest["contract"]["passed"] is True
    cu = catalog_manifest["content_understanding"]
    assert cu["genre_classifier"]["evaluated"] is True
    assert cu["counts"]["version:live"] > 100
    assert build_manifest["catalog_version"] == catalog_manifest["version"]
    assert build_manifest["vectors"]["n_encoded"] == catalog_manifest["n_entities"]
    assert build_manifest["vectors"]["ann"]["kind"] == "usearch HNSW f16"  # the serving graphs
    assert build_manifest["vectors"]["ann_recall"]["recall@10"] >= 0.95
    build_dir, manifest = current_build(settings)
    assert manifest["build_id"] == build_manifest["build_id"]
    assert set(manifest["checksums"]) >= {"bm25/ltrr_bm25.json", "bm25/entity_ids.npy"}
    assert {"bm25s", "lancedb", "torch"} <= set(manifest["component_versions"])


def test_a_failed_contract_stops_the_flow_and_keeps_the_last_good_build(built_platform, tmp_path, monkeypatch):
    from flows.content_understanding import content_understanding

    monkeypatch.delenv("LTRR_SHARED_DATA_DIR", raising=False)  # it would override the broken copy below

    settings, catalog_manifest, build_manifest, config_file = built_platform
    shared = tmp_path / "shared"
    for name in ("fma", "lastfm-hetrec2011"):
        shared.mkdir(exist_ok=True)
        (shared / name).symlink_to(REAL.resolve() / name)
    (shared / "cpcd").mkdir()
    tracks = pd.read_csv(REAL / "cpcd" / "tracks.tsv", sep="\t", dtype=str, keep_default_na=False)
    duplicated = pd.concat([tracks, tracks.iloc[[5]]], ignore_index=True)  # one track id twice
    duplicated.to_csv(shared / "cpcd" / "tracks.tsv", sep="\t", index=False)
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump({"extends": str(config_file), "shared_data_dir": str(shared)}))

    store = CatalogStore(settings.data_dir / "catalog")
    versions_before = sorted(p.name for p in store.versions_dir.iterdir())
    with pytest.raises(ContractViolation, match="expect_column_values_to_be_unique") as caught:
        content_understanding(str(broken))
    assert f"cpcd:{tracks.iloc[5]['track_id']}" in str(caught.value)
    assert store.current_version() == catalog_manifest["version"]
    assert sorted(p.name for p in store.versions_dir.iterdir()) == versions_before
    assert read_pointer(settings.data_dir / "indexes" / "CURRENT") == build_manifest["build_id"]
