"""The HTTP API over the real test bundle: search, feedback, health, reload, input validation, logs."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from ltrr_core.logs import read_logs

pytestmark = pytest.mark.slow
TOKEN = "test-admin-token"


@pytest.fixture(scope="module")
def service(bundle_dir, q2e_platform):
    from ltrr_core.runtime import load_service

    return load_service(q2e_platform[0], bundle_dir)


@pytest.fixture(scope="module")
def api(service, bundle_dir, q2e_platform, tmp_path_factory):
    from ltrr_core.runtime import load_service
    from ltrr_core.runtime.http import create_app

    log_root = tmp_path_factory.mktemp("logs")
    app = create_app(service, log_root, lambda: load_service(q2e_platform[0], bundle_dir), TOKEN)
    return app, log_root


def test_search_feedback_and_logs(api):
    app, log_root = api
    with TestClient(app) as client:
        answered = []
        for query in ["tayler love", "ghosts deadmau5", "80s female vocalists", "Party Rock Anthem"]:
            response = client.post("/search", json={"query": query, "user_id": "u1", "context": {"hour": 20}})
            assert response.status_code == 200, response.text
            answered.append(response.json())
        body = answered[0]
        assert body["results"] and "trace" not in body
        first = body["results"][0]
        ok = client.post(
            "/feedback",
            json={
                "request_id": body["request_id"],
                "entity_id": first["entity_id"],
                "event": "stream",
                "position": 1,
                "seconds": 31.5,
            },
        )
        assert ok.status_code == 200 and ok.json() == {"status": "recorded"}
        traced = client.post("/search", json={"query": "coldplay live", "trace": True}).json()
        assert traced["trace"]["action"]["probability"] > 0 and traced["trace"]["qu"]["normalised"] == "coldplay live"
        answered.append(traced)
    impressions = read_logs(log_root, "impressions")  # flushed at shutdown
    assert len(impressions) == len(answered)
    assert set(impressions["request_id"]) == {a["request_id"] for a in answered}
    feedback = read_logs(log_root, "feedback")
    assert len(feedback) == 1 and feedback.iloc[0]["event"] == "stream"


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ({"query": ""}, 422, "query is empty"),
        ({"query": "x" * 10_000}, 422, "limit is 512"),
        ({"query": "?!..."}, 422, "no letters or digits"),
        ({"query": "halo", "k": 0}, 422, "greater than 0"),
        ({"qeury": "halo"}, 422, "query"),
    ],
)
def test_search_input_validation(api, payload, status, message):
    with TestClient(api[0]) as client:
        response = client.post("/search", json=payload)
    assert response.status_code == status and message in response.text


def test_feedback_validation(api):
    with TestClient(api[0]) as client:
        unknown = client.post(
            "/feedback", json={"request_id": "nope", "entity_id": "x", "event": "click", "position": 1}
        )
        assert unknown.status_code == 404 and "unknown request id 'nope'" in unknown.text
        body = client.post("/search", json={"query": "halo beyonce"}).json()
        not_shown = client.post(
            "/feedback",
            json={"request_id": body["request_id"], "entity_id": "cpcd:never", "event": "click", "position": 1},
        )
        assert not_shown.status_code == 422 and "was not shown" in not_shown.text
        bad_event = client.post(
            "/feedback", json={"request_id": body["request_id"], "entity_id": "x", "event": "purchase", "position": 1}
        )
        assert bad_event.status_code == 422 and "click" in bad_event.text
        malformed = client.post("/feedback", content=b"{not json", headers={"content-type": "application/json"})
        assert malformed.status_code == 422 and "JSON decode error" in malformed.text


def test_health_and_reload_needs_the_token(api):
    with TestClient(api[0]) as client:
        health = client.get("/healthz").json()
        assert health["status"] == "ok" and health["bundle_id"]
        assert client.post("/admin/reload").status_code == 401
        assert client.post("/admin/reload", headers={"X-Admin-Token": "wrong"}).status_code == 401
        reloaded = client.post("/admin/reload", headers={"X-Admin-Token": TOKEN})
        assert reloaded.status_code == 200 and reloaded.json()["bundle_id"] == health["bundle_id"]
        assert client.get("/openapi.json").json()["paths"].keys() >= {
            "/search",
            "/feedback",
            "/healthz",
            "/admin/reload",
        }


def test_without_a_configured_token_there_is_no_admin_endpoint(service, tmp_path):
    from ltrr_core.runtime.http import create_app

    app = create_app(service, tmp_path / "logs", lambda: service, None)
    with TestClient(app) as client:
        assert client.post("/admin/reload", headers={"X-Admin-Token": ""}).status_code == 404
        assert client.post("/admin/reload", headers={"X-Admin-Token": "None"}).status_code == 404
        assert "/admin/reload" not in client.get("/openapi.json").json()["paths"]
        assert client.post("/search", json={"query": "halo"}).status_code == 200


def test_oversized_bodies_and_contexts_are_refused_and_never_logged(api):
    app, log_root = api
    with TestClient(app) as client:
        before = len(read_logs(log_root, "impressions"))
        huge = client.post("/search", json={"query": "halo", "context": {"blob": "x" * 20_000}})
        assert huge.status_code == 413 and "runtime.max_body_bytes" in huge.text
        deep = client.post("/search", json={"query": "halo", "context": {"a": {"b": {"c": {"d": 1}}}}})
        assert deep.status_code == 422 and "context nests 4 levels deep; at most 3 allowed" in deep.text
        wide = client.post("/search", json={"query": "halo", "context": {f"k{i}": i for i in range(40)}})
        assert wide.status_code == 422 and "context" in wide.text and "at most 32 items" in wide.text
        bulky = client.post("/search", json={"query": "halo", "context": {"k": "x" * 3000}})
        assert bulky.status_code == 422 and "at most 2048 allowed" in bulky.text
    assert len(read_logs(log_root, "impressions")) == before


def test_hot_reload_of_a_promoted_bundle_under_concurrent_requests_fails_none(bundle_dir, q2e_platform, tmp_path):
    """Four clients search without pause while the promoted pointer moves to a new bundle (the
    watcher loads and verifies it beside the old one, then switches), and then to a tampered
    one (refused: the new one keeps serving). No request may fail."""
    import shutil
    import threading
    import time

    from ltrr_core.artifacts import build_bundle, bundles_root
    from ltrr_core.durable import read_pointer, write_pointer
    from ltrr_core.runtime import load_service
    from ltrr_core.runtime.http import create_app

    settings = q2e_platform[0]
    root = bundles_root(settings)
    latest = read_pointer(root / "LATEST")
    fresh = root / build_bundle(settings)["bundle_id"]
    write_pointer(root / "LATEST", latest)  # other tests serve the fixture bundle
    tampered = root / (fresh.name + "-tampered")
    shutil.copytree(fresh, tampered)
    (tampered / "retrieval.json").write_text((tampered / "retrieval.json").read_text().replace("rrf", "RRF", 1))
    pointer = tmp_path / "PROMOTED"
    write_pointer(pointer, bundle_dir.name)
    app = create_app(
        load_service(settings, bundle_dir),
        tmp_path / "logs",
        lambda: load_service(settings, root / read_pointer(pointer)),
        TOKEN,
        watch=lambda: read_pointer(pointer),
        poll_seconds=0.2,
    )
    statuses, served, stop = [], set(), threading.Event()

    def client_loop(client: TestClient) -> None:
        while not stop.is_set():
            response = client.post("/search", json={"query": "taylor swift love", "k": 5})
            statuses.append(response.status_code)
            if response.status_code == 200:
                served.add(response.json()["bundle_id"])

    def wait_for(condition, seconds: float = 120.0) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not condition():
            time.sleep(0.2)
        return condition()

    try:
        with TestClient(app) as client:
            threads = [threading.Thread(target=client_loop, args=(client,)) for _ in range(4)]
            for thread in threads:
                thread.start()
            assert wait_for(lambda: len(statuses) >= 8)
            write_pointer(pointer, fresh.name)
            assert wait_for(lambda: client.get("/healthz").json()["bundle_id"] == fresh.name)
            write_pointer(pointer, tampered.name)
            time.sleep(2.0)  # ten polls of the refused pointer
            before = len(statuses)
            assert wait_for(lambda: len(statuses) >= before + 8)
            stop.set()
            for thread in threads:
                thread.join()
            assert client.get("/healthz").json()["bundle_id"] == fresh.name
    finally:
        stop.set()
        shutil.rmtree(tampered, ignore_errors=True)
    assert statuses and set(statuses) == {200}
    assert served == {bundle_dir.name, fresh.name}


@pytest.mark.parametrize("protocol, nodelay", [("h11", 0), ("ltrr_core.runtime.serve:NoDelayH11Protocol", 1)])
def test_serve_turns_nagle_off_on_connections_of_a_socket_bound_like_uvicorns_workers(protocol, nodelay):
    """``ltrr serve --workers N``: uvicorn binds the listening socket itself (protocol number 0) and
    asyncio then leaves Nagle on for its connections -- plain h11 shows it -- so keep-alive answers
    waited for the client's delayed ACK. The serving protocol turns it off on every connection."""
    import asyncio
    import socket

    from uvicorn.config import Config
    from uvicorn.server import ServerState

    async def accepted_nodelay() -> int:
        config = Config(app=lambda scope, receive, send: None, host="127.0.0.1", port=0, http=protocol, lifespan="off")
        config.load()
        listening = config.bind_socket()
        made = []

        def factory():
            made.append(config.http_protocol_class(config=config, server_state=ServerState(), app_state={}))
            return made[-1]

        server = await asyncio.get_running_loop().create_server(factory, sock=listening)
        _, writer = await asyncio.open_connection(*listening.getsockname()[:2])
        while not made or made[0].transport is None:
            await asyncio.sleep(0.01)
        value = made[0].transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        writer.close()
        server.close()
        return int(bool(value))

    assert asyncio.run(accepted_nodelay()) == nodelay


