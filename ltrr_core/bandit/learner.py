"""The nightly off-policy learner of the retrieval policy.

Model: one CatBoost classifier of P(hit | request features, plan depths), trained on the
replay-expanded engaged requests (``training``): every plan of the library is a labelled row
for every engaged request, so learning is full-information on that subset and generalises
across plans through the per-strategy depth columns -- a new strategy is a new column, not
new code. The policy serves argmax_plan P(hit) - cost_penalty * candidates / budget -
latency_penalty * expected ms / latency_reference_ms (per strategy and depth, fitted on the
window's logged stage timings: ``latency``) with epsilon-greedy exploration (exact
propensities, floor epsilon / n_plans).

Chosen over Vowpal Wabbit ``cb_explore_adf``: VW learns from the one logged action's reward,
while replay gives every plan's label for engaged requests; a classifier on those labels uses
all of it, and CatBoost's native ``.cbm`` loads in the runtime with no training stack.

The fitting itself is ``estimator.PolicyEstimator`` (``fit(rows) -> FittedPolicy``); this module
reads the window, replays it into rows (``plan_rows``), and publishes what the estimator returns
in the policy store with its off-policy report (``train_night``).

Protocol: the window's last day is held out -- early stopping and the off-policy estimate are
computed on it -- and the model is trained on the days before it. With a one-day window a
stable share of that day's requests is held out instead (``single_day_holdout``): an estimate
scored on the rows the model was fitted on is optimistic.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import Settings
from ..durable import write_json_atomic
from ..learning_data import NoReferenceBundle, cache_dir, reference_bundle
from ..models.policy import LearnedPolicy, policy_store
from . import training
from .estimator import PlanRows, PolicyEstimator
from .latency import StrategyLatency, fit_latency
from .ope import LoggedFeedback, make_estimators
from .real import RealPlanRows, cached_real_plan_rows

_log = logging.getLogger("ltrr.bandit")


class NotEnoughData(ValueError):
    """Too few engaged requests in the window to learn a policy from."""


def policies_root(settings: Settings) -> Path:
    return policy_store(settings).root


def latest_policy(settings: Settings) -> Path | None:
    return policy_store(settings).pointed()


@dataclass
class WindowData:
    days: list[str]
    outcomes: pd.DataFrame  # one row per clean impression of the window
    validation: dict[str, Any]  # per day: the contracts' report


def window_days(log_root: Path, end: date, window: int) -> list[str]:
    from ..logs import logged_days

    first = end - timedelta(days=window - 1)
    return [d for d in logged_days(log_root) if first.isoformat() <= d <= end.isoformat()]


def load_window(settings: Settings, end: date, window: int) -> WindowData:
    """Every logged day of the window, checked by the log contracts (bad rows quarantined, not used)."""
    from ..contracts.logs import check_logged_day

    root = settings.data_dir / settings.runtime.log_dir
    days = window_days(root, end, window)
    frames, reports = [], {}
    for day in days:
        impressions, feedback, report = check_logged_day(root, day)
        reports[day] = report
        frames.append(training.request_outcomes(impressions, feedback, settings.bandit.learner).assign(day=day))
    outcomes = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return WindowData(days, outcomes, reports)


def replay_window(
    settings: Settings, outcomes: pd.DataFrame, strategies: list[str], load_bundle: Callable[[str], Any]
) -> np.ndarray:
    """Ranks of each engaged request's entity per strategy, replayed on the bundle that served it.

    Replays are cached per day beside the logs they come from (``<log_dir>/replay/``: a logged
    request, its bundle and its engaged entity never change), so a window replays only new days.
    ``load_bundle`` (bundle id -> the loaded service, e.g. ``ltrr_core.runtime.bundle_loader``)
    is handed in: the learner does not import the runtime."""
    import pyarrow as pa

    from ..artifacts import BundleError
    from ..durable import write_parquet

    depth = settings.bandit.learner.replay_depth
    cache = settings.data_dir / settings.runtime.log_dir / "replay" / f"depth={depth}"
    ranks = np.full((len(outcomes), len(strategies)), training.MISSED)
    engaged = outcomes["engaged_entity"].notna().to_numpy()
    done = np.zeros(len(outcomes), bool)
    for day in outcomes["day"].unique():
        path = cache / f"date={day}.parquet"
        if path.is_file():
            cached = pd.read_parquet(path).set_index("request_id")
            if set(strategies) <= set(cached.columns):
                hit = outcomes["request_id"].isin(cached.index).to_numpy() & (outcomes["day"] == day).to_numpy()
                ranks[hit] = cached.loc[outcomes.loc[hit, "request_id"], strategies].to_numpy(float)
                done |= hit
    todo = outcomes[engaged & ~done]
    for bundle_id, rows in todo.groupby("bundle_id"):
        try:
            service = load_bundle(str(bundle_id))
        except (BundleError, FileNotFoundError) as error:
            _log.warning("bundle %s cannot be replayed (%s); its %d requests are left out", bundle_id, error, len(rows))
            continue
        ranks[rows.index] = training.replay_ranks(
            service, rows["raw_query"].tolist(), [{e} for e in rows["engaged_entity"]], strategies, depth
        )
        done[rows.index] = True
    for day in todo["day"].unique():
        keep = done & engaged & (outcomes["day"] == day).to_numpy()
        frame = pd.DataFrame(ranks[keep], columns=strategies).assign(
            request_id=outcomes.loc[keep, "request_id"].to_numpy()
        )
        write_parquet(pa.Table.from_pandas(frame, preserve_index=False), cache / f"date={day}.parquet")
    return ranks


def real_rows(settings: Settings, load_bundle: Callable[[str], Any]) -> RealPlanRows | None:
    """The real train queries' replay (``bandit.real``) over the reference bundle when ``real`` is
    one of ``bandit.learner.sources``, else None (also when no bundle exists yet)."""
    if "real" not in settings.bandit.learner.sources:
        return None
    try:
        bundle = reference_bundle(settings)
    except NoReferenceBundle as error:
        _log.warning("policy: no real rows (%s)", error)
        return None
    return cached_real_plan_rows(
        settings, bundle, load_bundle, training.action_strategies(settings), cache_dir(settings, "real-replay")
    )


@dataclass(frozen=True)
class NightRows:
    """A window's rows for the policy: what the estimator fits on (``rows``) and what the night's
    report and off-policy estimate read (the window's outcomes, features, replayed plan hits)."""

    rows: PlanRows
    outcomes: pd.DataFrame
    features: pd.DataFrame
    hits: np.ndarray
    is_held: np.ndarray  # the held-out requests (last day, or a stable share of a one-day window)
    replayable: np.ndarray  # engaged requests whose engaged entity some strategy ranks
    held_out_day: str | None
    held_out: str  # described, for the report


def plan_rows(settings: Settings, data: WindowData, ranks: np.ndarray, real: RealPlanRows | None = None) -> NightRows:
    """The window's engaged, replayable requests expanded to one row per plan (last day held
    out), plus the ``real`` rows when given (``real_rows``); NotEnoughData below
    ``bandit.learner.min_engaged_requests``."""
    config = settings.bandit.learner
    budget = training.candidate_budget(settings)
    # The learned policy chooses within the candidate budget; wider named plans (the apprentice's
    # default) stay in the logs and are evaluated as actions it never takes.
    plans = {n: d for n, d in settings.runtime.policy.library().items() if sum(d.values()) <= budget}
    strategies = training.action_strategies(settings)
    outcomes = data.outcomes
    replayable = outcomes["engaged_entity"].notna().to_numpy() & np.isfinite(ranks).any(axis=1)
    if replayable.sum() < config.min_engaged_requests:
        raise NotEnoughData(
            f"{int(replayable.sum())} engaged, replayable requests in {data.days}; "
            f"bandit.learner.min_engaged_requests is {config.min_engaged_requests}"
        )
    held_out_day = data.days[-1] if len(data.days) > 1 else None
    is_held = held_out_rows(outcomes, held_out_day, config.single_day_holdout)
    is_train = ~is_held
    features = training.features_frame(outcomes)
    hits = training.plan_hits(ranks, plans, strategies)
    x_train, y_train = training.expand(features[is_train & replayable], hits[is_train & replayable], plans, strategies)
    x_held, y_held = training.expand(features[is_held & replayable], hits[is_held & replayable], plans, strategies)
    if "logs" not in config.sources:
        x_train, y_train = x_train[:0], y_train[:0]
    if real is not None:
        real_features = real.features.reindex(columns=features.columns, fill_value=0.0)
        x_real, y_real = training.expand(
            real_features, training.plan_hits(real.ranks, plans, strategies), plans, strategies
        )
        x_train, y_train = np.vstack([x_train, x_real]), np.concatenate([y_train, y_real])
    rows = PlanRows(
        list(features.columns),
        strategies,
        plans,
        budget,
        fit_latency(outcomes[is_train], strategies),
        x_train,
        y_train,
        x_held,
        y_held,
    )
    held_out = held_out_day or f"{config.single_day_holdout:.0%} of {data.days[0]}'s requests"
    return NightRows(rows, outcomes, features, hits, is_held, replayable, held_out_day, held_out)


def train_night(
    settings: Settings, data: WindowData, ranks: np.ndarray, real: RealPlanRows | None = None
) -> tuple[Path, dict[str, Any]]:
    """The nightly policy: ``plan_rows``, ``PolicyEstimator.fit``, and a new version in the policy
    store with its report (training rows, latency lines, the off-policy estimate on the held-out
    logged requests)."""
    config = settings.bandit.learner
    night = plan_rows(settings, data, ranks, real)
    fitted = PolicyEstimator(config).fit(night.rows)
    store = policy_store(settings)
    version = store.new_version()
    is_held, is_train = night.is_held, ~night.is_held
    with store.publish(version) as staging:
        provenance = {
            "trained_on": [d for d in data.days if d != night.held_out_day],
            "held_out_day": night.held_out_day,
            "held_out": night.held_out,
        }
        policy = fitted.save(staging, version, provenance)
        report = {
            "version": version,
            "window": data.days,
            "held_out_day": night.held_out_day,
            "held_out": night.held_out,
            "contracts": data.validation,
            "training": training.training_report(
                night.outcomes[is_train], night.hits[is_train & night.replayable], night.rows.plans
            ),
            "sources": list(config.sources),
            "real": real.summary() if real is not None else None,
            "latency": night.rows.latency.to_dict(),
            "best_iteration": fitted.best_iteration,
            "ope": off_policy_report(
                settings,
                policy,
                night.outcomes[is_held].reset_index(drop=True),
                night.features[is_held].reset_index(drop=True),
            ),
        }
        write_json_atomic(staging / "report.json", report)
    return store.path(version), report


def held_out_rows(outcomes: pd.DataFrame, held_out_day: str | None, share: float) -> np.ndarray:
    """The window's last day; with a one-day window, a stable ``share`` of its requests (by a
    hash of the request id), so the first night's estimate is not scored on its training rows."""
    if held_out_day:
        return (outcomes["day"] == held_out_day).to_numpy()
    buckets = pd.util.hash_pandas_object(outcomes["request_id"], index=False).to_numpy() % 1000
    return buckets < int(round(share * 1000))


def rewards(
    outcomes: pd.DataFrame, settings: Settings, budget: float, policy: LearnedPolicy | None = None
) -> np.ndarray:
    """Engagement minus the candidate cost; with ``policy``, also minus the latency cost of the
    logged plan's depths, priced by the policy's own fitted lines and weight."""
    reward = (
        outcomes["engagement"].to_numpy(float)
        - settings.bandit.learner.cost_penalty * outcomes["candidates"].to_numpy(float) / budget
    )
    if policy is None:
        return reward
    latency = StrategyLatency.from_dict(policy.latency_lines)
    expected = np.array([latency.predict(json.loads(d)) for d in outcomes["depths"]], dtype=float)
    return reward - policy.latency_penalty * expected / policy.latency_reference_ms


def off_policy_report(
    settings: Settings, policy: LearnedPolicy, outcomes: pd.DataFrame, features: pd.DataFrame
) -> dict[str, Any]:
    """The learned policy's value on logged requests (IPS, SNIPS, DR, switch-DR) beside the
    logging policy's own (on-policy) value, both with bootstrap intervals."""
    ope = settings.bandit.ope
    reward = rewards(outcomes, settings, policy.budget, policy)
    names = policy.plan_names
    index = {n: i for i, n in enumerate(names)}
    # A logged plan outside the learned policy's library (wider than its budget) has target
    # probability 0: such rounds count as misses of the learned policy in IPS, not as errors.
    logged = outcomes["plan"].map(index).fillna(-1).to_numpy(int)
    inside = logged >= 0
    contexts = features.reindex(columns=policy.feature_names, fill_value=0.0).to_numpy(float)
    hit = policy.hit_matrix(contexts)  # (n, plans)
    values = hit - policy.plan_penalties
    best = values.argmax(axis=1)
    n, k = hit.shape
    target = np.full((n, k), policy.epsilon / k)
    target[np.arange(n), best] += 1 - policy.epsilon
    rows = np.arange(n)
    at = np.where(inside, logged, 0)
    hit_logged = np.where(inside, hit[rows, at], 0.0)
    scale = float((outcomes["engagement"].to_numpy() * hit_logged).sum() / max((hit_logged**2).sum(), 1e-9))
    q = scale * hit - policy.plan_penalties  # reward model for DM / DR
    data = LoggedFeedback(
        reward,
        outcomes["propensity"].to_numpy(float),
        np.where(inside, target[rows, at], 0.0),
        np.where(inside, q[rows, at], 0.0),
        (target * q).sum(axis=1),
    )
    estimators = make_estimators([e for e in ope.estimators], ope.n_bootstrap, ope.confidence, ope.seed, ope.max_weight)
    logging_value = make_estimators(["ips"], ope.n_bootstrap, ope.confidence, ope.seed, ope.max_weight)[0].estimate(
        LoggedFeedback(reward, np.ones(n), np.ones(n))
    )
    return {
        "n": n,
        "logged_outside_library": int((~inside).sum()),
        "logging_policy": logging_value.to_dict(),
        "learned_policy": {e.name: e.estimate(data).to_dict() for e in estimators},
        "reward_model_scale": round(scale, 4),
        "learned_greedy_candidates": round(float((policy.plan_costs[best] * policy.budget).mean()), 1),
        "learned_greedy_latency_ms": round(float(policy.plan_latency_ms[best].mean()), 2),
    }


def load_report(policy_dir: Path) -> dict[str, Any]:
    return json.loads((Path(policy_dir) / "report.json").read_text(encoding="utf-8"))
