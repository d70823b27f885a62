"""`ANY /toggl-track/{path}`: a native Toggl path, forwarded with the stored credentials.

The order of checks: the key (401), its scope (403), its rate (429), the path (400), the
connection (400/404), the quota guard (429); only then is Toggl asked. See DESIGN.md, "The
gateway", and `paths.py` for what a path may be.

Every proxied request is answered by `forward`, a plain ASGI handler: `GatewayLayer` (installed
in front of the app's routes) hands it each `/toggl-track/…` request before FastAPI's routing,
dependency injection and request objects would run, and the route registered here (for the
OpenAPI schema, and for an app that routes to it without the layer) answers through it too.
Upstream it goes through the shared pool's aiohttp session directly. An answer is read whole,
up to the size cap (a larger one is a 502, never a truncated body), because the stored token
must be taken out of it before the caller sees a byte.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import re
import time
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials
from starlette.types import ASGIApp, Receive, Scope, Send
from yarl import URL

from timebridge.gateway.audit import WRITE_METHODS, audited
from timebridge.gateway.auth import (
    Caller,
    bearer,
    bearer_credentials,
    bearer_key,
    caller_at,
    check_scope,
)
from timebridge.gateway.errors import GatewayError, documented
from timebridge.gateway.keys import PROXY_READ, PROXY_WRITE
from timebridge.gateway.limits import quota_spender, retry_after
from timebridge.gateway.paths import PathRefused, checked_path, quota_scope
from timebridge.gateway.state import GatewayState
from timebridge.store import ConnectionStatus, ProxyGrant, Store, TogglConnection
from timebridge.web.state import ServiceState

logger = logging.getLogger(__name__)

PREFIX = "/toggl-track/"
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_METHODS = frozenset(METHODS)
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Request headers never forwarded: hop-by-hop, the caller's identity, where it came from, and
#: what the gateway itself reads or sets.
_DROPPED_REQUEST = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "authorization",
        "cookie",
        "forwarded",
        "content-length",
        "accept-encoding",
        "maton-connection",
        "timebridge-connection",
    }
)
#: Connection headers a caller uses to choose a connection (the seed's, then ours).
CONNECTION_HEADERS = ("timebridge-connection", "maton-connection")
#: GETs are retried at most this many times on a 5xx or a failed connection.
GET_RETRIES = 2
_BACKOFF = 0.05
#: A refused token is checked with `/me` at most this often per connection (seconds).
CONFIRM_EVERY = 60.0
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: What a query may hold as sent; anything else is percent-encoded before it goes upstream.
_QUERY_SAFE = "!#$%&'()*+,/:;=?@[]~"

router = APIRouter(tags=["gateway"])


def _raw_path(scope: Scope) -> str:
    """The path after `/toggl-track/` exactly as the caller sent it (still percent-encoded)."""
    raw = scope.get("raw_path")
    text = raw.decode("latin-1") if isinstance(raw, bytes) else quote(scope["path"])
    root = scope.get("root_path", "")
    if root and text.startswith(root):
        text = text[len(root) :]
    return text[len(PREFIX) :] if text.startswith(PREFIX) else text.lstrip("/")


class _Headers:
    """A request's headers as sent (names in lower case, as ASGI servers give them)."""

    __slots__ = ("items",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.items = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw]

    def get(self, name: str) -> str | None:
        for key, value in self.items:
            if key == name:
                return value
        return None


def _forwarded_headers(headers: _Headers, token: str) -> list[tuple[str, str]]:
    connection = headers.get("connection")
    named = (
        {
            name.strip().lower()
            for key, value in headers.items
            if key == "connection"
            for name in value.split(",")
        }
        if connection is not None
        else ()
    )
    forwarded = [
        (name, value)
        for name, value in headers.items
        if name not in _DROPPED_REQUEST
        and name not in named
        and not name.startswith("x-forwarded-")
    ]
    basic = base64.b64encode(f"{token}:api_token".encode()).decode()
    forwarded.append(("authorization", f"Basic {basic}"))
    return forwarded


def _passed_back(raw: tuple[tuple[bytes, bytes], ...]) -> list[tuple[bytes, bytes]]:
    """Toggl's headers a caller gets: content type, quota headers and `Retry-After`."""
    kept = []
    for name, value in raw:
        lower = name.lower()
        if (
            lower == b"content-type"
            or lower == b"retry-after"
            or lower.startswith(b"x-toggl-quota")
        ):
            kept.append((lower, value))
    return kept


