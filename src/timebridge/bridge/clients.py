"""`Upstreams`: the one place a user's Toggl and Exist clients are built.

Every caller of the bridge (jobs, personal mode, the CLI, later the web pages, the gateway and
webhooks) gets its clients here, from a connection's token and **origin**: a token is only ever
sent to the origin it was validated against (`timebridge.origins`), whatever the service's
settings say. The retry policy, the clock, the shared connection pool and Exist's OAuth client
(for refreshing tokens) are the service's, set once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
from pydantic import SecretStr

from timebridge._pool import ConnectionPool
from timebridge.clock import Clock, SystemClock
from timebridge.config import Settings
from timebridge.exist import AsyncExistClient, ExistTokens, OAuthApp
from timebridge.origins import exist_api_url, exist_oauth_url, toggl_api_url
from timebridge.retry import RetryPolicy
from timebridge.toggl import AsyncTogglClient

#: Called with a refreshed Exist token pair, which must be stored before it is used again.
TokensCallback = Callable[[ExistTokens], Awaitable[None]]


class Upstreams:
    """Builds Toggl and Exist clients for connections, with the service's policies."""

    def __init__(
        self,
        *,
        exist_app: OAuthApp | None = None,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        pool: ConnectionPool | None = None,
    ) -> None:
        """`pool`: keep-alive connections shared by every client (a long-lived engine opens
        one and closes it when it stops); without one, each client connects anew."""
        self.clock = clock or SystemClock()
        self.retry = retry or RetryPolicy()
        self._exist_app = exist_app
        self._pool = pool

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        pool: ConnectionPool | None = None,
    ) -> Upstreams:
        """The service's Exist OAuth client (if configured) with these policies."""
        secret = settings.exist_client_secret
        app = (
            OAuthApp(client_id=settings.exist_client_id, client_secret=secret)
            if settings.exist_client_id and secret is not None
            else None
        )
        return cls(exist_app=app, clock=clock, retry=retry, pool=pool)

    @property
    def pool(self) -> ConnectionPool | None:
        """The keep-alive connections every client here shares (None: each connects anew);
        the gateway's own HTTP client borrows from it too."""
        return self._pool

    def toggl(self, token: SecretStr, origin: str) -> AsyncTogglClient:
        """A Toggl client sending `token` to `origin` only."""
        return AsyncTogglClient(
            token.get_secret_value(),
            base_url=toggl_api_url(origin),
            retry=self.retry,
            clock=self.clock,
            transport=self._lend(),
        )

    def exist(
        self,
        tokens: ExistTokens | None,
        origin: str,
        *,
        on_tokens: TokensCallback | None = None,
    ) -> AsyncExistClient:
        """An Exist client sending `tokens` to `origin` only; a refreshed pair is handed to
        `on_tokens` (the old pair stops working, so the caller stores the new one). Without
        tokens, a client that can finish the OAuth flow (`exchange_code`) and then go on."""
        return AsyncExistClient(
            tokens,
            app=self._exist_app,
            on_tokens=on_tokens,
            base_url=exist_api_url(origin),
            oauth_base_url=exist_oauth_url(origin),
            retry=self.retry,
            clock=self.clock,
            transport=self._lend(),
        )

    def _lend(self) -> httpx.AsyncBaseTransport | None:
        return self._pool.lend() if self._pool is not None else None


__all__ = ["TokensCallback", "Upstreams"]
