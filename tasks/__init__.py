"""Thin Prefect tasks: each wraps one ltrr_core call and adds retries, logging and artifacts."""
