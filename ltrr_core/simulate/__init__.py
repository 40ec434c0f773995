"""The user simulator: GENERATED behaviour (clicks, streams, likes, typos) on top of real
people and real intents (Last.fm users and tags, CPCD searches). See README "User simulator"."""

from .clicks import CascadeModel, Feedback, PositionBasedModel, make_click_model
from .run import DayAlreadyLogged, DaySummary, Simulator, days_to_simulate, query_kinds, read_truth, truth_root
from .variants import misspell, partial, typed_query
from .world import Intent, User, World

__all__ = [
    "CascadeModel",
    "DayAlreadyLogged",
    "DaySummary",
    "Feedback",
    "Intent",
    "PositionBasedModel",
    "Simulator",
    "query_kinds",
    "User",
    "World",
    "days_to_simulate",
    "make_click_model",
    "misspell",
    "partial",
    "read_truth",
    "truth_root",
    "typed_query",
]
