"""The HTTP API (FastAPI; OpenAPI docs at /docs): search, feedback, health, admin reload.

Every answered search writes an impression; feedback must name a logged request and an
entity that request showed. Both logs are flushed when the app shuts down (uvicorn runs the
lifespan shutdown on SIGTERM and SIGINT). Input errors are 4xx with a message that says what
was wrong: FastAPI/pydantic for malformed JSON and field types, InvalidQuery for queries
that cannot be searched, 404 for unknown request ids.
"""

from __future__ import annotations

import logging
import os
import threading
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Literal

from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from ..query import InvalidQuery
from .logs import LOG_SCHEMA_VERSION
from .recorder import InteractionRecorder, NotShown, UnknownRequest
from .service import SearchService

_log = logging.getLogger("ltrr.runtime")


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


def create_app(service: SearchService, log_root: Path, reload_service: Callable[[], SearchService],
               admin_token: str | None, watch: Callable[[], str | None] | None = None,
               poll_seconds: float = 0.0) -> FastAPI:
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

    def watch_loop(stop: threading.Event) -> None:
        from ..artifacts import BundleError

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
                _log.error("promoted bundle %s refused, still serving %s: %s", target, state["service"].bundle_id, error)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        stop = threading.Event()
        watcher = None
        if watch is not None and poll_seconds > 0:
            watcher = threading.Thread(target=watch_loop, args=(stop,), name="bundle-watch", daemon=True)
            watcher.start()
        yield
        stop.set()
        if watcher is not None:
            watcher.join(timeout=poll_seconds + 1)
        recorder.close()

    app = FastAPI(title="ltrr query runtime", version=LOG_SCHEMA_VERSION, lifespan=lifespan)
    app.state.recorder = recorder

    @app.post("/search")
    def search(request: SearchRequest) -> dict[str, Any]:
        current: SearchService = state["service"]
        try:
            response = current.search(request.query, request.user_id, request.context, request.k, explain=request.trace)
        except InvalidQuery as error:
            raise HTTPException(status_code=422, detail=f"invalid query: {error}") from error
        recorder.record_search(response, request.user_id, request.context, datetime.now(timezone.utc))
        body = {"request_id": response.request_id, "bundle_id": response.bundle_id, "results": response.results}
        if request.trace:
            body["trace"] = {**response.trace(), "qu": response.understanding}
        return body

    @app.post("/feedback")
    def post_feedback(event: FeedbackRequest) -> dict[str, Any]:
        try:
            recorder.record_feedback(event.request_id, event.entity_id, event.event, event.position, event.seconds,
                                     datetime.now(timezone.utc))
        except UnknownRequest as error:
            raise HTTPException(status_code=404, detail=str(error)) from error
        except NotShown as error:
            raise HTTPException(status_code=422, detail=str(error)) from error
        return {"status": "recorded"}

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "bundle_id": state["service"].bundle_id}

    @app.post("/admin/reload")
    def admin_reload(x_admin_token: str | None = Header(None)) -> dict[str, Any]:
        if not admin_token or x_admin_token != admin_token:
            raise HTTPException(status_code=401, detail="admin token missing or wrong (header X-Admin-Token)")
        from ..artifacts import BundleError

        try:
            fresh = reload()
        except BundleError as error:
            raise HTTPException(status_code=409, detail=f"bundle refused, still serving "
                                                        f"{state['service'].bundle_id}: {error}") from error
        return {"status": "reloaded", "bundle_id": fresh.bundle_id}

    return app


def admin_token_from_env(variable: str) -> str | None:
    return os.environ.get(variable) or None
