"""What the gateway keeps between requests: the rate limiter, the quota guard and its ways to
Toggl, all over the bridge's shared connection pool (`timebridge._pool`): the pool's own aiohttp
session for proxied requests (no httpx request or response objects on that path), and an httpx
client over the same pool for the gateway's few requests of its own (`/me` checks)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import cast

import aiohttp
import httpx
from fastapi import FastAPI, Request

from timebridge._pool import ConnectionPool
from timebridge.config import Settings
from timebridge.gateway.limits import QuotaGuard, RateLimiter, quota_spender
from timebridge.web.state import service_state


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
            app.state.gateway = GatewayState(
                limiter=RateLimiter(service.settings.gateway_rate_limit),
                guard=guard,
                http=http,
                settings=service.settings,
                pool=pool,
            )
            if bridge is not None:
                # A sync that meets a spent quota spares the gateway's callers the 402 too.
                bridge.on_quota_spent(
                    lambda connection, seconds: guard.spent(
                        quota_spender(connection), "user", str(seconds)
                    )
                )
            try:
                yield
            finally:
                app.state.gateway = None
                if service.store is not None:  # before the app closes the store
                    await service.store.api_keys.settle()
                await http.aclose()
                if shared is None:
                    await pool.aclose()

    app.router.lifespan_context = lifespan


__all__ = ["GatewayState", "gateway_state", "install_lifespan"]
