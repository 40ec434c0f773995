"""SearchService: query -> QU -> policy picks a plan -> retrieval -> union with provenance ->
ranking -> results, with a decision trace.

Serves only from a bundle that verifies (``ltrr_core.artifacts.verify_bundle``). Ranking is
the transparent score fusion of the bundle's retrieval config until the ranker issue lands;
the policy is the exploration policy of ``runtime.policy`` until the bandit issue lands.
Imports neither prefect, mlflow nor great_expectations (tests check it).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..artifacts import BundleError, verify_bundle
from ..config import RetrievalConfig, Settings
from ..retrieval.base import Query, RetrievalStrategy
from ..retrieval.fusion import fuse
from ..query import load_understander
from ..retrieval.searcher import ServingPaths, describe_result, load_strategies
from ..bandit.features import policy_features
from .policy import Decision, EpsilonDefaultPolicy, LearnedPolicy, RetrievalPolicy

TRACE_CANDIDATES = 20


@dataclass
class SearchResponse:
    request_id: str
    bundle_id: str
    query: str
    understanding: dict[str, Any]
    decision: Decision
    results: list[dict[str, Any]]
    per_strategy: dict[str, dict[str, Any]]
    timings_ms: dict[str, float] = field(default_factory=dict)
    policy: str = ""                                   # which policy decided (name and version)
    policy_features: dict[str, float] = field(default_factory=dict)

    def trace(self) -> dict[str, Any]:
        return {
            "action": {"policy": self.policy, "plan": self.decision.plan, "depths": self.decision.depths,
                       "probability": self.decision.probability,
                       "strategy_probabilities": self.decision.strategy_probabilities},
            "strategies": self.per_strategy,
            "timings_ms": self.timings_ms,
        }


class SearchService:
    def __init__(self, settings: Settings, bundle_id: str, strategies: list[RetrievalStrategy], understander,
                 policy: RetrievalPolicy, display: pd.DataFrame, startup: dict[str, float]):
        self.settings = settings
        self.bundle_id = bundle_id
        self.strategies = {s.name: s for s in strategies}
        self.understander = understander
        self.policy = policy
        self.display = display
        self.startup = startup
        self.rng = np.random.default_rng(settings.runtime.seed)

    def search(self, text: str, user_id: str | None = None, context: dict[str, Any] | None = None,
               k: int | None = None, request_id: str | None = None) -> SearchResponse:
        """InvalidQuery (a ValueError naming the rule) for input that cannot be searched."""
        started = time.perf_counter()
        k = k or self.settings.runtime.max_results
        understanding = self.understander.understand(text)
        query = Query(text, dict(context or {}, user_id=user_id), understanding)
        timings = {"qu": (time.perf_counter() - started) * 1000}
        tick = time.perf_counter()
        probe = self.strategies["memory"].retrieve(query, 1) if "memory" in self.strategies else None
        features = policy_features(understanding, query.context, probe)
        decision = self.policy.decide(features, self.rng)
        timings["policy"] = (time.perf_counter() - tick) * 1000
        candidates, per_strategy = [], {}
        for name, depth in decision.depths.items():
            if depth <= 0 or name not in self.strategies:
                continue
            tick = time.perf_counter()
            found = self.strategies[name].retrieve(query, depth)
            timings[name] = (time.perf_counter() - tick) * 1000
            candidates.append(found)
            per_strategy[name] = {"depth": depth, "n": len(found), "ids": list(found.ids[:TRACE_CANDIDATES]),
                                  "scores": [round(s, 6) for s in found.scores[:TRACE_CANDIDATES]],
                                  "meta": dict(found.meta)}
        tick = time.perf_counter()
        fused = fuse(candidates, self.settings.retrieval.fusion, max(decision.depths.values()))
        results = [self._result(position, c) for position, c in enumerate(fused[:k], start=1)]
        timings["rank"] = (time.perf_counter() - tick) * 1000
        timings["total"] = (time.perf_counter() - started) * 1000
        return SearchResponse(request_id or uuid.uuid4().hex, self.bundle_id, text, understanding.to_dict(), decision, results,
                              per_strategy, {n: round(v, 3) for n, v in timings.items()}, self.policy_label, features)

    @property
    def policy_label(self) -> str:
        version = getattr(self.policy, "version", None)
        return f"{self.policy.name}:{version}" if version else self.policy.name

    def _result(self, position: int, candidate) -> dict[str, Any]:
        row = self.display.loc[candidate.entity_id] if candidate.entity_id in self.display.index else None
        return {"position": position, **describe_result(candidate, row)}


def load_service(settings: Settings, bundle_path: Path) -> SearchService:
    """Verify the bundle, load every strategy from it; records cold-start seconds and memory."""
    import psutil

    started = time.perf_counter()
    manifest = verify_bundle(bundle_path)
    root = Path(bundle_path)
    lance = manifest["components"]["lance"]
    if lance["model"] != settings.embedding.model:
        raise BundleError(f"{root}: vectors were built with {lance['model']!r}, this config encodes queries with "
                          f"{settings.embedding.model!r}")
    retrieval = RetrievalConfig.model_validate(json.loads((root / "retrieval.json").read_text(encoding="utf-8")))
    settings = settings.with_overrides(retrieval=retrieval.model_dump(mode="python"))
    paths = ServingPaths(root / "bm25", root / "qu", root / "q2e" / "q2e.parquet",
                         settings.data_dir / lance["path"], lance["table"], int(lance["version"]))
    understander = load_understander(paths.qu, settings)
    strategies = load_strategies(settings, paths, understander)
    display = pd.read_parquet(root / "display.parquet").set_index("id")
    policy = LearnedPolicy(root / "policy") if (root / "policy" / "policy.json").is_file() \
        else EpsilonDefaultPolicy(settings.runtime.policy)
    warm = Query("warm up", {}, understander.understand("warm up"))   # numba JIT, encoder, lookups, model
    for strategy in strategies:
        strategy.retrieve(warm, 10)
    policy.probabilities(policy_features(warm.understanding, {}, None))
    startup = {"seconds": round(time.perf_counter() - started, 2),
               "rss_mb": round(psutil.Process().memory_info().rss / 2**20, 1)}
    return SearchService(settings, manifest["bundle_id"], strategies, understander, policy, display, startup)
