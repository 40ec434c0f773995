"""Small statistics shared by the evaluations (bandit nights, ranker days)."""

from __future__ import annotations

import numpy as np


def paired_bootstrap_ci(a: np.ndarray, b: np.ndarray, confidence: float, seed: int = 0, n: int = 1000) -> list[float]:
    """Percentile interval of mean(a) - mean(b), resampling the pairs (same requests) together."""
    diffs = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if not len(diffs):
        return [0.0, 0.0]
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, len(diffs), size=(n, len(diffs)))].mean(axis=1)
    alpha = (1 - confidence) / 2
    return [round(float(x), 4) for x in np.quantile(means, [alpha, 1 - alpha])]
