"""Who is calling: `Authorization: Bearer tb_…` → the key's account, id, prefix and scopes.

Missing, malformed (checksum), unknown, revoked or expired keys are a 401; a key without the
scope an operation needs is a 403. A malformed key is refused before the database is asked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from timebridge.gateway.errors import GatewayError
from timebridge.gateway.keys import well_formed
from timebridge.store import ApiKey, Store
from timebridge.web.state import service_state

bearer = HTTPBearer(auto_error=False, description="A Timebridge API key (`tb_…`).")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="timebridge"'}


@dataclass(frozen=True)
class Caller:
    """The key a request came with."""

    account_id: int
    key_id: int
    prefix: str
    scopes: frozenset[str]


def _unauthorized(message: str) -> GatewayError:
    return GatewayError(401, "unauthorized", message, _CHALLENGE)


def store_of(request: Request) -> Store:
    store = service_state(request.app).store
    if store is None:
        raise RuntimeError("the app has not started (no store yet)")
    return store


def presented_key(credentials: HTTPAuthorizationCredentials | None) -> str:
    """The key a request carries, if it has a key's shape (else 401, before any database)."""
    return bearer_key(credentials.credentials if credentials is not None else None)


def bearer_key(credentials: str | None) -> str:
    """The key of `Authorization: Bearer <credentials>` (None: no such header), if it has a
    key's shape (else 401, before any database)."""
    if credentials is None:
        raise _unauthorized("Missing API key: send 'Authorization: Bearer <key>'.")
    key = credentials.strip()
    if not well_formed(key):
        raise _unauthorized("Invalid API key.")
    return key


def bearer_credentials(authorization: str | None) -> str | None:
    """What `HTTPBearer` reads from an `Authorization` header: the credentials of a `Bearer`
    one, else None."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.partition(" ")
    credentials = credentials.strip()
    if not scheme or not credentials or scheme.lower() != "bearer":
        return None
    return credentials


def caller_of(request: Request, found: ApiKey | None) -> Caller:
    """The caller a stored key stands for (401 if unknown, revoked or expired)."""
    return caller_at(found, service_state(request.app).clock.now())


def caller_at(found: ApiKey | None, now: datetime) -> Caller:
    """The caller a stored key stands for at `now` (401 if unknown, revoked or expired)."""
    if found is None:
        raise _unauthorized("Invalid API key.")
    if found.revoked_at is not None:
        raise _unauthorized("This API key was revoked.")
    if not found.usable(now):
        raise _unauthorized("This API key has expired.")
    return Caller(found.account_id, found.id, found.prefix, found.scopes)


async def caller(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
) -> Caller:
    """The caller of a gateway route (401 unless a usable key came with the request)."""
    key = presented_key(credentials)
    return caller_of(request, await store_of(request).api_keys.find(key))


def require(scope: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency: the caller, if its key holds `scope` (else 403)."""

    async def scoped(who: Caller = Depends(caller)) -> Caller:
        check_scope(who, scope)
        return who

    return scoped


def check_scope(who: Caller, scope: str) -> None:
    if scope not in who.scopes:
        raise GatewayError(403, "forbidden", f"This API key lacks the {scope!r} scope.")


__all__ = [
    "Caller",
    "bearer",
    "bearer_credentials",
    "bearer_key",
    "caller",
    "caller_at",
    "caller_of",
    "check_scope",
    "presented_key",
    "require",
    "store_of",
]
