"""SearchService served from a verified bundle of the real test platform."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import UTC

import pytest

from ltrr_core.artifacts import BundleError
from ltrr_core.query import InvalidQuery

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(bundle_dir, q2e_platform):
    from ltrr_core.runtime import load_service

    return load_service(q2e_platform[0].with_overrides(**{"runtime.seed": 5}), bundle_dir)


def test_service_answers_with_results_and_a_decision_trace(service):
    response = service.search("tayler love", user_id="u1")
    assert response.bundle_id == service.bundle_id and len(response.request_id) == 32
    assert 0 < len(response.results) <= service.settings.runtime.max_results
    assert any(r["title"] in {"Love Story", "Lover"} for r in response.results)
    trace = response.trace()
    action = trace["action"]
    assert action["probability"] == service.policy.probabilities()[action["plan"]]
    ran = {name for name, depth in action["depths"].items() if depth > 0}
    assert set(trace["strategies"]) == ran & set(service.strategies)
    for name, found in trace["strategies"].items():
        assert found["n"] <= action["depths"][name]
    assert response.understanding["normalised"] == "tayler love"
    assert json.loads(json.dumps(trace))  # the trace is loggable as JSON
    assert {r["position"] for r in response.results} == set(range(1, len(response.results) + 1))


def test_service_refuses_bad_queries(service):
    for bad in ("", "x" * 10_000, "?!..."):
        with pytest.raises(InvalidQuery):
            service.search(bad)


def test_cold_start_is_measured(service):
    assert service.startup["seconds"] > 0 and service.startup["rss_mb"] > 100


def test_a_tampered_bundle_is_not_served(bundle_dir, q2e_platform, tmp_path):
    from ltrr_core.runtime import load_service

    copy = tmp_path / "bundle"
    shutil.copytree(bundle_dir, copy)
    (copy / "display.parquet").write_bytes(b"PAR1 tampered")
    with pytest.raises(BundleError, match="display.parquet does not match its checksum"):
        load_service(q2e_platform[0], copy)


def test_runtime_imports_neither_prefect_mlflow_nor_great_expectations():
    code = (
        "import sys, ltrr_core.runtime, ltrr_core.runtime.service; "
        "print([m for m in ('prefect', 'mlflow', 'great_expectations') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_logged_day_replays_every_random_draw_exactly(bundle_dir, q2e_platform, tmp_path):
    """Eight threads search one service at once (seed None: fresh per process). From the log
    alone -- rng_seed, request id, the logged policy features -- every request's plan, its
    propensities and whether its results were shuffled are re-derived bit for bit. A generator
    shared by the threads would not replay."""
    import threading
    from datetime import datetime

    from ltrr_core.logs import read_logs
    from ltrr_core.logs.recorder import InteractionRecorder
    from ltrr_core.runtime import load_service
    from ltrr_core.runtime.service import request_rng

    share = 0.5
    settings = q2e_platform[0].with_overrides(**{"ranker.position_bias.randomize_share": share})
    service = load_service(settings, bundle_dir)
    recorder = InteractionRecorder(tmp_path / "logs", settings.runtime)
    queries = [
        "tayler love",
        "ghosts deadmau5",
        "80s female vocalists",
        "party rock anthem",
        "coldplay",
        "songs like adele",
        "metallica one",
        "lady gaga",
        "chill electronic",
        "halo beyonce",
    ]
    noon = datetime(2026, 6, 1, 12, tzinfo=UTC)

    def client(worker: int) -> None:
        for i in range(10):
            response = service.search(queries[(worker + i) % len(queries)], f"u{worker}", {"hour": i})
            recorder.record_search(response, f"u{worker}", {"hour": i}, noon)

    threads = [threading.Thread(target=client, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    recorder.close()
    logged = read_logs(tmp_path / "logs", "impressions", "2026-06-01")
    assert len(logged) == 80 and set(logged["rng_seed"]) == {service.seed}
    shuffled = 0
    for row in logged.itertuples():
        rng = request_rng(int(row.rng_seed), row.request_id)
        decision = service.policy.decide(json.loads(row.policy_features), rng)
        assert (decision.plan, decision.probability) == (row.plan, row.propensity)
        assert decision.strategy_probabilities == json.loads(row.strategy_propensities)
        randomized = bool(rng.random() < share)
        assert randomized == json.loads(row.shown_features)["randomized"]
        shuffled += randomized
    assert logged["plan"].nunique() > 1 and 0 < shuffled < len(logged)  # both kinds of draw were exercised
