"""Ranker evaluation: the same candidate pools ranked by the fusion, a ranker, and the champion.

For each logged request of the evaluation day the plan it was served with is replayed on the
bundle that served it (retrieval is deterministic given the bundle), the top
``ranker.rerank_depth`` fused candidates get their features through the serving feature path
(``SearchService.ranking_features``), and every contender orders that same pool. Metrics
(ranx): nDCG@10 against the simulator's graded ground truth (2 intended, 1 related; GENERATED
data, read for evaluation only, never for training) and MRR@10 of the entity the person
engaged with. The engaged-entity MRR is biased towards whichever ranking served the day (people
engage with what they were shown); nDCG on ground truth is not, and is the headline number.
Real CPCD held-out queries: the configured default plan, liked tracks as relevant.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

from ..config import Settings
from ..eval.metrics import per_query
from ..eval.stats import paired_bootstrap_ci
from ..models.ranker import Ranker
from ..retrieval.base import Query

METRICS = ["ndcg@10", "mrr@10"]
FUSION = "fusion_baseline"


def _pool(service, text: str, context: dict[str, Any], depths: dict[str, int]) -> tuple[list, np.ndarray]:
    """The fused candidate pool of a replayed plan (the serving path) and its features."""
    understanding = service.understander.understand(text)
    fused, per_strategy = service.retrieve_plan(Query(text, context, understanding), depths)
    pool = fused[: service.settings.ranker.rerank_depth]
    return pool, service.ranking_features(understanding.to_dict(), context, per_strategy, pool)


def rankings(pool: list, features: np.ndarray, contenders: dict[str, Ranker | None], k: int) -> dict[str, list[str]]:
    """Top-k entity ids per contender; None = the fusion order."""
    out = {}
    for name, ranker in contenders.items():
        if ranker is None or not len(pool):
            out[name] = [c.entity_id for c in pool[:k]]
        else:
            scores = ranker.score(features)
            out[name] = [pool[i].entity_id for i in sorted(range(len(pool)), key=lambda i: (-scores[i], i))[:k]]
    return out


def score_contenders(
    ranked: dict[str, dict[str, list[str]]],
    graded: dict[str, dict[str, int]],
    engaged: dict[str, dict[str, int]],
    kinds: dict[str, str],
    confidence: float,
) -> dict[str, Any]:
    """Per contender nDCG@10 (graded truth) and MRR@10 (engaged entity), overall and by query
    type, and each contender minus the fusion with a paired bootstrap interval."""
    out: dict[str, Any] = {}
    per: dict[str, dict[str, dict[str, float]]] = {}
    for name, lists in ranked.items():
        per[name] = {"ndcg@10": per_query(graded, lists, "ndcg@10"), "mrr@10": per_query(engaged, lists, "mrr@10")}
        out[name] = {m: round(float(np.mean(list(v.values()))), 4) if v else None for m, v in per[name].items()}
        out[name]["n"] = {m: len(v) for m, v in per[name].items()}
        by_kind: dict[str, dict[str, float]] = {}
        for kind in sorted(set(kinds.values())):
            values = [v for q, v in per[name]["ndcg@10"].items() if kinds.get(q) == kind]
            if values:
                by_kind[kind] = {"ndcg@10": round(float(np.mean(values)), 4), "n": len(values)}
        out[name]["by_query_type"] = by_kind
    for name in ranked:
        if name == FUSION:
            continue
        for metric in METRICS:
            base = per[FUSION][metric]
            out[name][f"{metric}_minus_fusion_ci"] = paired_bootstrap_ci(
                np.array([per[name][metric][q] for q in base]), np.array(list(base.values())), confidence
            )
    return out


def evaluate_logged_day(
    settings: Settings, day: str, contenders: dict[str, Ranker | None], load_bundle: Callable[[str], Any]
) -> dict[str, Any]:
    """Contenders ranked on the replayed pools of ``day``'s logged requests, each on the bundle
    that served it (``load_bundle``: bundle id -> loaded service, handed in by the caller)."""
    from ..contracts.logs import check_logged_day
    from ..simulate import query_kinds, read_truth, truth_root

    impressions, feedback, _ = check_logged_day(settings.data_dir / settings.runtime.log_dir, day)
    truth = read_truth(truth_root(settings), day)
    truth = truth.set_index("request_id") if len(truth) else None
    k = settings.runtime.max_results
    ranked: dict[str, dict[str, list[str]]] = {name: {} for name in contenders}
    for bundle_id, rows in impressions.groupby("bundle_id"):
        service = load_bundle(str(bundle_id))
        for imp in rows.itertuples(index=False):
            pool, features = _pool(service, imp.raw_query, json.loads(imp.context or "{}"), json.loads(imp.depths))
            for name, ids in rankings(pool, features, contenders, k).items():
                ranked[name][imp.request_id] = ids
    grades = feedback.assign(grade=feedback["event"].map(settings.ranker.labels).fillna(0.0))
    strongest = grades[grades["grade"] > 0].sort_values("grade", ascending=False).drop_duplicates("request_id")
    engaged = {r: {e: 1} for r, e in zip(strongest["request_id"], strongest["entity_id"])}
    graded, kinds = {}, {}
    if truth is not None:
        known = truth.loc[truth.index.intersection(impressions["request_id"])]
        graded = {
            r: {e: int(g) for e, g in zip(ids, gs) if g > 0}
            for r, ids, gs in zip(known.index, known["relevant_ids"], known["relevant_grades"])
        }
        kinds = dict(zip(known.index, query_kinds(known.reset_index())))
    result = score_contenders(ranked, graded, engaged, kinds, settings.bandit.ope.confidence)
    return {"day": day, "n_requests": len(impressions), "ground_truth": truth is not None, **result}


def evaluate_real_validation(settings: Settings, real: Any, contenders: dict[str, Ranker | None]) -> dict[str, Any]:
    """Contenders on the real validation queries (``ranking.real``: CPCD train part, put aside by
    hash): each orders the same fused pool; nDCG@10 on the graded labels of the whole liked set,
    MRR@10 on the liked tracks."""
    from ..labelled.labels import intended

    k = settings.runtime.max_results
    ranked: dict[str, dict[str, list[str]]] = {name: {} for name in contenders}
    for request_id, rows in real.validation.groupby("request_id", sort=False):
        rows = rows.sort_values("position")
        ids = rows["entity_id"].tolist()
        values = rows[real.features].to_numpy(float)
        for name, ranker in contenders.items():
            scores = ranker.score(values) if ranker is not None else -rows["position"].to_numpy(float)
            ranked[name][request_id] = [ids[i] for i in sorted(range(len(ids)), key=lambda i: (-scores[i], i))[:k]]
    graded = real.validation_qrels  # a query whose pool came back empty scores 0
    for lists in ranked.values():
        for request_id in graded:
            lists.setdefault(request_id, [])
    result = score_contenders(
        ranked,
        graded,
        intended(graded, settings.eval),
        {q: "real_validation" for q in graded},
        settings.bandit.ope.confidence,
    )
    return {"n_requests": len(graded), "source": "real", **result}


def evaluate_cpcd(settings: Settings, service, contenders: dict[str, Ranker | None]) -> dict[str, Any]:
    """Real CPCD held-out queries, the default plan, the same feature path. Labels by the rule of
    ``ltrr_core.labelled.labels``: nDCG@10 on graded labels (liked track 2, its artist entity 1),
    MRR@10 on the liked tracks."""
    from ..labelled.datasets import project_cpcd_queries
    from ..labelled.labels import graded_labels, intended

    labelled = project_cpcd_queries(settings, "heldout")
    plan = settings.runtime.policy.plans[settings.runtime.policy.default_plan]
    ranked: dict[str, dict[str, list[str]]] = {name: {} for name in contenders}
    for qid, text in labelled.queries.items():
        pool, features = _pool(service, text, {}, plan)
        for name, ids in rankings(pool, features, contenders, settings.runtime.max_results).items():
            ranked[name][qid] = ids
    graded = graded_labels(labelled, service.display, settings.eval).qrels
    result = score_contenders(
        ranked,
        graded,
        intended(graded, settings.eval),
        {q: "cpcd_heldout" for q in graded},
        settings.bandit.ope.confidence,
    )
    return {"n_queries": len(labelled.queries), "plan": settings.runtime.policy.default_plan, **result}


def evaluate_ranker(settings: Settings, ranker_dir, load_bundle: Callable[[str], Any], service=None) -> dict[str, Any]:
    """A trained ranker on its evaluation day (simulated, replayed through ``load_bundle``) and,
    given the serving ``service``, on the real CPCD held-out queries; each against the fusion and
    the champion (the serving ranker)."""
    from pathlib import Path

    from ..artifacts.champion import serving_ranker
    from ..logs import logged_days

    ranker = Ranker(Path(ranker_dir))
    report = json.loads((Path(ranker_dir) / "report.json").read_text(encoding="utf-8"))
    contenders: dict[str, Ranker | None] = {FUSION: None, "ranker": ranker}
    champion = serving_ranker(settings)
    contenders["champion"] = champion
    out: dict[str, Any] = {
        "ranker": ranker.version,
        "evaluation_day": report["evaluation_day"],
        "champion_version": champion.version if champion else None,
        "simulated": None,
    }
    if report["evaluation_day"] in logged_days(settings.data_dir / settings.runtime.log_dir):
        simulated = evaluate_logged_day(settings, report["evaluation_day"], contenders, load_bundle)
        out["simulated"] = {name: simulated[name] for name in contenders}
    if service is not None:
        cpcd = evaluate_cpcd(settings, service, contenders)
        out["cpcd"] = {"n_queries": cpcd["n_queries"], **{name: cpcd[name] for name in contenders}}
    return out
