"""The coalescer's promises, against a stand-in for the scheduler whose runs take real (short)
time: the events of a window make one run; an event during a run gets a run that starts after
it; runs of one user never overlap; a spent quota is waited out."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from timebridge.clock import FakeClock
from timebridge.webhooks.coalesce import Coalescer

NOW = datetime.fromisoformat("2026-03-10T12:00:00+00:00")


class Runs:
    """Runs that take `duration` seconds; records when each started and ended."""

    def __init__(self, duration: float = 0.05) -> None:
        self.duration = duration
        self.spans: list[tuple[float, float]] = []
        self._running: dict[int, asyncio.Task[object]] = {}
        self.held: datetime | None = None

    def running(self, user: int) -> asyncio.Task[object] | None:
        return self._running.get(user)

    def not_before(self, user: int) -> datetime | None:
        return self.held

    def sync_now(self, user: int) -> asyncio.Task[object]:
        if user in self._running:
            return self._running[user]
        task = asyncio.create_task(self._run(user))
        self._running[user] = task
        return task

    async def _run(self, user: int) -> object:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.sleep(self.duration)
        self.spans.append((started, loop.time()))
        del self._running[user]
        return None


async def settle(coalescer: Coalescer, runs: Runs, user: int = 1) -> None:
    for _ in range(200):
        if not coalescer.pending(user) and runs.running(user) is None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("did not settle")


async def test_the_events_of_one_window_make_one_run() -> None:
    runs = Runs()
    coalescer = Coalescer(runs, window=0.1, clock=FakeClock(NOW))
    for _ in range(20):
        coalescer.soon(1)
        await asyncio.sleep(0.002)
    await settle(coalescer, runs)
    assert len(runs.spans) == 1


async def test_an_event_during_a_run_gets_a_run_that_starts_after_it() -> None:
    runs = Runs(duration=0.2)
    coalescer = Coalescer(runs, window=0.01, clock=FakeClock(NOW))
    loop = asyncio.get_running_loop()
    runs.sync_now(1)  # a scheduled run under way, which fetched before the event
    await asyncio.sleep(0.05)
    event_at = loop.time()
    coalescer.soon(1)
    await settle(coalescer, runs)
    assert len(runs.spans) == 2
    (_, first_end), (second_start, _) = sorted(runs.spans)
    assert second_start >= first_end, "never two runs of a user at once"
    assert second_start > event_at


async def test_users_are_gathered_separately() -> None:
    runs = Runs()
    coalescer = Coalescer(runs, window=0.05, clock=FakeClock(NOW))
    coalescer.soon(1)
    coalescer.soon(2)
    coalescer.soon(1)
    await settle(coalescer, runs, 1)
    await settle(coalescer, runs, 2)
    assert len(runs.spans) == 2


async def test_a_spent_quota_is_waited_out_before_the_run() -> None:
    runs = Runs()
    clock = FakeClock(NOW)
    runs.held = NOW + timedelta(minutes=20)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(0)

    coalescer = Coalescer(runs, window=3.0, clock=clock, sleep=sleep)
    coalescer.soon(1)
    await settle(coalescer, runs)
    assert slept == [3.0, 20 * 60]
    assert len(runs.spans) == 1


async def test_closing_cancels_runs_not_started() -> None:
    runs = Runs()
    coalescer = Coalescer(runs, window=5.0, clock=FakeClock(NOW))
    coalescer.soon(1)
    await coalescer.aclose()
    await asyncio.sleep(0.05)
    assert runs.spans == [] and not coalescer.pending(1)
