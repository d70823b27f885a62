"""The connections API, in the seed gateway's shapes: list, create, get and delete the Toggl
Track connections of the key's owner. No answer ever carries a stored token."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from timebridge import toggl
from timebridge.gateway.audit import audited
from timebridge.gateway.auth import Caller, require, store_of
from timebridge.gateway.errors import GatewayError, documented
from timebridge.gateway.keys import CONNECTIONS_READ, CONNECTIONS_WRITE
from timebridge.gateway.limits import retry_after
from timebridge.gateway.state import gateway_state
from timebridge.origins import toggl_origin
from timebridge.store import ConnectionNotFound, ConnectionStatus, TogglConnection
from timebridge.web.state import bridge_of, settings_of

APP = "toggl-track"

router = APIRouter(tags=["connections"])

_ERRORS = documented(
    {
        401: "Missing, invalid, revoked or expired API key",
        403: "The key lacks the scope",
        422: "The request does not follow its schema",
        429: "Rate limited",
    }
)
_NOT_FOUND = documented({404: "No such connection of this key's owner"})


class Connection(BaseModel):
    """A Toggl Track connection, as the seed's gateway shows one."""

    connection_id: str
    status: Literal["ACTIVE", "PENDING", "FAILED"]
    creation_time: str
    last_updated_time: str
    #: Where the owner (signed in) pastes a Toggl API token to complete or renew it.
    url: str
    app: Literal["toggl-track"] = "toggl-track"
    method: Literal["BASIC"] = "BASIC"
    metadata: dict[str, Any]


class ConnectionList(BaseModel):
    connections: list[Connection]


class ConnectionEnvelope(BaseModel):
    connection: Connection


class NewConnection(BaseModel):
    """`{"app": "toggl-track"}` (a PENDING connection whose `url` completes it) or with an
    `api_token` (checked with Toggl's `/me` and stored: ACTIVE at once)."""

    model_config = ConfigDict(extra="ignore")

    app: Literal["toggl-track"]
    api_token: SecretStr | None = Field(default=None, min_length=1, max_length=200)


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def shape(connection: TogglConnection, public_url: str) -> Connection:
    metadata: dict[str, Any] = {
        "label": connection.label,
        "toggl_user_id": connection.toggl_user_id,
        "default": connection.is_default,
    }
    if connection.failure_reason:
        metadata["failure_reason"] = connection.failure_reason
    return Connection(
        connection_id=connection.id,
        status=connection.status.value,
        creation_time=_time(connection.created_at),
        last_updated_time=_time(connection.updated_at),
        url=f"{public_url}/connect/toggl?connection={connection.id}",
        metadata=metadata,
    )


async def _limit(request: Request, who: Caller) -> None:
    wait = await gateway_state(request).limiter.acquire(who.key_id, who.account_id)
    if wait is not None:
        raise GatewayError(
            429,
            "rate_limited",
            "Too many requests with this key.",
            {"Retry-After": retry_after(wait)},
        )


async def _owned(request: Request, who: Caller, connection_id: str) -> TogglConnection:
    try:
        if len(connection_id) > 64:
            raise ConnectionNotFound(connection_id)
        return await store_of(request).toggl_connections.get(who.account_id, connection_id)
    except ConnectionNotFound:
        raise GatewayError(404, "not_found", "No such Toggl Track connection.") from None


@router.get("/connections", response_model=ConnectionList, responses=_ERRORS)
async def list_connections(
    request: Request,
    who: Annotated[Caller, Depends(require(CONNECTIONS_READ))],
    app: Annotated[str | None, Query(max_length=100)] = None,
    status: Annotated[Literal["ACTIVE", "PENDING", "FAILED"] | None, Query()] = None,
) -> ConnectionList:
    """The key owner's Toggl Track connections, oldest first (`app` and `status` filter)."""
    await _limit(request, who)
    if app is not None and app != APP:
        return ConnectionList(connections=[])
    found = await store_of(request).toggl_connections.list(
        who.account_id, status=ConnectionStatus(status) if status else None
    )
    public = settings_of(request).public_url
    return ConnectionList(connections=[shape(c, public) for c in found])


