"""The runtime's request guard (ltrr_core.runtime.http.RequestGuard) and request bounds, on a
tiny ASGI app: body size, concurrency with Retry-After, security headers, context bounds."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from ltrr_core.config import RuntimeConfig
from ltrr_core.runtime.http import RequestGuard, search_request_model


def _app(config: RuntimeConfig, gate: asyncio.Event | None = None) -> FastAPI:
    app = FastAPI()
    app.add_middleware(RequestGuard, config=config)

    @app.post("/search")
    async def search(body: dict) -> dict:
        if gate is not None:
            await gate.wait()
        return {"n": len(body)}

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    return app


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def test_a_body_over_the_limit_is_refused_with_413_before_it_is_read():
    config = RuntimeConfig(max_body_bytes=100)

    async def run():
        async with _client(_app(config)) as client:
            small = await client.post("/search", json={"q": "x" * 50})
            large = await client.post("/search", json={"q": "x" * 200})

            async def chunks():
                for _ in range(3):
                    yield b"x" * 60

            chunked = await client.post("/search", content=chunks())  # streamed: no Content-Length
            return small, large, chunked

    small, large, chunked = asyncio.run(run())
    assert small.status_code == 200
    assert large.status_code == 413 and "at most 100 allowed" in large.json()["detail"]
    assert chunked.status_code == 413 and "max_body_bytes" in chunked.json()["detail"]


def test_requests_beyond_the_concurrency_limit_get_503_with_retry_after_and_health_still_answers():
    config = RuntimeConfig(max_concurrent_requests=2, retry_after_seconds=3)

    async def run():
        gate = asyncio.Event()
        async with _client(_app(config, gate)) as client:
            held = [asyncio.create_task(client.post("/search", json={"q": i})) for i in range(2)]
            await asyncio.sleep(0.2)  # both are in flight, waiting on the gate
            refused = await client.post("/search", json={"q": 3})
            health = await client.get("/healthz")
            gate.set()
            answered = [await task for task in held]
            after = await client.post("/search", json={"q": 4})
            return refused, health, answered, after

    refused, health, answered, after = asyncio.run(run())
    assert refused.status_code == 503 and refused.headers["retry-after"] == "3"
    assert "2 requests in flight" in refused.json()["detail"]
    assert health.status_code == 200
    assert [r.status_code for r in answered] == [200, 200] and after.status_code == 200  # slots are given back


def test_every_response_carries_security_headers():
    async def run():
        async with _client(_app(RuntimeConfig())) as client:
            return await client.get("/healthz"), await client.get("/docs")

    api, docs = asyncio.run(run())
    for response in (api, docs):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
    assert api.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert "script-src" in docs.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("context", "rule"),
    [
        ({f"k{i}": i for i in range(5)}, "at most 4 items"),
        ({"a": {"b": {"c": 1}}}, "nests 3 levels deep; at most 2 allowed"),
        ({"a": "x" * 100}, "bytes as JSON; at most 64 allowed"),
    ],
)
def test_a_context_over_its_bounds_is_refused_naming_the_rule(context, rule):
    model = search_request_model(RuntimeConfig(context_max_keys=4, context_max_depth=2, context_max_bytes=64))
    assert model(query="halo", context={"a": {"b": 1}, "c": "ok"}).context == {"a": {"b": 1}, "c": "ok"}
    with pytest.raises(ValidationError) as error:
        model(query="halo", context=context)
    assert error.value.errors()[0]["loc"] == ("context",) and rule in str(error.value)
