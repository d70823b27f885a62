"""The embedded scheduler keeps the cadence and never runs one user twice at once."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from timebridge.clock import FakeClock
from timebridge.jobs import EmbeddedScheduler, next_fire_time, run_on_cron


@dataclass(frozen=True)
class Result:
    next_sync_after: datetime | None = None
    failed: bool = False


def test_default_cadence_is_forty_past_every_hour() -> None:
    at = datetime(2026, 3, 10, 12, 5, tzinfo=UTC)
    assert next_fire_time("40 * * * *", at) == datetime(2026, 3, 10, 12, 40, tzinfo=UTC)
    assert next_fire_time("40 * * * *", at.replace(minute=40)) == datetime(
        2026, 3, 10, 13, 40, tzinfo=UTC
    )


def test_a_bad_cron_expression_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="invalid cron expression"):
        EmbeddedScheduler(
            cron="every hour", list_users=_users([]), sync_user=_ok, clock=FakeClock()
        )


def _users(users: list[int]):  # type: ignore[no-untyped-def]
    async def list_users() -> list[int]:
        return users

    return list_users


async def _ok(user: int) -> Result:
    return Result()


async def test_cycles_fire_at_the_cron_times() -> None:
    clock = FakeClock(datetime(2026, 3, 10, 12, 5, tzinfo=UTC))
    fired: list[datetime] = []

    async def sync(user: int) -> Result:
        fired.append(clock.now())
        return Result()

    async def fake_sleep(seconds: float) -> None:
        clock.advance(seconds)
        if len(fired) >= 2:
            raise asyncio.CancelledError

    scheduler = EmbeddedScheduler(
        cron="40 * * * *", list_users=_users([1]), sync_user=sync, clock=clock, sleep=fake_sleep
    )
    with pytest.raises(asyncio.CancelledError):
        await scheduler.run_forever()
    assert fired == [
        datetime(2026, 3, 10, 12, 40, tzinfo=UTC),
        datetime(2026, 3, 10, 13, 40, tzinfo=UTC),
    ]


async def test_concurrency_is_bounded() -> None:
    active = 0
    peak = 0

    async def sync(user: int) -> Result:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        return Result()

    scheduler = EmbeddedScheduler(
        cron="40 * * * *", list_users=_users(list(range(10))), sync_user=sync, max_concurrency=3
    )
    report = await scheduler.run_cycle()
    assert sorted(report.synced) == list(range(10))
    assert peak == 3


async def test_sync_now_during_a_run_joins_it_instead_of_starting_another() -> None:
    release = asyncio.Event()
    runs = 0

    async def sync(user: int) -> Result:
        nonlocal runs
        runs += 1
        await release.wait()
        return Result()

    scheduler = EmbeddedScheduler(cron="40 * * * *", list_users=_users([7]), sync_user=sync)
    first = scheduler.sync_now(7)
    second = scheduler.sync_now(7)
    assert first is second
    cycle = asyncio.create_task(scheduler.run_cycle())
    await asyncio.sleep(0)
    release.set()
    report = await cycle
    await first
    assert runs == 1
    assert report.busy == [7]
    assert not scheduler.is_running(7)


async def test_quota_wait_defers_the_user_until_the_reset() -> None:
    clock = FakeClock(datetime(2026, 3, 10, 12, 40, tzinfo=UTC))
    reset = clock.now() + timedelta(minutes=30)
    runs: list[int] = []

    async def sync(user: int) -> Result:
        runs.append(user)
        return Result(next_sync_after=reset if user == 1 and len(runs) == 1 else None)

    scheduler = EmbeddedScheduler(
        cron="40 * * * *", list_users=_users([1, 2]), sync_user=sync, clock=clock
    )
    await scheduler.run_cycle()
    clock.advance(timedelta(minutes=20))
    second = await scheduler.run_cycle()
    assert second.deferred == [1]
    assert second.synced == [2]
    clock.advance(timedelta(minutes=15))
    third = await scheduler.run_cycle()
    assert sorted(third.synced) == [1, 2]
    assert scheduler.not_before(1) is None


async def test_one_users_failure_does_not_stop_the_others() -> None:
    async def sync(user: int) -> Result:
        if user == 2:
            raise RuntimeError("boom")
        return Result()

    scheduler = EmbeddedScheduler(cron="40 * * * *", list_users=_users([1, 2, 3]), sync_user=sync)
    report = await scheduler.run_cycle()
    assert report.synced == [1, 3]
    assert report.failed == [2]


async def test_a_run_that_ends_failed_counts_as_failed_in_the_cycle() -> None:
    async def sync(user: int) -> Result:
        return Result(failed=user == 3)  # say, Toggl answered 404 to user 3's run

    scheduler = EmbeddedScheduler(cron="40 * * * *", list_users=_users([1, 2, 3]), sync_user=sync)
    report = await scheduler.run_cycle()
    assert report.synced == [1, 2]
    assert report.failed == [3]


async def test_run_on_cron_runs_the_job_at_each_time_and_survives_its_failure() -> None:
    clock = FakeClock(datetime(2026, 3, 10, 4, 0, tzinfo=UTC))
    ran: list[datetime] = []
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(timedelta(seconds=seconds))
        if len(slept) > 3:
            raise asyncio.CancelledError

    async def job() -> None:
        ran.append(clock.now())
        if len(ran) == 1:
            raise RuntimeError("the database went away")

    with pytest.raises(asyncio.CancelledError):
        await run_on_cron("17 4 * * *", job, clock=clock, sleep=sleep)
    first = datetime(2026, 3, 10, 4, 17, tzinfo=UTC)
    assert ran == [first, first + timedelta(days=1), first + timedelta(days=2)]


async def test_a_failed_user_listing_does_not_kill_the_scheduler() -> None:
    clock = FakeClock(datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
    attempts = 0

    async def list_users() -> list[int]:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("database down")
        return [1]

    synced: list[datetime] = []

    async def sync(user: int) -> Result:
        synced.append(clock.now())
        return Result()

    async def fake_sleep(seconds: float) -> None:
        clock.advance(seconds)
        if synced:
            raise asyncio.CancelledError

    scheduler = EmbeddedScheduler(
        cron="40 * * * *", list_users=list_users, sync_user=sync, clock=clock, sleep=fake_sleep
    )
    with pytest.raises(asyncio.CancelledError):
        await scheduler.run_forever()
    assert synced == [datetime(2026, 3, 10, 13, 40, tzinfo=UTC)]
