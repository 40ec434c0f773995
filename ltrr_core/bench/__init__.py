"""Benchmarks: build and query costs at the real catalog size and at a generated 1M catalog."""
