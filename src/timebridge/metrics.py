"""Prometheus metrics: sync runs, their outcomes and durations, upstream requests by status.

Importing this module registers an observer with the HTTP drivers; the clients themselves never
import Prometheus. Requests are counted from that import on: every HTTP attempt to Toggl or
Exist, retries and token refreshes included, once each, whoever sent it (a run, setting up a
mapping, a CLI command) -- the same attempts the clients' `requests_sent` counts.
"""

from __future__ import annotations

from collections.abc import Mapping

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


def upstream_request_counts() -> Mapping[str, int]:
    """Requests counted so far, per service ("toggl", "exist"), every status together: the sum
    of `timebridge_upstream_requests_total` over its status label."""
    counts: dict[str, int] = {}
    for family in UPSTREAM_REQUESTS.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                service = sample.labels["service"]
                counts[service] = counts.get(service, 0) + int(sample.value)
    return counts


def record_run(kind: str, outcome: str, seconds: float, values_written: int) -> None:
    """Count one finished sync run."""
    SYNC_RUNS.labels(kind=kind, outcome=outcome).inc()
    SYNC_RUN_SECONDS.observe(seconds)
    VALUES_WRITTEN.inc(values_written)


def exposition() -> bytes:
    """The text format Prometheus scrapes."""
    return generate_latest(REGISTRY)
