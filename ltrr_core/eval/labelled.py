"""What users get, on labelled queries: the served bundle beside every baseline a practitioner
would use, with paired intervals, per slice.

Rows (systems), every one on the same queries:

* each **strategy** alone at ``eval.depth``;
* ``hybrid``: every strategy at ``eval.depth``, fused by the bundle's static fusion -- the
  well-tuned static hybrid;
* ``static_mixture``: the best single plan of the bundle's plan library (fusion, no ranker)
  among those whose candidate budget is at most the served one's mean -- chosen *on the
  evaluated queries themselves*, so it is an upper bound for any static plan at that budget;
* ``hybrid_ranked`` (bundles with a ranker): the hybrid's pool ranked by the bundle's ranker --
  the static hybrid with the same learned ranker, which says whether the policy's plans or the
  ranker are what separates ``served`` from ``hybrid``;
* ``served``: the bundle through ``SearchService.search`` (QU -> the policy's greedy plan ->
  strategies -> fusion -> ranker), exactly the HTTP path without exploration draws.

Per query metrics (ranx) make every comparison paired: ``served - hybrid`` and
``served - static_mixture`` get percentile bootstrap intervals over queries. Slices: ``seen``
(the normalised text also occurs in the train part, ``ltrr_core.splits``) and ``unseen``, and
the intent QU reads. Labels follow ``ltrr_core.labelled.labels`` (graded view first, tracks view
once). Candidate hit: the share of queries with an intended entity anywhere among the
candidates each system drew, beside the mean number of candidates drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import Settings
from ..labelled.datasets import LabelledQueries
from ..labelled.labels import VIEWS, graded_labels, intended, qrels_for
from ..progress import progress
from ..retrieval.base import Candidates, Query
from ..retrieval.fusion import fuse
from ..splits import query_slice
from .metrics import per_query_array
from .stats import paired_bootstrap_ci

SERVED, HYBRID, MIXTURE, HYBRID_RANKED = "served", "hybrid", "static_mixture", "hybrid_ranked"


@dataclass
class SystemRuns:
    """Per query: the ranked ids (best first), the candidate set drawn, and its size budget."""

    ranked: list[list[str]] = field(default_factory=list)
    candidates: list[set[str]] = field(default_factory=list)
    budget: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class LabelledEvaluation:
    n_queries: int
    bundle_id: str
    policy: str
    static_mixture_plan: str
    metrics: dict[str, dict[str, dict[str, float]]]  # view -> system -> metric -> mean
    intervals: dict[str, dict[str, list[float]]]  # "served-hybrid" -> metric -> [low, high] (graded view)
    candidate_hit: dict[str, dict[str, float]]  # system -> {hit, mean_candidates}
    slices: dict[str, dict[str, Any]]  # "seen" / "unseen" / "intent:<x>" -> same shape, smaller

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_queries": self.n_queries,
            "bundle_id": self.bundle_id,
            "policy": self.policy,
            "static_mixture_plan": self.static_mixture_plan,
            "strategies": self.metrics["graded"],
            "views": self.metrics,
            "intervals": self.intervals,
            "candidate_hit": self.candidate_hit,
            "slices": self.slices,
            "label_rule": "liked track intended (grade 2); its artist entity related (grade 1); "
            "hit metrics count intended only",
        }


def evaluate_labelled(
    settings: Settings, service: Any, labelled: LabelledQueries, seen: frozenset[str]
) -> LabelledEvaluation:
    """``service``: a loaded SearchService (the promoted bundle, or one named by the caller)."""
    qids = list(labelled.queries)
    if not qids:
        raise ValueError("no labelled queries with a relevant entity to evaluate")
    graded = graded_labels(labelled, service.display, settings.eval).qrels
    depth = settings.eval.depth
    runs, per_strategy, intents = retrieve_runs(service, labelled, qids, depth)
    plans = dict(service.policy.plans)
    runs[HYBRID] = fused_runs(per_strategy, {n: depth for n in per_strategy}, service.settings.retrieval.fusion, depth)
    served_budget = float(np.mean(runs[SERVED].budget))
    mixture_plan, _ = _best_mixture(per_strategy, plans, served_budget, service, graded, qids, settings)
    runs[MIXTURE] = _plan_runs(service, labelled, qids, plans[mixture_plan], depth)
    order = [*per_strategy, HYBRID, MIXTURE, *([HYBRID_RANKED] if HYBRID_RANKED in runs else []), SERVED]
    values = {
        view: {name: per_query_values(runs[name], graded, qids, view, settings) for name in order} for view in VIEWS
    }
    slices = {"seen": [i for i, q in enumerate(qids) if query_slice(labelled.queries[q], seen) == "seen"]}
    seen_rows = set(slices["seen"])
    slices["unseen"] = [i for i in range(len(qids)) if i not in seen_rows]
    slices = {name: rows for name, rows in slices.items() if rows}
    for intent in sorted(set(intents)):
        rows = [i for i, x in enumerate(intents) if x == intent]
        if len(rows) >= settings.eval.min_slice_queries:
            slices[f"intent:{intent}"] = rows
    return LabelledEvaluation(
        n_queries=len(qids),
        bundle_id=service.bundle_id,
        policy=service.policy_label,
        static_mixture_plan=mixture_plan,
        metrics={view: _means(values[view], None) for view in VIEWS},
        intervals=_intervals(values["graded"], None, settings),
        candidate_hit=_candidate_hit(runs, graded, qids, None, settings),
        slices={
            name: {
                "n_queries": len(rows),
                "strategies": _means(values["graded"], rows),
                "intervals": _intervals(values["graded"], rows, settings),
                "candidate_hit": _candidate_hit(runs, graded, qids, rows, settings),
            }
            for name, rows in slices.items()
        },
    )


def retrieve_runs(
    service: Any, labelled: LabelledQueries, qids: list[str], depth: int
) -> tuple[dict[str, SystemRuns], dict[str, list[Candidates]], list[str]]:
    """The served answer and every strategy at ``depth`` for each query, with QU's main intent;
    with a ranker, also the hybrid pool it ranks (``hybrid_ranked``)."""
    served, hybrid_ranked = SystemRuns(), SystemRuns()
    per_strategy: dict[str, list[Candidates]] = {name: [] for name in service.strategies}
    intents = []
    with progress(f"served + strategies on {len(qids)} queries", len(qids)) as advance:
        for i, qid in enumerate(qids):
            text = labelled.queries[qid]
            response = service.search(text, k=depth, request_id=f"eval-{i}", explore=False)
            served.ranked.append([r["entity_id"] for r in response.results])
            served.candidates.append(set(response.candidate_ids))
            served.budget.append(sum(response.decision.depths.values()))
            intent: dict[str, float] = response.understanding.get("intent") or {"unknown": 1.0}
            intents.append(max(intent, key=lambda name: intent[name]))
            query = Query(text, {"user_id": None}, service.understander.understand(text))
            for name, strategy in service.strategies.items():
                per_strategy[name].append(strategy.retrieve(query, depth))
            if service.ranker is not None:
                found = {name: per_strategy[name][-1] for name in service.strategies}
                pool, trace = service.fuse_plan(found, {name: depth for name in found})
                ranked = service.rank_fused(pool, response.understanding, query.context, trace, depth)
                hybrid_ranked.ranked.append(ranked)
                hybrid_ranked.candidates.append({c.entity_id for c in pool})
                hybrid_ranked.budget.append(depth * len(found))
            advance(1)
    runs = {
        name: SystemRuns([list(c.ids) for c in found], [set(c.ids) for c in found], [depth] * len(found))
        for name, found in per_strategy.items()
    }
    runs[SERVED] = served
    if hybrid_ranked.ranked:
        runs[HYBRID_RANKED] = hybrid_ranked
    return runs, per_strategy, intents


def _plan_runs(service: Any, labelled: LabelledQueries, qids: list[str], depths: dict[str, int], k: int) -> SystemRuns:
    """A plan exactly as serving runs it (``SearchService.retrieve_plan``, fusion order, no ranker)."""
    out = SystemRuns()
    for qid in qids:
        text = labelled.queries[qid]
        fused, _ = service.retrieve_plan(Query(text, {"user_id": None}, service.understander.understand(text)), depths)
        out.ranked.append([c.entity_id for c in fused[:k]])
        out.candidates.append({c.entity_id for c in fused})
        out.budget.append(sum(d for n, d in depths.items() if n in service.strategies and d > 0))
    return out


def fused_runs(per_strategy: dict[str, list[Candidates]], depths: dict[str, int], fusion, k: int) -> SystemRuns:
    """The plan's strategies cut to their depths (each strategy's top ``d`` is the prefix of its
    top ``eval.depth``), fused; candidates are their union."""
    out = SystemRuns()
    names = [n for n, d in depths.items() if d > 0 and n in per_strategy]
    n_queries = len(next(iter(per_strategy.values())))
    for i in range(n_queries):
        parts = [per_strategy[n][i].prefix(depths[n]) for n in names]
        out.ranked.append([f.entity_id for f in fuse(parts, fusion, k)])
        out.candidates.append({e for p in parts for e in p.ids})
        out.budget.append(sum(depths[n] for n in names))
    return out


def _best_mixture(
    per_strategy: dict[str, list[Candidates]],
    plans: dict[str, dict[str, int]],
    budget: float,
    service: Any,
    graded: dict[str, dict[str, int]],
    qids: list[str],
    settings: Settings,
) -> tuple[str, SystemRuns]:
    """The plan with the best mean of the first metric among plans within the served budget
    (the cheapest plan when none is), chosen on each strategy's top ``d`` taken as the prefix of
    its top ``eval.depth``; the chosen plan's row is then measured exactly (``_plan_runs``)."""
    metric = settings.eval.metrics[0]
    within = {n: d for n, d in plans.items() if sum(d.values()) <= budget + 1e-9} or dict(
        [min(plans.items(), key=lambda item: sum(item[1].values()))]
    )
    best: tuple[float, str, SystemRuns] | None = None
    for name in sorted(within):
        runs = fused_runs(per_strategy, within[name], service.settings.retrieval.fusion, settings.eval.depth)
        score = float(per_query_values(runs, graded, qids, "graded", settings)[metric].mean())
        if best is None or score > best[0]:
            best = (score, name, runs)
    assert best is not None
    return best[1], best[2]


