"""Real labelled queries as learning data, shared by the ranker and the retrieval policy.

CPCD's labelled search results are real engagement: for each search of a conversation, the tracks
the person was shown and the ones they liked. The learners read the ``train`` part only
(``ltrr_core.splits``), graded by the rule of every labelled evaluation (``ltrr_core.labelled.labels``),
and draw candidates from the platform's own retrieval -- the served bundle's, else the newest --
minus ``ranker.real.exclude_strategies`` (the memory index was built from these very searches).
What they compute over a bundle is cached by what it depends on (``retrieval_key``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from .config import Settings
from .labelled.datasets import LabelledQueries, project_cpcd_queries
from .labelled.labels import graded_labels
from .splits import require_train, unit_hash

# A bundle's trained ranker; its entity attributes and feature spec (also under ranker/) do count.
MODEL_FILES = frozenset({"ranker/ranker.json", "ranker/model.cbm", "ranker/report.json", "ranker/uncorrected.cbm"})


class NoReferenceBundle(ValueError):
    """No bundle exists to draw real queries' candidates from."""


def reference_bundle(settings: Settings) -> Path:
    """The bundle whose retrieval draws the real queries' candidates: the served one, else the newest."""
    from .artifacts import BundleError, latest_bundle
    from .artifacts.champion import serving_bundle

    try:
        return serving_bundle(settings)
    except BundleError:
        try:
            return latest_bundle(settings)
        except BundleError as error:
            raise NoReferenceBundle(f"no bundle to draw the real queries' candidates from: {error}") from error


def sampled(labelled: LabelledQueries, settings: Settings) -> LabelledQueries:
    """At most ``ranker.real.max_queries`` queries, the lowest by a stable hash (all when unset)."""
    limit = settings.ranker.real.max_queries
    if limit is None or len(labelled.queries) <= limit:
        return labelled
    kept = sorted(labelled.queries, key=lambda q: unit_hash(f"{settings.splits.seed}:real-sample", q))[:limit]
    return LabelledQueries({q: labelled.queries[q] for q in kept}, {q: labelled.qrels[q] for q in kept}, labelled.split)


def train_queries(settings: Settings, display: Any, labelled: LabelledQueries | None = None) -> LabelledQueries:
    """The real train queries with a like, graded (liked track 2, its artist entity 1) over the
    entities of ``display``. ``labelled`` defaults to the project's CPCD ``train`` part; another
    part is refused (``splits.require_train``)."""
    labelled = sampled(labelled or project_cpcd_queries(settings, "train"), settings)
    require_train(labelled.split, "learning from real engagement")
    graded = graded_labels(labelled, display, settings.eval)
    keep = [q for q in graded.queries if graded.qrels.get(q)]
    return LabelledQueries({q: graded.queries[q] for q in keep}, {q: graded.qrels[q] for q in keep}, graded.split)


def is_validation(query_id: str, settings: Settings) -> bool:
    """Train queries put aside (stable hash, ``ranker.real.validation_share``) to validate on."""
    return unit_hash(f"{settings.splits.seed}:ranker-validation", query_id) < settings.ranker.real.validation_share


def served_strategies(settings: Settings, strategies: list[str]) -> list[str]:
    """The strategies real queries are retrieved with: all but ``ranker.real.exclude_strategies``."""
    return [name for name in sorted(strategies) if name not in settings.ranker.real.exclude_strategies]


def retrieval_key(settings: Settings, bundle: Path, *parts: Any) -> str:
    """What a computation over a bundle's retrieval depends on: its retrieval and entity files (not
    its policy or trained ranker; not its Q2E table while the memory strategy is excluded), the split, the grading
    rule, the real-data settings, and ``parts``. Equal keys, equal results."""
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    skipped = ("policy/", *(("q2e/",) if "memory" in settings.ranker.real.exclude_strategies else ()))
    files = sorted((n, d) for n, d in manifest["files"].items() if not n.startswith(skipped) and n not in MODEL_FILES)
    payload = [
        files,
        manifest["components"].get("lance"),
        settings.splits.model_dump(mode="json"),
        settings.ranker.real.model_dump(mode="json"),
        settings.eval.liked_track_grade,
        settings.eval.liked_track_artist_grade,
        settings.catalog.paths.cpcd_labels,
        *parts,
    ]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:20]


def cache_dir(settings: Settings, name: str) -> Path:
    """Where a derived, re-computable result is cached: ``<data_dir>/cache/<name>``, outside every
    versioned store (a store lists its versions by directory; a cache is not one)."""
    return settings.data_dir / "cache" / name


def prune(cache: Path, keep: int) -> None:
    """Keep the newest ``keep`` cached results (a ``.json`` each, with its data file beside it)."""
    for old in sorted(cache.glob("*.json"), key=lambda p: p.stat().st_mtime)[:-keep]:
        for path in cache.glob(f"{old.stem}.*"):
            path.unlink(missing_ok=True)
