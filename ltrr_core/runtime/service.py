"""SearchService: query -> QU -> policy picks a plan -> retrieval -> union with provenance ->
ranking -> results, with a decision trace.

Serves only from a bundle that verifies (``ltrr_core.artifacts.verify_bundle``). The policy is
the bundle's learned one, else the exploration policy of ``runtime.policy``. Ranking: the
bundle's CatBoost ranker re-orders the top ``ranker.rerank_depth`` fused candidates; without
one, the transparent score fusion decides. Either way each shown result's ranking features
(``ltrr_core.features.ranking``) are computed and logged, so the fusion days are training data.
Imports neither prefect, mlflow nor great_expectations (tests check it).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from ..artifacts import BundleError, verify_bundle
from ..config import RetrievalConfig, Settings
from ..features.policy import policy_features
from ..features.ranking import FEATURE_SPEC_VERSION, EntityAttributes, candidate_features, feature_names
from ..index.graph import GRAPH_DIR
from ..models.policy import Decision, EpsilonDefaultPolicy, LearnedPolicy, RetrievalPolicy, greedy_decision
from ..models.ranker import Ranker
from ..query import load_understander
from ..retrieval.base import Query, RetrievalStrategy
from ..retrieval.fusion import fuse
from ..retrieval.searcher import ServingPaths, describe_result, load_strategies

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
    policy: str = ""  # which policy decided (name and version)
    policy_features: dict[str, float] = field(default_factory=dict)
    ranking: dict[str, Any] = field(default_factory=dict)  # ranker, and per shown result its inputs and features
    rng_seed: int = 0  # with request_id, the seed of every random draw this request made (``request_rng``)
    candidate_ids: list[str] = field(default_factory=list)  # the whole fused candidate set, best first

    def trace(self) -> dict[str, Any]:
        return {
            "ranking": {k: v for k, v in self.ranking.items() if k != "rows"},
            "action": {
                "policy": self.policy,
                "plan": self.decision.plan,
                "depths": self.decision.depths,
                "probability": self.decision.probability,
                "strategy_probabilities": self.decision.strategy_probabilities,
            },
            "strategies": self.per_strategy,
            "timings_ms": self.timings_ms,
        }


class SearchService:
    def __init__(
        self,
        settings: Settings,
        bundle_id: str,
        strategies: list[RetrievalStrategy],
        understander,
        policy: RetrievalPolicy,
        display: pd.DataFrame,
        startup: dict[str, float],
        entities: EntityAttributes | None = None,
        ranker: Ranker | None = None,
    ):
        self.settings = settings
        self.bundle_id = bundle_id
        self.strategies = {s.name: s for s in strategies}
        self.understander = understander
        self.policy = policy
        self.display = display
        self.startup = startup
        self.entities = entities or EntityAttributes.from_frame(display.reset_index())
        self.ranker = ranker
        self.feature_strategies = sorted(settings.retrieval.strategies)
        if ranker is not None:
            ranker.check_features(feature_names(self.feature_strategies))
        # Fresh per process unless configured; logged with every impression, so each request's
        # draws can be re-derived from (seed, request id) -- and no generator is shared by threads.
        self.seed = settings.runtime.seed if settings.runtime.seed is not None else secrets.randbits(63)

    def search(
        self,
        text: str,
        user_id: str | None = None,
        context: dict[str, Any] | None = None,
        k: int | None = None,
        request_id: str | None = None,
        explain: bool = False,
        explore: bool = True,
    ) -> SearchResponse:
        """InvalidQuery (a ValueError naming the rule) for input that cannot be searched.
        ``explore=False``: the policy's greedy plan and no RandTop-k shuffle -- what the bundle
        serves when it does not explore (offline evaluation)."""
        started = time.perf_counter()
        k = k or self.settings.runtime.max_results
        request_id = request_id or uuid.uuid4().hex
        rng = request_rng(self.seed, request_id)
        understanding = self.understander.understand(text)
        query = Query(text, dict(context or {}, user_id=user_id), understanding)
        timings = {"qu": (time.perf_counter() - started) * 1000}
        tick = time.perf_counter()
        probe = self.strategies["memory"].retrieve(query, 1) if "memory" in self.strategies else None
        features = policy_features(understanding, query.context, probe)
        decision = self.policy.decide(features, rng) if explore else greedy_decision(self.policy, features)
        timings["policy"] = (time.perf_counter() - tick) * 1000
        fused, per_strategy = self.retrieve_plan(query, decision.depths, timings)
        tick = time.perf_counter()
        qu = understanding.to_dict()
        shown, ranking = self._rank(fused, qu, query.context, per_strategy, k, explain, rng if explore else None)
        results = [self._result(position, c, score) for position, (c, score) in enumerate(shown, start=1)]
        timings["rank"] = (time.perf_counter() - tick) * 1000
        timings["total"] = (time.perf_counter() - started) * 1000
        return SearchResponse(
            request_id,
            self.bundle_id,
            text,
            qu,
            decision,
            results,
            per_strategy,
            {n: round(v, 3) for n, v in timings.items()},
            self.policy_label,
            features,
            ranking,
            self.seed,
            [c.entity_id for c in fused],
        )

    def retrieve_plan(
        self, query: Query, depths: dict[str, int], timings: dict[str, float] | None = None
    ) -> tuple[list, dict[str, dict[str, Any]]]:
        """The plan's strategies at their depths, fused with provenance: (fused candidates, per
        strategy its trace). Serving and the ranker's replay evaluation go through here."""
        found = {}
        for name, depth in depths.items():
            if depth <= 0 or name not in self.strategies:
                continue
            tick = time.perf_counter()
            found[name] = self.strategies[name].retrieve(query, depth)
            if timings is not None:
                timings[name] = (time.perf_counter() - tick) * 1000
        return self.fuse_plan(found, depths)

    def fuse_plan(self, found: dict[str, Any], depths: dict[str, int]) -> tuple[list, dict[str, dict[str, Any]]]:
        """Each strategy's answer (``Candidates``, at least as deep as the plan) cut to the plan's
        depth and fused with provenance: what ``retrieve_plan`` returns for the same plan."""
        candidates, per_strategy = [], {}
        for name, depth in depths.items():
            if depth <= 0 or name not in found:
                continue
            answer = found[name].prefix(depth)
            candidates.append(answer)
            per_strategy[name] = {
                "depth": depth,
                "n": len(answer),
                "ids": list(answer.ids[:TRACE_CANDIDATES]),
                "scores": [round(s, 6) for s in answer.scores[:TRACE_CANDIDATES]],
                "meta": dict(answer.meta),
            }
        # every candidate drawn, fused (the ranking takes its own prefix): the logged candidate set is whole
        return fuse(candidates, self.settings.retrieval.fusion), per_strategy

    def ranking_features(
        self, qu: dict[str, Any], context: dict[str, Any], per_strategy: dict[str, dict[str, Any]], pool: list
    ) -> np.ndarray:
        """The one feature path of serving, evaluation and training (``candidate_features``)."""
        return candidate_features(
            qu,
            context,
            {n: p["meta"] for n, p in per_strategy.items()},
            [(c.entity_id, c.found_by) for c in pool],
            self.entities,
            self.feature_strategies,
            self.settings.retrieval.fusion,
        )

    def rank_fused(
        self,
        fused: list,
        qu: dict[str, Any],
        context: dict[str, Any],
        per_strategy: dict[str, dict[str, Any]],
        k: int,
    ) -> list[str]:
        """The greedy ranking of any fused pool, as serving ranks it without exploration: the
        ranker over its top ``rerank_depth``, else the fusion order (evaluation's baselines)."""
        shown, _ = self._rank(fused, qu, context, per_strategy, k, False, None)
        return [candidate.entity_id for candidate, _ in shown]

    def _rank(
        self,
        fused: list,
        qu: dict[str, Any],
        context: dict[str, Any],
        per_strategy: dict[str, dict[str, Any]],
        k: int,
        explain: bool,
        rng: np.random.Generator | None,
    ) -> tuple[list[tuple[Any, float]], dict[str, Any]]:
        """The top k as (candidate, score), and what ranked them: the ranker over the top
        ``rerank_depth`` fused candidates, else the fusion order."""
        pool = fused[: self.settings.ranker.rerank_depth] if self.ranker else fused[:k]
        values = self.ranking_features(qu, context, per_strategy, pool)
        if self.ranker is not None:
            scores = self.ranker.score(values)
            order = sorted(range(len(pool)), key=lambda i: (-scores[i], i))[:k]  # ties keep the fusion order
        else:
            scores = np.array([c.score for c in pool])
            order = list(range(min(k, len(pool))))
        # RandTop-k intervention: a configured share of requests sees its top k shuffled, so that
        # position is independent of relevance there and examination by position is measurable.
        randomized = rng is not None and bool(rng.random() < self.settings.ranker.position_bias.randomize_share)
        if randomized and rng is not None:
            order = [order[i] for i in rng.permutation(len(order))]
        ranking = {
            "ranker": f"catboost:{self.ranker.version}" if self.ranker else "fusion",
            "randomized": randomized,
            "feature_spec": FEATURE_SPEC_VERSION,
            "strategies": self.feature_strategies,
            "rows": [
                {
                    "found_by": {s: [r, round(float(sc), 6)] for s, (r, sc) in pool[i].found_by.items()},
                    "values": [None if np.isnan(v) else round(float(v), 6) for v in values[i]],
                }
                for i in order
            ],
        }
        if explain and self.ranker is not None:
            ranking["top_features"] = self.ranker.explain(values[order], self.settings.ranker.explain_top_features)
        return [(pool[i], float(scores[i])) for i in order], ranking

    def with_strategy(self, strategy: RetrievalStrategy) -> SearchService:
        """The same bundle with one strategy replaced by ``strategy`` (same name): how an
        evaluation serves a bundle with, say, another query encoder behind ``semantic``."""
        if strategy.name not in self.strategies:
            raise ValueError(f"bundle {self.bundle_id} serves no {strategy.name!r} strategy to replace")
        strategies = [strategy if s.name == strategy.name else s for s in self.strategies.values()]
        return SearchService(
            self.settings,
            self.bundle_id,
            strategies,
            self.understander,
            self.policy,
            self.display,
            self.startup,
            self.entities,
            self.ranker,
        )

    def with_ranker(self, ranker: Ranker | None) -> SearchService:
        """The same bundle ranked by ``ranker`` (None: the fusion order): how an evaluation
        compares rankers on the retrieval the bundle serves."""
        return SearchService(
            self.settings,
            self.bundle_id,
            list(self.strategies.values()),
            self.understander,
            self.policy,
            self.display,
            self.startup,
            self.entities,
            ranker,
        )

    @property
    def policy_label(self) -> str:
        version = getattr(self.policy, "version", None)
        return f"{self.policy.name}:{version}" if version else self.policy.name

    def _result(self, position: int, candidate, score: float) -> dict[str, Any]:
        row = self.display.loc[candidate.entity_id] if candidate.entity_id in self.display.index else None
        return {"position": position, **describe_result(candidate, row), "score": round(score, 6)}


