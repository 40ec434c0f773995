"""What each retrieval strategy costs in milliseconds, learned from the runtime's own traces.

Every impression logs its stage timings (``timings_ms``: each strategy the plan ran, at the
depth the plan gave it). Per strategy, the median time at each logged depth is fitted by a line
``ms = intercept + slope * depth`` (least squares over the depths, weighted by how many
requests each median rests on; slope at least 0). A plan's expected latency is the sum over its
strategies -- serving runs them one after another. The policy's cost is then
``cost_penalty * candidates / budget + latency_penalty * latency_ms / latency_reference_ms``
(``bandit.learner``), so a strategy that is slow where it does not pay is skipped.

A strategy without a logged timing (a new one, or logs older than schema 1.5) costs 0 ms until
it has been served: the model is told what it does not know rather than guessing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class StrategyLatency:
    """Per strategy: (intercept ms, slope ms per candidate of depth), and the requests behind it."""

    lines: dict[str, tuple[float, float]]
    n_requests: dict[str, int]

    def predict(self, depths: dict[str, int]) -> float:
        """Expected milliseconds of a plan (strategy -> depth; depth 0 is not run)."""
        total = 0.0
        for name, depth in depths.items():
            if depth > 0 and name in self.lines:
                intercept, slope = self.lines[name]
                total += max(0.0, intercept + slope * depth)
        return total

    def to_dict(self) -> dict[str, Any]:
        return {"lines": {n: list(v) for n, v in self.lines.items()}, "n_requests": dict(self.n_requests)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> StrategyLatency:
        data = data or {}
        return cls(
            {n: (float(v[0]), float(v[1])) for n, v in data.get("lines", {}).items()},
            {n: int(v) for n, v in data.get("n_requests", {}).items()},
        )


def fit_latency(impressions: pd.DataFrame, strategies: list[str]) -> StrategyLatency:
    """The latency lines of ``strategies`` from logged impressions (columns ``depths`` and
    ``timings_ms``, both JSON; rows without timings are skipped)."""
    samples: dict[str, list[tuple[int, float]]] = {name: [] for name in strategies}
    if "timings_ms" in impressions.columns:
        for depths_json, timings_json in zip(impressions["depths"], impressions["timings_ms"]):
            if not isinstance(timings_json, str):
                continue
            depths, timings = json.loads(depths_json), json.loads(timings_json)
            for name in strategies:
                if depths.get(name, 0) > 0 and name in timings:
                    samples[name].append((int(depths[name]), float(timings[name])))
    lines, counts = {}, {}
    for name, pairs in samples.items():
        if not pairs:
            continue
        frame = pd.DataFrame(pairs, columns=["depth", "ms"]).groupby("depth")["ms"].agg(["median", "size"])
        lines[name] = _line(frame.index.to_numpy(float), frame["median"].to_numpy(float), frame["size"].to_numpy(float))
        counts[name] = len(pairs)
    return StrategyLatency(lines, counts)


def _line(depth: np.ndarray, ms: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
    if len(depth) == 1:
        return round(float(ms[0]), 4), 0.0
    slope, intercept = np.polyfit(depth, ms, 1, w=np.sqrt(weight))
    if slope < 0:  # deeper is never cheaper: a flat line at the mean
        return round(float(np.average(ms, weights=weight)), 4), 0.0
    return round(float(intercept), 4), round(float(slope), 6)


def plan_latencies(latency: StrategyLatency, plans: dict[str, dict[str, int]]) -> np.ndarray:
    """Expected ms of each plan, in the plans' order."""
    return np.array([latency.predict(depths) for depths in plans.values()], dtype=float)
