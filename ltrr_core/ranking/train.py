"""Nightly ranker training, split by time.

For an evaluation day D: the model trains on the logged days before D in the window except the
last, which is the validation day (early stopping, and the choice between the configured
losses); D itself is held out and evaluated (``evaluate.evaluate_logged_day``). Position bias
is estimated on the training days only. The fitting itself (losses compared, the kept one, the
model without the position-bias correction) is ``estimator.RankerEstimator``; this module
gathers its data, evaluates what it returns and publishes it in the ranker store.

Requests whose shown results got no positive label carry no ranking signal and are left out
of training and validation (they stay in the evaluation, which uses ground truth).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from ..artifacts.champion import serving_ranker
from ..config import Settings
from ..durable import write_json_atomic
from ..learning_data import NoReferenceBundle, cache_dir, reference_bundle
from ..models.ranker import Ranker, ranker_store
from .dataset import RankingSet, build_ranking_set, check_ranking_set
from .estimator import UNCORRECTED_FILE, RankerEstimator
from .labels import no_position_bias
from .real import DAY, RealEngagementSet, cached_real_engagement_set


class NotEnoughRankingData(ValueError):
    """Too few logged days or labelled requests to train and validate a ranker."""


def rankers_root(settings: Settings) -> Path:
    return ranker_store(settings).root


def latest_ranker(settings: Settings) -> Path | None:
    return ranker_store(settings).pointed()


@dataclass
class Split:
    train_days: list[str]
    validation_day: str
    evaluation_day: str


def split_days(settings: Settings, day: date, window: int | None = None) -> Split:
    from ..logs import logged_days

    window = window or settings.ranker.window_days
    logged = logged_days(settings.data_dir / settings.runtime.log_dir)
    before = [d for d in logged if (day - timedelta(days=window)).isoformat() <= d < day.isoformat()]
    if day.isoformat() not in logged:
        raise NotEnoughRankingData(f"evaluation day {day} has no logs")
    if len(before) < 2:
        raise NotEnoughRankingData(
            f"{len(before)} logged day(s) in the {window} days before {day}: "
            "need at least one training day and one validation day"
        )
    return Split(before[:-1], before[-1], day.isoformat())


def labelled_groups(frame: pd.DataFrame) -> pd.DataFrame:
    """The groups with a positive label, in order: those that carry ranking signal."""
    positive = frame.groupby("request_id")["label"].transform("max") > 0
    return frame[positive].sort_values(["request_id", "position"]).reset_index(drop=True)


@dataclass
class TrainingData:
    """What one night's ranker fits on, whatever its sources (``ranker.sources``)."""

    train: pd.DataFrame  # labelled groups only
    valid: pd.DataFrame
    features: list[str]
    report: dict[str, Any]
    contract: dict[str, Any]
    log_contracts: dict[str, Any]
    logged: RankingSet | None = None  # the logged days' set (its position bias), when logs are a source
    real: RealEngagementSet | None = None


def _logged_data(settings: Settings, split: Split) -> TrainingData:
    training = build_ranking_set(settings, split.train_days)
    validation = build_ranking_set(settings, [split.validation_day], correct_position_bias=False)
    # Validation labels use the training days' examination estimate: one correction, fitted once.
    floor = settings.ranker.position_bias.floor
    validation.frame["label"] = validation.frame["grade"] * training.bias.weights(
        validation.frame["position"].to_numpy(), floor
    )
    contract = {
        "training": check_ranking_set(settings, training),
        "validation": check_ranking_set(settings, validation),
    }
    train, valid = labelled_groups(training.frame), labelled_groups(validation.frame)
    if train["request_id"].nunique() < settings.ranker.min_requests or valid.empty:
        raise NotEnoughRankingData(
            f"{train['request_id'].nunique()} labelled requests on {split.train_days} "
            f"(ranker.min_requests is {settings.ranker.min_requests}), "
            f"{valid['request_id'].nunique()} on the validation day {split.validation_day}"
        )
    report = {
        "train_days": split.train_days,
        "validation_day": split.validation_day,
        "position_bias": training.bias.to_dict(),
        "training_set": {
            "rows": len(training.frame),
            "requests": int(training.frame["request_id"].nunique()),
            "labelled_requests": int(train["request_id"].nunique()),
            "skipped_impressions": training.skipped_impressions,
        },
    }
    return TrainingData(
        train,
        valid,
        training.features,
        report,
        contract,
        {**training.log_contracts, **validation.log_contracts},
        logged=training,
    )


def _real_data(settings: Settings, load_bundle: Callable[[str], Any]) -> TrainingData:
    try:
        bundle = reference_bundle(settings)
    except NoReferenceBundle as error:
        raise NotEnoughRankingData(str(error)) from error
    real = cached_real_engagement_set(settings, bundle, load_bundle, cache_dir(settings, "real-pools"))
    n_queries = real.fit["request_id"].nunique()
    if n_queries < settings.ranker.real.min_queries or real.validation.empty:
        raise NotEnoughRankingData(
            f"{n_queries} real train queries with a like to fit (ranker.real.min_queries is "
            f"{settings.ranker.real.min_queries}), {real.validation['request_id'].nunique()} to validate"
        )
    max_group = settings.ranker.rerank_depth
    contract = {
        "real_training": check_ranking_set(
            settings, RankingSet(real.fit, real.features, 0, no_position_bias(1)), max_group
        ),
        "real_validation": check_ranking_set(
            settings, RankingSet(real.validation, real.features, 0, no_position_bias(1)), max_group
        ),
    }
    return TrainingData(
        labelled_groups(real.fit),
        labelled_groups(real.validation),
        real.features,
        {"real": real.summary()},
        contract,
        {},
        real=real,
    )


