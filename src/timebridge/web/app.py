"""The ASGI app of `timebridge serve`: health, metrics, and the embedded scheduler's lifetime.

The app owns what it opened: given no store it opens the one the settings describe (migrating
the embedded default) and closes it on shutdown; given no scheduler it runs the embedded one
over the `Bridge`, so that one `timebridge serve` keeps every connected user in sync, and does
the daily upkeep (purge, webhook check). Tests pass their own store or scheduler instead. The
pages, the sign-in routes and the JSON API are routers (`web/auth.py`, `web/pages.py`,
`web/api.py`) on this base; the gateway and the webhook receiver install themselves on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Literal

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel
from sqlalchemy.engine import Connection

from timebridge import __version__, metrics
from timebridge._pool import ConnectionPool
from timebridge.bridge import Bridge
from timebridge.clock import Clock, SystemClock
from timebridge.config import Settings
from timebridge.jobs import PURGE_CRON, next_fire_time, run_on_cron
from timebridge.retry import RetryPolicy
from timebridge.store import Store, open_store
from timebridge.web.state import ServiceState, SyncScheduler, build_scheduler, service_state

# Standard-library logging, as everywhere in the package: `timebridge.logs` renders it as
# structured lines, and nothing is printed when the host application configured nothing.
logger = logging.getLogger(__name__)

#: How long `/healthz` waits for the database before calling it unreachable (a probe that
#: hangs is worse than one that says no).
DATABASE_PING_TIMEOUT = 2.0


class DatabaseHealth(BaseModel):
    reachable: bool
    #: "sqlite" or "postgresql"; never the URL (it may name hosts and users).
    backend: str | None


class SchedulerHealth(BaseModel):
    enabled: bool
    running: bool
    cron: str | None
    next_cycle_at: datetime | None


class Health(BaseModel):
    """`/healthz`: 200 when everything the service needs works, 503 (same body) when not."""

    status: Literal["ok", "degraded"]
    version: str
    database: DatabaseHealth
    scheduler: SchedulerHealth


def _ping(connection: Connection) -> None:
    # The driver's own ping, outside any transaction: on SQLite a transaction would begin
    # IMMEDIATE and queue behind a sync's write for nothing.
    dbapi_connection = connection.connection.dbapi_connection
    if dbapi_connection is None or not connection.dialect.do_ping(dbapi_connection):
        raise ConnectionError("the database did not answer the ping")


async def database_reachable(store: Store, within: float = DATABASE_PING_TIMEOUT) -> bool:
    """Whether the store's database answers within `within` seconds."""
    try:
        async with asyncio.timeout(within), store.database.engine.connect() as connection:
            await connection.run_sync(_ping)
    except Exception as exc:
        logger.warning("database unreachable", extra={"error": type(exc).__name__})
        return False
    return True


async def _run_scheduler(scheduler: SyncScheduler) -> None:
    try:
        await scheduler.run_forever()
    except asyncio.CancelledError:
        raise
    except Exception:
        # `/healthz` turns 503 from here on: the scheduler is a promise the service keeps.
        logger.exception("the embedded scheduler stopped")
        raise


