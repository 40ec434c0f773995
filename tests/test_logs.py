"""Interaction logs: finalised day partitions, nothing lost under concurrency, no duplicates on re-ingest."""

from __future__ import annotations

import json
import shutil
import threading
from datetime import UTC, datetime, timedelta

import pytest

from ltrr_core.logs import LogWriter, read_logs

T0 = datetime(2026, 11, 24, 23, 59, 58, tzinfo=UTC)


def _feedback(i: int, when: datetime) -> dict:
    return {
        "request_id": f"r{i}",
        "timestamp": when,
        "entity_id": f"cpcd:{i}",
        "event": "click",
        "position": 1 + i % 10,
        "seconds": None,
        "log_schema_version": "1.0",
    }


def test_concurrent_appends_are_all_on_disk_in_day_partitions(tmp_path):
    writer = LogWriter(tmp_path, "feedback", flush_rows=97, flush_seconds=3600)
    n_threads, per_thread = 8, 500

    def work(t: int) -> None:
        for j in range(per_thread):
            i = t * per_thread + j
            writer.append(_feedback(i, T0 + timedelta(milliseconds=i)))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()
    frame = read_logs(tmp_path, "feedback")
    assert len(frame) == n_threads * per_thread == writer.n_written
    days = sorted(p.name for p in (tmp_path / "feedback").iterdir())
    assert days == ["date=2026-11-24", "date=2026-11-25"]  # the run crossed midnight
    assert len(read_logs(tmp_path, "feedback", "2026-11-24")) == 2000  # 2 s of 1 ms records
    assert not list(tmp_path.rglob(".*"))  # no temp files left behind


def test_reingesting_the_same_file_does_not_duplicate(tmp_path):
    writer = LogWriter(tmp_path, "feedback")
    for i in range(10):
        writer.append(_feedback(i, T0))
    writer.close()
    (part,) = (tmp_path / "feedback" / "date=2026-11-24").glob("*.parquet")
    shutil.copy(part, part.with_name("part-copy.parquet"))
    assert len(read_logs(tmp_path, "feedback")) == 10


def test_records_missing_required_fields_are_refused_by_name(tmp_path):
    writer = LogWriter(tmp_path, "feedback")
    record = _feedback(1, T0)
    record["entity_id"] = None
    with pytest.raises(ValueError, match=r"'r1' lacks required field\(s\) \['entity_id'\]"):
        writer.append(record)


@pytest.mark.slow
def test_an_impression_from_the_real_service_round_trips(bundle_dir, q2e_platform, tmp_path):
    from ltrr_core.logs import impression_record
    from ltrr_core.runtime import load_service

    service = load_service(q2e_platform[0], bundle_dir)
    response = service.search("ghosts deadmau5", user_id="u7")
    writer = LogWriter(tmp_path, "impressions")
    writer.append(impression_record(response, "u7", {"hour": 21}, datetime.now(UTC)))
    writer.close()
    row = read_logs(tmp_path, "impressions").iloc[0]
    assert row["request_id"] == response.request_id and row["bundle_id"] == service.bundle_id
    assert row["propensity"] == response.decision.probability
    assert list(row["shown_ids"]) == [r["entity_id"] for r in response.results]
    assert json.loads(row["qu"])["normalised"] == "ghosts deadmau5"
    assert set(json.loads(row["candidates"])) == set(response.per_strategy)
