"""How the client behaves when Toggl refuses, throttles, fails or vanishes."""

from __future__ import annotations

import json
import socket
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from timebridge.clock import FakeClock
from timebridge.fakes.toggl import QUOTA_MESSAGE, SimUser, TogglSimulator
from timebridge.retry import RetryPolicy
from timebridge.toggl import (
    AuthenticationError,
    CredentialsMissing,
    InvalidRequest,
    NotFound,
    QuotaExceeded,
    RateLimited,
    ServerError,
    StartDateTooEarly,
    TimeEntryCreate,
    TogglClient,
    TogglError,
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


def test_a_request_without_credentials_is_not_taken_for_a_revoked_token(
    toggl_url: str, toggl_sim: TogglSimulator
) -> None:
    # An auth that adds nothing: Toggl answers 401 with an empty body and X-Authorization-Missing.
    with (
        TogglClient(auth=httpx.Auth(), base_url=toggl_url) as client,
        pytest.raises(CredentialsMissing) as raised,
    ):
        client.me()
    assert not isinstance(raised.value, AuthenticationError), "the token was never sent"
    assert raised.value.status_code == 401
    assert str(raised.value) == "no credentials reached Toggl Track (401, X-Authorization-Missing)"
    assert len(toggl_sim.requests) == 1


def test_user_quota_exhaustion_raises_with_the_reset_time(
    toggl: TogglClient, toggl_sim: TogglSimulator, clock: FakeClock
) -> None:
    for _ in range(30):
        toggl.me()
        clock.advance(10)
    assert toggl.quota is not None and toggl.quota.remaining == 0
    with pytest.raises(QuotaExceeded) as raised:
        toggl.me()
    # The hour began with the first of the 30 requests, 300 s ago: it ends in 3300 s, at 13:00.
    assert raised.value.resets_in == 3300
    assert str(raised.value) == "hourly API quota used up, resets at 13:00 UTC"
    assert raised.value.resets_at == NOW + timedelta(hours=1)
    assert toggl_sim.requests[-1].status == 402
    clock.advance(3300)
    assert toggl.me().id > 0
    assert toggl.quota is not None
    assert toggl.quota.remaining == 29, "a new hour gives the whole budget back"


def test_quota_402_is_never_retried(toggl: TogglClient, toggl_sim: TogglSimulator) -> None:
    toggl_sim.faults.add(
        path="/api/v9/me",
        status=402,
        body=json.dumps(QUOTA_MESSAGE),
        headers={"X-Toggl-Quota-Resets-In": "1200"},
    )
    with pytest.raises(QuotaExceeded) as raised:
        toggl.me()
    assert raised.value.resets_in == 1200
    assert toggl_sim.faults.fired == 1


@pytest.mark.parametrize(
    ("headers", "resets_in", "message"),
    [
        ({"X-Toggl-Quota-Resets-In": "1200"}, 1200, "resets at 12:20 UTC"),
        # 12:20:30 is shown as 12:21: waiting until the time shown is always enough.
        ({"X-Toggl-Quota-Resets-In": "1230", "X-Toggl-Quota-Remaining": "0"}, 1230, "at 12:21 UTC"),
        ({"X-Toggl-Quota-Resets-In": "4000"}, 4000, "resets at 13:07 UTC"),
        ({}, None, "resets within the hour"),
        ({"X-Toggl-Quota-Resets-In": "soon"}, None, "resets within the hour"),
    ],
)
@pytest.mark.parametrize(
    "body",
    [
        json.dumps("Your plan does not include Premium functionality."),
        "",
        "Premium feature",
    ],
)
def test_a_402_always_says_the_quota_is_used_up_and_when_it_resets(
    toggl: TogglClient,
    toggl_sim: TogglSimulator,
    clock: FakeClock,
    headers: dict[str, str],
    resets_in: float | None,
    message: str,
    body: str,
) -> None:
    # Toggl's 402 body is unknown and has talked about "Premium" on Premium workspaces: the
    # status decides, the headers say when; the message is ours, on the client's clock (12:00).
    toggl_sim.faults.add(path="/api/v9/me", status=402, body=body, headers=headers)
    with pytest.raises(QuotaExceeded) as raised:
        toggl.me()
    assert raised.value.resets_in == resets_in
    assert str(raised.value).startswith("hourly API quota used up, ")
    assert str(raised.value).endswith(message)
    assert "Premium" not in str(raised.value)
    assert raised.value.toggl_message == (json.loads(body) if body.startswith('"') else body)


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


def test_a_range_older_than_the_accounts_floor_names_the_earliest_start(
    toggl: TogglClient, toggl_sim: TogglSimulator, toggl_url: str, clock: FakeClock
) -> None:
    # Alice's floor: 90 days before her local date (2026-03-10 in Berlin).
    with pytest.raises(StartDateTooEarly) as raised:
        toggl.time_entries_between(NOW - timedelta(days=120), NOW)
    assert isinstance(raised.value, InvalidRequest)
    assert str(raised.value) == "start_date must not be earlier than 2025-12-10"
    assert raised.value.earliest == date(2025, 12, 10)
    assert raised.value.status_code == 400
    assert toggl.time_entries_between(NOW - timedelta(days=89), NOW) == []

    veteran = toggl_sim.add_user(history_days=365)
    with TogglClient(veteran.api_token, base_url=toggl_url, clock=clock) as client:
        assert client.time_entries_between(NOW - timedelta(days=120), NOW) == []


@pytest.mark.parametrize(
    ("body", "earliest"),
    [
        ('"start_date must not be earlier than 2025-07-01"', date(2025, 7, 1)),
        ("start_date must not be earlier than 2025-07-01T00:00:00Z", date(2025, 7, 1)),
        ('"start_date must not be earlier than the retention limit"', None),
        ('"start_date must not be earlier than 2025-02-30"', None),
    ],
)
def test_the_floor_date_is_read_when_toggl_names_one(
    toggl: TogglClient, toggl_sim: TogglSimulator, body: str, earliest: date | None
) -> None:
    toggl_sim.faults.add(path="/api/v9/me/time_entries", status=400, body=body)
    with pytest.raises(StartDateTooEarly) as raised:
        toggl.time_entries(start_date=date(2025, 1, 1), end_date=date(2025, 1, 2))
    assert raised.value.earliest == earliest
    assert str(raised.value).startswith("start_date must not be earlier than ")


GATEWAY_REFUSAL = json.dumps({"error": {"code": "no_scope", "message": "no scope"}})
PROXY_PAGE = "<!DOCTYPE html><html><body>Bad gateway</body></html>"
STOPPED = "Time entry already stopped"


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (400, json.dumps('a "quoted" word & more'), InvalidRequest, 'a "quoted" word & more'),
        (400, "plain words\non two lines", InvalidRequest, "plain words on two lines"),
        (400, "", InvalidRequest, "400 Bad Request"),
        (409, json.dumps(STOPPED), InvalidRequest, STOPPED),
        (403, GATEWAY_REFUSAL, AuthenticationError, "no scope"),
        (404, json.dumps({"message": "gone"}), NotFound, "gone"),
        (401, "", AuthenticationError, "401 Unauthorized"),
        (502, PROXY_PAGE, ServerError, "502 Bad Gateway"),
        (400, json.dumps(["odd", "list"]), InvalidRequest, '["odd", "list"]'),
    ],
)
def test_every_error_body_becomes_a_short_readable_message(
    toggl_url: str,
    toggl_user: SimUser,
    toggl_sim: TogglSimulator,
    status: int,
    body: str,
    error: type[TogglError],
    message: str,
) -> None:
    toggl_sim.faults.add(path="/api/v9/me", status=status, body=body)
    with (
        TogglClient(toggl_user.api_token, base_url=toggl_url, retry=RetryPolicy.never()) as client,
        pytest.raises(error) as raised,
    ):
        client.me()
    assert raised.value.status_code == status
    assert str(raised.value) == message


def test_since_window_uses_the_injected_clock(toggl: TogglClient, clock: FakeClock) -> None:
    clock.advance(timedelta(days=200))
    with pytest.raises(ValueError, match="90 days"):
        toggl.time_entries(since=NOW)
