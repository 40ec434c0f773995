"""Query understanding (QU): one normalisation shared with the indexes, spelling against the
catalog, slot tagging with several interpretations, and an intent estimate."""

from ..text import normalize
from .understanding import (
    Interpretation,
    InvalidQuery,
    QueryUnderstander,
    QueryUnderstanding,
    Slot,
    load_understander,
)

__all__ = [
    "InvalidQuery",
    "Interpretation",
    "QueryUnderstander",
    "QueryUnderstanding",
    "Slot",
    "load_understander",
    "normalize",
]
