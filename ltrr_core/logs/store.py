"""Interaction logs (seam 2): impressions and feedback as Arrow schemas, append-only, by day.

Records are buffered in memory and written as finalised Parquet files -- temp file, fsync,
rename (``ltrr_core.durable.write_parquet``) -- under ``<root>/<kind>/date=YYYY-MM-DD/``, one
new file per flush, never appended to or rewritten. ``close()`` flushes what is buffered; the
HTTP server calls it on shutdown (SIGTERM included), so every answered request is on disk.
Nested, evolving structures (QU output, context, per-strategy candidates) are JSON strings:
the column set stays stable while their content grows with later issues.

Readers deduplicate by key (``request_id`` for impressions; request, entity, event and time for
feedback), so ingesting the same file twice cannot double-count.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from ..durable import write_parquet

LOG_SCHEMA_VERSION = "1.5"  # 1.1: policy and policy_features; 1.2: shown_features holds ranking features; 1.3: rng_seed; 1.4: candidate_ids; 1.5: timings_ms
_TS = pa.timestamp("us", tz="UTC")

IMPRESSION_SCHEMA = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("timestamp", _TS, nullable=False),
        pa.field("user_id", pa.string()),
        pa.field("context", pa.string()),  # JSON: request context features
        pa.field("raw_query", pa.string(), nullable=False),
        pa.field("normalised_query", pa.string(), nullable=False),
        pa.field("qu", pa.string()),  # JSON: QueryUnderstanding.to_dict()
        pa.field("policy", pa.string()),  # which policy decided (name:version)
        pa.field("policy_features", pa.string()),  # JSON: the features it decided on
        pa.field("plan", pa.string(), nullable=False),
        pa.field("depths", pa.string(), nullable=False),  # JSON: strategy -> depth
        pa.field("propensity", pa.float64(), nullable=False),  # joint probability of the plan
        pa.field("strategy_propensities", pa.string(), nullable=False),  # JSON: per component
        pa.field("candidates", pa.string(), nullable=False),  # JSON: per strategy ids, scores, meta
        pa.field("shown_ids", pa.list_(pa.string()), nullable=False),  # the final ranking, in order
        pa.field("shown_scores", pa.list_(pa.float64()), nullable=False),
        pa.field("shown_features", pa.string(), nullable=False),  # JSON: per shown entity, its features
        pa.field("bundle_id", pa.string(), nullable=False),
        pa.field("log_schema_version", pa.string(), nullable=False),
        # The runtime's seed: with request_id it re-derives every random draw of the request
        # (ltrr_core.runtime.service.request_rng). Null in files of schema < 1.3.
        pa.field("rng_seed", pa.int64()),
        # The whole fused candidate set, best first (``candidates`` traces only each strategy's top
        # 20): candidate recall and candidate counts are measured on it. Null in files of schema < 1.4.
        pa.field("candidate_ids", pa.list_(pa.string())),
        # JSON: the request's stage timings in ms (qu, policy, each strategy it ran, rank, total): what
        # the policy's latency cost is learned from (ltrr_core.bandit.latency). Null in files of schema < 1.5.
        pa.field("timings_ms", pa.string()),
    ]
)

FEEDBACK_SCHEMA = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("timestamp", _TS, nullable=False),
        pa.field("entity_id", pa.string(), nullable=False),
        pa.field("event", pa.string(), nullable=False),  # click | stream | like | skip
        pa.field("position", pa.int32()),
        pa.field("seconds", pa.float64()),
        pa.field("log_schema_version", pa.string(), nullable=False),
    ]
)

SCHEMAS = {"impressions": IMPRESSION_SCHEMA, "feedback": FEEDBACK_SCHEMA}
KEYS = {"impressions": ["request_id"], "feedback": ["request_id", "entity_id", "event", "timestamp"]}


def impression_record(response, user_id: str | None, context: dict[str, Any], timestamp: datetime) -> dict[str, Any]:
    """One impression row from a SearchResponse: what was asked, decided, found and shown."""
    decision = response.decision
    return {
        "request_id": response.request_id,
        "timestamp": timestamp,
        "user_id": user_id,
        "context": json.dumps(context, sort_keys=True, default=str),
        "raw_query": response.query,
        "normalised_query": response.understanding["normalised"],
        "qu": json.dumps(response.understanding),
        "policy": response.policy,
        "policy_features": json.dumps(response.policy_features, sort_keys=True),
        "plan": decision.plan,
        "depths": json.dumps(decision.depths, sort_keys=True),
        "propensity": float(decision.probability),
        "strategy_propensities": json.dumps(decision.strategy_probabilities, sort_keys=True),
        "candidates": json.dumps(response.per_strategy),
        "shown_ids": [r["entity_id"] for r in response.results],
        "shown_scores": [float(r["score"]) for r in response.results],
        # Per shown result, in order: its ranking inputs (per-strategy rank and score) and its
        # feature values (ltrr_core.features.ranking, spec and strategies named) -- what the
        # ranker saw, and what training reads.
        "shown_features": json.dumps({k: v for k, v in response.ranking.items() if k != "top_features"}),
        "bundle_id": response.bundle_id,
        "log_schema_version": LOG_SCHEMA_VERSION,
        "rng_seed": int(response.rng_seed),
        "candidate_ids": list(response.candidate_ids),
        "timings_ms": json.dumps(response.timings_ms, sort_keys=True),
    }


class LogWriter:
    """Thread-safe buffered writer of one log kind; every flush is a new finalised file."""

    def __init__(self, root: Path, kind: str, flush_rows: int = 1000, flush_seconds: float = 5.0):
        if kind not in SCHEMAS:
            raise ValueError(f"unknown log kind {kind!r}; known: {sorted(SCHEMAS)}")
        self.root, self.kind, self.schema = Path(root), kind, SCHEMAS[kind]
        self.flush_rows, self.flush_seconds = flush_rows, flush_seconds
        self._buffer: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()
        self.n_written = 0

    def append(self, record: dict[str, Any]) -> None:
        missing = [f.name for f in self.schema if not f.nullable and record.get(f.name) is None]
        if missing:
            raise ValueError(f"{self.kind} record {record.get('request_id')!r} lacks required field(s) {missing}")
        with self._lock:
            self._buffer.append(record)
            due = len(self._buffer) >= self.flush_rows or time.monotonic() - self._last_flush >= self.flush_seconds
        if due:
            self.flush()

    def flush(self) -> int:
        """Write what is buffered, one new file per day. If a write fails (``OSError``: a full
        disk, an I/O error) the rows of every day not yet written go back in front of the buffer
        and the error propagates: the next flush writes them, so nothing appended is dropped and
        nothing already on disk is written twice."""
        with self._lock:
            rows, self._buffer = self._buffer, []
            self._last_flush = time.monotonic()
            if not rows:
                return 0
            table = pa.Table.from_pylist(rows, schema=self.schema)
            days = pd.Series(table.column("timestamp").to_pandas()).dt.strftime("%Y-%m-%d").to_numpy()
            written = 0
            for day in sorted(set(days)):
                part = table.filter(pa.array(days == day))
                name = f"part-{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}.parquet"
                try:
                    write_parquet(part, self.root / self.kind / f"date={day}" / name)
                except OSError:
                    self._buffer[:0] = [row for row, d in zip(rows, days) if d >= day]
                    self.n_written += written
                    raise
                written += part.num_rows
            self.n_written += written
            return written

    def close(self) -> None:
        self.flush()


def read_logs(root: Path, kind: str, day: str | None = None) -> pd.DataFrame:
    """All finalised files of a kind (one day or all), deduplicated by the kind's key."""
    base = Path(root) / kind
    pattern = f"date={day}/*.parquet" if day else "date=*/*.parquet"
    files = sorted(base.glob(pattern))
    if not files:
        return SCHEMAS[kind].empty_table().to_pandas()
    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    for field in SCHEMAS[kind]:  # files of an older schema version lack the newer (nullable) columns
        if field.name not in frame.columns:
            frame[field.name] = None
    return frame.drop_duplicates(KEYS[kind], keep="first").reset_index(drop=True)


def logged_days(root: Path, kind: str = "impressions") -> list[str]:
    """Days (YYYY-MM-DD) with at least one finalised file of this kind, oldest first."""
    return sorted(p.name.split("=", 1)[1] for p in (Path(root) / kind).glob("date=*") if any(p.glob("*.parquet")))