def _joined(parts: list[TrainingData]) -> TrainingData:
    if len(parts) == 1:
        return parts[0]
    logged = next((p.logged for p in parts if p.logged is not None), None)
    real = next((p.real for p in parts if p.real is not None), None)
    return TrainingData(
        pd.concat([p.train for p in parts], ignore_index=True),
        pd.concat([p.valid for p in parts], ignore_index=True),
        parts[0].features,
        {k: v for p in parts for k, v in p.report.items()},
        {k: v for p in parts for k, v in p.contract.items()},
        {k: v for p in parts for k, v in p.log_contracts.items()},
        logged,
        real,
    )


def training_data(
    settings: Settings, day: date, load_bundle: Callable[[str], Any], window: int | None = None
) -> TrainingData:
    """What the night of ``day`` fits on, from ``ranker.sources``: real engagement (CPCD train
    searches over the served bundle's retrieval) and/or the logged days before ``day``
    (contract-checked)."""
    sources = settings.ranker.sources
    parts = []
    if "logs" in sources:
        parts.append(_logged_data(settings, split_days(settings, day, window)))
    if "real" in sources:
        parts.append(_real_data(settings, load_bundle))
    return _joined(parts)


def train_night(
    settings: Settings, day: date, load_bundle: Callable[[str], Any], window: int | None = None
) -> tuple[Path, dict[str, Any], pd.DataFrame]:
    """The nightly ranker: ``training_data``, ``RankerEstimator.fit``, an evaluation against the
    fusion and the champion, and a new version in the ranker store; returns its directory, the
    report (sources, position bias, losses compared, training-set contracts, evaluations) and the
    training rows. The gate's ``evaluation`` is the real validation queries' when real engagement
    is a source, else the logged evaluation day's. ``load_bundle`` (bundle id -> loaded service,
    e.g. ``ltrr_core.runtime.bundle_loader``) serves both the real queries' candidates and the
    replay of the evaluation day's requests."""
    from .evaluate import FUSION, evaluate_logged_day, evaluate_real_validation

    data = training_data(settings, day, load_bundle, window)
    raw = labelled_groups(data.logged.frame.assign(label=data.logged.frame["grade"])) if data.logged else None
    fitted = RankerEstimator(settings.ranker).fit(data.train, data.valid, data.features, uncorrected_train=raw)
    store = ranker_store(settings)
    version = store.new_version()
    evaluation_day = day.isoformat()
    report = {
        "version": version,
        "sources": list(settings.ranker.sources),
        "train_days": [],
        "validation_day": None,
        "evaluation_day": evaluation_day,
        **data.report,
        "loss": fitted.loss,
        "losses": {
            name: {"validation_ndcg@10": fit.validation_ndcg, "best_iteration": fit.best_iteration}
            for name, fit in fitted.losses.items()
        },
        "contract": {
            name: {
                "passed": c["passed"],
                "n_rows": c["n_rows"],
                **({"data_docs": c["data_docs"]} if "data_docs" in c else {}),
            }
            for name, c in data.contract.items()
        },
        "contracts": data.log_contracts,
        "feature_importance": fitted.feature_importance(),
    }
    with store.publish(version) as staging:
        provenance = {
            "sources": list(settings.ranker.sources),
            "position_bias": settings.ranker.position_bias.method if fitted.uncorrected is not None else "none",
            "trained_on": report["train_days"] or [DAY],
            "validation_day": report["validation_day"],
        }
        contenders: dict[str, Ranker | None] = {FUSION: None, "ranker": fitted.save(staging, version, provenance)}
        if fitted.uncorrected is not None:
            contenders["ranker_without_position_bias"] = Ranker(staging, UNCORRECTED_FILE)
        champion = serving_ranker(settings)
        if champion is not None:
            contenders["champion"] = champion
        report["champion"] = champion.version if champion else None
        if data.real is not None:
            report["evaluation"] = evaluate_real_validation(settings, data.real, contenders)
            report["evaluated_on"] = f"{report['evaluation']['n_requests']} real validation queries (CPCD train part)"
        if _has_logs(settings, evaluation_day):
            simulated = evaluate_logged_day(settings, evaluation_day, contenders, load_bundle)
            report["evaluation" if data.real is None else "evaluation_logged_day"] = simulated
        if "evaluation" not in report:
            raise NotEnoughRankingData(
                f"nothing to evaluate the ranker on: no real validation queries and no logs on {day}"
            )
        report.setdefault("evaluated_on", f"logged day {evaluation_day}")
        write_json_atomic(staging / "report.json", report)
    return store.path(version), report, data.train


def _has_logs(settings: Settings, day: str) -> bool:
    from ..logs import logged_days

    return day in logged_days(settings.data_dir / settings.runtime.log_dir)


def train_nights(
    settings: Settings,
    days: list[date],
    load_bundle: Callable[[str], Any],
    on_night: Callable[[Path, dict[str, Any], pd.DataFrame], Any] | None = None,
) -> list[dict[str, Any]]:
    """For each evaluation day in order: ``train_night`` (evaluated against the fusion and the serving
    champion), then bundle the new ranker so that it is the next night's champion -- the
    nightly protocol, replayed over logged days. ``on_night`` (e.g. MLflow tracking) sees each."""
    from ..artifacts import build_bundle

    nights = []
    for day in days:
        ranker_dir, report, rows = train_night(settings, day, load_bundle)
        if on_night is not None:
            on_night(ranker_dir, report, rows)
        build_bundle(settings, None, ranker_dir)
        nights.append(report)
    return nights
