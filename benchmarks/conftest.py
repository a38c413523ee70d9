"""Benchmarks run with pytest-benchmark: ``nox -s bench`` or ``pytest benchmarks``."""
