"""Should the ranker learn from the memory index? Both ways of handling it, measured.

The memory index was built from the CPCD train searches the ranker learns from, so on them it
knows the answer (``ranker.real.memory``): ``excluded`` leaves it out of the training pools, so the
ranker never learns what memory evidence is worth; ``cross_fitted`` gives each train search the
memory of the other folds of conversations, as a new conversation's query meets it.

The choice is made on the train part: each mode's ranker is fitted on its own training pools
(``ranker.seed`` for each seed given), then all are judged on the same pools -- the cross-fitted
validation pools, which hold memory candidates and features exactly as serving computes them
for a query the memory has or has not seen. The held-out conversations are read only when asked
(``heldout``), to confirm a choice, never to make it: there the served bundle's greedy answer and
the hybrid pool are re-ranked by each ranker (``eval.labelled``).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import Settings
from ..eval.labelled import HYBRID, HYBRID_RANKED, SERVED, evaluate_labelled
from ..eval.metrics import per_query
from ..eval.stats import paired_bootstrap_ci
from ..labelled.datasets import project_cpcd_queries
from ..models.ranker import Ranker
from ..splits import seen_queries
from .estimator import FittedRanker, RankerEstimator
from .evaluate import FUSION, evaluate_real_validation
from .real import RealEngagementSet, real_engagement_set
from .train import labelled_groups

MODES = ("excluded", "cross_fitted")


@dataclass
class MemoryModeComparison:
    """Validation nDCG@10 per (mode, seed) on the shared judged pools, the paired difference of
    the modes (seeds averaged per query), and optionally held-out nDCG@10 by slice."""

    judged_queries: int
    seeds: list[int]
    validation: dict[str, float]  # "<mode> seed <s>" and FUSION -> nDCG@10
    difference: list[float]  # cross_fitted - excluded, 95% paired bootstrap over judged queries
    feature_importance: dict[str, dict[str, float]]  # mode -> top memory features' importance (seed 0)
    heldout: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # ranker -> slice -> system -> nDCG

    def to_markdown(self) -> str:
        lines = [
            f"Judged on {self.judged_queries} train-validation queries: the cross-fitted pools, which hold memory "
            "candidates and features as serving computes them. Each mode's ranker is fitted on its own training "
            f"pools, seeds {', '.join(map(str, self.seeds))}.",
            "",
            "| ranker | validation nDCG@10 |",
            "|---|---|",
            *(f"| {name} | {value:.4f} |" for name, value in self.validation.items()),
            "",
            f"cross_fitted − excluded (seeds averaged per query), 95% paired interval: "
            f"[{self.difference[0]:+.4f}, {self.difference[1]:+.4f}]",
        ]
        if self.heldout:
            lines += [
                "",
                "Held-out CPCD queries, read to confirm the choice, not to make it (nDCG@10; `served`: the bundle's "
                "greedy plan re-ranked by the ranker; `hybrid_ranked`: every strategy at depth 100, fused, re-ranked):",
                "",
                "| ranker | slice | served | hybrid | hybrid_ranked |",
                "|---|---|---|---|---|",
            ]
            for ranker, slices in self.heldout.items():
                for name, systems in slices.items():
                    lines.append(
                        f"| {ranker} | {name} | {systems[SERVED]:.4f} | {systems[HYBRID]:.4f} | "
                        f"{systems[HYBRID_RANKED]:.4f} |"
                    )
        return "\n".join(lines) + "\n"


def compare_memory_modes(
    settings: Settings, service: Any, q2e_table: pd.DataFrame, seeds: list[int], heldout: bool = False
) -> MemoryModeComparison:
    """``service``: the reference bundle loaded; ``q2e_table``: its Q2E table."""
    sets = {mode: real_engagement_set(_mode(settings, mode), service, q2e_table=q2e_table) for mode in MODES}
    judged = sets["cross_fitted"]
    contenders: dict[str, Ranker | None] = {FUSION: None}
    importance: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for mode in MODES:
            for seed in seeds:
                name = f"{mode} seed {seed}"
                fitted, top = _fit(_mode(settings, mode).with_overrides(**{"ranker.seed": seed}), sets[mode])
                contenders[name] = fitted.save(Path(scratch) / name.replace(" ", "-"), name)
                importance.setdefault(mode, top)
        scores = evaluate_real_validation(settings, judged, contenders)
        difference = _mode_difference(settings, judged, contenders, seeds)
        held: dict[str, dict[str, dict[str, float]]] = {}
        if heldout:
            labelled, seen = project_cpcd_queries(settings, "heldout"), seen_queries(settings)
            for name, contender in contenders.items():
                if contender is not None:
                    evaluation = evaluate_labelled(settings, service.with_ranker(contender), labelled, seen).to_dict()
                    held[name] = {
                        "all": _ndcg(evaluation["strategies"]),
                        **{
                            s: _ndcg(v["strategies"])
                            for s, v in evaluation["slices"].items()
                            if s in ("seen", "unseen")
                        },
                    }
    return MemoryModeComparison(
        judged_queries=scores["n_requests"],
        seeds=seeds,
        validation={name: scores[name]["ndcg@10"] for name in contenders},
        difference=difference,
        feature_importance=importance,
        heldout=held,
    )


def _mode(settings: Settings, mode: str) -> Settings:
    return settings.with_overrides(**{"ranker.real.memory": mode})


def _fit(settings: Settings, real: RealEngagementSet) -> tuple[FittedRanker, dict[str, float]]:
    fitted = RankerEstimator(settings.ranker).fit(
        labelled_groups(real.fit), labelled_groups(real.validation), real.features
    )
    top = {f: round(v, 2) for f, v in fitted.feature_importance().items() if f.startswith("memory")}
    return fitted, top


def _mode_difference(
    settings: Settings, judged: RealEngagementSet, contenders: dict[str, Ranker | None], seeds: list[int]
) -> list[float]:
    """cross_fitted − excluded on the judged pools: per query nDCG@10 averaged over seeds, paired."""
    k = settings.runtime.max_results
    graded = judged.validation_qrels
    per_mode: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for mode in MODES:
        for seed in seeds:
            ranker = contenders[f"{mode} seed {seed}"]
            assert ranker is not None
            ranked: dict[str, list[str]] = {q: [] for q in graded}
            for request_id, rows in judged.validation.groupby("request_id", sort=False):
                rows = rows.sort_values("position")
                ids = rows["entity_id"].tolist()
                scores = ranker.score(rows[judged.features].to_numpy(float))
                ranked[request_id] = [ids[i] for i in sorted(range(len(ids)), key=lambda i: (-scores[i], i))[:k]]
            per_mode[mode].append(per_query(graded, ranked, "ndcg@10"))
    queries = sorted(graded)
    mean = {m: np.array([np.mean([run.get(q, 0.0) for run in per_mode[m]]) for q in queries]) for m in MODES}
    return paired_bootstrap_ci(mean["cross_fitted"], mean["excluded"], settings.bandit.ope.confidence)


def _ndcg(systems: dict[str, dict[str, float]]) -> dict[str, float]:
    return {name: round(float(systems[name]["ndcg@10"]), 4) for name in (SERVED, HYBRID, HYBRID_RANKED)}
