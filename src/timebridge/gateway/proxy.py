"""`ANY /toggl-track/{path}`: a native Toggl path, forwarded with the stored credentials.

The order of checks: the key (401), its scope (403), its rate (429), the path (400), the
connection (400/404), the quota guard (429); only then is Toggl asked. See DESIGN.md, "The
gateway", and `paths.py` for what a path may be.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import time
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials

from timebridge.gateway.audit import audited
from timebridge.gateway.auth import (
    Caller,
    bearer,
    caller_of,
    check_scope,
    presented_key,
    store_of,
)
from timebridge.gateway.errors import GatewayError, documented
from timebridge.gateway.keys import PROXY_READ, PROXY_WRITE
from timebridge.gateway.limits import quota_spender, retry_after
from timebridge.gateway.paths import PathRefused, checked_path, quota_scope
from timebridge.gateway.state import GatewayState, gateway_state
from timebridge.store import ConnectionStatus, ProxyGrant, Store, TogglConnection

logger = logging.getLogger(__name__)

PREFIX = "/toggl-track/"
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
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

router = APIRouter(tags=["gateway"])


def _raw_path(request: Request) -> str:
    """The path after `/toggl-track/` exactly as the caller sent it (still percent-encoded)."""
    raw = request.scope.get("raw_path")
    text = raw.decode("latin-1") if isinstance(raw, bytes) else quote(request.url.path)
    root = request.scope.get("root_path", "")
    if root and text.startswith(root):
        text = text[len(root) :]
    return text[len(PREFIX) :] if text.startswith(PREFIX) else text.lstrip("/")


def _forwarded_headers(request: Request, token: str) -> list[tuple[str, str]]:
    named = {
        name.strip().lower()
        for value in request.headers.getlist("connection")
        for name in value.split(",")
    }
    headers = [
        (name, value)
        for name, value in request.headers.items()
        if name not in _DROPPED_REQUEST
        and name not in named
        and not name.startswith("x-forwarded-")
    ]
    basic = base64.b64encode(f"{token}:api_token".encode()).decode()
    headers.append(("authorization", f"Basic {basic}"))
    return headers


def _passed_back(response: httpx.Response) -> dict[str, str]:
    headers = {}
    for name, value in response.headers.items():
        lower = name.lower()
        if lower == "content-type" or lower == "retry-after" or lower.startswith("x-toggl-quota"):
            headers[name] = value
    return headers


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


def named_connection(request: Request) -> str | None:
    """The connection a request names (`Timebridge-Connection`, or the seed's
    `Maton-Connection`), if any."""
    for header in CONNECTION_HEADERS:
        value = request.headers.get(header, "").strip()
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


async def _send(gateway: GatewayState, request: httpx.Request, *, retries: int) -> httpx.Response:
    for attempt in range(retries + 1):
        last = attempt == retries
        try:
            response = await gateway.http.send(request)
        except httpx.TimeoutException:
            raise GatewayError(
                504, "upstream_timeout", "Toggl Track did not answer in time."
            ) from None
        except httpx.TransportError:
            if last:
                raise GatewayError(
                    502, "upstream_unreachable", "Toggl Track could not be reached."
                ) from None
        else:
            if response.status_code < 500 or last:
                return response
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


async def proxy(
    request: Request,
    path: str,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
) -> Response:
    """Forward a native Toggl Track path (starting `api/v9/`, `reports/api/v3/` or
    `webhooks/api/v1/`) to the chosen connection's Toggl origin, with its API token injected."""
    del path  # the raw path is checked instead: the decoded one hides encodings
    method = request.method.upper()
    raw = _raw_path(request)
    key = presented_key(credentials)
    named = named_connection(request)
    # One read: the key, and the connection with its token (a named id too long to be one is
    # looked up as one that matches nothing).
    grant = await store_of(request).api_keys.grant(key, named[:64] if named else None)
    who = caller_of(request, grant.key if grant is not None else None)
    if grant is None:  # pragma: no cover - `caller_of` refused the unknown key already
        raise GatewayError(401, "unauthorized", "Invalid API key.")
    async with audited(request, who, method, raw) as audit:
        response = await _proxy(request, who, method, raw, audit, grant, named)
        audit["status"] = str(response.status_code)
        return response


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


async def _proxy(
    request: Request,
    who: Caller,
    method: str,
    raw: str,
    audit: dict[str, str | None],
    grant: ProxyGrant,
    named: str | None,
) -> Response:
    check_scope(who, PROXY_READ if method in READ_METHODS else PROXY_WRITE)
    gateway = gateway_state(request)
    wait = gateway.limiter.take(who.key_id)
    if wait is not None:
        raise GatewayError(
            429,
            "rate_limited",
            f"More than {gateway.limiter.rate:g} requests per second with this key.",
            {"Retry-After": retry_after(wait)},
        )
    try:
        path = checked_path(raw)
    except PathRefused as exc:
        raise GatewayError(400, "invalid_path", str(exc)) from None
    store = store_of(request)
    connection, token = choose_connection(grant, named)
    audit["connection_id"] = connection.id
    scope = quota_scope(path)
    spender = quota_spender(connection)
    blocked = gateway.guard.blocked(spender, scope)
    if blocked is not None:
        raise GatewayError(
            429,
            "quota_exhausted",
            "Toggl Track's hourly quota for this connection is spent; it resets in "
            f"{retry_after(blocked)} s (nothing was sent to Toggl).",
            {"Retry-After": retry_after(blocked)},
        )
    query = request.scope.get("query_string", b"").decode("latin-1")
    url = f"{connection.origin}/{path}" + (f"?{query}" if query else "")
    body = await request.body()
    upstream = gateway.http.build_request(
        method,
        httpx.URL(url),
        headers=_forwarded_headers(request, token),
        content=body or None,
        timeout=gateway.timeout,
    )
    answer = await _send(gateway, upstream, retries=GET_RETRIES if method in ("GET", "HEAD") else 0)
    content = answer.content
    if len(content) > gateway.settings.gateway_max_response_bytes:
        raise GatewayError(
            502, "upstream_too_large", "Toggl Track's answer is larger than this gateway passes on."
        )
    if answer.status_code == 402:
        gateway.guard.spent(spender, scope, answer.headers.get("x-toggl-quota-resets-in"))
    elif answer.status_code in (401, 403):
        await _confirm_refused(gateway, store, connection, token, path)
    headers = _passed_back(answer)
    content = redacted(content, token)
    return Response(content=content, status_code=answer.status_code, headers=headers)


__all__ = [
    "CONNECTION_HEADERS",
    "choose_connection",
    "named_connection",
    "redacted",
    "router",
]
