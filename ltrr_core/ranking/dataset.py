"""From logs to a ranking training set: one row per shown result, its logged features, its label.

Rows come only from contract-checked log days (``contracts.logs.check_logged_day``); features
are the values the runtime logged (parity with serving by construction); labels come from
feedback only. Impressions logged before the feature spec existed (log schema < 1.2) carry no
feature values and are counted and left out. The set is checked against
``data_contracts/ranker_training.json`` before any model sees it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import Settings
from ..features.ranking import FEATURE_SPEC_VERSION, feature_names
from .labels import (
    PositionBias,
    clicked,
    fit_position_bias,
    fit_position_bias_randomized,
    graded_labels,
    no_position_bias,
)

KEYS = ["request_id", "day", "position", "entity_id", "query"]
DERIVED = ["group_size", "reciprocal_rank_min", "reciprocal_rank_max", "features_all_finite_or_missing"]
CONTRACT = Path(__file__).resolve().parents[2] / "data_contracts" / "ranker_training.json"


@dataclass
class RankingSet:
    frame: pd.DataFrame  # KEYS + grade + clicked + label + feature columns
    features: list[str]
    skipped_impressions: int  # logged without feature values (older schema) or another spec
    bias: PositionBias
    log_contracts: dict[str, Any] = field(default_factory=dict)  # per day: the log contracts' report


def shown_rows(impressions: pd.DataFrame, names: list[str], strategies: list[str]) -> tuple[pd.DataFrame, int]:
    """Explode each impression's logged ranking into rows; (rows, impressions skipped)."""
    records, skipped = [], 0
    for imp in impressions.itertuples(index=False):
        logged = json.loads(imp.shown_features) if isinstance(imp.shown_features, str) else None
        if (
            not isinstance(logged, dict)
            or logged.get("feature_spec") != FEATURE_SPEC_VERSION
            or logged.get("strategies") != strategies
            or len(logged.get("rows", [])) != len(imp.shown_ids)
        ):
            skipped += 1
            continue
        for position, (entity_id, row) in enumerate(zip(imp.shown_ids, logged["rows"]), start=1):
            values = [np.nan if v is None else float(v) for v in row["values"]]
            records.append(
                [
                    imp.request_id,
                    imp.timestamp.strftime("%Y-%m-%d"),
                    position,
                    entity_id,
                    imp.normalised_query,
                    bool(logged.get("randomized", False)),
                    *values,
                ]
            )
    return pd.DataFrame(records, columns=[*KEYS, "randomized", *names]), skipped


def load_ranking_days(settings: Settings, days: list[str]) -> tuple[pd.DataFrame, dict[str, Any], int]:
    """(shown rows with grades and clicks, each day's log-contract report, impressions skipped)."""
    from ..contracts.logs import check_logged_day

    root = settings.data_dir / settings.runtime.log_dir
    strategies: list[str] = sorted(settings.retrieval.strategies)
    names = feature_names(strategies)
    frames, reports, skipped = [], {}, 0
    for day in days:
        impressions, feedback, reports[day] = check_logged_day(root, day)
        rows, n_skipped = shown_rows(impressions, names, strategies)
        skipped += n_skipped
        rows["grade"] = graded_labels(rows, feedback, settings.ranker).to_numpy()
        rows["clicked"] = clicked(rows, feedback)
        frames.append(rows)
    frame = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=[*KEYS, "randomized", *names, "grade", "clicked"])
    )
    return frame, reports, skipped


def build_ranking_set(settings: Settings, days: list[str], correct_position_bias: bool = True) -> RankingSet:
    """Rows of ``days`` with labels: the grade, divided by the examination of its position when
    the position-bias correction is on (``ranker.position_bias``; estimated on these days)."""
    config = settings.ranker.position_bias
    frame, log_contracts, skipped = load_ranking_days(settings, days)
    names = feature_names(sorted(settings.retrieval.strategies))
    if not correct_position_bias or config.method == "none" or not len(frame):
        bias = no_position_bias(config.positions)
    elif config.method == "randomized":
        shuffled = frame[frame["randomized"]]
        bias = fit_position_bias_randomized(
            shuffled["request_id"].to_numpy(), shuffled["position"].to_numpy(), shuffled["clicked"].to_numpy(), config
        )
    else:
        bias = fit_position_bias(
            frame["query"].to_numpy(),
            frame["entity_id"].to_numpy(),
            frame["position"].to_numpy(),
            frame["clicked"].to_numpy(),
            config,
        )
    frame["label"] = frame["grade"] * bias.weights(frame["position"].to_numpy(), config.floor)
    return RankingSet(frame, names, skipped, bias, log_contracts)


def contract_view(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The columns the training-set contract checks, derived from the set."""
    view = frame.copy()
    view["group_size"] = view.groupby("request_id")["position"].transform("size")
    reciprocal = [f for f in features if f.endswith("_reciprocal_rank")]
    view["reciprocal_rank_min"] = view[reciprocal].min(axis=1)
    view["reciprocal_rank_max"] = view[reciprocal].max(axis=1)
    view["features_all_finite_or_missing"] = ~np.isinf(view[features].to_numpy(float)).any(axis=1)
    return view


def check_ranking_set(settings: Settings, data: RankingSet, max_group: int | None = None) -> dict[str, Any]:
    """Refuse (ContractViolation) a set that breaks ``data_contracts/ranker_training.json``.
    ``max_group``: the most rows per request (default ``runtime.max_results``, what a logged
    impression shows; a real query's candidate pool holds up to ``ranker.rerank_depth``)."""
    from ..contracts.docs import documented, page_of
    from ..contracts.validate import ROW, ContractViolation, load_suite, validate_frame

    floor = settings.ranker.position_bias.floor if settings.ranker.position_bias.method != "none" else 1.0
    expected = [*KEYS, "randomized", *data.features, "grade", "clicked", "label", *DERIVED, ROW]
    suite = load_suite(
        CONTRACT,
        overrides={
            "expect_table_columns_to_match_set:None": {"column_set": expected},
            "expect_column_values_to_be_between:label": {"max_value": max(settings.ranker.labels.values()) / floor},
            "expect_column_values_to_be_between:grade": {"max_value": max(settings.ranker.labels.values())},
            "expect_column_values_to_be_between:group_size": {"max_value": max_group or settings.runtime.max_results},
            "expect_column_values_to_be_between:position": {"max_value": max_group or settings.runtime.max_results},
        },
    )
    view = contract_view(data.frame, data.features)
    run, page = documented(settings, "ranking set")
    report = validate_frame(
        view, suite, max_quarantine_fraction=0.0, example_columns=("request_id", "position"), run=run
    )
    if not report.passed:
        raise ContractViolation(report)
    return {**report.summary(), **page_of(page)}
