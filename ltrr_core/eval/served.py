"""What a served day delivered, measured from its logs and (for simulated days) the simulator's
ground truth: the numbers of the demo's learning curve and of each nightly run's report.

Ground truth exists only for GENERATED traffic (``ltrr simulate``); a day served to real people
has no intended entities, and its recall / nDCG are reported as ``None`` rather than guessed.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..config import Settings
from .metrics import per_query
from .stats import paired_bootstrap_ci


def _candidates(row: Any) -> set[str]:
    """The request's whole fused candidate set (schema >= 1.4); older files only traced each
    strategy's top 20, which undercounts -- those rows are flagged by ``candidates_from``."""
    if isinstance(row.candidate_ids, (list, tuple, np.ndarray)):
        return set(row.candidate_ids)
    return {entity for strategy in json.loads(row.candidates).values() for entity in strategy.get("ids", [])}


def measure_served_day(settings: Settings, day: str) -> dict[str, Any]:
    """Candidate recall (an intended entity among the candidates drawn), nDCG@10 of the shown
    ranking on the graded truth, candidates drawn, and the bandit's reward (its objective:
    engagement found minus the cost penalty) -- each over the day's clean impressions."""
    from ..bandit import learner, training
    from ..contracts.logs import check_logged_day
    from ..simulate import read_truth, truth_root

    impressions, feedback, report = check_logged_day(settings.data_dir / settings.runtime.log_dir, day)
    outcomes = training.request_outcomes(impressions, feedback, settings.bandit.learner)
    reward = learner.rewards(outcomes, settings, training.candidate_budget(settings))
    candidates = [_candidates(row) for row in impressions.itertuples()]
    complete = int(impressions["candidate_ids"].notna().sum()) if len(impressions) else 0
    out: dict[str, Any] = {
        "day": day,
        "requests": len(impressions),
        "unique_candidates": round(float(np.mean([len(c) for c in candidates])), 1) if candidates else 0.0,
        "candidates_from": {"full_candidate_set": complete, "top20_traces (schema < 1.4)": len(impressions) - complete},
        "reward": round(float(reward.mean()), 4) if len(reward) else None,
        "engaged_share": round(float(outcomes["engaged_entity"].notna().mean()), 4) if len(outcomes) else None,
        "policies": impressions["policy"].value_counts().to_dict(),
        "ranked_by": _ranked_by(impressions),
        "quarantined": {kind: report[kind]["quarantined"] for kind in ("impressions", "feedback")},
        "candidate_recall": None,
        "ndcg@10": None,
    }
    truth = read_truth(truth_root(settings), day)
    if len(truth) == 0:
        return out
    truth = truth.set_index("request_id")
    known = impressions[impressions["request_id"].isin(truth.index)]
    rows = truth.loc[known["request_id"]]
    intended = [
        {e for e, g in zip(ids, grades) if g == 2} for ids, grades in zip(rows["relevant_ids"], rows["relevant_grades"])
    ]
    by_id = dict(zip(impressions["request_id"], candidates))
    found = np.array([bool(want & by_id[r]) for r, want in zip(known["request_id"], intended)], dtype=float)
    graded = {
        r: {e: int(g) for e, g in zip(ids, gs) if g > 0}
        for r, ids, gs in zip(rows.index, rows["relevant_ids"], rows["relevant_grades"])
    }
    shown = {r: list(ids)[:10] for r, ids in zip(known["request_id"], known["shown_ids"])}
    ndcg = per_query(graded, shown, "ndcg@10")
    values = np.array(list(ndcg.values()))
    zero = np.zeros_like(values)
    out.update(
        {
            "candidate_recall": round(float(found.mean()), 4),
            "candidate_recall_ci": paired_bootstrap_ci(found, np.zeros_like(found), settings.bandit.ope.confidence),
            "ndcg@10": round(float(values.mean()), 4),
            "ndcg@10_ci": paired_bootstrap_ci(values, zero, settings.bandit.ope.confidence),
        }
    )
    return out


def _ranked_by(impressions) -> dict[str, int]:
    """How many requests a learned ranker ordered vs the fusion (logged with each shown list)."""
    names = [json.loads(cell).get("ranker", "unknown") for cell in impressions["shown_features"]]
    return {name: names.count(name) for name in sorted(set(names))}
