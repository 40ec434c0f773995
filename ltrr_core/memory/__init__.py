"""The Q2E memory index: (query, entity) pairs predicted by doc2query-style generators and
observed in engagement logs, blended by a Beta-Binomial rule (``blend``)."""

from .blend import blend, observed_statistics, posterior_score
from .store import MemoryIndex, Q2ENotBuilt, Q2EStore

__all__ = ["MemoryIndex", "Q2ENotBuilt", "Q2EStore", "blend", "observed_statistics", "posterior_score"]
