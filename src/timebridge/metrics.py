"""Prometheus metrics: sync runs, their outcomes and durations, upstream requests by status.

Importing this module registers an observer with the HTTP drivers; the clients themselves never
import Prometheus.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from timebridge._http import observe_requests

REGISTRY = CollectorRegistry(auto_describe=True)

SYNC_RUNS = Counter(
    "timebridge_sync_runs",
    "Sync runs by kind and outcome.",
    ["kind", "outcome"],
    registry=REGISTRY,
)
SYNC_RUN_SECONDS = Histogram(
    "timebridge_sync_run_seconds",
    "Wall time of one user's sync run.",
    registry=REGISTRY,
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
VALUES_WRITTEN = Counter(
    "timebridge_exist_values_written", "Values Exist accepted from sync runs.", registry=REGISTRY
)
UPSTREAM_REQUESTS = Counter(
    "timebridge_upstream_requests",
    "HTTP requests to Toggl and Exist by status ('none' when no answer came).",
    ["service", "status"],
    registry=REGISTRY,
)
UPSTREAM_SECONDS = Histogram(
    "timebridge_upstream_request_seconds",
    "Latency of requests to Toggl and Exist.",
    ["service"],
    registry=REGISTRY,
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

CONTENT_TYPE = CONTENT_TYPE_LATEST


def _observe(service: str, status: int | None, seconds: float) -> None:
    UPSTREAM_REQUESTS.labels(service=service, status=str(status) if status else "none").inc()
    UPSTREAM_SECONDS.labels(service=service).observe(seconds)


observe_requests(_observe)


def record_run(kind: str, outcome: str, seconds: float, values_written: int) -> None:
    SYNC_RUNS.labels(kind=kind, outcome=outcome).inc()
    SYNC_RUN_SECONDS.observe(seconds)
    VALUES_WRITTEN.inc(values_written)


def exposition() -> bytes:
    """The text format Prometheus scrapes."""
    return generate_latest(REGISTRY)
