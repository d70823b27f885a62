"""What the web app's handlers share: the service state on `app.state`, how a request reaches
the `Bridge` and the settings, and the embedded scheduler as the service builds it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from fastapi import FastAPI, Request

from timebridge.bridge import Bridge, Skipped
from timebridge.clock import Clock
from timebridge.config import Settings
from timebridge.jobs import EmbeddedScheduler
from timebridge.store import Store
from timebridge.sync.runner import RunReport

#: The embedded scheduler as the service runs it: account ids, one sync result per run.
SyncScheduler = EmbeddedScheduler[int, RunReport | Skipped]


def build_scheduler(
    bridge: Bridge,
    settings: Settings,
    *,
    clock: Clock | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> SyncScheduler:
    """The embedded scheduler over `bridge`, on the settings' cron and concurrency."""
    return EmbeddedScheduler(
        cron=settings.sync_cron,
        list_users=bridge.users_to_sync,
        sync_user=bridge.sync,
        max_concurrency=settings.sync_concurrency,
        clock=clock,
        sleep=sleep,
    )


@dataclass
class ServiceState:
    """What the app's handlers share, kept on `app.state.timebridge`."""

    settings: Settings
    clock: Clock
    store: Store | None = None
    #: The application layer over `store`, for every route (set at startup).
    bridge: Bridge | None = None
    scheduler: SyncScheduler | None = None
    scheduler_enabled: bool = True
    scheduler_task: asyncio.Task[None] | None = None

    @property
    def scheduler_running(self) -> bool:
        return self.scheduler_task is not None and not self.scheduler_task.done()


def service_state(app: FastAPI) -> ServiceState:
    """The app's shared state (set by `create_app`)."""
    return cast(ServiceState, app.state.timebridge)


def bridge_of(request: Request) -> Bridge:
    """The application layer, for a route (set at startup)."""
    bridge = service_state(request.app).bridge
    if bridge is None:
        raise RuntimeError("the app has not started (no bridge yet)")
    return bridge


async def sync_now(request: Request, account_id: int) -> RunReport | Skipped:
    """ "Sync now" for a page or the API: the running scheduler's own run of the account when
    there is one (joining a sync already under way, and keeping its quota wait), else the
    Bridge's. A client that goes away does not cancel the run."""
    state = service_state(request.app)
    scheduler = state.scheduler
    if scheduler is not None and state.scheduler_running:
        return await asyncio.shield(scheduler.sync_now(account_id))
    return await bridge_of(request).sync(account_id)


def settings_of(request: Request) -> Settings:
    return service_state(request.app).settings


__all__ = [
    "ServiceState",
    "SyncScheduler",
    "bridge_of",
    "build_scheduler",
    "service_state",
    "settings_of",
    "sync_now",
]
