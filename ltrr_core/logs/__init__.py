"""Interaction logs (seam 2), beneath both sides: the runtime writes them through
``InteractionRecorder``; the learners, contracts, memory index and simulator read them here,
without importing the runtime.

``store``: the Arrow schemas, the durable ``LogWriter`` and the readers. ``recorder``: the one
place where an answered search and its feedback become records.
"""

from .recorder import FEEDBACK_EVENTS, InteractionRecorder, NotShown, UnknownRequest
from .store import (
    FEEDBACK_SCHEMA,
    IMPRESSION_SCHEMA,
    KEYS,
    LOG_SCHEMA_VERSION,
    SCHEMAS,
    LogWriter,
    impression_record,
    logged_days,
    read_logs,
)

__all__ = [
    "FEEDBACK_EVENTS",
    "FEEDBACK_SCHEMA",
    "IMPRESSION_SCHEMA",
    "KEYS",
    "LOG_SCHEMA_VERSION",
    "SCHEMAS",
    "InteractionRecorder",
    "LogWriter",
    "NotShown",
    "UnknownRequest",
    "impression_record",
    "logged_days",
    "read_logs",
]
