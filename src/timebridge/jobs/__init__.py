"""Scheduling syncs: an in-process scheduler (embedded) and a distributed engine (at scale)."""

from timebridge.jobs.embedded import (
    PURGE_CRON,
    CycleReport,
    EmbeddedScheduler,
    next_fire_time,
    run_on_cron,
)

__all__ = ["PURGE_CRON", "CycleReport", "EmbeddedScheduler", "next_fire_time", "run_on_cron"]
