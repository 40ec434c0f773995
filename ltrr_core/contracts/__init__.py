"""Data contracts: Great Expectations suites kept as files in ``data_contracts/``."""

from .validate import ContractReport, ContractViolation, catalog_view, load_suite, validate_frame

__all__ = ["ContractReport", "ContractViolation", "catalog_view", "load_suite", "validate_frame"]
