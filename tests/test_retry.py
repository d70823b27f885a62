"""The retry policy's decisions, which every client relies on."""

from __future__ import annotations

import random

import pytest

from timebridge.retry import RetryPolicy, RetryReason


def test_gives_up_after_the_configured_attempts() -> None:
    policy = RetryPolicy(attempts=3, rng=random.Random(1))
    assert policy.next_delay(RetryReason.SERVER_ERROR, 1, idempotent=True) is not None
    assert policy.next_delay(RetryReason.SERVER_ERROR, 2, idempotent=True) is not None
    assert policy.next_delay(RetryReason.SERVER_ERROR, 3, idempotent=True) is None


def test_failures_that_cannot_be_helped_are_not_retried() -> None:
    assert RetryPolicy().next_delay(None, 1, idempotent=True) is None


@pytest.mark.parametrize("reason", [RetryReason.SERVER_ERROR, RetryReason.NO_ANSWER])
def test_writes_that_may_have_happened_are_not_repeated(reason: RetryReason) -> None:
    assert RetryPolicy().next_delay(reason, 1, idempotent=False) is None


@pytest.mark.parametrize("reason", [RetryReason.RATE_LIMITED, RetryReason.CONNECT_FAILED])
def test_writes_that_surely_did_not_happen_are_repeated(reason: RetryReason) -> None:
    assert RetryPolicy().next_delay(reason, 1, idempotent=False) is not None


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(attempts=10, initial_delay=1, max_delay=5, jitter=0.2)
    delays = [
        policy.next_delay(RetryReason.SERVER_ERROR, attempt, idempotent=True)
        for attempt in range(1, 7)
    ]
    assert all(delay is not None for delay in delays)
    bounds = [(0.8, 1.2), (1.6, 2.4), (3.2, 4.8), (4, 6), (4, 6), (4, 6)]
    for delay, (low, high) in zip(delays, bounds, strict=True):
        assert delay is not None and low <= delay <= high


def test_retry_after_is_honoured_unless_too_long() -> None:
    policy = RetryPolicy(max_retry_after=30)
    assert policy.next_delay(RetryReason.RATE_LIMITED, 1, idempotent=True, retry_after=7) == 7
    assert policy.next_delay(RetryReason.RATE_LIMITED, 1, idempotent=True, retry_after=31) is None


def test_test_mode_never_waits_but_decides_the_same() -> None:
    policy = RetryPolicy.testing(attempts=2)
    assert policy.next_delay(RetryReason.RATE_LIMITED, 1, idempotent=True, retry_after=9) == 0
    assert policy.next_delay(RetryReason.RATE_LIMITED, 2, idempotent=True) is None


def test_nonsense_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)


@pytest.mark.parametrize("idempotent", [True, False])
def test_a_429_without_retry_after_falls_back_to_the_jittered_backoff(idempotent: bool) -> None:
    policy = RetryPolicy(attempts=3, initial_delay=2, multiplier=3, jitter=0.5)
    first = policy.next_delay(RetryReason.RATE_LIMITED, 1, idempotent=idempotent)
    second = policy.next_delay(RetryReason.RATE_LIMITED, 2, idempotent=idempotent)
    assert first is not None and 1 <= first <= 3
    assert second is not None and 3 <= second <= 9
    assert policy.next_delay(RetryReason.RATE_LIMITED, 3, idempotent=idempotent) is None
