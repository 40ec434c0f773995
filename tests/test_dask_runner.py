"""build_indexes on a local Dask cluster (prefect-dask, worker processes, encoding split into
partitions) builds the same indexes as Prefect's default thread runner."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.conftest import TEST_CONFIG, make_settings

TINY = {"cpcd": 300, "fma": 150, "lastfm": 150}


def _vectors(settings) -> dict[str, np.ndarray]:
    from ltrr_core.index.build import indexes_root
    from ltrr_core.index.vector import open_db

    table = open_db(indexes_root(settings) / "lance").open_table(settings.vector.table).to_arrow().to_pydict()
    return dict(zip(table["id"], np.asarray(table["vector"], dtype=np.float32)))


@pytest.mark.slow
def test_build_indexes_on_a_dask_cluster_equals_the_thread_runner(prefect_harness, tmp_path):
    import yaml

    from flows.build_indexes import build_indexes
    from flows.content_understanding import content_understanding
    from flows.runners import with_task_runner

    configs = {}
    for name, runner in (
        ("threads", {"kind": "thread"}),
        ("dask", {"kind": "dask", "dask_workers": 2, "dask_processes": True, "encode_partitions": 3}),
    ):
        config = tmp_path / f"{name}.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "extends": str(TEST_CONFIG),
                    "data_dir": str(tmp_path / name),
                    "catalog": {"max_rows_per_source": TINY},
                    "orchestration": {"task_runner": runner},
                }
            )
        )
        configs[name] = config
    content_understanding(str(configs["threads"]))
    shutil.copytree(tmp_path / "threads" / "catalog", tmp_path / "dask" / "catalog")  # one catalog, two builds
    settings = {name: make_settings(tmp_path / name, **{"catalog.max_rows_per_source": TINY}) for name in configs}
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from ltrr_core.config import load_settings

    manifests, encode_tasks = {}, {}
    for name, config in configs.items():
        state = with_task_runner(build_indexes, load_settings(config))(str(config), return_state=True)
        manifests[name] = state.result()
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
            )
        encode_tasks[name] = sorted(r.name for r in runs if r.name.startswith("encode_partition"))
    assert len(encode_tasks["threads"]) == 1 and len(encode_tasks["dask"]) == 3  # the partitions ran as tasks
    threads, dask = manifests["threads"], manifests["dask"]
    assert dask["vectors"]["n_encoded"] == threads["vectors"]["n_encoded"] == threads["vectors"]["n_vectors"] > 500
    # BM25 and the QU resources: byte-identical files.
    for prefix in ("bm25/", "qu/"):
        assert {k: v for k, v in dask["checksums"].items() if k.startswith(prefix)} == {
            k: v for k, v in threads["checksums"].items() if k.startswith(prefix)
        }
    # The vectors: the same rows, equal up to float noise of different batch shapes.
    a, b = _vectors(settings["threads"]), _vectors(settings["dask"])
    assert a.keys() == b.keys()
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) < 1e-4
    # And the same nearest neighbours (what the semantic strategy returns).
    ids = sorted(a)
    matrix = {name: np.stack([m[k] for k in ids]) for name, m in (("a", a), ("b", b))}
    for probe in range(0, len(ids), max(1, len(ids) // 10)):
        top = [np.argsort(-(matrix[n] @ matrix[n][probe]))[:10].tolist() for n in ("a", "b")]
        assert top[0] == top[1]
