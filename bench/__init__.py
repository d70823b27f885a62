"""Benchmarks (see bench/README.md); importable so tests can share their generators."""