def request_rng(seed: int, request_id: str) -> np.random.Generator:
    """The generator of one request's draws (the plan, then whether and how its results are
    shuffled), derived from the process seed and the request id: each request has its own, so
    concurrent requests share no state, and a logged request's draws replay bit for bit."""
    words = np.frombuffer(hashlib.blake2b(request_id.encode("utf-8"), digest_size=16).digest(), dtype=np.uint32)
    return np.random.default_rng(np.random.SeedSequence([seed, *words.tolist()]))


class _ComponentCache:
    """Components a process has loaded, keyed by the checksums of the bundle files they are built
    from (and the settings that shape them): a hot reload to a bundle whose QU resources or entity
    attributes are byte-identical reuses the loaded ones instead of rebuilding them (seconds of
    CPU that would stall the requests of a busy worker). The last ``keep`` of each kind are kept."""

    def __init__(self, keep: int = 2):
        self.keep = keep
        self._items: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def get(self, kind: str, key: str, build: Callable[[], Any]) -> Any:
        with self._lock:
            found = self._items.get(kind, {}).get(key)
        if found is not None:
            return found
        value = build()
        with self._lock:
            items = self._items.setdefault(kind, {})
            items[key] = value
            while len(items) > self.keep:
                items.pop(next(iter(items)))
        return value


