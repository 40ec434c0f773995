"""Catalog: entity schema adapters, linking, contracts, content understanding, versioned store."""

from .pipeline import ingest_catalog, publish_catalog, understand, validate_catalog
from .store import CatalogNotFound, CatalogStore, diff_catalogs

__all__ = [
    "CatalogNotFound",
    "CatalogStore",
    "diff_catalogs",
    "ingest_catalog",
    "publish_catalog",
    "understand",
    "validate_catalog",
]
