"""Context features of the retrieval policy: one function, at serving time and in training.

The runtime computes them before the policy decides and logs them with the impression
(``policy_features``); nightly training reads the logged values, so serving and training
cannot drift. Everything is cheap enough to compute per request: the QU output the runtime
already has, the request context the client sent, and a depth-1 probe of the memory index
(~0.1 ms) whose hit strength says "this query, or a near-duplicate, has been seen".
"""

from __future__ import annotations

import math
from typing import Any

FEATURE_VERSION = 1


def policy_features(understanding, context: dict[str, Any], memory_probe=None) -> dict[str, float]:
    """``understanding``: QueryUnderstanding; ``memory_probe``: Candidates of a depth-1 memory lookup."""
    features = dict(understanding.features())
    text = understanding.normalised
    features["n_chars"] = float(len(text))
    features["has_digits"] = float(any(c.isdigit() for c in text))
    features["non_latin"] = float(any(ord(c) > 0x24F and c.isalpha() for c in text))
    features["unexplained_share"] = (
        len(understanding.best.unexplained) / max(len(understanding.tokens), 1) if understanding.best else 1.0
    )
    hour = context.get("hour")
    weekday = context.get("weekday")
    features["hour_sin"] = math.sin(2 * math.pi * hour / 24) if isinstance(hour, (int, float)) else 0.0
    features["hour_cos"] = math.cos(2 * math.pi * hour / 24) if isinstance(hour, (int, float)) else 0.0
    features["weekend"] = float(weekday in (5, 6)) if isinstance(weekday, int) else 0.0
    tags = [str(t).lower() for t in context.get("profile_top_tags") or []]
    features["query_mentions_profile_tag"] = float(any(t and t in text for t in tags))
    features["has_profile"] = float(bool(tags))
    if memory_probe is not None and len(memory_probe):
        features["memory_top_score"] = float(memory_probe.scores[0])
        features["memory_match_quality"] = float(memory_probe.meta.get("match_quality", 0.0))
        features["memory_exact"] = float(memory_probe.meta.get("match") == "exact")
    else:
        features["memory_top_score"] = features["memory_match_quality"] = features["memory_exact"] = 0.0
    return {k: round(float(v), 6) for k, v in sorted(features.items())}
