"""Upstream requests and sync runs show up in the Prometheus exposition."""

from __future__ import annotations

import pytest

from timebridge import metrics
from timebridge.fakes.toggl import SimUser, TogglSimulator
from timebridge.retry import RetryPolicy
from timebridge.toggl import ServerError, TogglClient


def _sample(name: str, **labels: str) -> float:
    value = metrics.REGISTRY.get_sample_value(name, labels)
    return value or 0.0


def test_upstream_requests_are_counted_by_status(
    toggl_url: str, toggl_user: SimUser, toggl_sim: TogglSimulator
) -> None:
    ok_before = _sample("timebridge_upstream_requests_total", service="toggl", status="200")
    failed_before = _sample("timebridge_upstream_requests_total", service="toggl", status="503")
    toggl_sim.faults.add(path="/api/v9/me", status=503, times=2)
    with TogglClient(
        toggl_user.api_token, base_url=toggl_url, retry=RetryPolicy.testing(attempts=2)
    ) as client:
        with pytest.raises(ServerError):
            client.me()
        client.workspaces()
    assert _sample("timebridge_upstream_requests_total", service="toggl", status="503") == (
        failed_before + 2
    )
    assert _sample("timebridge_upstream_requests_total", service="toggl", status="200") == (
        ok_before + 1
    )
    assert b"timebridge_upstream_request_seconds_bucket" in metrics.exposition()


def test_runs_are_counted_by_kind_and_outcome() -> None:
    before = _sample("timebridge_sync_runs_total", kind="sync", outcome="succeeded")
    metrics.record_run("sync", "succeeded", 0.2, values_written=3)
    assert _sample("timebridge_sync_runs_total", kind="sync", outcome="succeeded") == before + 1


def test_a_clients_own_count_and_metrics_count_the_same_requests(
    toggl_url: str, toggl_user: SimUser, toggl_sim: TogglSimulator
) -> None:
    """What a run reports as its requests (the client's count) is what /metrics adds up, every
    status and every retry included."""
    before = metrics.upstream_request_counts().get("toggl", 0)
    toggl_sim.faults.add(path="/api/v9/me", status=503, times=1)
    with TogglClient(
        toggl_user.api_token, base_url=toggl_url, retry=RetryPolicy.testing(attempts=3)
    ) as client:
        client.me()
        client.workspaces()
        sent = client.requests_sent
    assert sent == 3
    assert metrics.upstream_request_counts()["toggl"] - before == sent
    assert metrics.upstream_request_counts().get("exist", 0) == _sample_sum("exist")


def _sample_sum(service: str) -> int:
    return int(
        sum(
            sample.value
            for family in metrics.REGISTRY.collect()
            for sample in family.samples
            if sample.name == "timebridge_upstream_requests_total"
            and sample.labels.get("service") == service
        )
    )
