"""Each log contract catches its planted bad records; good records pass untouched."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from ltrr_core.contracts.logs import validate_log_day

DAY = "2026-11-24"
T = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _impression(request_id: str, **changes) -> dict:
    row = {
        "request_id": request_id,
        "timestamp": T,
        "user_id": "u1",
        "context": "{}",
        "raw_query": "Halo",
        "normalised_query": "halo",
        "qu": "{}",
        "plan": "all",
        "depths": json.dumps({"lexical": 100}),
        "propensity": 0.84,
        "strategy_propensities": "{}",
        "candidates": "{}",
        "shown_ids": ["cpcd:a", "cpcd:b"],
        "shown_scores": [0.2, 0.1],
        "shown_features": "[]",
        "bundle_id": "B1",
        "log_schema_version": "1.0",
        "rng_seed": None,
        "candidate_ids": None,  # schema 1.0 carried no seed, no candidate set,
        "timings_ms": None,
    }  # no timings
    return {**row, **changes}


def _feedback(request_id: str, entity: str = "cpcd:a", **changes) -> dict:
    row = {
        "request_id": request_id,
        "timestamp": T,
        "entity_id": entity,
        "event": "click",
        "position": 1,
        "seconds": None,
        "log_schema_version": "1.0",
    }
    return {**row, **changes}


def test_planted_bad_records_are_quarantined_with_their_reason(tmp_path):
    impressions = pd.DataFrame(
        [
            _impression("good"),
            _impression("zero-propensity", propensity=0.0),
            _impression("no-action", depths=json.dumps({"lexical": 0})),
            _impression("wrong-day", timestamp=datetime(2026, 11, 25, 0, 0, 1, tzinfo=UTC)),
            _impression("blank-query", normalised_query=" "),
        ]
    )
    feedback = pd.DataFrame(
        [
            _feedback("good"),
            _feedback("unknown-request"),
            _feedback("good", entity="cpcd:never-shown"),
            _feedback("good", position=0),
            _feedback("zero-propensity"),  # refers to a quarantined impression
            _feedback("good", timestamp=datetime(2026, 11, 23, 23, 0, tzinfo=UTC)),
        ]
    )
    clean_impressions, clean_feedback, report = validate_log_day(tmp_path, DAY, impressions, feedback)
    assert list(clean_impressions["request_id"]) == ["good"]
    assert len(clean_feedback) == 1 and clean_feedback.iloc[0]["entity_id"] == "cpcd:a"
    reasons = report["impressions"]["reasons"]
    assert any("propensity" in r for r in reasons) and any("n_depths" in r for r in reasons)
    assert any("timestamp_in_partition" in r for r in reasons) and any("normalised_query" in r for r in reasons)
    feedback_reasons = " ".join(report["feedback"]["reasons"])
    for rule in ("refers_to_impression", "entity_was_shown", "position", "timestamp_in_partition"):
        assert rule in feedback_reasons
    assert report["impressions"] == {**report["impressions"], "rows": 5, "kept": 1, "quarantined": 4}
    assert report["feedback"]["quarantined"] == 5
    stored = pd.read_parquet(tmp_path / "quarantine" / "feedback" / f"date={DAY}" / "quarantine.parquet")
    assert len(stored) == 5 and stored["quarantine_reason"].str.len().min() > 0


def test_the_nightly_validation_writes_gx_data_docs_and_counts_rows_per_rule(tmp_path):
    impressions = pd.DataFrame([_impression("good"), _impression("zero-propensity", propensity=0.0)])
    feedback = pd.DataFrame([_feedback("good"), _feedback("unknown-request")])
    docs = tmp_path / "data_docs"
    _, _, report = validate_log_day(tmp_path / "logs", DAY, impressions, feedback, 1.0, docs)
    rules = report["impressions"]["rules"]
    assert sum(1 for n in rules.values() if n == 0) >= 3  # the rules that held are listed with 0
    assert sum(n for rule, n in rules.items() if "propensity" in rule) == 1  # the zero propensity, once
    assert report["feedback"]["rules"]["expect_column_values_to_be_in_set(refers_to_impression)"] == 1
    for kind in ("impressions", "feedback"):  # each validation's own page in the site, linked from the report
        page = Path(urlparse(report[kind]["data_docs"]).path)
        assert page.is_file() and f"validations/{kind}/" in page.as_posix() and page.is_relative_to(docs), page
    site = docs / "gx" / "uncommitted" / "data_docs" / "local_site"
    assert (site / "expectations" / "impressions.html").is_file() and (site / "index.html").is_file()
    # the next day's validation adds its page; the first day's stays
    _, _, later = validate_log_day(tmp_path / "logs", "2026-11-25", impressions, feedback, 1.0, docs)
    assert Path(urlparse(later["impressions"]["data_docs"]).path).is_file()
    assert Path(urlparse(report["impressions"]["data_docs"]).path).is_file()
    # without a site (every other reader of the logs), nothing is written and the report is as before
    _, _, plain = validate_log_day(tmp_path / "logs2", DAY, impressions, feedback)
    assert "rules" not in plain["impressions"] and "data_docs" not in plain["feedback"]
    # the documented run is the one that decides: the same verdict as the plain one, row for row
    for kind in ("impressions", "feedback"):
        assert {k: v for k, v in report[kind].items() if k not in ("rules", "data_docs")} == plain[kind]
    # a project that cannot be written documents nothing and decides the same
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory", encoding="utf-8")
    _, _, undocumented = validate_log_day(tmp_path / "logs3", DAY, impressions, feedback, 1.0, blocked / "docs")
    assert undocumented["impressions"]["data_docs"].startswith("not built")
    assert undocumented["impressions"]["quarantined"] == report["impressions"]["quarantined"] == 1
