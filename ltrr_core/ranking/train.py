"""Nightly ranker training, split by time.

For an evaluation day D: the model trains on the logged days before D in the window except the
last, which is the validation day (early stopping, and the choice between the configured
losses); D itself is held out and evaluated (``evaluate.evaluate_logged_day``). Position bias
is estimated on the training days only. Every configured loss is trained (YetiRank, the
default, against QueryRMSE, a pointwise-within-group baseline); the one with the best
validation nDCG@10 is kept. A model without the position-bias correction is trained too, with
the kept loss, so the correction's effect is measured, not assumed.

Requests whose shown results got no positive label carry no ranking signal and are left out
of training and validation (they stay in the evaluation, which uses ground truth).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..artifacts.champion import serving_ranker
from ..config import Settings
from ..durable import write_json_atomic
from ..features.ranking import FEATURE_SPEC_VERSION
from ..learning_data import NoReferenceBundle, cache_dir, reference_bundle
from ..models.ranker import MODEL_FILE, SPEC_FILE, Ranker, ranker_store
from .dataset import RankingSet, build_ranking_set, check_ranking_set
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


def _pool(frame: pd.DataFrame, features: list[str]):
    from catboost import Pool

    return Pool(
        frame[features].to_numpy(float),
        label=frame["label"].to_numpy(float),
        group_id=pd.factorize(frame["request_id"])[0],
    )


def _fit_one(settings: Settings, loss: str, train: pd.DataFrame, validation: pd.DataFrame, features: list[str]):
    from catboost import CatBoostRanker

    config = settings.ranker
    model = CatBoostRanker(
        loss_function=loss,
        eval_metric="NDCG:top=10",
        iterations=config.iterations,
        depth=config.depth,
        learning_rate=config.learning_rate,
        thread_count=config.threads,
        random_seed=config.seed,
        allow_writing_files=False,
        verbose=False,
    )
    valid = _pool(validation, features)
    model.fit(_pool(train, features), eval_set=valid, early_stopping_rounds=50)
    # get_best_score() is empty for YetiRank; the shrunk model's own NDCG on the validation day is not.
    curve = model.eval_metrics(valid, ["NDCG:top=10"])
    return model, float(next(iter(curve.values()))[-1])


def fit_losses(
    settings: Settings, train: pd.DataFrame, valid: pd.DataFrame, features: list[str]
) -> tuple[dict[str, tuple[Any, float]], str]:
    """Every configured loss fitted (early stopping on ``valid``): loss -> (model, validation
    nDCG@10), and the loss with the best validation score. Labelled groups only
    (``labelled_groups``)."""
    losses: dict[str, tuple[Any, float]] = {
        str(loss): _fit_one(settings, loss, train, valid, features) for loss in settings.ranker.losses
    }
    return losses, max(losses, key=lambda name: losses[name][1])


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


def fit(
    settings: Settings, day: date, load_bundle: Callable[[str], Any], window: int | None = None
) -> tuple[Path, dict[str, Any], pd.DataFrame]:
    """Train on ``ranker.sources`` -- real engagement (CPCD train searches over the served bundle's
    retrieval) and/or the logged days before ``day`` (contract-checked) --, evaluate against the
    fusion and the champion, publish a ranker version; returns it with a report (sources, position
    bias, losses compared, training-set contracts, evaluations). The gate's ``evaluation`` is the
    real validation queries' when real engagement is a source, else the logged evaluation day's.
    ``load_bundle`` (bundle id -> loaded service, e.g. ``ltrr_core.runtime.bundle_loader``) serves
    both the real queries' candidates and the replay of the evaluation day's requests."""
    from .evaluate import FUSION, evaluate_logged_day, evaluate_real_validation

    sources = settings.ranker.sources
    split = split_days(settings, day, window) if "logs" in sources else None
    parts = []
    if split is not None:
        parts.append(_logged_data(settings, split))
    if "real" in sources:
        parts.append(_real_data(settings, load_bundle))
    data = _joined(parts)
    features = data.features
    losses, chosen = fit_losses(settings, data.train, data.valid, features)
    model = losses[chosen][0]
    uncorrected = _uncorrected(settings, data.logged, data.valid, features, chosen) if data.logged is not None else None
    store = ranker_store(settings)
    version = store.new_version()
    evaluation_day = day.isoformat()
    report = {
        "version": version,
        "sources": list(sources),
        "train_days": [],
        "validation_day": None,
        "evaluation_day": evaluation_day,
        **data.report,
        "loss": chosen,
        "losses": {
            name: {"validation_ndcg@10": round(score, 4), "best_iteration": int(m.get_best_iteration())}
            for name, (m, score) in losses.items()
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
        "feature_importance": dict(
            zip(features, np.round(model.get_feature_importance(type="PredictionValuesChange"), 4).tolist())
        ),
    }
    with store.publish(version) as staging:
        model.save_model(str(staging / MODEL_FILE))
        if uncorrected is not None:
            uncorrected.save_model(str(staging / "uncorrected.cbm"))
        write_json_atomic(
            staging / SPEC_FILE,
            {
                "version": version,
                "feature_spec_version": FEATURE_SPEC_VERSION,
                "feature_names": features,
                "loss": chosen,
                "sources": list(sources),
                "position_bias": settings.ranker.position_bias.method if uncorrected else "none",
                "trained_on": report["train_days"] or [DAY],
                "validation_day": report["validation_day"],
                "created_at": datetime.now(UTC).isoformat(),
            },
        )
        contenders: dict[str, Ranker | None] = {FUSION: None, "ranker": Ranker(staging)}
        if uncorrected is not None:
            contenders["ranker_without_position_bias"] = Ranker(staging, "uncorrected.cbm")
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


def _uncorrected(settings: Settings, training: RankingSet, valid: pd.DataFrame, features: list[str], loss: str):
    """The kept loss trained on raw grades of the logged days: what the position-bias correction is
    measured against."""
    raw = training.frame.assign(label=training.frame["grade"])
    return _fit_one(settings, loss, labelled_groups(raw), valid, features)[0]


def train_nights(
    settings: Settings,
    days: list[date],
    load_bundle: Callable[[str], Any],
    on_night: Callable[[Path, dict[str, Any], pd.DataFrame], Any] | None = None,
) -> list[dict[str, Any]]:
    """For each evaluation day in order: ``fit`` (evaluated against the fusion and the serving
    champion), then bundle the new ranker so that it is the next night's champion -- the
    nightly protocol, replayed over logged days. ``on_night`` (e.g. MLflow tracking) sees each."""
    from ..artifacts import build_bundle

    nights = []
    for day in days:
        ranker_dir, report, rows = fit(settings, day, load_bundle)
        if on_night is not None:
            on_night(ranker_dir, report, rows)
        build_bundle(settings, None, ranker_dir)
        nights.append(report)
    return nights
