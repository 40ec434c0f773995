"""Contracts on a day of interaction logs: GX suites over views with the cross-record checks
(feedback -> logged impression -> shown entity, timestamps inside the day partition) computed
as columns. Bad rows are quarantined with the expectation they broke, written beside the logs,
and counted; nothing is silently dropped or silently used."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..durable import write_parquet
from .docs import DataDocsRun
from .validate import ContractViolation, load_suite, run_ephemeral, split_quarantine, validate_frame

SUITES = Path(__file__).resolve().parents[2] / "data_contracts"


def _in_day(timestamps: pd.Series, day: str) -> np.ndarray:
    return (pd.to_datetime(timestamps, utc=True).dt.strftime("%Y-%m-%d") == day).to_numpy()


def impressions_view(impressions: pd.DataFrame, day: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "request_id": impressions["request_id"],
            "plan": impressions["plan"],
            "propensity": impressions["propensity"].astype(float),
            "n_shown": impressions["shown_ids"].map(len),
            "n_depths": impressions["depths"].map(lambda d: sum(1 for v in json.loads(d or "{}").values() if v > 0)),
            "timestamp_in_partition": _in_day(impressions["timestamp"], day),
            "normalised_query": impressions["normalised_query"],
            "bundle_id": impressions["bundle_id"],
        }
    )


def feedback_view(feedback: pd.DataFrame, impressions: pd.DataFrame) -> pd.DataFrame:
    shown = dict(zip(impressions["request_id"], impressions["shown_ids"].map(set)))
    return pd.DataFrame(
        {
            "request_id": feedback["request_id"],
            "entity_id": feedback["entity_id"],
            "event": feedback["event"],
            "position": feedback["position"].astype("Int64"),
            "refers_to_impression": feedback["request_id"].isin(shown).to_numpy(),
            "entity_was_shown": [e in shown.get(r, ()) for r, e in zip(feedback["request_id"], feedback["entity_id"])],
        }
    )


def _check(
    kind: str,
    frame: pd.DataFrame,
    view: pd.DataFrame,
    log_root: Path,
    day: str,
    max_quarantine_fraction: float,
    data_docs: Path | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    suite = load_suite(SUITES / f"{kind}.json")
    documented = DataDocsRun(f"{kind} {day}", data_docs) if data_docs else None
    result = validate_frame(
        view, suite, max_quarantine_fraction, example_columns=("request_id",), run=documented or run_ephemeral
    )
    if result.critical:
        raise ContractViolation(result)
    good, bad = split_quarantine(frame.reset_index(drop=True), result)
    if len(bad):
        write_parquet(
            pa.Table.from_pandas(bad, preserve_index=False),
            Path(log_root) / "quarantine" / kind / f"date={day}" / "quarantine.parquet",
        )
    reasons = bad["quarantine_reason"].value_counts().to_dict() if len(bad) else {}
    report: dict[str, Any] = {"rows": len(frame), "kept": len(good), "quarantined": len(bad), "reasons": reasons}
    if data_docs:
        # every rule with the rows it failed (0 for the ones that held), and the site that shows them
        failed = {
            f"{f.expectation}({f.column})" if f.column else f.expectation: f.unexpected_count for f in result.failures
        }
        rules = {_rule(e): failed.get(_rule(e), 0) for e in suite.expectations}
        report.update(rules=rules, data_docs=(documented and documented.url) or "not built (see the log)")
    return good, report


def _rule(expectation) -> str:
    column = getattr(expectation, "column", None)
    return f"{expectation.expectation_type}({column})" if column else expectation.expectation_type


def validate_log_day(
    log_root: Path,
    day: str,
    impressions: pd.DataFrame,
    feedback: pd.DataFrame,
    max_quarantine_fraction: float = 1.0,
    data_docs: Path | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """(clean impressions, clean feedback, report); quarantined rows are written under
    ``<log_root>/quarantine/<kind>/date=<day>/``. Feedback is checked against the *clean*
    impressions, so feedback on a quarantined impression is quarantined too."""
    clean_impressions, impressions_report = _check(
        "impressions",
        impressions,
        impressions_view(impressions, day),
        log_root,
        day,
        max_quarantine_fraction,
        data_docs,
    )
    view = feedback_view(feedback, clean_impressions).assign(timestamp_in_partition=_in_day(feedback["timestamp"], day))
    clean_feedback, feedback_report = _check(
        "feedback", feedback, view, log_root, day, max_quarantine_fraction, data_docs
    )
    return (
        clean_impressions,
        clean_feedback,
        {"day": day, "impressions": impressions_report, "feedback": feedback_report},
    )


def check_logged_day(
    log_root: Path, day: str, data_docs: Path | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Read one logged day (impressions and feedback) and run its contracts: what every consumer
    of the logs (memory engagement, bandit training, the CLI) uses, so none reads unchecked rows.
    With ``data_docs`` (the nightly), each validation is also written to that GX Data Docs site
    and the report counts the rows each rule failed."""
    from ..logs import read_logs

    return validate_log_day(
        log_root, day, read_logs(log_root, "impressions", day), read_logs(log_root, "feedback", day), 1.0, data_docs
    )