@router.post(
    "/connections",
    response_model=ConnectionEnvelope,
    status_code=201,
    responses={
        **_ERRORS,
        **documented(
            {
                400: "Toggl Track refused the API token",
                502: "Toggl Track could not check the token",
            }
        ),
    },
)
async def create_connection(
    request: Request,
    body: NewConnection,
    who: Annotated[Caller, Depends(require(CONNECTIONS_WRITE))],
) -> ConnectionEnvelope:
    """A new connection: PENDING (open its `url` to paste a token) or, given `api_token`,
    checked with Toggl and ACTIVE."""
    async with audited(store_of(request), who, "POST", "/connections") as audit:
        await _limit(request, who)
        connection = await _create(request, who, body.api_token)
        audit["connection_id"] = connection.id
        audit["status"] = "201"
        return ConnectionEnvelope(connection=shape(connection, settings_of(request).public_url))


async def _create(request: Request, who: Caller, token: SecretStr | None) -> TogglConnection:
    store = store_of(request)
    if token is None:
        return await store.toggl_connections.create(who.account_id)
    origin = toggl_origin(settings_of(request).toggl_base_url)
    bridge = bridge_of(request)
    try:
        async with bridge.upstreams.toggl(token, origin) as client:
            me = await client.me()
    except toggl.AuthenticationError:
        raise GatewayError(400, "invalid_token", "Toggl Track refused this API token.") from None
    except toggl.TogglError:
        raise GatewayError(
            502, "upstream_error", "Toggl Track could not check the token; try again later."
        ) from None
    connection: TogglConnection | None = None
    for existing in await store.toggl_connections.list(who.account_id):
        if existing.toggl_user_id == me.id:
            connection = await store.toggl_connections.set_token(
                who.account_id, existing.id, token, toggl_user_id=me.id, origin=origin
            )
            break
    if connection is None:
        connection = await store.toggl_connections.create(
            who.account_id,
            token,
            label=me.fullname or me.email,
            toggl_user_id=me.id,
            origin=origin,
        )
    default = await store.toggl_connections.default(who.account_id)
    if default is None or default.status is not ConnectionStatus.ACTIVE:
        # The bridge syncs the default: a PENDING or FAILED one gives way to a working one.
        connection = await store.toggl_connections.set_default(who.account_id, connection.id)
    return connection


@router.get(
    "/connections/{connection_id}",
    response_model=ConnectionEnvelope,
    responses={**_ERRORS, **_NOT_FOUND},
)
async def get_connection(
    request: Request,
    connection_id: str,
    who: Annotated[Caller, Depends(require(CONNECTIONS_READ))],
) -> ConnectionEnvelope:
    """One connection of the key's owner."""
    await _limit(request, who)
    connection = await _owned(request, who, connection_id)
    return ConnectionEnvelope(connection=shape(connection, settings_of(request).public_url))


@router.delete(
    "/connections/{connection_id}",
    response_model=ConnectionEnvelope,
    responses={**_ERRORS, **_NOT_FOUND},
)
async def delete_connection(
    request: Request,
    connection_id: str,
    who: Annotated[Caller, Depends(require(CONNECTIONS_WRITE))],
) -> ConnectionEnvelope:
    """Delete a connection and its stored token (and its webhooks at Toggl); deleting the last
    one disconnects Toggl from the bridge too (mapping, ledger and entries go, attributes are
    released)."""
    async with audited(
        store_of(request), who, "DELETE", f"/connections/{connection_id}"[:500]
    ) as audit:
        await _limit(request, who)
        connection = await _owned(request, who, connection_id)
        audit["connection_id"] = connection.id
        await bridge_of(request).delete_toggl_connection(who.account_id, connection.id)
        audit["status"] = "200"
        return ConnectionEnvelope(connection=shape(connection, settings_of(request).public_url))


__all__ = ["Connection", "ConnectionEnvelope", "ConnectionList", "router", "shape"]