def _redact(value: Any) -> tuple[Any, bool]:
    if isinstance(value, dict):
        changed = "api_token" in value
        out = {}
        for key, item in value.items():
            if key == "api_token":
                continue
            out[key], inner = _redact(item)
            changed = changed or inner
        return out, changed
    if isinstance(value, list):
        items = [_redact(item) for item in value]
        return [item for item, _ in items], any(changed for _, changed in items)
    return value, False


def redacted(content: bytes, token: str) -> bytes:
    """`content` without the stored token: any JSON `api_token` field is removed (Toggl echoes
    the token in `/me` and `/me/workspaces`), and the token itself, wherever else it appears
    (in any format), is replaced by `[redacted]`."""
    if b"api_token" in content:
        try:
            parsed = json.loads(content)
        except ValueError:
            pass
        else:
            cleaned, changed = _redact(parsed)
            if changed:
                content = json.dumps(cleaned, separators=(",", ":")).encode()
    secret = token.encode()
    if len(secret) >= 8 and secret in content:
        content = content.replace(secret, b"[redacted]")
    return content


def named_connection(headers: _Headers) -> str | None:
    """The connection a request names (`Timebridge-Connection`, or the seed's
    `Maton-Connection`), if any."""
    for header in CONNECTION_HEADERS:
        value = (headers.get(header) or "").strip()
        if value:
            return value
    return None


def choose_connection(grant: ProxyGrant, named: str | None) -> tuple[TogglConnection, str]:
    """The connection the request uses and its token: the named one (404 unless it is the
    owner's, 400 unless ACTIVE), else the owner's default if ACTIVE, else their oldest ACTIVE
    one (none: 400, as the seed's gateway answers)."""
    connection, token = grant.connection, grant.token
    if named is not None:
        if connection is None:
            raise GatewayError(404, "not_found", "No such Toggl Track connection.")
        if connection.status is not ConnectionStatus.ACTIVE or token is None:
            raise GatewayError(
                400,
                "connection_not_active",
                f"Toggl Track connection {connection.id} is {connection.status.value}; "
                "complete or renew it first.",
            )
        return connection, token.get_secret_value()
    if connection is None or token is None:
        raise GatewayError(
            400,
            "missing_connection",
            "No active Toggl Track connection: create one with POST /connections.",
        )
    return connection, token.get_secret_value()


@dataclass(frozen=True)
class _Answer:
    """What the caller gets: Toggl's status, the headers passed back, the (redacted) body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def _too_large() -> GatewayError:
    return GatewayError(
        502, "upstream_too_large", "Toggl Track's answer is larger than this gateway passes on."
    )


async def _read_capped(answer: aiohttp.ClientResponse, cap: int) -> bytes:
    """The answer's body, decoded if Toggl compressed it anyway; over `cap` bytes: 502."""
    if answer.content_length is not None and answer.content_length > cap:
        raise _too_large()
    encoding = answer.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        inflate = zlib.decompressobj(zlib.MAX_WBITS | (16 if "gzip" in encoding else 0))
    elif encoding not in ("", "identity"):
        raise GatewayError(
            502,
            "upstream_encoding",
            f"Toggl Track answered in an encoding ({encoding}) this gateway does not read.",
        )
    else:
        inflate = None
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in answer.content.iter_any():
            if inflate is not None:
                chunk = inflate.decompress(chunk, cap + 1 - size)
            size += len(chunk)
            if size > cap:
                raise _too_large()
            chunks.append(chunk)
        if inflate is not None:
            chunks.append(inflate.flush())
            if size + len(chunks[-1]) > cap:
                raise _too_large()
    except zlib.error:
        raise GatewayError(
            502, "upstream_encoding", f"Toggl Track's {encoding} answer could not be read."
        ) from None
    return b"".join(chunks)


