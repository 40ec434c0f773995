"""Per-type caps of the semantic search, on a real Lance table."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from ltrr_core.config import VectorConfig
from ltrr_core.index.vector import ID, TEXT_HASH, TYPE, VECTOR, open_db, search_capped, search_vectors, vector_schema

QUERY = np.array([1.0, 0.0], dtype=np.float32)


def _table(tmp_path, n_artists: int, n_tracks: int):
    """Artists nearest the query (cosines 0.99 down), then tracks (0.80 down)."""
    rows = [(f"artist:{i}", "artist", 0.99 - 0.001 * i) for i in range(n_artists)]
    rows += [(f"track:{i}", "track", 0.80 - 0.001 * i) for i in range(n_tracks)]
    vectors = [np.array([c, np.sqrt(1 - c * c)], dtype=np.float32) for _, _, c in rows]
    data = pa.Table.from_pydict(
        {ID: [r[0] for r in rows], TYPE: [r[1] for r in rows], TEXT_HASH: ["x"] * len(rows), VECTOR: vectors},
        schema=vector_schema(2),
    )
    return open_db(tmp_path / "lance").create_table("entities", data=data)


@pytest.mark.parametrize("n_artists", [3, 30])  # 30: the first fetch holds artists only, a second search fills in
def test_at_most_the_cap_of_a_type_and_still_k_rows(tmp_path, n_artists):
    table = _table(tmp_path, n_artists, 20)
    config = VectorConfig(metric="dot", max_per_type={"artist": 1}, type_cap_overfetch=2)
    found = search_capped(table, QUERY, 5, config)
    assert [i for i, _ in found] == ["artist:0", "track:0", "track:1", "track:2", "track:3"]
    assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
    assert found[0][1] == pytest.approx(0.99, abs=1e-5)  # dot distance reported back as the similarity


def test_no_cap_is_the_plain_nearest_neighbours(tmp_path):
    table = _table(tmp_path, 3, 5)
    config = VectorConfig(metric="dot", max_per_type={"artist": -1})
    assert search_capped(table, QUERY, 4, config) == search_vectors(table, QUERY, 4, config)
    assert [i for i, _ in search_capped(table, QUERY, 4, config)] == ["artist:0", "artist:1", "artist:2", "track:0"]


def test_a_cap_of_zero_leaves_the_type_out(tmp_path):
    table = _table(tmp_path, 30, 8)
    config = VectorConfig(metric="dot", max_per_type={"artist": 0}, type_cap_overfetch=1)
    assert [i for i, _ in search_capped(table, QUERY, 10, config)] == [f"track:{i}" for i in range(8)]
