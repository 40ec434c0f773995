"""Engagement observations: what people were shown for a query and what they did with it.

One row per (impression of an entity for a query): ``request_id, query, entity_id, position,
event, timestamp``. ``event`` is the strongest thing the person did with that result (like,
stream, click, skip, dislike, or just ``impression``). The runtime's impression and feedback
logs reduce to this frame; until they exist, CPCD's real searches do (see ``cpcd_engagement``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..config import SplitsConfig
from ..splits import cpcd_rows, parts_of
from ..text import normalize

COLUMNS = ["request_id", "query", "entity_id", "position", "event", "timestamp"]
CPCD_EVENTS = {"1": "like", "0": "impression", "-1": "dislike"}


def cpcd_engagement(path: Path, splits: SplitsConfig, part: str, id_prefix: str = "cpcd:") -> pd.DataFrame:
    """CPCD's labelled search results as engagement rows, for one part of the conversation split
    (``ltrr_core.splits``; learning reads ``train`` only).

    Every labelled row was shown to the person (an impression); label 1 is a like, -1 a
    dislike. CPCD result lists are not in rank order, so positions are unknown (None) and such
    impressions count as examined. Timestamps are unknown too; rows get the epoch.
    """
    frame = cpcd_rows(path, splits, parts_of(part))
    frame = frame[frame["search_query"] != ""]
    return pd.DataFrame(
        {
            "request_id": frame["conv_id"] + ":" + frame["turn"].astype(str),
            "query": frame["search_query"],
            "entity_id": id_prefix + frame["track_id"],
            "position": pd.array([None] * len(frame), dtype="Int64"),
            "event": frame["label"].map(CPCD_EVENTS),
            "timestamp": pd.Timestamp(0, tz="UTC"),
        }
    ).reset_index(drop=True)


def normalised_queries(engagement: pd.DataFrame) -> pd.Series:
    return engagement["query"].map(normalize)


def log_engagement(impressions: pd.DataFrame, feedback: pd.DataFrame) -> pd.DataFrame:
    """The runtime's logs as engagement rows: one ``impression`` row per shown result (with its
    position) plus one row per feedback event; ``observed_statistics`` keeps the strongest per
    impression. Pass contract-checked frames (``validate_log_day``): quarantined rows stay out."""
    if impressions.empty:
        return pd.DataFrame(columns=COLUMNS)
    shown = (
        impressions[["request_id", "raw_query", "shown_ids", "timestamp"]]
        .explode("shown_ids")
        .dropna(subset=["shown_ids"])
    )
    shown["position"] = shown.groupby("request_id").cumcount() + 1
    rows = pd.DataFrame(
        {
            "request_id": shown["request_id"],
            "query": shown["raw_query"],
            "entity_id": shown["shown_ids"],
            "position": shown["position"],
            "event": "impression",
            "timestamp": shown["timestamp"],
        }
    )
    queries = dict(zip(impressions["request_id"], impressions["raw_query"]))
    events = feedback[feedback["request_id"].isin(queries)]
    events = pd.DataFrame(
        {
            "request_id": events["request_id"],
            "query": events["request_id"].map(queries),
            "entity_id": events["entity_id"],
            "position": events["position"],
            "event": events["event"],
            "timestamp": events["timestamp"],
        }
    )
    out = pd.concat([rows, events], ignore_index=True)
    out["position"] = out["position"].astype("Int64")
    return out[COLUMNS]
