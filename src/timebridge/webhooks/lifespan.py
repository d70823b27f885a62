"""The receiver's state for the app's lifetime, and which engine its syncs go through.

- the embedded scheduler runs (`serve`): its runs, one per user at a time, through a
  `Coalescer`; the daily upkeep (with the webhook check) is the app's own;
- no scheduler here, PostgreSQL with the job queue's schema (`serve --no-scheduler` beside
  `timebridge worker`s): a `QueuedTrigger` queues a job due a few seconds later, and the
  workers' daily upkeep checks the webhooks;
- otherwise: an on-demand embedded scheduler (no cron), so events still become runs.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime

from fastapi import FastAPI

from timebridge.bridge import Bridge
from timebridge.config import Settings
from timebridge.webhooks.coalesce import Coalescer, QueuedTrigger, Trigger
from timebridge.webhooks.receiver import WebhookReceiver

logger = logging.getLogger(__name__)


def install_lifespan(app: FastAPI) -> None:
    """Start the receiver after the app's own startup (the bridge exists then); stop it
    before the app's shutdown."""
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from timebridge.web.state import build_scheduler, service_state

        async with inner(app), contextlib.AsyncExitStack() as stack:
            service = service_state(app)
            bridge, store = service.bridge, service.store
            assert bridge is not None and store is not None
            settings = service.settings
            window = settings.webhook_coalesce_seconds
            trigger: Trigger
            if service.scheduler_enabled and service.scheduler is not None:
                trigger = Coalescer(service.scheduler, window=window, clock=service.clock)
            elif await _queue_ready(settings):
                trigger = await _queued(stack, settings, bridge, window)
            else:
                on_demand = build_scheduler(bridge, settings, clock=service.clock)
                trigger = Coalescer(on_demand, window=window, clock=service.clock)
            stack.push_async_callback(trigger.aclose)
            receiver = WebhookReceiver(store=store, trigger=trigger)
            bridge.webhooks.on_forget(receiver.forget_endpoint)
            app.state.webhooks = receiver
            if settings.callback_url is None:
                logger.info(
                    "Toggl webhooks are off: TIMEBRIDGE_PUBLIC_URL is not set (Toggl needs "
                    "an address to call); users are synced on the schedule"
                )
            try:
                yield
            finally:
                app.state.webhooks = None

    app.router.lifespan_context = lifespan


async def _queue_ready(settings: Settings) -> bool:
    if settings.is_sqlite:
        return False
    from timebridge.jobs.distributed import schema_exists

    try:
        return await schema_exists(settings.database_url)
    except Exception as exc:
        logger.warning("job queue unreachable: %s", type(exc).__name__)
        return False


async def _queued(
    stack: contextlib.AsyncExitStack, settings: Settings, bridge: Bridge, window: float
) -> QueuedTrigger:
    from timebridge.jobs import distributed

    queue_app = distributed.build_app(settings, pool_size=2)
    await stack.enter_async_context(queue_app.open_async())

    async def queue(account_id: int, at: datetime) -> datetime | None:
        held = await bridge.quota_wait(account_id)
        placed = await distributed.sync_soon(
            queue_app, account_id, at=max(at, held) if held is not None else at
        )
        return placed.scheduled_at

    return QueuedTrigger(queue, window=window, clock=bridge.upstreams.clock)


__all__ = ["install_lifespan"]
