"""Prefect flows (DAG wiring only) and the ltrr command line."""