async def _exchange(
    gateway: GatewayState,
    method: str,
    url: URL,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    retries: int,
) -> tuple[int, tuple[tuple[bytes, bytes], ...], bytes]:
    """Toggl's status, raw headers and body (retried on 5xx and failed connections `retries`
    times); a timeout is a 504, a failed connection a 502."""
    session = gateway.session
    cap = gateway.settings.gateway_max_response_bytes
    for attempt in range(retries + 1):
        last = attempt == retries
        try:
            async with session.request(
                method,
                url,
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=gateway.client_timeout,
            ) as answer:
                if answer.status < 500 or last:
                    return answer.status, answer.raw_headers, await _read_capped(answer, cap)
        except TimeoutError:
            raise GatewayError(
                504, "upstream_timeout", "Toggl Track did not answer in time."
            ) from None
        except aiohttp.ClientError:
            if last:
                raise GatewayError(
                    502, "upstream_unreachable", "Toggl Track could not be reached."
                ) from None
        await asyncio.sleep(_BACKOFF * (2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")  # pragma: no cover


async def _confirm_refused(
    gateway: GatewayState, store: Store, connection: TogglConnection, token: str, path: str
) -> None:
    """Toggl refused the stored token: ask `/me` once more; a second refusal marks the
    connection FAILED (one glitch must not break a user's setup). At most once a minute per
    connection and path: a client looping on a 403 (a page only admins may read) must not
    double its spending of the quota."""
    now = time.monotonic()
    seen = f"{connection.id} {path}"
    last = gateway.confirmed.get(seen)
    if last is not None and now - last < CONFIRM_EVERY:
        return
    if len(gateway.confirmed) > 10_000:
        gateway.confirmed.clear()
    gateway.confirmed[seen] = now
    basic = base64.b64encode(f"{token}:api_token".encode()).decode()
    try:
        answer = await gateway.http.get(
            f"{connection.origin}/api/v9/me",
            headers={"authorization": f"Basic {basic}"},
            timeout=gateway.timeout,
        )
    except httpx.HTTPError:
        return
    if answer.status_code in (401, 403):
        await store.toggl_connections.mark_failed(
            connection.account_id,
            connection.id,
            f"Toggl Track refused the stored API token (HTTP {answer.status_code}); "
            "connect it again with a current token.",
        )
        gateway.guard.forget(quota_spender(connection))


async def _request_body(headers: _Headers, receive: Receive) -> bytes:
    if headers.get("content-length") in (None, "0") and headers.get("transfer-encoding") is None:
        return b""  # HTTP/1.1: no length and no chunks, no body
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _states(scope: Scope) -> tuple[ServiceState, GatewayState, Store]:
    app = scope["app"]
    service: ServiceState = app.state.timebridge
    gateway: GatewayState | None = getattr(app.state, "gateway", None)
    if gateway is None or service.store is None:
        raise RuntimeError("the gateway has not started")
    return service, gateway, service.store


async def forward(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer one `/toggl-track/…` request: Toggl's answer, or the gateway's own JSON error."""
    try:
        answer = await _answer(scope, receive)
    except GatewayError as refused:
        await refused.response()(scope, receive, send)
        return
    except Exception:
        logger.exception("the gateway failed to answer a request")
        failed = GatewayError(500, "internal_error", "The gateway failed; nothing was retried.")
        await failed.response()(scope, receive, send)
        return
    headers = answer.headers
    if not (answer.status < 200 or answer.status in (204, 304)):
        headers = [(b"content-length", str(len(answer.body)).encode()), *headers]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


async def _answer(scope: Scope, receive: Receive) -> _Answer:
    service, gateway, store = _states(scope)
    method: str = scope["method"].upper()
    raw = _raw_path(scope)
    headers = _Headers(scope["headers"])
    key = bearer_key(bearer_credentials(headers.get("authorization")))
    named = named_connection(headers)
    # One read (or none, while remembered): the key, and the connection with its token (a named
    # id too long to be one is looked up as one that matches nothing).
    grant = await store.api_keys.grant(key, named[:64] if named else None)
    who = caller_at(grant.key if grant is not None else None, service.clock.now())
    if grant is None:  # pragma: no cover - `caller_at` refused the unknown key already
        raise GatewayError(401, "unauthorized", "Invalid API key.")
    if method not in WRITE_METHODS:
        return await _proxy(scope, receive, gateway, store, headers, who, method, raw, grant, named)
    async with audited(store, who, method, raw) as audit:
        answer = await _proxy(
            scope, receive, gateway, store, headers, who, method, raw, grant, named, audit
        )
        audit["status"] = str(answer.status)
        return answer


async def _proxy(
    scope: Scope,
    receive: Receive,
    gateway: GatewayState,
    store: Store,
    headers: _Headers,
    who: Caller,
    method: str,
    raw: str,
    grant: ProxyGrant,
    named: str | None,
    audit: dict[str, str | None] | None = None,
) -> _Answer:
    check_scope(who, PROXY_READ if method in READ_METHODS else PROXY_WRITE)
    limiter = gateway.limiter
    wait = (
        limiter.take(who.key_id)
        if limiter.local
        else await limiter.acquire(who.key_id, who.account_id)  # shared (PostgreSQL)
    )
    if wait is not None:
        raise GatewayError(
            429,
            "rate_limited",
            f"More than {limiter.rate:g} requests per second with this key.",
            {"Retry-After": retry_after(wait)},
        )
    try:
        path = checked_path(raw)
    except PathRefused as exc:
        raise GatewayError(400, "invalid_path", str(exc)) from None
    connection, token = choose_connection(grant, named)
    if audit is not None:
        audit["connection_id"] = connection.id
    scope_of_quota = quota_scope(path)
    spender = quota_spender(connection)
    blocked = gateway.guard.blocked(spender, scope_of_quota)
    if blocked is not None:
        raise GatewayError(
            429,
            "quota_exhausted",
            "Toggl Track's hourly quota for this connection is spent; it resets in "
            f"{retry_after(blocked)} s (nothing was sent to Toggl).",
            {"Retry-After": retry_after(blocked)},
        )
    query = scope.get("query_string", b"").decode("latin-1")
    url = f"{connection.origin}/{path}"
    if query:
        url += "?" + quote(query, safe=_QUERY_SAFE)
    body = await _request_body(headers, receive)
    status, raw_headers, content = await _exchange(
        gateway,
        method,
        # Sent as checked, never normalized again (`paths.py` allows only printable ASCII).
        URL(url, encoded=True),
        _forwarded_headers(headers, token),
        body,
        retries=GET_RETRIES if method in ("GET", "HEAD") else 0,
    )
    if status == 402:
        gateway.guard.spent(
            spender,
            scope_of_quota,
            _header(raw_headers, b"x-toggl-quota-resets-in"),
            connection.account_id,
        )
    elif status in (401, 403):
        await _confirm_refused(gateway, store, connection, token, path)
    return _Answer(status, _passed_back(raw_headers), redacted(content, token))


def _header(raw: tuple[tuple[bytes, bytes], ...], name: bytes) -> str | None:
    for key, value in raw:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class GatewayLayer:
    """In front of the app (outside its middleware and routes): every `/toggl-track/…` request
    of a proxied method goes straight to `forward`; a path holding a control character (which no
    route would match) is the 400 every refused path is. Everything else passes on to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            if path.startswith(PREFIX):
                if _CONTROL.search(path):
                    refused = GatewayError(
                        400, "invalid_path", "the path must not contain control characters"
                    )
                    await refused.response()(scope, receive, send)
                    return
                if len(path) > len(PREFIX) and scope["method"] in _METHODS:
                    await forward(scope, receive, send)
                    return
        await self.app(scope, receive, send)


class _Forwarded(Response):
    """The route's answer: `forward` run on the request's own scope and channels."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await forward(scope, receive, send)


async def proxy(
    request: Request,
    path: str,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
) -> Response:
    """Forward a native Toggl Track path (starting `api/v9/`, `reports/api/v3/` or
    `webhooks/api/v1/`) to the chosen connection's Toggl origin, with its API token injected."""
    del request, path, credentials  # `forward` reads the request as it arrived
    return _Forwarded()


_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"description": "Toggl Track's answer, passed through (any status Toggl gives)"},
    "default": {"description": "Toggl Track's answer, passed through"},
    **documented(
        {
            400: "A refused path, or no usable connection",
            401: "Missing, invalid, revoked or expired API key",
            403: "The key lacks the scope",
            404: "No such connection of this key's owner",
            429: "Rate limited, or the connection's Toggl quota is spent",
            502: "Toggl Track unreachable, or its answer too large",
            504: "Toggl Track did not answer in time",
        }
    ),
}

for _method in METHODS:
    router.add_api_route(
        "/toggl-track/{path:path}",
        proxy,
        methods=[_method],
        operation_id=f"proxy_{_method.lower()}",
        summary=f"{_method} a native Toggl Track API path, with the stored credentials injected",
        response_class=Response,
        responses=_RESPONSES,
    )


__all__ = [
    "CONNECTION_HEADERS",
    "GatewayLayer",
    "choose_connection",
    "forward",
    "named_connection",
    "redacted",
    "router",
]
