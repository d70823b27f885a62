"""The bridge's tests use the jobs tests' world: users connected in the store and on both
simulators."""

from tests.jobs.conftest import world

__all__ = ["world"]
