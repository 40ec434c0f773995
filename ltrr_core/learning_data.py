"""Real labelled queries as learning data, shared by the ranker and the retrieval policy.

CPCD's labelled search results are real engagement: for each search of a conversation, the tracks
the person was shown and the ones they liked. The learners read the ``train`` part only
(``ltrr_core.splits``), graded by the rule of every labelled evaluation (``ltrr_core.labelled.labels``),
and draw candidates from the platform's own retrieval -- the served bundle's, else the newest.

The memory index was built from these very searches, so on them it knows the answer. With
``ranker.real.memory: cross_fitted`` the train conversations are cut into ``memory_folds`` folds by
a stable hash; a query's likes in one fold form one learning group, and that group sees the memory
without its fold (``fold_services``): what the memory knows of a new conversation's query --
other people's engagement with the same or a similar text, and the doc2query predictions. With
``excluded`` the memory strategy takes no part.
What they compute over a bundle is cached by what it depends on (``retrieval_key``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

from .artifacts import bundles_root
from .config import MemoryMode, Settings
from .doc2query.neighbours import LoggedQueryNeighbourGenerator
from .labelled.datasets import LabelledQueries, project_cpcd_queries
from .labelled.labels import graded_labels
from .memory import MemoryIndex, observed_statistics
from .memory.blend import without_observations
from .memory.engagement import cpcd_engagement
from .retrieval.memory import MemoryStrategy
from .splits import cpcd_rows, parts_of, require_train, unit_hash

FOLD_MARK = "|fold="  # between a real query's text and its memory fold in a query id

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


def served_strategies(strategies: list[str], memory: MemoryMode) -> list[str]:
    """The strategies real queries are retrieved with: all, but memory only when cross-fitted."""
    return [name for name in sorted(strategies) if not (memory == "excluded" and name == "memory")]


def memory_cross_fitted(strategies: list[str], memory: MemoryMode) -> bool:
    return memory == "cross_fitted" and "memory" in strategies


def conversation_fold(conversation: str, settings: Settings) -> int:
    folds = settings.ranker.real.memory_folds
    return min(int(unit_hash(f"{settings.splits.seed}:memory-fold", conversation) * folds), folds - 1)


def query_text(query_id: str) -> str:
    """The text of a real query id (``<text>`` or ``<text>|fold=<k>``)."""
    return query_id.split(FOLD_MARK)[0]


def query_fold(query_id: str) -> int | None:
    _, mark, fold = query_id.partition(FOLD_MARK)
    return int(fold) if mark else None


def folded_train_queries(settings: Settings, display: Any) -> LabelledQueries:
    """``train_queries`` split by memory fold: one query per (text, fold of the conversations that
    liked something for it), id ``<text>|fold=<k>``, graded by that fold's likes alone -- the
    union over folds is ``train_queries``."""
    whole = train_queries(settings, display)
    frame = cpcd_rows(settings.shared_path(settings.catalog.paths.cpcd_labels), settings.splits, parts_of("train"))
    liked = frame[(frame["label"] == "1") & frame["search_query"].isin(set(whole.queries))]
    qrels: dict[str, dict[str, int]] = {}
    for text, track, conversation in zip(liked["search_query"], liked["track_id"], liked["conv_id"]):
        qrels.setdefault(f"{text}{FOLD_MARK}{conversation_fold(conversation, settings)}", {})[f"cpcd:{track}"] = 1
    graded = graded_labels(LabelledQueries({q: query_text(q) for q in qrels}, qrels, "train"), display, settings.eval)
    return LabelledQueries(graded.queries, {q: g for q, g in graded.qrels.items() if g}, "train")


def bundle_q2e_table(settings: Settings, bundle_id: str) -> pd.DataFrame:
    """The Q2E table a bundle serves its memory from."""
    return pd.read_parquet(bundles_root(settings) / bundle_id / "q2e" / "q2e.parquet")


def fold_services(settings: Settings, service: Any, q2e_table: Any) -> dict[int, Any]:
    """fold -> ``service`` with its memory serving ``q2e_table`` (the bundle's) without the
    engagement of that fold's train conversations, nor the log-neighbour predictions of the queries
    they searched (``memory.blend.without_observations``)."""
    engagement = pd.DataFrame()
    if settings.memory.bootstrap.source == "cpcd":
        labels = settings.shared_path(settings.catalog.paths.cpcd_labels)
        engagement = cpcd_engagement(labels, settings.splits, "train")
    fold_of_row = (
        engagement["request_id"].str.rsplit(":", n=1).str[0].map(lambda c: conversation_fold(c, settings)).to_numpy()
        if not engagement.empty
        else None
    )
    folds: dict[int, Any] = {}
    for fold in range(settings.ranker.real.memory_folds):
        removed = pd.DataFrame(columns=["query", "entity_id", "n_impressions", "n_engaged"])
        if fold_of_row is not None:
            removed = observed_statistics(engagement[fold_of_row == fold], settings.memory)
        table = without_observations(q2e_table, removed, settings.memory, [LoggedQueryNeighbourGenerator.name])
        index = MemoryIndex(table, settings.memory)
        folds[fold] = service.with_strategy(MemoryStrategy(index))
    return folds


def retrieval_key(settings: Settings, bundle: Path, memory: MemoryMode, *parts: Any) -> str:
    """What a computation over a bundle's retrieval depends on: its retrieval and entity files (not
    its policy or trained ranker; not its Q2E table while the memory strategy is excluded), the
    split, the grading rule, the real-data settings, ``memory`` and ``parts``. Equal keys, equal results."""
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    skipped = ("policy/", *(("q2e/",) if memory == "excluded" else ()))
    files = sorted((n, d) for n, d in manifest["files"].items() if not n.startswith(skipped) and n not in MODEL_FILES)
    payload = [
        files,
        manifest["components"].get("lance"),
        settings.splits.model_dump(mode="json"),
        settings.ranker.real.model_dump(mode="json"),
        settings.eval.liked_track_grade,
        settings.eval.liked_track_artist_grade,
        settings.catalog.paths.cpcd_labels,
        memory,
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
