"""The HTTP API (FastAPI; OpenAPI docs at /docs): search, feedback, health, admin reload, and
the explain page (``GET /explain?q=``, HTML; ``GET /explain.json?q=``, the JSON it renders).

Every answered search writes an impression; feedback must name a logged request and an
entity that request showed. Both logs are flushed when the app shuts down (uvicorn runs the
lifespan shutdown on SIGTERM and SIGINT). Input errors are 4xx with a message that says what
was wrong: FastAPI/pydantic for malformed JSON and field types (422, naming the field and the
rule), InvalidQuery for queries that cannot be searched, 404 for unknown request ids.

Hardening (``runtime`` config): bodies over ``max_body_bytes`` get 413 before they are read; a
``context`` over its bounds (keys, nesting depth, JSON bytes) 422 -- it is logged verbatim with
every impression; more than ``max_concurrent_requests`` searches/feedback in flight get 503 with
``Retry-After`` instead of an unbounded queue; every response carries security headers; the
admin endpoint exists only when a token is configured and compares it in constant time.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Header, HTTPException, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..artifacts import BundleError
from ..config import RuntimeConfig
from ..logs import LOG_SCHEMA_VERSION
from ..logs.recorder import InteractionRecorder, NotShown, UnknownRequest
from ..query import InvalidQuery
from .explain import Explanation, explain_query, render_html
from .service import SearchService

_log = logging.getLogger("ltrr.runtime")
LIMITED_PATHS = ("/search", "/feedback", "/explain", "/explain.json")  # what the concurrency limit counts
EXPLAIN_PAGE = "/explain"
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
# The docs pages load Swagger UI / ReDoc from their CDN; everything else is JSON and needs nothing.
DOCS_CSP = (
    b"default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    b"frame-ancestors 'none'"
)
API_CSP = b"default-src 'none'; frame-ancestors 'none'"
# The explain page: its own inline style and a form that submits to itself; no script at all.
EXPLAIN_CSP = b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def search_request_model(config: RuntimeConfig) -> type[BaseModel]:
    """The /search body, with the context bounds of ``config`` (shown in the OpenAPI schema
    where JSON Schema can say them: maxProperties)."""

    class SearchRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        query: str
        user_id: str | None = Field(None, max_length=128)
        context: dict[str, Any] = Field(
            default_factory=dict,
            max_length=config.context_max_keys,
            description=f"request context, logged verbatim: at most {config.context_max_keys} "
            f"keys, nesting depth {config.context_max_depth}, "
            f"{config.context_max_bytes} bytes as JSON",
        )
        k: int | None = Field(None, gt=0, le=100)
        trace: bool = False

        @field_validator("context")
        @classmethod
        def _bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
            depth = _depth(value)
            if depth > config.context_max_depth:
                raise ValueError(f"context nests {depth} levels deep; at most {config.context_max_depth} allowed")
            size = len(json.dumps(value, sort_keys=True, default=str).encode("utf-8"))
            if size > config.context_max_bytes:
                raise ValueError(f"context is {size} bytes as JSON; at most {config.context_max_bytes} allowed")
            return value

    return SearchRequest


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(min_length=1, max_length=64)
    entity_id: str = Field(min_length=1, max_length=256)
    event: Literal["click", "stream", "like", "skip"]
    position: int = Field(ge=1, le=100)
    seconds: float | None = Field(None, ge=0)


class RequestGuard:
    """ASGI middleware: body size (413), concurrency (503 + Retry-After), security headers."""

    def __init__(self, app: Any, config: RuntimeConfig):
        self.app, self.config = app, config
        self.in_flight = 0  # touched only on the event loop: no lock needed

    async def __call__(self, scope: dict[str, Any], receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        csp = {"/docs": DOCS_CSP, "/redoc": DOCS_CSP, EXPLAIN_PAGE: EXPLAIN_CSP}.get(scope["path"], API_CSP)
        declared = headers.get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.config.max_body_bytes:
            await self._refuse(
                send,
                413,
                f"request body of {declared.decode('latin-1')!r} bytes; at most "
                f"{self.config.max_body_bytes} allowed (runtime.max_body_bytes)",
                csp,
            )
            return
        limited = scope["path"] in LIMITED_PATHS
        if limited and self.in_flight >= self.config.max_concurrent_requests:
            await self._refuse(
                send,
                503,
                f"{self.in_flight} requests in flight, the limit of this process "
                f"(runtime.max_concurrent_requests); retry after "
                f"{self.config.retry_after_seconds} s",
                csp,
                [(b"retry-after", str(self.config.retry_after_seconds).encode())],
            )
            return
        self.in_flight += limited
        started = refused = False
        received = 0

        async def counted_receive() -> dict[str, Any]:
            nonlocal received, refused
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.config.max_body_bytes and not refused:  # streamed, without Content-Length
                refused = True
                if not started:
                    await self._refuse(
                        send, 413, f"request body over {self.config.max_body_bytes} bytes (runtime.max_body_bytes)", csp
                    )
                return {"type": "http.disconnect"}  # the app stops reading
            return message

        async def secured_send(message: dict[str, Any]) -> None:
            nonlocal started
            if refused:
                return  # the 413 has been sent
            if message["type"] == "http.response.start":
                started = True
                message = {
                    **message,
                    "headers": [*message.get("headers", []), *SECURITY_HEADERS, (b"content-security-policy", csp)],
                }
            await send(message)

        try:
            await self.app(scope, counted_receive, secured_send)
        finally:
            self.in_flight -= limited

    @staticmethod
    async def _refuse(
        send: Callable, status: int, detail: str, csp: bytes, extra: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        body = json.dumps({"detail": detail}).encode("utf-8")
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *SECURITY_HEADERS,
                    (b"content-security-policy", csp),
                    *(extra or []),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def create_app(
    service: SearchService,
    log_root: Path,
    reload_service: Callable[[], SearchService],
    admin_token: str | None,
    watch: Callable[[], str | None] | None = None,
    poll_seconds: float = 0.0,
) -> FastAPI:
    """``watch`` returns the bundle id that should be served (the promoted pointer); every
    ``poll_seconds`` a background thread compares it with the one being served and reloads."""
    state = {"service": service}
    recorder = InteractionRecorder(log_root, service.settings.runtime)
    swap = threading.Lock()

    def reload() -> SearchService:
        """Load and verify the new bundle beside the old one, then switch one reference:
        requests in flight keep the service they started with; a refused bundle changes nothing."""
        with swap:
            fresh = reload_service()
            state["service"] = fresh
            return fresh

    def watch_loop(stop: threading.Event, watch: Callable[[], str | None]) -> None:
        refused = None
        while not stop.wait(poll_seconds):
            target = watch()
            if not target or target == state["service"].bundle_id or target == refused:
                continue
            try:
                reload()
                refused = None
                _log.info("now serving promoted bundle %s", state["service"].bundle_id)
            except (BundleError, FileNotFoundError) as error:
                refused = target
                _log.error(
                    "promoted bundle %s refused, still serving %s: %s", target, state["service"].bundle_id, error
                )

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        stop = threading.Event()
        watcher = None
        if watch is not None and poll_seconds > 0:
            watcher = threading.Thread(target=watch_loop, args=(stop, watch), name="bundle-watch", daemon=True)
            watcher.start()
        yield
        stop.set()
        if watcher is not None:
            watcher.join(timeout=poll_seconds + 1)
        recorder.close()

    config = service.settings.runtime
    app = FastAPI(title="ltrr query runtime", version=LOG_SCHEMA_VERSION, lifespan=lifespan)
    app.state.recorder = recorder
    app.state.current_service = lambda: state["service"]
    app.add_middleware(RequestGuard, config=config)
    SearchRequest = search_request_model(config)

    def search(request: Any) -> dict[str, Any]:
        current: SearchService = state["service"]
        try:
            response = current.search(request.query, request.user_id, request.context, request.k, explain=request.trace)
        except InvalidQuery as error:
            raise HTTPException(status_code=422, detail=f"invalid query: {error}") from error
        recorder.record_search(response, request.user_id, request.context, datetime.now(UTC))
        body: dict[str, Any] = {
            "request_id": response.request_id,
            "bundle_id": response.bundle_id,
            "results": response.results,
            "timings_ms": response.timings_ms,
        }  # per stage, also without a trace (cheap; the trace's explain is not)
        if request.trace:
            body["trace"] = {**response.trace(), "qu": response.understanding}
        return body

    search.__annotations__ = {"request": SearchRequest, "return": dict[str, Any]}  # the model is built from config
    app.post("/search")(search)

    @app.post("/feedback")
    def post_feedback(event: FeedbackRequest) -> dict[str, Any]:
        try:
            recorder.record_feedback(
                event.request_id, event.entity_id, event.event, event.position, event.seconds, datetime.now(UTC)
            )
        except UnknownRequest as error:
            raise HTTPException(status_code=404, detail=str(error)) from error
        except NotShown as error:
            raise HTTPException(status_code=422, detail=str(error)) from error
        return {"status": "recorded"}

    def explained(q: str, k: int) -> Explanation:
        try:
            return explain_query(state["service"], q, k)
        except InvalidQuery as error:
            raise HTTPException(status_code=422, detail=f"invalid query: {error}") from error

    max_k = config.max_results

    @app.get("/explain.json")
    def explain_json(
        q: str = Query(..., description="the query to explain"),
        k: int = Query(10, ge=1, le=max_k, description="results to rank"),
    ) -> dict[str, Any]:
        """Every stage of one query (QU, plan and propensity, each strategy's candidates, fusion, ranker
        features and contributions per result, timings). Greedy plan; nothing is logged."""
        return explained(q, k).to_dict()

    @app.get(EXPLAIN_PAGE, response_class=HTMLResponse)
    def explain_page(
        q: str = Query("", description="the query to explain (empty: the form alone)"),
        k: int = Query(10, ge=1, le=max_k, description="results to rank"),
    ) -> HTMLResponse:
        """The same as /explain.json, as a page a person reads."""
        if not q.strip():
            return HTMLResponse(render_html(None, q, k))
        try:
            return HTMLResponse(render_html(explained(q, k), q, k))
        except HTTPException as error:
            return HTMLResponse(render_html(None, q, k, str(error.detail)), status_code=error.status_code)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "bundle_id": state["service"].bundle_id}

    def admin_reload(x_admin_token: str | None = Header(None)) -> dict[str, Any]:
        if not hmac.compare_digest((x_admin_token or "").encode("utf-8"), str(admin_token).encode("utf-8")):
            raise HTTPException(status_code=401, detail="admin token missing or wrong (header X-Admin-Token)")
        try:
            fresh = reload()
        except BundleError as error:
            raise HTTPException(
                status_code=409, detail=f"bundle refused, still serving {state['service'].bundle_id}: {error}"
            ) from error
        return {"status": "reloaded", "bundle_id": fresh.bundle_id}

    if admin_token:  # without a configured token there is no admin endpoint at all
        app.post("/admin/reload")(admin_reload)
    return app


def admin_token_from_env(variable: str) -> str | None:
    return os.environ.get(variable) or None
