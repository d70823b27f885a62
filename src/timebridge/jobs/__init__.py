"""Scheduling syncs: an in-process scheduler (embedded) and a distributed engine (at scale)."""

from timebridge.jobs.embedded import CycleReport, EmbeddedScheduler, next_fire_time

__all__ = ["CycleReport", "EmbeddedScheduler", "next_fire_time"]
