"""What the gateway keeps between requests: the rate limiter, the quota guard and its ways to
Toggl, all over the bridge's shared connection pool (`timebridge._pool`): the pool's own aiohttp
session for proxied requests (no httpx request or response objects on that path), and an httpx
client over the same pool for the gateway's few requests of its own (`/me` checks).

On PostgreSQL several `serve` processes may share the store, and the limits are shared with
them (`SharedLimits`): the rate limit leases from a bucket in the database, and a spent quota
one process learns is recorded and told to the others (`LISTEN/NOTIFY`) at once. On SQLite both
stay in this process's memory, as they always were."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import cast

import aiohttp
import httpx
from fastapi import FastAPI, Request

from timebridge._pool import ConnectionPool
from timebridge.config import Settings
from timebridge.gateway.limits import QuotaGuard, RateLimiter, SharedRateLimiter, quota_spender
from timebridge.store import GatewayLimitRepository, Store
from timebridge.store.gateway_limits import QuotaNews, listening
from timebridge.web.state import service_state

logger = logging.getLogger(__name__)


@dataclass
class GatewayState:
    limiter: RateLimiter
    guard: QuotaGuard
    http: httpx.AsyncClient
    settings: Settings
    #: The connection pool shared with the bridge.
    pool: ConnectionPool
    #: When a connection's token was last checked with `/me` after a 401/403 of a path
    #: (`"<connection id> <path>"` → monotonic seconds).
    confirmed: dict[str, float] = field(default_factory=dict)

    @property
    def timeout(self) -> httpx.Timeout:
        s = self.settings
        return httpx.Timeout(
            connect=s.gateway_connect_timeout,
            read=s.gateway_read_timeout,
            write=s.gateway_read_timeout,
            pool=s.gateway_connect_timeout,
        )

    @property
    def session(self) -> aiohttp.ClientSession:
        """The shared pool's aiohttp session (opened on first use)."""
        return self.pool.session()

    @functools.cached_property
    def client_timeout(self) -> aiohttp.ClientTimeout:
        """`timeout` as aiohttp's (as the pool maps it): waiting for a free connection counts
        as connecting."""
        s = self.settings
        return aiohttp.ClientTimeout(
            total=None,
            connect=2 * s.gateway_connect_timeout,
            sock_connect=s.gateway_connect_timeout,
            sock_read=s.gateway_read_timeout,
        )


class SharedLimits:
    """The quota guard shared with the other processes of one PostgreSQL store: what this
    process learns is recorded and told to them (in the background: no request waits for it),
    and what they tell is learned; on start, and after a lost connection, what is recorded is
    read again."""

    def __init__(self, repository: GatewayLimitRepository, guard: QuotaGuard) -> None:
        self._repository = repository
        self._guard = guard
        #: This process's mark on what it tells, so it does not learn its own news again.
        self._mark = secrets.token_hex(8)
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[None]] = set()
        guard.publish = self._publish

    def _publish(
        self, account_id: int | None, spender: str, scope: str | None, seconds: float | None
    ) -> None:
        # From any thread (the bridge's listeners run wherever the sync runs); a closed loop
        # is a stopping process.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._tell, account_id, spender, scope, seconds)

    def _tell(
        self, account_id: int | None, spender: str, scope: str | None, seconds: float | None
    ) -> None:
        repository = self._repository
        if account_id is None or scope is None or seconds is None:
            told = repository.forget_spent(spender, sender=self._mark)
        else:
            told = repository.record_spent(account_id, spender, scope, seconds, sender=self._mark)
        task = asyncio.create_task(self._quietly(told))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _quietly(told: Coroutine[None, None, None]) -> None:
        try:
            await told
        except Exception:
            logger.exception("telling other processes of a spent Toggl quota failed")

    def heard(self, news: QuotaNews) -> None:
        if news.sender == self._mark:
            return
        if news.scope is None or news.seconds is None:
            self._guard.unlearn(news.spender)
        else:
            self._guard.learn(news.spender, news.scope, news.seconds)

    async def catch_up(self) -> None:
        try:
            for spender, scope, seconds in await self._repository.spent():
                self._guard.learn(spender, scope, seconds)
        except Exception:
            logger.exception("reading the spent Toggl quotas failed")

    async def settle(self) -> None:
        """Wait for what is being told (before the store closes)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _shared(store: Store | None) -> Store | None:
    """The store, if other processes may share it (PostgreSQL)."""
    return store if store is not None and store.database.dialect == "postgresql" else None


def gateway_state(request: Request) -> GatewayState:
    state = getattr(request.app.state, "gateway", None)
    if state is None:
        raise RuntimeError("the gateway has not started")
    return cast(GatewayState, state)


def install_lifespan(app: FastAPI) -> None:
    """Start the gateway's state after the app's own startup (the bridge and its pool exist
    then) and close it before the app's shutdown."""
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with inner(app):
            service = service_state(app)
            bridge = service.bridge
            shared = bridge.upstreams.pool if bridge is not None else None
            pool = shared if shared is not None else ConnectionPool()
            http = httpx.AsyncClient(transport=pool.lend(), follow_redirects=False, trust_env=False)
            guard = QuotaGuard()
            rate = service.settings.gateway_rate_limit
            common = _shared(service.store)
            limiter = RateLimiter(rate)
            sharing: SharedLimits | None = None
            listener: contextlib.AbstractAsyncContextManager[None] = contextlib.nullcontext()
            if common is not None:
                repository = common.gateway_limits

                async def lease(key: int, account_id: int, want: int) -> tuple[int, float]:
                    return await repository.lease(
                        key, account_id, rate=rate, capacity=max(1.0, rate), want=want
                    )

                limiter = SharedRateLimiter(rate, lease)
                sharing = SharedLimits(repository, guard)
                listener = listening(repository, sharing.heard, sharing.catch_up)
            app.state.gateway = GatewayState(
                limiter=limiter,
                guard=guard,
                http=http,
                settings=service.settings,
                pool=pool,
            )
            if bridge is not None:
                # A sync that meets a spent quota spares the gateway's callers the 402 too.
                bridge.on_quota_spent(
                    lambda connection, seconds: guard.spent(
                        quota_spender(connection), "user", str(seconds), connection.account_id
                    )
                )
            try:
                async with listener:
                    yield
            finally:
                app.state.gateway = None
                if sharing is not None:
                    await sharing.settle()
                if service.store is not None:  # before the app closes the store
                    await service.store.api_keys.settle()
                await http.aclose()
                if shared is None:
                    await pool.aclose()

    app.router.lifespan_context = lifespan


__all__ = ["GatewayState", "SharedLimits", "gateway_state", "install_lifespan"]
