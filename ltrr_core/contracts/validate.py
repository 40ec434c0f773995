"""Validate a DataFrame against a Great Expectations 1.x suite, quarantining row-level failures.

The suite is a JSON file in ``data_contracts/``. Each expectation's GX ``severity`` decides what
a failure means: ``critical`` stops the run; ``warning`` quarantines the failing rows with the
expectation as the reason, as long as no more than ``max_quarantine_fraction`` of the rows
fail (beyond that the feed itself is broken and the run stops too). GX is used rather than
hand-written checks because the suite then is a reviewable artifact with a standard format
that data owners already know, and the same suites serve logs and training sets later.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import schema as S

ROW = "_row"
REASON = "quarantine_reason"

logging.getLogger("great_expectations").setLevel(logging.ERROR)


@dataclass
class FailedExpectation:
    expectation: str
    column: str | None
    severity: str
    unexpected_count: int
    why: str
    examples: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> str:
        where = f" on column '{self.column}'" if self.column else ""
        rows = "; ".join(json.dumps(e, default=str, ensure_ascii=False) for e in self.examples)
        return f"[{self.severity}] {self.expectation}{where}: {self.unexpected_count} row(s) fail ({self.why})" + (
            f"; e.g. {rows}" if rows else ""
        )


@dataclass
class ContractReport:
    """What a validation found: failures, and which rows go to quarantine and why."""

    suite: str
    n_rows: int
    failures: list[FailedExpectation]
    quarantine_reasons: dict[int, list[str]]  # row position -> expectations it failed
    max_quarantine_fraction: float

    @property
    def critical(self) -> list[FailedExpectation]:
        return [f for f in self.failures if f.severity == "critical"]

    @property
    def n_quarantined(self) -> int:
        return len(self.quarantine_reasons)

    @property
    def quarantine_fraction(self) -> float:
        return self.n_quarantined / self.n_rows if self.n_rows else 0.0

    @property
    def passed(self) -> bool:
        return not self.critical and self.quarantine_fraction <= self.max_quarantine_fraction

    def summary(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "passed": self.passed,
            "n_rows": self.n_rows,
            "n_quarantined": self.n_quarantined,
            "quarantine_fraction": round(self.quarantine_fraction, 6),
            "failed_expectations": [f.__dict__ for f in self.failures],
        }

    def message(self) -> str:
        lines = [f"data contract '{self.suite}' failed on {self.n_rows} rows:"]
        lines += ["  " + f.describe() for f in self.critical]
        if self.quarantine_fraction > self.max_quarantine_fraction:
            lines.append(
                f"  {self.n_quarantined} rows ({self.quarantine_fraction:.2%}) break row-level rules, "
                f"more than the allowed {self.max_quarantine_fraction:.2%}:"
            )
            lines += ["    " + f.describe() for f in self.failures if f.severity != "critical"]
        return "\n".join(lines)


class ContractViolation(RuntimeError):
    """A dataset broke its contract; nothing downstream may run on it."""

    def __init__(self, report: ContractReport):
        super().__init__(report.message())
        self.report = report


def load_suite(path: Path, overrides: dict[str, dict[str, Any]] | None = None):
    """Read a suite JSON; ``overrides`` replace kwargs by (expectation type + column) key."""
    import great_expectations as gx

    data = json.loads(Path(path).read_text(encoding="utf-8"))
    for expectation in data["expectations"]:
        key = f"{expectation['type']}:{expectation['kwargs'].get('column')}"
        if overrides and key in overrides:
            expectation["kwargs"].update(overrides[key])
    return gx.ExpectationSuite(**data)


def quiet_gx() -> None:
    """GX sets one module's logger to INFO when it is imported, which logged "Created temporary
    directory ... for ephemeral docs site" on every validation of every nightly: quiet it like
    the rest of GX (call after importing GX, before creating a context)."""
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.ERROR)


def _context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    quiet_gx()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


# How a suite is run on a frame: (frame, suite, result format) -> GX's suite validation result.
SuiteRunner = Callable[[pd.DataFrame, Any, dict[str, Any]], Any]


def run_ephemeral(frame: pd.DataFrame, suite, result_format: dict[str, Any]):
    """The suite on the frame in a throw-away GX context (nothing written)."""
    batch = (
        _context()
        .data_sources.add_pandas("frames")
        .add_dataframe_asset(suite.name)
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    return batch.validate(suite, result_format=result_format)


def validate_frame(
    frame: pd.DataFrame,
    suite,
    max_quarantine_fraction: float,
    n_examples: int = 5,
    example_columns: tuple[str, ...] = (S.ID,),
    run: SuiteRunner = run_ephemeral,
) -> ContractReport:
    """Run the suite once (``run``: in a throw-away context, or ``contracts.docs.DataDocsRun``,
    which also writes the validation's Data Docs page); collect failures with example rows and the
    rows to quarantine."""
    frame = frame.reset_index(drop=True)
    frame = frame.assign(**{ROW: np.arange(len(frame))})
    result = run(frame, suite, {"result_format": "COMPLETE", "unexpected_index_column_names": [ROW]})
    failures: list[FailedExpectation] = []
    reasons: dict[int, list[str]] = {}
    for outcome in result.results:
        if outcome.success:
            continue
        config = outcome.expectation_config
        column = config.kwargs.get("column")
        severity = getattr(config.severity, "value", str(config.severity)).lower()
        rows = [int(item[ROW]) for item in (outcome.result.get("unexpected_index_list") or [])]
        label = f"{config.type}({column})" if column else config.type
        examples = []
        for row in rows[:n_examples]:
            example = {c: frame.at[row, c] for c in example_columns if c in frame.columns}
            if column and column not in example:
                example[column] = frame.at[row, column]
            examples.append({"row": row, **example})
        error = (outcome.exception_info or {}).get("exception_message")
        failures.append(
            FailedExpectation(
                expectation=config.type,
                column=column,
                severity="critical" if severity == "critical" or error else severity,
                unexpected_count=int(outcome.result.get("unexpected_count") or len(rows) or 0),
                why=(config.meta or {}).get("why", "") + (f" [error: {error}]" if error else ""),
                examples=examples,
            )
        )
        if severity != "critical" and not error:
            for row in rows:
                reasons.setdefault(row, []).append(label)
    return ContractReport(suite.name, len(frame), failures, reasons, max_quarantine_fraction)


def split_quarantine(frame: pd.DataFrame, report: ContractReport) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept rows, quarantined rows with a ``quarantine_reason`` column)."""
    frame = frame.reset_index(drop=True)
    bad = sorted(report.quarantine_reasons)
    quarantined = frame.iloc[bad].copy()
    quarantined[REASON] = ["; ".join(report.quarantine_reasons[row]) for row in bad]
    kept = frame.drop(index=bad).reset_index(drop=True)
    return kept, quarantined


def _joined(values: Any) -> str:
    return " | ".join(str(v) for v in (values if values is not None else []))


def catalog_view(entities: pd.DataFrame) -> pd.DataFrame:
    """The catalog as the contract sees it: lists flattened, derived checks as columns."""

    def weights_valid(tags: Any, weights: Any) -> bool:
        tags = list(tags if tags is not None else [])
        weights = list(weights if weights is not None else [])
        return len(tags) == len(weights) and all(0.0 <= float(w) <= 1.0 for w in weights)

    return pd.DataFrame(
        {
            S.ID: entities[S.ID],
            S.TYPE: entities[S.TYPE],
            S.TITLE: entities[S.TITLE],
            "artists_text": entities[S.ARTISTS].map(_joined),
            "n_artists": entities[S.ARTISTS].map(lambda a: 0 if a is None else len(a)),
            S.ALBUM: entities[S.ALBUM],
            S.DESCRIPTION: entities[S.DESCRIPTION],
            "tags_text": entities[S.TAGS].map(_joined),
            "tag_weights_valid": [weights_valid(t, w) for t, w in zip(entities[S.TAGS], entities[S.TAG_WEIGHTS])],
            S.POPULARITY: entities[S.POPULARITY],
            S.SOURCE: entities[S.SOURCE],
            S.CONTENT_HASH: entities[S.CONTENT_HASH],
        }
    )
