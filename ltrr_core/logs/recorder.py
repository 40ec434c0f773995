"""The one place where answered searches and feedback become log records.

The HTTP API and the simulator both go through ``InteractionRecorder``, so simulated logs are
the logs the runtime writes: same records, same checks (feedback must name a request this
process answered and an entity that request showed), same writers and flushing.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime
from pathlib import Path
from typing import Any

from ..config import RuntimeConfig
from .store import LOG_SCHEMA_VERSION, LogWriter, impression_record

MAX_REMEMBERED_REQUESTS = 200_000
FEEDBACK_EVENTS = ("click", "stream", "like", "skip")


class UnknownRequest(LookupError):
    """Feedback names a request id this runtime did not answer (or has forgotten)."""


class NotShown(ValueError):
    """Feedback names an entity the request did not show."""


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


class InteractionRecorder:
    def __init__(self, log_root: Path, config: RuntimeConfig, remember: int = MAX_REMEMBERED_REQUESTS):
        self.impressions = LogWriter(log_root, "impressions", config.flush_rows, config.flush_seconds)
        self.feedback = LogWriter(log_root, "feedback", config.flush_rows, config.flush_seconds)
        self._shown = _Shown(remember)

    def record_search(self, response, user_id: str | None, context: dict[str, Any], timestamp: datetime) -> None:
        self.impressions.append(impression_record(response, user_id, context, timestamp))
        self._shown.add(response.request_id, tuple(r["entity_id"] for r in response.results))

    def record_feedback(
        self,
        request_id: str,
        entity_id: str,
        event: str,
        position: int | None,
        seconds: float | None,
        timestamp: datetime,
    ) -> None:
        if event not in FEEDBACK_EVENTS:
            raise ValueError(f"feedback for request {request_id!r}: event {event!r} is not one of {FEEDBACK_EVENTS}")
        ids = self._shown.get(request_id)
        if ids is None:
            raise UnknownRequest(f"unknown request id {request_id!r}")
        if entity_id not in ids:
            raise NotShown(f"entity {entity_id!r} was not shown in request {request_id!r}")
        self.feedback.append(
            {
                "request_id": request_id,
                "entity_id": entity_id,
                "event": event,
                "position": position,
                "seconds": seconds,
                "timestamp": timestamp,
                "log_schema_version": LOG_SCHEMA_VERSION,
            }
        )

    def flush(self) -> None:
        self.impressions.flush()
        self.feedback.flush()

    def close(self) -> None:
        self.impressions.close()
        self.feedback.close()
