"""The serving HNSW graphs (ltrr_core.index.graph) against exact search, on the real entity
vectors of the test platform: recall, the type caps, in-place updates, and that serving uses them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ltrr_core.index.build import current_build
from ltrr_core.index.graph import GRAPH_DIR, REST, VectorGraph, build_graph, entity_keys, exact_search, read_table
from ltrr_core.index.query_encoder import OnnxQueryEncoder
from ltrr_core.index.vector import ID, TEXT_HASH, TYPE, VECTOR, open_db, open_vectors, vector_schema
from ltrr_core.retrieval.base import Query


@pytest.fixture(scope="module")
def platform_vectors(built_platform):
    """(settings, build dir, the pinned Lance table, its rows, their vectors)."""
    settings, _, build_manifest, _ = built_platform
    build_dir, manifest = current_build(settings)
    vectors = manifest["vectors"]
    table = open_vectors(settings.data_dir / "indexes" / "lance", vectors["table"], vectors["table_version"])
    rows, matrix = read_table(table)
    rows["row"] = np.arange(len(rows))
    return settings, build_dir, table, rows, matrix


def _real_queries(settings, n: int) -> list[str]:
    labels = pd.read_csv(settings.shared_path(settings.catalog.paths.cpcd_labels), sep="\t", dtype=str)
    return labels["search_query"].dropna().drop_duplicates().head(n).tolist()


def test_the_build_serves_semantic_from_its_graphs_at_the_recall_of_exact_search(platform_vectors, searcher):
    settings, build_dir, _, rows, matrix = platform_vectors
    spec = json.loads((build_dir / GRAPH_DIR / "spec.json").read_text())
    assert (
        spec["n_vectors"] == len(rows)
        and spec["lance_table_version"] == current_build(settings)[1]["vectors"]["table_version"]
    )
    assert spec["recall"]["recall@10"] >= 0.95  # real entity vectors as probes, in the build report
    semantic = searcher.strategies["semantic"]
    assert isinstance(semantic.vectors, VectorGraph)
    # Real CPCD queries, encoded by the build's query encoder: the graphs' top 10 against brute force.
    encoder = OnnxQueryEncoder(build_dir / "query_encoder")
    types = dict(zip(rows[ID], rows[TYPE]))
    overlaps = []
    for text, query in zip(_real_queries(settings, 60), encoder.encode(_real_queries(settings, 60))):
        found = semantic.vectors.search(query, 10)
        truth = exact_search(rows, matrix, query, 10, settings.vector)
        overlaps.append(len({i for i, _ in found} & {i for i, _ in truth}) / 10)
        assert sum(types[i] == "artist" for i, _ in found) <= settings.vector.max_per_type["artist"], text
        exact_scores = dict(truth)
        for entity_id, score in found:
            if entity_id in exact_scores:  # f16 storage: scores agree to about 1e-3
                assert score == pytest.approx(exact_scores[entity_id], abs=3e-3)
        assert list(semantic.retrieve(Query(text), 10).ids) == [i for i, _ in found]
    assert np.mean(overlaps) >= 0.95


def _table(tmp_path, name: str, rows: pd.DataFrame, matrix: np.ndarray):
    data = pa.Table.from_pydict(
        {ID: rows[ID].tolist(), TYPE: rows[TYPE].tolist(), TEXT_HASH: rows[TEXT_HASH].tolist(), VECTOR: list(matrix)},
        schema=vector_schema(matrix.shape[1]),
    )
    return open_db(tmp_path / "lance").create_table(name, data=data, mode="overwrite")


def test_a_build_updates_the_previous_graphs_in_place_of_what_changed(platform_vectors, tmp_path):
    """3,000 real tracks; then 30 change their vector, 20 leave, 10 arrive: the next build
    re-inserts exactly those, never answers a removed entity, finds the changed ones at their new
    place, and keeps the recall of a full rebuild."""
    settings, _, _, rows, matrix = platform_vectors
    config = settings.vector.model_copy(update={"recall_probe_queries": 100})
    tracks = rows[rows[TYPE] == "track"].iloc[:3010].reset_index(drop=True)
    vectors = matrix[tracks["row"].to_numpy()]
    build_graph(_table(tmp_path, "v1", tracks.iloc[:3000], vectors[:3000]), config, tmp_path / "b1")

    rng = np.random.default_rng(0)
    changed = rng.choice(np.arange(100, 3000), 30, replace=False)
    removed = rng.choice(np.setdiff1d(np.arange(100, 3000), changed), 20, replace=False)
    edited, moved = tracks.copy(), vectors.copy()
    moved[changed] = vectors[changed - 100]  # each changed track now sits on another's vector
    edited.loc[changed, TEXT_HASH] = "edited"
    keep = np.setdiff1d(np.arange(3010), removed)  # and the last 10 are new
    second = _table(tmp_path, "v2", edited.iloc[keep], moved[keep])
    spec = build_graph(second, config, tmp_path / "b2", previous=tmp_path / "b1" / GRAPH_DIR)
    assert not spec.rebuilt
    assert spec.n_inserted == 30 + 10 and spec.n_removed == 30 + 20 and spec.n_vectors == 2990
    assert spec.recall["recall@10"] >= 0.95
    graph = VectorGraph.open(tmp_path / "b2" / GRAPH_DIR, config)
    for position in changed:
        assert tracks[ID].iloc[position] in {i for i, _ in graph.search(vectors[position - 100], 5)}
    for position in removed:
        assert tracks[ID].iloc[position] not in {i for i, _ in graph.search(vectors[position], 100)}
    for position in range(3000, 3010):
        assert tracks[ID].iloc[position] in {i for i, _ in graph.search(vectors[position], 5)}

    # Past graph.rebuild_fraction of removals since the last full build, the next build starts over.
    strict = config.model_copy(update={"graph": config.graph.model_copy(update={"rebuild_fraction": 0.0})})
    third = build_graph(second, strict, tmp_path / "b3", tmp_path / "b2" / GRAPH_DIR)
    assert third.rebuilt and third.n_removed_since_rebuild == 0 and third.n_inserted == 2990
    # Graphs of another layout (connectivity) are never updated in place.
    other = config.model_copy(update={"graph": config.graph.model_copy(update={"connectivity": 8})})
    assert build_graph(second, other, tmp_path / "b4", tmp_path / "b1" / GRAPH_DIR).rebuilt


def test_each_capped_type_is_a_graph_of_its_own(platform_vectors, tmp_path):
    settings, build_dir, _, rows, _ = platform_vectors
    spec = json.loads((build_dir / GRAPH_DIR / "spec.json").read_text())
    parts = {p["name"]: p for p in spec["parts"]}
    n_artists = int((rows[TYPE] == "artist").sum())
    assert parts["artist"]["n_vectors"] == n_artists > 0 and parts["artist"]["cap"] == 1
    assert parts[REST]["n_vectors"] == len(rows) - n_artists and parts[REST]["cap"] is None


def test_duplicated_entity_ids_are_refused_naming_them():
    with pytest.raises(ValueError, match=r"cpcd:1.*cpcd:1.*share one key"):
        entity_keys(["cpcd:1", "cpcd:2", "cpcd:1"])


def test_graphs_of_another_vector_table_version_are_refused(platform_vectors, tmp_path):
    """A build or bundle whose graphs were not built from the table version it pins does not serve."""
    import dataclasses
    import shutil

    from ltrr_core.retrieval.searcher import ServingPaths, vector_search

    settings, build_dir, _, _, _ = platform_vectors
    paths = ServingPaths.of_current_build(settings)
    assert isinstance(vector_search(settings, paths), VectorGraph)
    moved = tmp_path / GRAPH_DIR
    shutil.copytree(build_dir / GRAPH_DIR, moved)
    spec = json.loads((moved / "spec.json").read_text())
    spec["lance_table_version"] += 1
    (moved / "spec.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match=r"built from version \d+ of the vector table, this build or bundle pins"):
        vector_search(settings, dataclasses.replace(paths, vector_graph=moved))
