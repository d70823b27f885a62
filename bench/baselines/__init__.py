"""Baselines the benchmarks measure Timebridge against, in the same run."""
