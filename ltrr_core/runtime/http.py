"""The HTTP API (FastAPI; OpenAPI docs at /docs): search, feedback, health, admin reload.

Every answered search writes an impression; feedback must name a logged request and an
entity that request showed. Both logs are flushed when the app shuts down (uvicorn runs the
lifespan shutdown on SIGTERM and SIGINT). Input errors are 4xx with a message that says what
was wrong: FastAPI/pydantic for malformed JSON and field types, InvalidQuery for queries
that cannot be searched, 404 for unknown request ids.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Literal

from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from ..query import InvalidQuery
from .logs import LOG_SCHEMA_VERSION, LogWriter, impression_record
from .service import SearchService

MAX_REMEMBERED_REQUESTS = 200_000


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str
    user_id: str | None = Field(None, max_length=128)
    context: dict[str, Any] = {}
    k: int | None = Field(None, gt=0, le=100)
    trace: bool = False


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(min_length=1, max_length=64)
    entity_id: str = Field(min_length=1, max_length=256)
    event: Literal["click", "stream", "like", "skip"]
    position: int = Field(ge=1, le=100)
    seconds: float | None = Field(None, ge=0)


class _Shown:
    """request id -> entity ids shown, for the most recent requests (bounded)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._items: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, request_id: str, ids: tuple[str, ...]) -> None:
        with self._lock:
            self._items[request_id] = ids
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def get(self, request_id: str) -> tuple[str, ...] | None:
        with self._lock:
            return self._items.get(request_id)


def create_app(service: SearchService, log_root: Path, reload_service: Callable[[], SearchService],
               admin_token: str | None) -> FastAPI:
    state = {"service": service}
    impressions = LogWriter(log_root, "impressions", service.settings.runtime.flush_rows,
                            service.settings.runtime.flush_seconds)
    feedback = LogWriter(log_root, "feedback", service.settings.runtime.flush_rows,
                         service.settings.runtime.flush_seconds)
    shown = _Shown(MAX_REMEMBERED_REQUESTS)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        impressions.close()
        feedback.close()

    app = FastAPI(title="ltrr query runtime", version=LOG_SCHEMA_VERSION, lifespan=lifespan)
    app.state.writers = (impressions, feedback)

    @app.post("/search")
    def search(request: SearchRequest) -> dict[str, Any]:
        current: SearchService = state["service"]
        try:
            response = current.search(request.query, request.user_id, request.context, request.k)
        except InvalidQuery as error:
            raise HTTPException(status_code=422, detail=f"invalid query: {error}") from error
        impressions.append(impression_record(response, request.user_id, request.context, datetime.now(timezone.utc)))
        shown.add(response.request_id, tuple(r["entity_id"] for r in response.results))
        body = {"request_id": response.request_id, "bundle_id": response.bundle_id, "results": response.results}
        if request.trace:
            body["trace"] = {**response.trace(), "qu": response.understanding}
        return body

    @app.post("/feedback")
    def post_feedback(event: FeedbackRequest) -> dict[str, Any]:
        ids = shown.get(event.request_id)
        if ids is None:
            raise HTTPException(status_code=404, detail=f"unknown request id {event.request_id!r}")
        if event.entity_id not in ids:
            raise HTTPException(status_code=422, detail=f"entity {event.entity_id!r} was not shown in request "
                                                        f"{event.request_id!r}")
        feedback.append({**event.model_dump(), "timestamp": datetime.now(timezone.utc),
                         "log_schema_version": LOG_SCHEMA_VERSION})
        return {"status": "recorded"}

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "bundle_id": state["service"].bundle_id}

    @app.post("/admin/reload")
    def reload(x_admin_token: str | None = Header(None)) -> dict[str, Any]:
        if not admin_token or x_admin_token != admin_token:
            raise HTTPException(status_code=401, detail="admin token missing or wrong (header X-Admin-Token)")
        from ..artifacts import BundleError

        try:
            fresh = reload_service()
        except BundleError as error:
            raise HTTPException(status_code=409, detail=f"bundle refused, still serving "
                                                        f"{state['service'].bundle_id}: {error}") from error
        state["service"] = fresh
        return {"status": "reloaded", "bundle_id": fresh.bundle_id}

    return app


def admin_token_from_env(variable: str) -> str | None:
    return os.environ.get(variable) or None
