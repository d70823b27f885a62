"""Exist's 300 requests an hour per token, on the simulator's fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from timebridge.clock import FakeClock
from timebridge.exist import AcquireItem, ExistClient, RateLimited
from timebridge.fakes.exist import RATE_LIMIT, ExistSimulator, SimUser
from timebridge.retry import RetryPolicy


@pytest.fixture
def plain(personal_token: str, api_url: str, clock: FakeClock) -> Iterator[ExistClient]:
    with ExistClient(
        personal_token, base_url=api_url, retry=RetryPolicy.never(), clock=clock
    ) as client:
        yield client


def test_the_301st_request_in_an_hour_is_a_429_with_retry_after(
    plain: ExistClient, exist_sim: ExistSimulator, clock: FakeClock
) -> None:
    for _ in range(RATE_LIMIT):
        plain.profile()
    clock.advance(timedelta(minutes=10))
    with pytest.raises(RateLimited) as raised:
        plain.profile()
    assert raised.value.status_code == 429
    assert raised.value.retry_after == 50 * 60
    assert exist_sim.requests[-1].status == 429


def test_the_limit_recovers_as_the_window_slides(plain: ExistClient, clock: FakeClock) -> None:
    for _ in range(RATE_LIMIT // 2):
        plain.profile()
    clock.advance(timedelta(minutes=30))
    for _ in range(RATE_LIMIT // 2):
        plain.profile()
    with pytest.raises(RateLimited):
        plain.profile()
    # The first half leaves the hour window; the second half still counts.
    clock.advance(timedelta(minutes=30, seconds=1))
    for _ in range(RATE_LIMIT // 2):
        plain.profile()
    with pytest.raises(RateLimited) as raised:
        plain.profile()
    assert raised.value.retry_after == 30 * 60 - 1


def test_a_short_retry_after_is_waited_out_by_the_policy(
    personal_token: str, api_url: str, exist_sim: ExistSimulator
) -> None:
    exist_sim.faults.add(
        path="/api/2/accounts/profile/",
        status=429,
        body='{"detail": "Request was throttled."}',
        headers={"Retry-After": "1"},
        times=1,
    )
    with ExistClient(personal_token, base_url=api_url, retry=RetryPolicy.testing()) as client:
        assert client.profile().username == "alice"
    assert [r.status for r in exist_sim.requests] == [200]


@pytest.fixture
def no_retry_after(exist_sim: ExistSimulator) -> ExistSimulator:
    # Exist documents no rate-limit headers: the simulator can answer a bare 429.
    exist_sim.retry_after_on_429 = False
    return exist_sim


def test_a_429_may_come_without_retry_after(
    plain: ExistClient, no_retry_after: ExistSimulator, api_url: str, personal_token: str
) -> None:
    for _ in range(RATE_LIMIT):
        plain.profile()
    raw = httpx.get(
        f"{api_url}accounts/profile/", headers={"Authorization": f"Bearer {personal_token}"}
    )
    assert raw.status_code == 429
    assert "retry-after" not in raw.headers
    with pytest.raises(RateLimited) as raised:
        plain.profile()
    assert raised.value.retry_after is None


def test_without_retry_after_the_client_backs_off_a_bounded_number_of_times(
    personal_token: str, api_url: str, no_retry_after: ExistSimulator, clock: FakeClock
) -> None:
    with ExistClient(
        personal_token, base_url=api_url, retry=RetryPolicy.never(), clock=clock
    ) as plain:
        for _ in range(RATE_LIMIT):
            plain.profile()
    no_retry_after.clear_requests()
    with (
        ExistClient(personal_token, base_url=api_url, retry=RetryPolicy.testing(3)) as client,
        pytest.raises(RateLimited) as raised,
    ):
        client.profile()
    assert raised.value.retry_after is None
    # Three attempts, then the caller hears of it; never a tight loop against the limit.
    assert [r.status for r in no_retry_after.requests] == [429, 429, 429]
    clock.advance(timedelta(hours=1))
    with ExistClient(personal_token, base_url=api_url, retry=RetryPolicy.testing(3)) as client:
        assert client.profile().username == "alice"


@pytest.mark.parametrize("body", ["", '{"detail": "Request was throttled."}', "Too many"])
def test_a_bare_429_on_a_write_is_retried_because_nothing_happened(
    personal_token: str, api_url: str, exist_sim: ExistSimulator, user: SimUser, body: str
) -> None:
    # A 429 means the request was not processed, so even a non-idempotent acquire may be sent
    # again; with no Retry-After the policy's own backoff decides when.
    exist_sim.faults.add(
        method="POST", path="/api/2/attributes/acquire/", status=429, body=body, times=1
    )
    with ExistClient(personal_token, base_url=api_url, retry=RetryPolicy.testing()) as client:
        assert client.acquire([AcquireItem(template="tv_min")]).ok
    assert [r.status for r in exist_sim.requests_to("attributes/acquire/")] == [200]
    owner = exist_sim.attribute(user.username, "tv_min").service
    assert owner is not None and owner.name == "timebridge"


def test_a_bare_429_that_persists_is_raised_with_a_readable_message(
    personal_token: str, api_url: str, exist_sim: ExistSimulator
) -> None:
    exist_sim.faults.add(path="/api/2/accounts/profile/", status=429, body="")
    with (
        ExistClient(personal_token, base_url=api_url, retry=RetryPolicy.testing(2)) as client,
        pytest.raises(RateLimited) as raised,
    ):
        client.profile()
    assert raised.value.status_code == 429
    assert raised.value.retry_after is None
    assert "rate limited" in str(raised.value)
