"""From webhook events to syncs: the events of a few seconds make one run of the user.

`Coalescer` (the embedded engine) keeps one pending run per account: the first event schedules
it `window` seconds later, and the events until it starts join it. A run already under way when
it is due may have fetched before the event, so it is waited for and a fresh run follows; an
account whose quota is spent waits for the reset the scheduler knows of. `QueuedTrigger` (the
distributed engine) queues a job due `window` seconds later instead: the user's queueing lock
lets one job wait at a time, so later events find it waiting and are covered by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Protocol

from timebridge.clock import Clock, SystemClock

logger = logging.getLogger(__name__)


class Trigger(Protocol):
    """What the receiver calls for an event that concerns an account: a sync, soon."""

    def soon(self, account_id: int) -> None: ...

    async def aclose(self) -> None: ...


class Runs(Protocol):
    """The runs the coalescer starts (the embedded scheduler)."""

    def running(self, user: int) -> asyncio.Task[object] | None: ...

    def sync_now(self, user: int) -> Awaitable[object]: ...

    def not_before(self, user: int) -> datetime | None: ...


class Coalescer:
    """One run per account for the events of `window` seconds (see the module docstring)."""

    def __init__(
        self,
        runs: Runs,
        *,
        window: float,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._runs = runs
        self.window = window
        self._clock = clock or SystemClock()
        self._sleep = sleep
        self._due: dict[int, asyncio.Task[None]] = {}

    def pending(self, account_id: int) -> bool:
        """Whether a run of the account is due and not started yet."""
        return account_id in self._due

    def soon(self, account_id: int) -> None:
        if account_id not in self._due:
            self._due[account_id] = asyncio.create_task(
                self._flush(account_id), name=f"webhook-sync-{account_id}"
            )

    async def _flush(self, account_id: int) -> None:
        try:
            await self._sleep(self.window)
            held = self._runs.not_before(account_id)
            now = self._clock.now()
            if held is not None and held > now:
                await self._sleep((held - now).total_seconds())
            while (running := self._runs.running(account_id)) is not None:
                await asyncio.wait({running})
            # From here on an event needs a run that starts after it: a new one.
            del self._due[account_id]
            await self._runs.sync_now(account_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("webhook-triggered sync failed", extra={"user_id": account_id})
        finally:
            if self._due.get(account_id) is asyncio.current_task():
                del self._due[account_id]

    async def aclose(self) -> None:
        """Cancel the runs not started yet (the scheduled syncs cover them)."""
        tasks = list(self._due.values())
        self._due.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


class QueuedTrigger:
    """The distributed engine's trigger: a job due `window` seconds after the event.

    `queue(account_id, at)` places the job (`jobs.distributed.sync_soon`); an account whose job
    is known to wait until after now is not queued again from this process (its job covers the
    event, and the database is spared a write per event)."""

    def __init__(
        self,
        queue: Callable[[int, datetime], Awaitable[datetime | None]],
        *,
        window: float,
        clock: Clock | None = None,
    ) -> None:
        self._queue = queue
        self.window = timedelta(seconds=window)
        self._clock = clock or SystemClock()
        self._waiting_until: dict[int, datetime] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def soon(self, account_id: int) -> None:
        now = self._clock.now()
        until = self._waiting_until.get(account_id)
        if until is not None and now < until:
            return
        task = asyncio.create_task(self._place(account_id, now + self.window))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _place(self, account_id: int, at: datetime) -> None:
        try:
            starts = await self._queue(account_id, at)
        except Exception:
            logger.exception(
                "could not queue a webhook-triggered sync", extra={"user_id": account_id}
            )
            return
        if starts is not None:
            # A margin: the job may start a moment early on a worker's clock.
            self._waiting_until[account_id] = starts - timedelta(milliseconds=500)
        if len(self._waiting_until) > 100_000:
            self._waiting_until.clear()

    async def aclose(self) -> None:
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


__all__ = ["Coalescer", "QueuedTrigger", "Runs", "Trigger"]
