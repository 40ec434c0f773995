"""Which part of each real data set may be learned from, simulated from, or evaluated on.

The one owner of every split of real data, so that no evaluation can see what was learned or
tuned, and no simulated truth is an input of the system it judges:

* **CPCD conversations** go to ``train`` (everything learned or tuned: observed Q2E in the
  memory index, sweeps, thresholds), ``simulate`` (the only source of CPCD intents for simulated
  people) or ``heldout`` (evaluation only), by a stable hash of the conversation id. All turns
  of a conversation stay together.
* **Last.fm tag assignments** (artist, tag) go to ``catalog`` (entity tags: content
  understanding, the structured strategy, ranking features) or ``truth`` (the only source of
  simulated tag truth: the artists most often given a tag), by a stable hash of the pair, so
  an artist's tag that defines the truth is never one of its catalog tags.
* **Last.fm users** go to ``platform`` (what the platform builds from listening profiles:
  popularity) or ``simulate`` (simulated people, their taste and the co-listening truth of
  "songs like X").

Hashes are SHA-256 of ``seed:key`` -- stable across runs, machines and Python versions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from pathlib import Path
from typing import Literal, get_args

import pandas as pd

from .config import Settings, SplitsConfig
from .logs import read_logs
from .text import normalize

CpcdPart = Literal["train", "simulate", "heldout"]
CPCD_PARTS: tuple[str, ...] = get_args(CpcdPart)
REQUIRED_CPCD_COLUMNS = ("search_query", "track_id", "label")
QuerySlice = Literal["seen", "unseen"]


class SplitRefused(ValueError):
    """A tuning or learning step asked for data it must not see (held-out or simulate)."""


def unit_hash(seed: str, key: str) -> float:
    """A stable number in [0, 1) for ``key`` under ``seed``: every split of the project draws from it."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def cpcd_part(conv_id: str, config: SplitsConfig) -> CpcdPart:
    """``heldout`` below ``cpcd_heldout``, then ``simulate`` up to their sum, else ``train``."""
    u = unit_hash(config.seed, conv_id)
    if u < config.cpcd_heldout:
        return "heldout"
    if u < config.cpcd_heldout + config.cpcd_simulate:
        return "simulate"
    return "train"


def tag_assignment_part(artist_id: str, tag_id: str, config: SplitsConfig) -> Literal["catalog", "truth"]:
    return (
        "truth" if unit_hash(config.seed, f"lastfm-tag:{artist_id}:{tag_id}") < config.lastfm_tag_truth else "catalog"
    )


def lastfm_user_part(user_id: str, config: SplitsConfig) -> Literal["platform", "simulate"]:
    return "simulate" if unit_hash(config.seed, f"lastfm-user:{user_id}") < config.lastfm_user_simulate else "platform"


def tag_assignment_rows(tagged: pd.DataFrame, config: SplitsConfig, part: Literal["catalog", "truth"]) -> pd.DataFrame:
    """Rows of ``user_taggedartists`` whose (artist, tag) pair is in ``part``: ``catalog`` feeds
    the catalog, ``truth`` only the simulator's tag truth."""
    keep = [tag_assignment_part(str(a), str(t), config) == part for a, t in zip(tagged["artistID"], tagged["tagID"])]
    return tagged[keep]


def lastfm_user_rows(frame: pd.DataFrame, config: SplitsConfig, part: Literal["platform", "simulate"]) -> pd.DataFrame:
    """Rows of a Last.fm user table (``userID``) of the users in ``part``: the platform's, or the
    ones who become simulated people."""
    return frame[[lastfm_user_part(str(u), config) == part for u in frame["userID"]]]


def read_cpcd_file(path: Path) -> pd.DataFrame:
    """A CPCD-format TSV (CSV-quoted: some typed queries hold tabs and quotes), all as strings;
    a clear error naming the file, the row and the rule for anything else."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"labelled query file {path} does not exist")
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in REQUIRED_CPCD_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; a CPCD-format file needs {list(REQUIRED_CPCD_COLUMNS)}")
    bad = frame[~frame["label"].isin(["-1", "0", "1"])]
    if len(bad):
        raise ValueError(
            f"{path}: row {bad.index[0] + 2} has label {bad.iloc[0]['label']!r}; labels must be -1, 0 or 1"
        )
    frame["search_query"] = frame["search_query"].str.strip()
    return frame


def cpcd_rows(path: Path, config: SplitsConfig, parts: Collection[str] | Literal["all"]) -> pd.DataFrame:
    """The rows of the named parts (``"all"``: every row, also of files without ``conv_id``)."""
    frame = read_cpcd_file(path)
    if parts == "all":
        return frame
    unknown = set(parts) - set(CPCD_PARTS)
    if unknown:
        raise ValueError(f"CPCD split must be one of {list(CPCD_PARTS)} or 'all', got {sorted(unknown)}")
    if "conv_id" not in frame.columns:
        raise ValueError(f"{path}: selecting the {sorted(parts)} part needs the conv_id column; use --split all")
    keep = frame["conv_id"].map(lambda c: cpcd_part(c, config) in parts)
    return frame[keep]


def parts_of(split: str) -> Collection[str] | Literal["all"]:
    if split == "all":
        return "all"
    if split not in CPCD_PARTS:
        raise ValueError(f"split must be one of {list(CPCD_PARTS)} or 'all', got {split!r}")
    return (split,)


def require_train(split: str, purpose: str) -> None:
    """Tuning and learning read the ``train`` part only: anything else is refused, by name."""
    if split != "train":
        raise SplitRefused(
            f"{purpose} tunes on the train part of the conversations only; split {split!r} "
            "would let it see conversations kept for simulation or evaluation"
        )


def seen_queries(settings: Settings) -> frozenset[str]:
    """Normalised texts the platform could have learned by lookup: every search of the train part
    and, when the memory index learns from the runtime's logs, every logged query. A held-out
    query with one of these texts is in the ``seen`` slice."""
    path = settings.shared_path(settings.catalog.paths.cpcd_labels)
    rows = cpcd_rows(path, settings.splits, ("train",))
    texts = set(rows["search_query"].map(normalize))
    if settings.memory.use_runtime_logs:
        logged = read_logs(settings.data_dir / settings.runtime.log_dir, "impressions")
        texts |= set(logged["raw_query"].map(normalize))
    return frozenset(t for t in texts if t)


def query_slice(text: str, seen: frozenset[str]) -> QuerySlice:
    return "seen" if normalize(text) in seen else "unseen"
