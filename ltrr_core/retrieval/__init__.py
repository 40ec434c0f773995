"""Retrieval strategies behind one interface, and the union/fusion of their candidates."""

from .base import Candidates, Query, RetrievalStrategy, SupportsBatchRetrieve
from .fusion import FusedCandidate, fuse

__all__ = ["Candidates", "FusedCandidate", "Query", "RetrievalStrategy", "SupportsBatchRetrieve", "fuse"]
