"""Re-ingesting detects new, changed and removed entities; only those are encoded again."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from ltrr_core import schema as S
from ltrr_core.catalog import CatalogStore
from ltrr_core.catalog.pipeline import ingest_catalog, publish_catalog, understand, validate_catalog
from ltrr_core.index import build
from ltrr_core.index.documents import embedding_input
from tests.conftest import make_settings

REAL = Path(os.environ.get("LTRR_SHARED_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
CAPS = {"cpcd": 400, "fma": 300, "lastfm": 300}


def _shared_copy(root: Path, cpcd: pd.DataFrame) -> Path:
    """A shared-data folder whose CPCD tracks file is ``cpcd``; the other sets link to the real ones."""
    for name in ("fma", "lastfm-hetrec2011"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        if not (root / name).exists():
            (root / name).symlink_to(REAL.resolve() / name)
    (root / "cpcd").mkdir(parents=True, exist_ok=True)
    cpcd.to_csv(root / "cpcd" / "tracks.tsv", sep="\t", index=False)
    return root


def _run_catalog(settings):
    entities, ingest = ingest_catalog(settings)
    kept, quarantined, contract = validate_catalog(settings, entities)
    enriched, cu = understand(settings, kept)
    return publish_catalog(settings, enriched, quarantined, {"ingest": ingest, "contract": contract})


def _embedding_texts(entities: pd.DataFrame, settings) -> dict[str, str]:
    """Entity id -> what its vector is a function of (name line, whole text, blend)."""
    return {
        r[S.ID]: embedding_input(r, settings.embedding.max_tags_in_text, settings.embedding.name_weight).fingerprint
        for r in entities.to_dict("records")
    }


def _build(settings):
    store = CatalogStore(settings.data_dir / "catalog")
    entities = store.load()
    build_id = build.new_build_id(settings)
    out = build.start_build(settings, build_id)
    reports = {
        "bm25": build.build_bm25(settings, entities, out),
        "vectors": build.build_vectors(settings, entities, out),
    }
    return build.publish_build(settings, build_id, store.current_version(), reports)


@pytest.mark.slow
def test_reingest_encodes_only_new_and_changed_entities(tmp_path):
    real = pd.read_csv(REAL / "cpcd" / "tracks.tsv", sep="\t", dtype=str, keep_default_na=False, nrows=CAPS["cpcd"])
    shared = _shared_copy(tmp_path / "shared", real)
    settings = make_settings(
        tmp_path / "state",
        shared_data_dir=str(shared),
        **{
            "catalog.max_rows_per_source": CAPS,
            "vector.recall_probe_queries": 50,
        },
    )
    version_1, manifest_1 = _run_catalog(settings)
    assert manifest_1["diff"] == {"new": 1000, "changed": 0, "removed": 0, "unchanged": 0}
    first = _build(settings)
    assert first["vectors"]["n_encoded"] == 1000
    assert first["vectors"]["ann"]["kind"] == "usearch HNSW f16" and first["vectors"]["ann"]["rebuilt"] is True
    assert first["vectors"]["ann_recall"]["recall@10"] >= 0.95

    # The feed changes: 3 titles edited, 2 tracks gone, 1 new track (a real one from further down).
    edited = real.copy()
    edited.loc[[10, 20, 30], "title"] = edited.loc[[10, 20, 30], "title"] + " (Live)"
    removed_ids = edited.loc[[40, 41], "track_id"].tolist()
    edited = edited.drop(index=[40, 41])
    extra = pd.read_csv(
        REAL / "cpcd" / "tracks.tsv", sep="\t", dtype=str, keep_default_na=False, skiprows=range(1, 1001), nrows=1
    )
    edited = pd.concat([edited, extra], ignore_index=True)
    _shared_copy(shared, edited)
    settings = settings.with_overrides(**{"catalog.max_rows_per_source": {**CAPS, "cpcd": len(edited)}})

    version_2, manifest_2 = _run_catalog(settings)
    assert version_2 != version_1
    assert manifest_2["diff"] == {"new": 1, "changed": 3, "removed": 2, "unchanged": 995}
    second = _build(settings)
    # Encoded = exactly the entities whose embedding text differs: the 3 edited and the new
    # track, plus any entity whose derived attributes moved (the genre classifier is retrained
    # on the new catalog and may flip a low-confidence prediction). Nothing else.
    store = CatalogStore(settings.data_dir / "catalog")
    texts_1 = _embedding_texts(store.load(version_1), settings)
    texts_2 = _embedding_texts(store.load(version_2), settings)
    text_changed = {i for i, t in texts_2.items() if texts_1.get(i) != t}
    edited_or_new = {"cpcd:" + i for i in edited.loc[[10, 20, 30], "track_id"]} | {"cpcd:" + extra.loc[0, "track_id"]}
    assert edited_or_new <= text_changed and len(text_changed) <= len(edited_or_new) + 3
    assert second["vectors"]["n_encoded"] == len(text_changed)
    assert second["vectors"]["n_removed"] == 2
    assert second["vectors"]["n_vectors"] == 999
    # The serving graphs are updated in place: the encoded rows re-inserted, the old ones removed.
    assert second["vectors"]["ann"]["rebuilt"] is False
    assert second["vectors"]["ann"]["n_inserted"] == len(text_changed)
    assert second["vectors"]["ann"]["n_removed"] == len(text_changed) - 1 + 2  # the new track had none

    diff = pd.read_parquet(store.version_dir(version_2) / "diff.parquet")
    assert sorted(diff.loc[diff["change"] == "removed", "id"]) == sorted("cpcd:" + i for i in removed_ids)
    # The first version is still there, unchanged, and the first build still points at its Lance version.
    assert len(store.load(version_1)) == 1000
    assert second["vectors"]["table_version"] > first["vectors"]["table_version"]

    # Nothing changed: nothing is encoded and nothing enters or leaves the graphs.
    version_3, manifest_3 = _run_catalog(settings)
    assert manifest_3["diff"]["unchanged"] == 999
    third = _build(settings)
    assert third["vectors"]["n_encoded"] == 0 and third["vectors"]["ann"]["rebuilt"] is False
    assert third["vectors"]["ann"]["n_inserted"] == third["vectors"]["ann"]["n_removed"] == 0
    assert store.load(version_3)[S.ADDED_AT].min() == store.load(version_1)[S.ADDED_AT].min()