def test_explain_shows_every_stage_of_one_query_and_logs_nothing(service, tmp_path):
    from ltrr_core.runtime.http import create_app

    log_root = tmp_path / "logs"
    app = create_app(service, log_root, lambda: service, None)
    with TestClient(app) as client:
        data = client.get("/explain.json", params={"q": "ghosts deadmau5", "k": 5})
        assert data.status_code == 200, data.text
        e = data.json()
        # QU, the plan with its propensity, each planned strategy's candidates, fusion, ranker, timings
        assert e["understanding"]["normalised"] == "ghosts deadmau5" and e["understanding"]["interpretations"]
        assert 0 < e["propensity"] <= 1 and set(e["depths"]) == {s["name"] for s in e["strategies"]}
        answered = [s for s in e["strategies"] if s["candidates"]]  # a planned strategy may find nothing
        assert answered and all(s["candidates"][0]["rank"] == 1 for s in answered)
        assert e["n_fused"] >= len(e["fused"]) > 0 and len(e["results"]) == 5
        for result in e["results"]:
            assert result["found_by"] and result["fused_rank"] >= 1
            assert set(result["features"]) >= {"fusion_score", "title_artist_similarity"}
            planned = {s["name"] for s in e["strategies"]}
            assert set(result["found_by"]) <= planned
        if service.ranker is None:  # a bundle that ranks by fusion
            assert e["ranker"] == "fusion" and not any(r["top_features"] for r in e["results"])
        else:  # SHAP contributions per result
            assert e["ranker"] == f"catboost:{service.ranker.version}" and e["results"][0]["top_features"]
        assert set(e["timings_ms"]) >= {"qu", "policy", "rank", "total"}
        # The page renders the same explanation, escaped, under a CSP without scripts.
        page = client.get("/explain", params={"q": "<b>ghosts</b> deadmau5"})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "&lt;b&gt;ghosts&lt;/b&gt;" in page.text and "<b>ghosts</b>" not in page.text
        for section in ('id="understanding"', 'id="plan"', 'id="strategies"', 'id="fused"', 'id="results"'):
            assert section in page.text
        assert "script-src" not in page.headers["content-security-policy"]
        assert client.get("/explain").status_code == 200  # the form alone
        refused = client.get("/explain", params={"q": "?!..."})
        assert refused.status_code == 422 and "no letters or digits" in refused.text
        assert client.get("/explain.json", params={"q": "?!..."}).status_code == 422
    assert read_logs(log_root, "impressions").empty  # explanations are not impressions
