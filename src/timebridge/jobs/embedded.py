"""The embedded scheduler: syncs every connected user on a cron schedule, inside `serve`.

It is for one machine (a laptop, a small server): one asyncio task loop, no database locks. It
keeps the same promises the distributed engine keeps at scale:
- never two runs of one user at once (a "sync now" during a run joins that run);
- a bounded number of users synced concurrently;
- a user whose last run said "not before" (Toggl's hourly quota spent) is skipped until then;
- one user's failure never stops another's sync or the scheduler.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from croniter import CroniterBadCronError, croniter

from timebridge.clock import Clock, SystemClock

logger = logging.getLogger(__name__)

UserKey = TypeVar("UserKey", bound=Hashable)


class HasNextSync(Protocol):
    """What the scheduler reads from a run's result: when the user may sync again, and
    whether the run failed (a cycle's summary counts it)."""

    @property
    def next_sync_after(self) -> datetime | None: ...

    @property
    def failed(self) -> bool: ...


Result = TypeVar("Result", bound=HasNextSync)


#: When the daily purge runs (UTC): old ledger and entry rows, old run records.
PURGE_CRON = "17 4 * * *"


def next_fire_time(cron: str, after: datetime) -> datetime:
    """The first instant strictly after `after` that matches `cron` (evaluated in UTC)."""
    try:
        return croniter(cron, after).get_next(datetime)
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        raise ValueError(f"invalid cron expression {cron!r}: {exc}") from None


@dataclass
class CycleReport(Generic[UserKey]):
    """What one scheduled cycle did."""

    started_at: datetime
    synced: list[UserKey] = field(default_factory=list)
    failed: list[UserKey] = field(default_factory=list)
    #: Users skipped because their quota wait has not passed yet.
    deferred: list[UserKey] = field(default_factory=list)
    #: Users skipped because a run of theirs was already in progress.
    busy: list[UserKey] = field(default_factory=list)


class EmbeddedScheduler(Generic[UserKey, Result]):
    """Runs `sync_user` for every user of `list_users` at each `cron` time, and on demand."""

    def __init__(
        self,
        *,
        cron: str,
        list_users: Callable[[], Awaitable[Sequence[UserKey]]],
        sync_user: Callable[[UserKey], Awaitable[Result]],
        max_concurrency: int = 8,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.cron = cron
        self._clock = clock or SystemClock()
        next_fire_time(cron, self._clock.now())  # refuse a bad expression at construction
        self._list_users = list_users
        self._sync_user = sync_user
        self._slots = asyncio.Semaphore(max_concurrency)
        self._sleep = sleep
        self._running: dict[UserKey, asyncio.Task[Result]] = {}
        self._not_before: dict[UserKey, datetime] = {}

    def is_running(self, user: UserKey) -> bool:
        return user in self._running

    def running(self, user: UserKey) -> asyncio.Task[Result] | None:
        """The user's run in progress, if any."""
        return self._running.get(user)

    def not_before(self, user: UserKey) -> datetime | None:
        return self._not_before.get(user)

    def sync_now(self, user: UserKey) -> asyncio.Task[Result]:
        """Start a sync of `user` now, or return the one already running (never two at once).

        "Sync now" is the user's explicit wish, so it does not wait for a quota reset: the run
        itself will report the 402 if the quota is still spent.
        """
        running = self._running.get(user)
        if running is not None:
            return running
        task = asyncio.create_task(self._guarded(user), name=f"sync-user-{user}")
        self._running[user] = task
        return task

    async def _guarded(self, user: UserKey) -> Result:
        try:
            async with self._slots:
                result = await self._sync_user(user)
        finally:
            # Inside the task, not in a done-callback: a callback runs only on a later loop
            # turn, and a cycle starting before then would wrongly see the user as busy.
            if self._running.get(user) is asyncio.current_task():
                del self._running[user]
        if result.next_sync_after is not None:
            self._not_before[user] = result.next_sync_after
        else:
            self._not_before.pop(user, None)
        return result

    async def run_cycle(self) -> CycleReport[UserKey]:
        """Sync every user once (those not deferred or busy), at most `max_concurrency` at once."""
        now = self._clock.now()
        report: CycleReport[UserKey] = CycleReport(started_at=now)
        tasks: dict[UserKey, asyncio.Task[Result]] = {}
        for user in await self._list_users():
            wait_until = self._not_before.get(user)
            if wait_until is not None and wait_until > now:
                report.deferred.append(user)
            elif user in self._running:
                report.busy.append(user)
            else:
                tasks[user] = self.sync_now(user)
        for user, task in tasks.items():
            try:
                await task
            except Exception:
                logger.exception("sync of user %s failed", user)
                report.failed.append(user)
            else:
                (report.failed if task.result().failed else report.synced).append(user)
        return report

    async def run_forever(self) -> None:
        """Sleep until each cron time and run a cycle, until cancelled."""
        while True:
            now = self._clock.now()
            fire_at = next_fire_time(self.cron, now)
            await self._sleep(max(0.0, (fire_at - now).total_seconds()))
            try:
                report = await self.run_cycle()
            except Exception:
                # Listing users failed (the database is down?): try again at the next time.
                logger.exception("scheduled sync cycle failed")
                continue
            logger.info(
                "sync cycle: %d synced, %d failed, %d deferred, %d busy",
                len(report.synced),
                len(report.failed),
                len(report.deferred),
                len(report.busy),
            )


async def run_on_cron(
    cron: str,
    job: Callable[[], Awaitable[object]],
    *,
    clock: Clock | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Run `job` at each `cron` time until cancelled; a failing run is logged and the next
    one comes at the next time (the daily purge of `serve`)."""
    clock = clock or SystemClock()
    while True:
        now = clock.now()
        await sleep(max(0.0, (next_fire_time(cron, now) - now).total_seconds()))
        try:
            await job()
        except Exception:
            logger.exception("scheduled job failed; it runs again at the next time")
