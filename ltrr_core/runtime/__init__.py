"""The lightweight query runtime: serves searches from a verified bundle.

Imports neither prefect, mlflow nor great_expectations. What it shares with the learners -- the
logs (``ltrr_core.logs``) and the serving forms of the models (``ltrr_core.models``) -- lives
beneath both; no learner imports this package."""

from .service import SearchResponse, SearchService, bundle_loader, load_service

__all__ = ["SearchResponse", "SearchService", "bundle_loader", "load_service"]
