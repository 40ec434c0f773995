"""Evaluation that matters: nights of simulate -> measure -> train -> serve the new policy.

Each night: the simulator (GENERATED behaviour on real users and intents) searches the runtime
for a day; that day's requests are replayed against the serving bundle with the simulator's
ground truth (the intended entities) to measure, for every plan of the library, whether its
candidates contain an intended entity. From that one table come:

* ``served``: the plans the runtime actually drew (the learned policy with its exploration);
* ``learned``: the plans the policy exploits for the same requests (its greedy choice from the
  logged features) -- exactly measurable because replay knows every plan's hits;
* each single strategy alone at the grid's largest depth;
* ``best_static``: the library plan with the best hit rate on that same day, in hindsight,
  among plans drawing no more candidates than the served (resp. greedy) plans did on average
  (same budget); ``best_static_mixture``: the best context-free coin flip between two plans
  whose expected cost equals that budget exactly (the grid's depths are coarse);
* ``static_from_previous_day``: the same two baselines chosen on the previous simulated day's
  ground truth (every plan's hits on yesterday's requests, whatever served them), then scored
  on the test day -- the static configuration a team with perfect knowledge of yesterday
  would deploy today. Hindsight selection picks the best of ~13,000 mixtures on the very
  requests it is scored on, so it is optimistic by the winner's curse; both are reported.
  (Choosing from the logs instead would be worse still for the static side: replay labels
  only engaged requests, on which the cheap plans the policy serves look better than they are);
* ``oracle``: per request, whether any plan of the library finds an intended entity (the
  regret reference; its cost is not bounded).

The previous night's off-policy estimate is set against the value measured today, on
policy, from the logs. Then the window is trained and the new policy bundled for tomorrow.
``pooled`` compares the learned nights' requests together (paired by request): one night of
300 requests has a +-2.5 point interval, too wide for the gaps at stake.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..bandit import training
from ..config import Settings
from .stats import paired_bootstrap_ci

_log = logging.getLogger("ltrr.bandit")


@dataclass
class NightsEvaluation:
    nights: list[dict[str, Any]]
    pooled: dict[str, Any]  # learned nights together: learned vs each static baseline
    mlflow_run: str | None = None  # the evaluation's run: per-night metrics, the learning-curve plot


def _against_best_static(
    hits: np.ndarray,
    cost: np.ndarray,
    chosen: np.ndarray,
    names: list[str],
    confidence: float,
    prior_rates: np.ndarray | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The chosen plans' hit rate against the best single plan and the best two-plan mixture among
    plans drawing no more candidates than the chosen ones did on average (same budget), with
    paired intervals: chosen in hindsight on these requests, and -- given ``prior_rates``, each
    plan's hit rate on the previous day -- chosen on that day (``static_from_previous_day``).
    Also returns per request the chosen plans' hits (``chosen``) and each baseline's."""
    chosen_hits = hits[np.arange(len(chosen)), chosen].astype(float)
    budget = float(cost[chosen].mean())
    best, best_hits = _best_static_plan(hits.mean(axis=0), hits, cost, budget)
    mixture, mixture_hits = _best_static_mixture(hits.mean(axis=0), hits, cost, budget, names)
    out = {
        "hit_rate": round(float(chosen_hits.mean()), 4),
        "avg_candidates": round(budget, 1),
        "best_static": {"plan": names[best], "hit_rate": round(float(best_hits.mean()), 4)},
        "minus_best_static_ci": paired_bootstrap_ci(chosen_hits, best_hits, confidence, 0),
        "best_static_mixture": mixture,
        "minus_best_static_mixture_ci": paired_bootstrap_ci(chosen_hits, mixture_hits, confidence, 0),
    }
    per_request = {"chosen": chosen_hits, "best_static": best_hits, "best_static_mixture": mixture_hits}
    if prior_rates is not None:
        plan, plan_hits = _best_static_plan(prior_rates, hits, cost, budget)
        mix, mix_hits = _best_static_mixture(prior_rates, hits, cost, budget, names)
        out["static_from_previous_day"] = {
            "best_static": {
                "plan": names[plan],
                "previous_day_hit_rate": round(float(prior_rates[plan]), 4),
                "hit_rate": round(float(plan_hits.mean()), 4),
            },
            "minus_best_static_ci": paired_bootstrap_ci(chosen_hits, plan_hits, confidence, 0),
            "best_static_mixture": mix,
            "minus_best_static_mixture_ci": paired_bootstrap_ci(chosen_hits, mix_hits, confidence, 0),
        }
        per_request.update({"previous_day_best_static": plan_hits, "previous_day_best_static_mixture": mix_hits})
    return out, per_request


