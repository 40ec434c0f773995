"""The lightweight query runtime: serves searches from a verified bundle.

Imports neither prefect, mlflow nor great_expectations."""

from .policy import Decision, EpsilonDefaultPolicy
from .service import SearchResponse, SearchService, load_service

__all__ = ["Decision", "EpsilonDefaultPolicy", "SearchResponse", "SearchService", "load_service"]
