"""`ConnectionPool`: keep-alive connections shared by the short-lived clients of an engine.

A sync run opens a Toggl and an Exist client for one user. With a pool of their own, each run
would pay a TCP (and TLS) handshake per service and leave warm connections behind. Clients given
`pool.lend()` as their transport share one pool instead: closing a client leaves the pool open,
and whoever made the pool closes it.

The clients stay `httpx` clients (their requests, retries and errors are built in one place,
`timebridge._http`); only the wire under them is aiohttp's, whose pool does not look at every
connection for every queued request and whose HTTP/1.1 parser is C (why, with figures:
`bench/README.md`).

What the pool never shares between users: requests carry their own credentials, cookies are
never kept (a `Set-Cookie` of one user's answer would otherwise ride along with the next user's
requests), redirects are left to each client, and answers reach the client still encoded, so
`httpx` decodes them exactly as with its own transport.

A pool belongs to the event loop of its first request (like every asyncio connection).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace

import aiohttp
import httpx

from timebridge._http import shared_ssl_context

#: How many connections one origin (Toggl, Exist) may have open at once; more requests wait.
DEFAULT_LIMIT_PER_ORIGIN = 256
#: Idle connections are closed after this long; the next request opens a new one.
DEFAULT_KEEPALIVE_SECONDS = 30.0


class ConnectionPool:
    """Keep-alive connections shared by the clients a process opens, run after run."""

    def __init__(
        self,
        *,
        limit_per_origin: int = DEFAULT_LIMIT_PER_ORIGIN,
        keepalive_seconds: float = DEFAULT_KEEPALIVE_SECONDS,
    ) -> None:
        self._limit_per_origin = limit_per_origin
        self._keepalive_seconds = keepalive_seconds
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        #: Connections opened so far (a reused connection is not counted again).
        self.connections_opened = 0

    def __repr__(self) -> str:
        return f"ConnectionPool(opened={self.connections_opened}, closed={self._closed})"

    def lend(self) -> httpx.AsyncBaseTransport:
        """A transport for one client; closing it does not close the pool."""
        if self._closed:
            raise RuntimeError("the connection pool is closed")
        return _Lent(self)

    @property
    def closed(self) -> bool:
        return self._closed

    def session(self) -> aiohttp.ClientSession:
        """The pool's aiohttp session itself, for a caller that speaks aiohttp (the gateway's
        proxy); opened on first use. Closing the pool closes it."""
        return self._open_session()

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()

    async def send(self, request: httpx.Request) -> httpx.Response:
        """Send `request` over a pooled connection and read the whole answer."""
        session = self._open_session()
        body = await request.aread()
        try:
            async with session.request(
                request.method,
                str(request.url),
                headers=_headers(request.headers),
                data=body or None,
                allow_redirects=False,
                timeout=_timeout(request.extensions.get("timeout")),
            ) as answer:
                content = await answer.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _transport_error(exc, request) from exc
        return httpx.Response(
            answer.status,
            headers=answer.raw_headers,
            content=content,
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": _reason(answer.reason)},
        )

    def _open_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the connection pool is closed")
        if self._session is None:
            tracing = aiohttp.TraceConfig()
            tracing.on_connection_create_end.append(self._count_connection)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=0,
                    limit_per_host=self._limit_per_origin,
                    keepalive_timeout=self._keepalive_seconds,
                    ssl=shared_ssl_context(),
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                # httpx has set every header it means to send; aiohttp adds none of its own.
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
                trust_env=False,
                trace_configs=[tracing],
            )
        return self._session

    async def _count_connection(
        self, _session: aiohttp.ClientSession, _context: SimpleNamespace, _params: object
    ) -> None:
        self.connections_opened += 1


class _Lent(httpx.AsyncBaseTransport):
    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._pool.send(request)

    async def aclose(self) -> None:
        return None  # the pool's owner closes it


def _headers(headers: httpx.Headers) -> list[tuple[str, str]]:
    # aiohttp computes Host itself from the URL, as httpx did.
    return [(name, value) for name, value in headers.multi_items() if name != "host"]


def _timeout(timeouts: Mapping[str, float | None] | None) -> aiohttp.ClientTimeout:
    """httpx's four timeouts as aiohttp's: waiting for a free connection counts as connecting."""
    if not timeouts:
        return aiohttp.ClientTimeout(total=None)
    connect, pool = timeouts.get("connect"), timeouts.get("pool")
    return aiohttp.ClientTimeout(
        total=None,
        connect=None if connect is None or pool is None else connect + pool,
        sock_connect=connect,
        sock_read=timeouts.get("read"),
    )


def _reason(reason: str | None) -> bytes:
    return (reason or "").encode("latin-1", "replace")


#: aiohttp's failures as the httpx exceptions httpx's own transport raises; the first match wins.
_TRANSPORT_ERRORS: tuple[
    tuple[tuple[type[BaseException], ...], type[httpx.TransportError]], ...
] = (
    ((aiohttp.ConnectionTimeoutError,), httpx.ConnectTimeout),
    ((aiohttp.SocketTimeoutError,), httpx.ReadTimeout),
    # What is left of the timeouts: no connection became free in time.
    ((TimeoutError,), httpx.PoolTimeout),
    ((aiohttp.ClientConnectorError,), httpx.ConnectError),
    (
        (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError),
        httpx.RemoteProtocolError,
    ),
    ((aiohttp.ClientOSError,), httpx.ReadError),
)


def _transport_error(exc: BaseException, request: httpx.Request) -> httpx.TransportError:
    message = str(exc) or type(exc).__name__
    for causes, error in _TRANSPORT_ERRORS:
        if isinstance(exc, causes):
            return error(message, request=request)
    return httpx.TransportError(message, request=request)
