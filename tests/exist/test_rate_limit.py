"""Exist's 300 requests an hour per token, on the simulator's fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from timebridge.clock import FakeClock
from timebridge.exist import ExistClient, RateLimited
from timebridge.fakes.exist import RATE_LIMIT, ExistSimulator
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