def _best_static_plan(rates: np.ndarray, hits: np.ndarray, cost: np.ndarray, budget: float) -> tuple[int, np.ndarray]:
    """The plan with the best ``rates`` among those within ``budget``, and its hits on ``hits``."""
    best = int(np.argmax(np.where(cost <= budget + 1e-9, rates, -1.0)))
    return best, hits[:, best].astype(float)


def _best_static_mixture(
    rates: np.ndarray, hits: np.ndarray, cost: np.ndarray, budget: float, names: list[str]
) -> tuple[dict[str, Any], np.ndarray]:
    """The best context-free randomisation of two library plans whose expected cost is exactly
    ``budget`` (the upper concave hull of cost vs ``rates`` at the budget), and its expected hit
    per request of ``hits``: the grid's depths are coarse, so a policy averaging 42 candidates
    would otherwise only face 25-candidate plans. ``rates`` chooses; ``hits`` scores."""
    below, above = np.flatnonzero(cost <= budget + 1e-9), np.flatnonzero(cost >= budget - 1e-9)
    best = (-1.0, 0, 0, 1.0)
    for a in below.tolist():
        span = cost[above] - cost[a]
        share_a = np.where(span > 0, (cost[above] - budget) / np.where(span > 0, span, 1.0), 1.0)
        values = share_a * rates[a] + (1 - share_a) * rates[above]
        j = int(np.argmax(values))
        if values[j] > best[0]:
            best = (float(values[j]), int(a), int(above[j]), float(share_a[j]))
    _, a, b, share = best
    expected = (share * hits[:, a] + (1 - share) * hits[:, b]).astype(float)
    return (
        {
            "plans": {names[a]: round(share, 4), names[b]: round(1 - share, 4)},
            "hit_rate": round(float(expected.mean()), 4),
        },
        expected,
    )


def night_metrics(
    settings: Settings,
    hits: np.ndarray,
    plans: dict[str, dict[str, int]],
    served: list[str],
    kinds: pd.Series,
    greedy: list[str] | None = None,
    prior_rates: np.ndarray | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``served``: the plans drawn (exploration included); ``greedy``: the plans the policy
    exploits for the same requests -- the learned policy itself, exploration being the price of
    tomorrow's data -- each compared with the best static plan at its own budget.
    ``prior_rates``: each plan's hit rate on the previous day (chooses the non-hindsight baselines).
    Returns the metrics and, when ``greedy`` is given, per request the greedy plans' hits and
    each baseline's (for pooling nights)."""
    names = list(plans)
    index = {n: i for i, n in enumerate(names)}
    cost = np.array([sum(plans[n].values()) for n in names], dtype=float)
    confidence = settings.bandit.ope.confidence
    drawn, drawn_hits = _against_best_static(hits, cost, np.array([index[p] for p in served]), names, confidence)
    exploit, exploit_hits = (
        _against_best_static(hits, cost, np.array([index[p] for p in greedy]), names, confidence, prior_rates)
        if greedy is not None
        else (None, {})
    )
    served_hits = drawn_hits["chosen"]
    paired = {"learned": exploit_hits.pop("chosen"), **exploit_hits} if exploit is not None else {}
    grid = settings.runtime.policy.grid
    oracle = hits.max(axis=1).astype(float)  # some plan of the library finds an intended entity
    top = max(grid.depths) if grid else 100
    singles = {}
    for strategy in training.action_strategies(settings):
        name = next((n for n in names if plans[n] == {strategy: top}), None)
        if name is not None:
            singles[strategy] = round(float(hits[:, index[name]].mean()), 4)
    by_kind = {}
    for kind, mask in kinds.groupby(kinds).groups.items():
        m = kinds.index.isin(mask)
        row = {"n": int(m.sum()), "served": round(float(served_hits[m].mean()), 4)}
        if exploit is not None:
            row["learned"] = round(float(paired["learned"][m].mean()), 4)
        row["best_static"] = round(float((paired or drawn_hits)["best_static"][m].mean()), 4)
        by_kind[str(kind)] = {**row, "oracle": round(float(oracle[m].mean()), 4)}
    out = {
        "served": drawn["hit_rate"],
        "best_static": drawn["best_static"],
        "served_minus_best_static_ci": drawn["minus_best_static_ci"],
        "single_strategies": singles,
        "oracle": round(float(oracle.mean()), 4),
        "regret": round(float(oracle.mean() - served_hits.mean()), 4),
        "avg_candidates": drawn["avg_candidates"],
        "by_query_type": by_kind,
    }
    if exploit is not None:
        out["learned"] = exploit
    return out, paired


def pooled_comparison(paired_nights: list[dict[str, np.ndarray]], confidence: float) -> dict[str, Any]:
    """The learned (greedy) plans against each static baseline over all learned nights' requests
    together, paired by request. Each night's baseline is at that night's budget."""
    if not paired_nights:
        return {}
    joined = {k: np.concatenate([p[k] for p in paired_nights]) for k in paired_nights[0]}
    learned = joined.pop("learned")
    return {
        "nights": len(paired_nights),
        "requests": int(len(learned)),
        "learned": round(float(learned.mean()), 4),
        "baselines": {
            name: {
                "hit_rate": round(float(values.mean()), 4),
                "learned_minus_ci": paired_bootstrap_ci(learned, values, confidence, 0),
            }
            for name, values in joined.items()
        },
    }


def pooled_agreement(nights: list[dict[str, Any]], confidence: float) -> dict[str, Any]:
    """Over the nights that had a previous estimate: the mean of (measured - estimate), with the
    nights' errors combined (independent days), and how many nights agree / strictly cover."""
    from scipy.stats import norm

    checks = [n["previous_estimate"] for n in nights if "previous_estimate" in n]
    if not checks:
        return {}
    z = float(norm.ppf(0.5 + confidence / 2))
    differences = np.array([c["measured_minus_estimate"] for c in checks])
    se = float(np.sqrt(sum((c["agreement_margin"] / z) ** 2 for c in checks)) / len(checks))
    mean = float(differences.mean())
    return {
        "nights": len(checks),
        "mean_measured_minus_estimate": round(mean, 4),
        "ci": [round(mean - z * se, 4), round(mean + z * se, 4)],
        "agrees": bool(abs(mean) <= z * se),
        "nights_agreeing": int(sum(c["agrees"] for c in checks)),
        "nights_strictly_covered": int(sum(c["covers_measured"] for c in checks)),
    }


def _agreement(estimate: dict[str, Any], measured: np.ndarray, confidence: float) -> dict[str, Any]:
    """Does yesterday's off-policy estimate agree with today's measured value? The estimate's
    interval is about yesterday's requests; today's measured value has its own sampling noise
    (other people, other queries), so the test is on the difference, with both errors."""
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + confidence / 2))
    se_estimate = (estimate["ci"][1] - estimate["ci"][0]) / (2 * z)
    se_measured = float(measured.std(ddof=1) / np.sqrt(len(measured)))
    margin = z * float(np.hypot(se_estimate, se_measured))
    difference = float(measured.mean()) - estimate["estimate"]
    return {
        "measured_minus_estimate": round(difference, 4),
        "agreement_margin": round(margin, 4),
        "agrees": bool(abs(difference) <= margin),
    }


