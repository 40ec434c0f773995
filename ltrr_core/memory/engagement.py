"""Engagement observations: what people were shown for a query and what they did with it.

One row per (impression of an entity for a query): ``request_id, query, entity_id, position,
event, timestamp``. ``event`` is the strongest thing the person did with that result (like,
stream, click, skip, dislike, or just ``impression``). The runtime's impression and feedback
logs reduce to this frame; until they exist, CPCD's real searches do (see ``cpcd_engagement``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from ..text import normalize

COLUMNS = ["request_id", "query", "entity_id", "position", "event", "timestamp"]
CPCD_EVENTS = {"1": "like", "0": "impression", "-1": "dislike"}


def conversation_split(conv_id: str, heldout_fraction: float, seed: str) -> str:
    """'train' or 'heldout', stable across runs and machines (hash of seed + conversation)."""
    digest = hashlib.sha256(f"{seed}:{conv_id}".encode()).digest()
    return "heldout" if int.from_bytes(digest[:8], "big") / 2**64 < heldout_fraction else "train"


def read_cpcd_rows(path: Path) -> pd.DataFrame:
    if not Path(path).is_file():
        raise FileNotFoundError(f"CPCD search log {path} does not exist")
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = {"conv_id", "turn", "search_query", "track_id", "label"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
    return frame


def cpcd_engagement(path: Path, split: str, heldout_fraction: float, seed: str, id_prefix: str = "cpcd:") -> pd.DataFrame:
    """CPCD's labelled search results as engagement rows, for one conversation split.

    Every labelled row was shown to the person (an impression); label 1 is a like, -1 a
    dislike. CPCD result lists are not in rank order, so positions are unknown (None) and such
    impressions count as examined. Timestamps are unknown too; rows get the epoch.
    """
    frame = read_cpcd_rows(path)
    if split != "all":
        keep = frame["conv_id"].map(lambda c: conversation_split(c, heldout_fraction, seed) == split)
        frame = frame[keep]
    frame = frame[frame["search_query"].str.strip() != ""]
    bad = frame[~frame["label"].isin(list(CPCD_EVENTS))]
    if len(bad):
        raise ValueError(f"{path}: row {bad.index[0] + 2} has label {bad.iloc[0]['label']!r}; labels must be -1, 0 or 1")
    return pd.DataFrame({
        "request_id": frame["conv_id"] + ":" + frame["turn"].astype(str),
        "query": frame["search_query"].str.strip(),
        "entity_id": id_prefix + frame["track_id"],
        "position": pd.array([None] * len(frame), dtype="Int64"),
        "event": frame["label"].map(CPCD_EVENTS),
        "timestamp": pd.Timestamp(0, tz="UTC"),
    }).reset_index(drop=True)


def normalised_queries(engagement: pd.DataFrame) -> pd.Series:
    return engagement["query"].map(normalize)


def log_engagement(impressions: pd.DataFrame, feedback: pd.DataFrame) -> pd.DataFrame:
    """The runtime's logs as engagement rows: one ``impression`` row per shown result (with its
    position) plus one row per feedback event; ``observed_statistics`` keeps the strongest per
    impression. Pass contract-checked frames (``validate_log_day``): quarantined rows stay out."""
    if impressions.empty:
        return pd.DataFrame(columns=COLUMNS)
    shown = impressions[["request_id", "raw_query", "shown_ids", "timestamp"]].explode("shown_ids").dropna(subset=["shown_ids"])
    shown["position"] = shown.groupby("request_id").cumcount() + 1
    rows = pd.DataFrame({"request_id": shown["request_id"], "query": shown["raw_query"], "entity_id": shown["shown_ids"],
                         "position": shown["position"], "event": "impression", "timestamp": shown["timestamp"]})
    queries = dict(zip(impressions["request_id"], impressions["raw_query"]))
    events = feedback[feedback["request_id"].isin(queries)]
    events = pd.DataFrame({"request_id": events["request_id"], "query": events["request_id"].map(queries),
                           "entity_id": events["entity_id"], "position": events["position"], "event": events["event"],
                           "timestamp": events["timestamp"]})
    out = pd.concat([rows, events], ignore_index=True)
    out["position"] = out["position"].astype("Int64")
    return out[COLUMNS]
