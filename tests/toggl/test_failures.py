"""How the client behaves when Toggl refuses, throttles, fails or vanishes."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import pytest

from timebridge.clock import FakeClock
from timebridge.fakes.toggl import QUOTA_MESSAGE, SimUser, TogglSimulator
from timebridge.retry import RetryPolicy
from timebridge.toggl import (
    AuthenticationError,
    QuotaExceeded,
    RateLimited,
    ServerError,
    TimeEntryCreate,
    TogglClient,
    TransportError,
)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def test_bad_token_is_an_authentication_error(toggl_url: str, toggl_sim: TogglSimulator) -> None:
    with (
        TogglClient("not-a-real-token", base_url=toggl_url) as client,
        pytest.raises(AuthenticationError) as raised,
    ):
        client.me()
    assert raised.value.status_code == 403
    assert len(toggl_sim.requests) == 1, "authentication failures are never retried"


def test_user_quota_exhaustion_raises_with_the_reset_time(
    toggl: TogglClient, toggl_sim: TogglSimulator, clock: FakeClock
) -> None:
    for _ in range(30):
        toggl.me()
        clock.advance(10)
    assert toggl.quota is not None and toggl.quota.remaining == 0
    with pytest.raises(QuotaExceeded) as raised:
        toggl.me()
    # The first of the 30 requests was 300 s ago; it leaves the 60-minute window in 3300 s.
    assert raised.value.resets_in == 3300
    assert "quota" in str(raised.value)
    assert toggl_sim.requests[-1].status == 402
    clock.advance(3300)
    assert toggl.me().id > 0, "the sliding window frees a request once the oldest ages out"


def test_quota_402_is_never_retried(toggl: TogglClient, toggl_sim: TogglSimulator) -> None:
    toggl_sim.faults.add(
        path="/api/v9/me",
        status=402,
        body=QUOTA_MESSAGE,
        headers={"X-Toggl-Quota-Resets-In": "1200"},
    )
    with pytest.raises(QuotaExceeded) as raised:
        toggl.me()
    assert raised.value.resets_in == 1200
    assert toggl_sim.faults.fired == 1


def test_workspace_quota_depends_on_the_plan(
    toggl_sim: TogglSimulator, toggl_url: str, clock: FakeClock
) -> None:
    free = toggl_sim.add_user(plan="free")
    with TogglClient(free.api_token, base_url=toggl_url, clock=clock) as client:
        for _ in range(30):
            client.tags(free.default_workspace_id)
        with pytest.raises(QuotaExceeded):
            client.tags(free.default_workspace_id)
        assert client.me().id == free.id, "user-scoped requests have their own budget"
        quotas = {q.organization_id: q for q in client.quotas()}
    assert quotas[None].total == 30 and quotas[None].remaining == 29
    workspace_quota = next(q for org, q in quotas.items() if org is not None)
    assert workspace_quota.total == 30 and workspace_quota.remaining == 0


def test_quota_headers_are_exposed_on_the_client(toggl: TogglClient) -> None:
    assert toggl.quota is None
    toggl.me()
    assert toggl.quota is not None
    assert toggl.quota.remaining == 29
    assert toggl.quota.resets_in == 3600


def test_429_is_retried_then_succeeds(toggl: TogglClient, toggl_sim: TogglSimulator) -> None:
    toggl_sim.faults.add(path="/api/v9/me", status=429, headers={"Retry-After": "1"}, times=2)
    assert toggl.me().fullname == "Alice"
    assert [r.status for r in toggl_sim.requests] == [200]
    assert toggl_sim.faults.fired == 2


def test_429_on_a_create_is_retried_because_nothing_happened(
    toggl: TogglClient, toggl_sim: TogglSimulator, toggl_user: SimUser
) -> None:
    toggl_sim.faults.add(method="POST", path="*/time_entries", status=429, times=1)
    toggl.create_time_entry(
        TimeEntryCreate(workspace_id=toggl_user.default_workspace_id, start=NOW, duration=60)
    )
    assert len(toggl_sim.world.entries_of(toggl_user.id)) == 1


def test_429_keeps_failing_gives_up_after_the_policy_attempts(
    toggl: TogglClient, toggl_sim: TogglSimulator
) -> None:
    toggl_sim.faults.add(path="/api/v9/me", status=429)
    with pytest.raises(RateLimited):
        toggl.me()
    assert toggl_sim.faults.fired == 3


def test_long_retry_after_fails_fast_instead_of_blocking(
    toggl_url: str, toggl_user: SimUser, toggl_sim: TogglSimulator
) -> None:
    toggl_sim.faults.add(path="/api/v9/me", status=429, headers={"Retry-After": "3600"})
    with (
        TogglClient(toggl_user.api_token, base_url=toggl_url) as client,
        pytest.raises(RateLimited) as raised,
    ):
        client.me()
    assert raised.value.retry_after == 3600
    assert toggl_sim.faults.fired == 1


def test_leaky_bucket_throttle_answers_429_with_retry_after(
    toggl_user: SimUser, clock: FakeClock
) -> None:
    from timebridge.fakes import serve_in_thread

    sim = TogglSimulator(clock, requests_per_second=1)
    user = sim.add_user(api_token=toggl_user.api_token)
    with (
        serve_in_thread(sim.asgi_app) as server,
        TogglClient(
            user.api_token, base_url=f"{server.url}/api/v9", retry=RetryPolicy.never()
        ) as client,
    ):
        client.me()
        with pytest.raises(RateLimited) as raised:
            client.me()
        assert raised.value.retry_after == 1
        clock.advance(1)
        assert client.me().id == user.id


def test_server_errors_are_retried_for_reads(toggl: TogglClient, toggl_sim: TogglSimulator) -> None:
    toggl_sim.faults.add(path="/api/v9/me/workspaces", status=503, times=2)
    assert len(toggl.workspaces()) == 1
    toggl_sim.faults.add(path="/api/v9/me/workspaces", status=500)
    with pytest.raises(ServerError):
        toggl.workspaces()


def test_server_error_on_a_create_is_not_repeated(
    toggl: TogglClient, toggl_sim: TogglSimulator, toggl_user: SimUser
) -> None:
    toggl_sim.faults.add(method="POST", path="*/time_entries", status=502, times=1)
    with pytest.raises(ServerError):
        toggl.create_time_entry(
            TimeEntryCreate(workspace_id=toggl_user.default_workspace_id, start=NOW, duration=60)
        )
    assert toggl_sim.faults.fired == 1, "a create that may have happened is not sent twice"


def test_dropped_connections_are_transport_errors_after_retries(
    toggl: TogglClient, toggl_sim: TogglSimulator
) -> None:
    toggl_sim.faults.add(path="/api/v9/me", drop=True, times=1)
    assert toggl.me().fullname == "Alice", "one drop is retried"
    toggl_sim.faults.add(path="/api/v9/me", drop=True)
    with pytest.raises(TransportError):
        toggl.me()


def test_timeouts_are_transport_errors(
    toggl_url: str, toggl_user: SimUser, toggl_sim: TogglSimulator
) -> None:
    toggl_sim.faults.add(path="/api/v9/me", latency=1.0)
    with (
        TogglClient(
            toggl_user.api_token, base_url=toggl_url, timeout=0.2, retry=RetryPolicy.testing(2)
        ) as client,
        pytest.raises(TransportError, match="Timeout"),
    ):
        client.me()
    assert toggl_sim.faults.fired == 2


def test_refused_connection_is_a_transport_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with (
        TogglClient(
            "token", base_url=f"http://127.0.0.1:{port}/api/v9", retry=RetryPolicy.testing()
        ) as client,
        pytest.raises(TransportError, match="ConnectError"),
    ):
        client.me()


def test_error_messages_never_contain_the_token(
    toggl_url: str, toggl_user: SimUser, toggl_sim: TogglSimulator
) -> None:
    toggl_sim.faults.add(path="/api/v9/me", status=500, body="boom")
    with (
        TogglClient(toggl_user.api_token, base_url=toggl_url, retry=RetryPolicy.never()) as client,
        pytest.raises(ServerError) as raised,
    ):
        client.me()
    assert toggl_user.api_token not in str(raised.value)
    assert toggl_user.api_token not in repr(client)


def test_since_window_uses_the_injected_clock(toggl: TogglClient, clock: FakeClock) -> None:
    clock.advance(timedelta(days=200))
    with pytest.raises(ValueError, match="90 days"):
        toggl.time_entries(since=NOW)