_COMPONENTS = _ComponentCache()


def _files_key(manifest: dict[str, Any], prefix: str, *settings_parts: BaseModel) -> str:
    """The identity of what a component is built from: its files' checksums and its settings."""
    files = sorted((name, digest) for name, digest in manifest["files"].items() if name.startswith(prefix))
    payload = json.dumps([files, [part.model_dump(mode="json") for part in settings_parts]], sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def load_service(settings: Settings, bundle_path: Path) -> SearchService:
    """Verify the bundle, load every strategy from it; records cold-start seconds and memory."""
    import psutil

    started = time.perf_counter()
    manifest = verify_bundle(bundle_path, stamps=settings.data_dir / "cache" / "verified-bundles")
    root = Path(bundle_path)
    lance = manifest["components"]["lance"]
    if lance["model"] != settings.embedding.model:
        raise BundleError(
            f"{root}: vectors were built with {lance['model']!r}, this config encodes queries with "
            f"{settings.embedding.model!r}"
        )
    retrieval = RetrievalConfig.model_validate(json.loads((root / "retrieval.json").read_text(encoding="utf-8")))
    settings = settings.with_overrides(retrieval=retrieval.model_dump(mode="python"))
    paths = ServingPaths(
        root / "bm25",
        root / "qu",
        root / "q2e" / "q2e.parquet",
        settings.data_dir / lance["path"],
        lance["table"],
        int(lance["version"]),
        root / "query_encoder",
        root / GRAPH_DIR,
    )
    understander = _COMPONENTS.get(
        "qu",
        _files_key(manifest, "qu/", settings.query_understanding, settings.content_understanding),
        lambda: load_understander(paths.qu, settings),
    )
    strategies = load_strategies(settings, paths, understander)
    display = pd.read_parquet(root / "display.parquet").set_index("id")
    policy = (
        LearnedPolicy(root / "policy")
        if (root / "policy" / "policy.json").is_file()
        else EpsilonDefaultPolicy(settings.runtime.policy)
    )
    entities_path = root / "ranker" / "entities.parquet"
    entities = (
        _COMPONENTS.get(
            "entities", _files_key(manifest, "ranker/entities.parquet"), lambda: EntityAttributes.load(entities_path)
        )
        if entities_path.is_file()
        else None
    )
    ranker = Ranker(root / "ranker") if (root / "ranker" / "ranker.json").is_file() else None
    warm = Query("warm up", {}, understander.understand("warm up"))  # numba JIT, encoder, lookups, model
    for strategy in strategies:
        strategy.retrieve(warm, 10)
    policy.probabilities(policy_features(warm.understanding, {}, None))
    if ranker is not None:
        ranker.score(np.zeros((1, len(ranker.feature_names))))
    startup = {
        "seconds": round(time.perf_counter() - started, 2),
        "rss_mb": round(psutil.Process().memory_info().rss / 2**20, 1),
    }
    return SearchService(
        settings, manifest["bundle_id"], strategies, understander, policy, display, startup, entities, ranker
    )


def bundle_loader(settings: Settings, loaded: tuple[SearchService, ...] = ()) -> Callable[[str], SearchService]:
    """bundle id -> its SearchService (the ``loaded`` ones as they are, any other loaded afresh):
    what the learners and evaluations are handed to replay logged requests on the bundle that
    served them, so that they need not import the runtime. BundleError / FileNotFoundError for a
    bundle that cannot load."""
    from ..artifacts import bundles_root

    services = {service.bundle_id: service for service in loaded}
    return lambda bundle_id: services.get(bundle_id) or load_service(settings, bundles_root(settings) / bundle_id)