def evaluate_nights(
    settings: Settings,
    load_bundle: Callable[[str], Any],
    nights: int,
    queries_per_day: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> NightsEvaluation:
    """Run the loop for ``nights`` nights from the day after the last logged day. ``load_bundle``
    (bundle id -> loaded service, e.g. ``ltrr_core.runtime.bundle_loader``) is handed in: the
    evaluation does not import the runtime."""
    from ..artifacts import build_bundle, latest_bundle
    from ..bandit import learner
    from ..bandit.tracking import log_evaluation_run, log_training_run
    from ..catalog.store import CatalogStore
    from ..logs import read_logs
    from ..logs.recorder import InteractionRecorder
    from ..simulate import Simulator, World, days_to_simulate, query_kinds, read_truth, truth_root

    say = progress or (lambda message: _log.info(message))
    log_root = settings.data_dir / settings.runtime.log_dir
    plans = settings.runtime.policy.library()
    strategies = training.action_strategies(settings)
    world = World(settings, CatalogStore(settings.data_dir / "catalog").load())
    bundle_id = latest_bundle(settings).name
    previous_ope: dict[str, Any] | None = None
    prior_rates: np.ndarray | None = None  # every plan's hit rate on the previous day (ground truth)
    results, paired_nights = [], []
    for day in days_to_simulate(settings, log_root, nights):
        service = load_bundle(bundle_id)
        say(f"{day}: simulating with {service.policy_label} (bundle {service.bundle_id})")
        recorder = InteractionRecorder(log_root, settings.runtime)
        summary = Simulator(settings, world, service, recorder).run_day(
            day, queries_per_day or settings.simulate.queries_per_day
        )
        recorder.close()
        impressions = read_logs(log_root, "impressions", day.isoformat())
        truth = read_truth(truth_root(settings), day.isoformat()).set_index("request_id").loc[impressions["request_id"]]
        intended = [
            {e for e, g in zip(ids, grades) if g == 2}
            for ids, grades in zip(truth["relevant_ids"], truth["relevant_grades"])
        ]
        say(f"{day}: replaying {len(impressions)} requests against the ground truth")
        ranks = training.replay_ranks(
            service, impressions["raw_query"].tolist(), intended, strategies, settings.bandit.learner.replay_depth
        )
        kinds = pd.Series(query_kinds(truth))
        greedy = [service.policy.greedy(json.loads(f)) for f in impressions["policy_features"]]
        hits = training.plan_hits(ranks, plans, strategies)
        metrics, paired = night_metrics(settings, hits, plans, impressions["plan"].tolist(), kinds, greedy, prior_rates)
        feedback = read_logs(log_root, "feedback", day.isoformat())
        outcomes = training.request_outcomes(impressions, feedback, settings.bandit.learner)
        measured = learner.rewards(outcomes, settings, training.candidate_budget(settings))
        night = {
            "day": day.isoformat(),
            "policy": service.policy_label,
            "candidate_hit_rate": metrics,
            "measured_value": round(float(measured.mean()), 4),
            "simulation": summary.to_dict(),
        }
        if previous_ope:
            # switch-DR: bounded weights; plain DR blew up (ESS ~1) on a night when the greedy plan moved
            estimates = previous_ope["learned_policy"]
            name = next((n for n in ("switch_dr", "dr") if n in estimates), next(iter(estimates)))
            chosen = estimates[name]
            night["previous_estimate"] = {
                **chosen,
                "estimator": name,
                "covers_measured": bool(chosen["ci"][0] <= night["measured_value"] <= chosen["ci"][1]),
                **_agreement(chosen, measured, settings.bandit.ope.confidence),
            }
        say(f"{day}: training the retrieval policy")
        data = learner.load_window(settings, day, settings.bandit.learner.window_days)
        if service.policy_label.startswith("learned") and prior_rates is not None:
            paired_nights.append(paired)  # every learned night has the same baselines
        prior_rates = hits.mean(axis=0)  # tomorrow's static baselines are chosen on today
        try:
            loader = lambda b, served=service: served if b == served.bundle_id else load_bundle(b)  # noqa: E731
            ranks = learner.replay_window(settings, data.outcomes, strategies, loader)
            policy_dir, report = learner.train_night(settings, data, ranks, learner.real_rows(settings, loader))
        except learner.NotEnoughData as error:
            night["training"] = f"skipped: {error}"
            results.append(night)
            continue
        tracked = log_training_run(settings, policy_dir, report, data.outcomes, f"evaluate {day}")
        night["training"] = {"policy": report["version"], "mlflow_run": tracked["run_id"], "ope": report["ope"]}
        previous_ope = report["ope"]
        bundle_id = build_bundle(settings, policy_dir)["bundle_id"]
        results.append(night)
        say(
            f"{day}: served {metrics['served']:.3f} vs best static {metrics['best_static']['hit_rate']:.3f} "
            f"({metrics['best_static']['plan']}), oracle {metrics['oracle']:.3f}; {json.dumps(report['ope']['learned_policy'])}"
        )
    pooled = pooled_comparison(paired_nights, settings.bandit.ope.confidence)
    if pooled:
        pooled["ope_agreement"] = pooled_agreement(results, settings.bandit.ope.confidence)
    run_id = log_evaluation_run(settings, results, pooled) if results else None
    return NightsEvaluation(results, pooled, run_id)


def evaluate_cpcd(settings: Settings, service, limit: int | None = None) -> dict[str, Any]:
    """The served policy's greedy plans on the real CPCD held-out queries (liked tracks as the
    intended entities; features through the same ``policy_features``), against the best static
    plan at the same budget, each single strategy and the oracle. ``limit``: the first N queries."""
    from ..features.policy import policy_features
    from ..labelled.datasets import project_cpcd_queries
    from ..retrieval.base import Query

    labelled = project_cpcd_queries(settings, "heldout")
    plans = settings.runtime.policy.library()
    strategies = training.action_strategies(settings)
    ids = list(labelled.queries)[:limit]
    texts = [labelled.queries[i] for i in ids]
    ranks = training.replay_ranks(
        service, texts, [set(labelled.qrels[i]) for i in ids], strategies, settings.bandit.learner.replay_depth
    )
    chosen = []
    for text in texts:
        query = Query(text, {}, service.understander.understand(text))
        probe = service.strategies["memory"].retrieve(query, 1) if "memory" in service.strategies else None
        chosen.append(service.policy.greedy(policy_features(query.understanding, {}, probe)))
    kinds = pd.Series(["cpcd_heldout"] * len(ids))
    metrics, _ = night_metrics(settings, training.plan_hits(ranks, plans, strategies), plans, chosen, kinds, chosen)
    return {"n_queries": len(ids), "policy": service.policy_label, **metrics}