def per_query_values(
    runs: SystemRuns, graded: dict[str, dict[str, int]], qids: list[str], view: str, settings: Settings
) -> dict[str, np.ndarray]:
    ranked = dict(zip(qids, runs.ranked))
    return {
        metric: per_query_array(qrels_for(metric, view, graded, settings.eval), ranked, metric, qids)
        for metric in settings.eval.metrics
    }


def _means(values: dict[str, dict[str, np.ndarray]], rows: list[int] | None) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name, by_metric in values.items():
        picked = {m: _rows(v, rows) for m, v in by_metric.items()}
        out[name] = {m: round(float(v.mean()), 4) if len(v) else 0.0 for m, v in picked.items()}
    return out


def _intervals(
    values: dict[str, dict[str, np.ndarray]], rows: list[int] | None, settings: Settings
) -> dict[str, dict[str, list[float]]]:
    out = {}
    for baseline in (HYBRID, MIXTURE, HYBRID_RANKED):
        if baseline not in values:
            continue
        out[f"{SERVED}-{baseline}"] = {
            m: paired_bootstrap_ci(
                _rows(values[SERVED][m], rows),
                _rows(values[baseline][m], rows),
                settings.eval.confidence,
                n=settings.eval.n_bootstrap,
            )
            for m in settings.eval.metrics
        }
    return out


def _rows(array: np.ndarray, rows: list[int] | None) -> np.ndarray:
    return array if rows is None else array[rows]


def _candidate_hit(
    runs: dict[str, SystemRuns],
    graded: dict[str, dict[str, int]],
    qids: list[str],
    rows: list[int] | None,
    settings: Settings,
) -> dict[str, dict[str, float]]:
    wanted = intended(graded, settings.eval)
    index = range(len(qids)) if rows is None else rows
    out = {}
    for name, run in runs.items():
        hits = [bool(run.candidates[i] & set(wanted[qids[i]])) for i in index]
        sizes = [len(run.candidates[i]) for i in index]
        out[name] = {
            "hit": round(float(np.mean(hits)), 4) if hits else 0.0,
            "mean_candidates": round(float(np.mean(sizes)), 1) if sizes else 0.0,
        }
    return out