def _lifespan(
    retry: RetryPolicy | None,
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = service_state(app)
        opened: Store | None = None
        purging: asyncio.Task[None] | None = None
        if state.store is None:
            opened = state.store = await open_store(state.settings, clock=state.clock)
        pool = ConnectionPool()
        bridge = state.bridge = Bridge.from_settings(
            state.store, state.settings, clock=state.clock, retry=retry, pool=pool
        )
        try:
            if state.scheduler_enabled:
                if state.scheduler is None:
                    state.scheduler = build_scheduler(bridge, state.settings, clock=state.clock)
                state.scheduler_task = asyncio.create_task(
                    _run_scheduler(state.scheduler), name="timebridge-embedded-scheduler"
                )
                logger.info("embedded scheduler started", extra={"cron": state.scheduler.cron})
                # Workers do the daily upkeep at scale; here the service does.
                purging = asyncio.create_task(
                    run_on_cron(PURGE_CRON, bridge.daily_upkeep, clock=state.clock),
                    name="timebridge-daily-upkeep",
                )
            yield
        finally:
            task, state.scheduler_task = state.scheduler_task, None
            for running in (task, purging):
                if running is not None:
                    running.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await running
            state.bridge = None
            await pool.aclose()
            if opened is not None:
                await opened.close()
                state.store = None

    return lifespan


def create_app(
    settings: Settings | None = None,
    *,
    store: Store | None = None,
    scheduler: SyncScheduler | None = None,
    run_scheduler: bool = True,
    clock: Clock | None = None,
    retry: RetryPolicy | None = None,
) -> FastAPI:
    """The service's ASGI app.

    `store`: used as given and left open (the caller owns it); otherwise opened from
    `settings` at startup and closed at shutdown. `scheduler`: run instead of the embedded one
    built over the `Bridge`. `run_scheduler=False` (`serve --no-scheduler`) runs none, for
    deployments where `timebridge worker` processes sync users.
    """
    settings = settings or Settings()
    app = FastAPI(
        title="Timebridge",
        version=__version__,
        summary="Toggl Track time into Exist.io.",
        lifespan=_lifespan(retry),
        # Served below from the app's own files: nothing is loaded from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.timebridge = ServiceState(
        settings=settings,
        clock=clock or SystemClock(),
        store=store,
        scheduler=scheduler if run_scheduler else None,
        scheduler_enabled=run_scheduler,
    )

    @app.get("/healthz", response_model=Health, tags=["operations"])
    async def healthz(request: Request, response: Response) -> Health:
        """Liveness and readiness: the database answers, the scheduler (if enabled) runs."""
        state = service_state(request.app)
        reachable = state.store is not None and await database_reachable(state.store)
        scheduler = state.scheduler
        running = state.scheduler_running
        healthy = reachable and (running or not state.scheduler_enabled)
        if not healthy:
            response.status_code = 503
        return Health(
            status="ok" if healthy else "degraded",
            version=__version__,
            database=DatabaseHealth(
                reachable=reachable,
                backend=state.store.database.dialect if state.store is not None else None,
            ),
            scheduler=SchedulerHealth(
                enabled=state.scheduler_enabled,
                running=running,
                cron=scheduler.cron if scheduler is not None else None,
                next_cycle_at=next_fire_time(scheduler.cron, state.clock.now())
                if running and scheduler is not None
                else None,
            ),
        )

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        """Prometheus' scrape target: sync runs by outcome, upstream requests by status."""
        return Response(content=metrics.exposition(), media_type=metrics.CONTENT_TYPE)

    _add_web(app)
    return app


def _add_web(app: FastAPI) -> None:
    """The sign-in routes, the pages, the JSON API, their static files and error pages."""
    # Imported here: `create_app` stays importable without the templates' dependencies.
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

    from timebridge.web import api, auth, pages
    from timebridge.web.errors import install_error_handlers
    from timebridge.web.templating import STATIC_DIR

    app.mount("/static/swagger", StaticFiles(directory=swagger_ui_path), name="swagger")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/docs", include_in_schema=False)
    async def api_docs() -> HTMLResponse:
        """The JSON API's interactive documentation (Swagger UI, served by this app)."""
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="Timebridge API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/swagger/favicon-32x32.png",
        )

    app.include_router(auth.router)
    app.include_router(pages.router)
    app.include_router(api.router)
    install_error_handlers(app)
    # The gateway: `/toggl-track/…` and `/connections` behind API keys.
    from timebridge.gateway import install as install_gateway

    install_gateway(app)
    # Toggl's webhook deliveries: `/hooks/toggl/…`.
    from timebridge.webhooks import install as install_webhooks

    install_webhooks(app)
