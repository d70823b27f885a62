"""Toggl webhooks as stored: each opted-in connection's endpoint (its callback token and signing
secret, encrypted), what Toggl holds for it per workspace, and the events already acted on.

A delivery finds its endpoint by the SHA-256 of the token in its path, so the token itself is
never looked up in the clear. Every method is one transaction and returns plain records.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import SecretStr
from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from timebridge.clock import Clock
from timebridge.store._sql import rowcount
from timebridge.store.crypto import SecretBox
from timebridge.store.database import Database
from timebridge.store.models import (
    ConnectionStatus,
    TogglConnectionRow,
    WebhookEndpointRow,
    WebhookEventRow,
    WebhookSubscriptionRow,
)


class WebhookState(enum.StrEnum):
    """Where a workspace's subscription stands, as the page shows it."""

    #: Enabled and validated: Toggl delivers events.
    ACTIVE = "active"
    #: Made, but Toggl has not seen the validation answered yet: no events until it has.
    UNVALIDATED = "unvalidated"
    #: Toggl holds it disabled (the daily check enables it again).
    DISABLED = "disabled"
    #: The workspace's plan allows no more webhooks: its other webhooks use them all.
    LIMITED = "limited"
    #: Toggl could not reach the callback, or its deliveries fail.
    FAILING = "failing"


def token_digest(token: str) -> str:
    """What is stored to find an endpoint by its callback token."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class WebhookSubscription:
    """What Toggl holds for an endpoint in one workspace, as last seen."""

    workspace_id: int
    workspace_name: str | None
    subscription_id: int | None
    state: WebhookState
    problem: str | None = None
    validated_at: datetime | None = None
    failed_deliveries: int = 0

    @classmethod
    def of(cls, row: WebhookSubscriptionRow) -> WebhookSubscription:
        return cls(
            workspace_id=row.workspace_id,
            workspace_name=row.workspace_name,
            subscription_id=row.subscription_id,
            state=WebhookState(row.state),
            problem=row.problem,
            validated_at=row.validated_at,
            failed_deliveries=row.failed_deliveries,
        )


@dataclass(frozen=True)
class WebhookEndpoint:
    """A connection's webhook callback and its subscriptions (never the token or secret)."""

    id: int
    account_id: int
    connection_id: str
    created_at: datetime
    last_event_at: datetime | None
    checked_at: datetime | None
    subscriptions: tuple[WebhookSubscription, ...]


@dataclass(frozen=True)
class CallbackTarget:
    """What a delivery needs to be checked and acted on: whose it is and the signing secret."""

    endpoint_id: int
    account_id: int
    connection_id: str
    secret: SecretStr
    #: Toggl's id of the connection's user: events about others' entries (an admin's
    #: subscription sees the workspace's) start no sync.
    toggl_user_id: int | None
    #: Whether the connection is ACTIVE (a FAILED one's events start no sync).
    active: bool


class WebhookRepository:
    """The webhook endpoints of every account."""

    def __init__(self, database: Database, box: SecretBox, clock: Clock) -> None:
        self._db = database
        self._box = box
        self._clock = clock

    async def create(
        self, account_id: int, connection_id: str, token: str, secret: str
    ) -> WebhookEndpoint:
        """The connection's endpoint, made with this token and secret unless it has one."""
        async with self._db.transaction() as session:
            row = await session.scalar(
                select(WebhookEndpointRow).where(WebhookEndpointRow.connection_id == connection_id)
            )
            if row is None:
                row = WebhookEndpointRow(
                    account_id=account_id,
                    connection_id=connection_id,
                    token_digest=token_digest(token),
                    token_encrypted=self._box.encrypt(SecretStr(token)),
                    secret_encrypted=self._box.encrypt(SecretStr(secret)),
                    created_at=self._clock.now(),
                )
                session.add(row)
                await session.flush()
            return await self._endpoint(session, row)

    async def of_account(self, account_id: int) -> list[WebhookEndpoint]:
        """The account's endpoints (one per connection with webhooks on), oldest first."""
        async with self._db.read() as session:
            rows = await session.scalars(
                select(WebhookEndpointRow)
                .where(WebhookEndpointRow.account_id == account_id)
                .order_by(WebhookEndpointRow.id)
            )
            return [await self._endpoint(session, row) for row in rows]

    async def for_connection(self, connection_id: str) -> WebhookEndpoint | None:
        async with self._db.read() as session:
            row = await session.scalar(
                select(WebhookEndpointRow).where(WebhookEndpointRow.connection_id == connection_id)
            )
            return await self._endpoint(session, row) if row is not None else None

    async def ids(self) -> list[int]:
        """Every endpoint's id (the daily check walks them)."""
        async with self._db.read() as session:
            return list(
                await session.scalars(select(WebhookEndpointRow.id).order_by(WebhookEndpointRow.id))
            )

    async def get(self, endpoint_id: int) -> WebhookEndpoint | None:
        async with self._db.read() as session:
            row = await session.get(WebhookEndpointRow, endpoint_id)
            return await self._endpoint(session, row) if row is not None else None

    async def credentials(self, endpoint_id: int) -> tuple[SecretStr, SecretStr]:
        """The endpoint's callback token and signing secret, decrypted."""
        async with self._db.read() as session:
            row = await session.get(WebhookEndpointRow, endpoint_id)
            if row is None:
                raise LookupError(f"no webhook endpoint {endpoint_id}")
            return self._box.decrypt(row.token_encrypted), self._box.decrypt(row.secret_encrypted)

    async def target(self, token: str) -> CallbackTarget | None:
        """The endpoint a delivery's callback token names, or None (one read)."""
        async with self._db.read() as session:
            found = (
                await session.execute(
                    select(WebhookEndpointRow, TogglConnectionRow)
                    .join(
                        TogglConnectionRow,
                        TogglConnectionRow.id == WebhookEndpointRow.connection_id,
                    )
                    .where(WebhookEndpointRow.token_digest == token_digest(token))
                )
            ).first()
        if found is None:
            return None
        endpoint, connection = found
        return CallbackTarget(
            endpoint_id=endpoint.id,
            account_id=endpoint.account_id,
            connection_id=endpoint.connection_id,
            secret=self._box.decrypt(endpoint.secret_encrypted),
            toggl_user_id=connection.toggl_user_id,
            active=connection.status == ConnectionStatus.ACTIVE.value,
        )

    async def save_subscriptions(
        self, endpoint: WebhookEndpoint, subscriptions: Sequence[WebhookSubscription]
    ) -> None:
        """Replace what is known of the endpoint's subscriptions; the endpoint counts as
        checked now."""
        now = self._clock.now()
        endpoint_id, account_id = endpoint.id, endpoint.account_id
        async with self._db.transaction() as session:
            await session.execute(
                delete(WebhookSubscriptionRow).where(
                    WebhookSubscriptionRow.endpoint_id == endpoint_id
                )
            )
            for item in subscriptions:
                session.add(
                    WebhookSubscriptionRow(
                        account_id=account_id,
                        endpoint_id=endpoint_id,
                        workspace_id=item.workspace_id,
                        workspace_name=(item.workspace_name or "")[:200] or None,
                        subscription_id=item.subscription_id,
                        state=item.state.value,
                        problem=item.problem[:500] if item.problem else None,
                        validated_at=item.validated_at,
                        failed_deliveries=item.failed_deliveries,
                        updated_at=now,
                    )
                )
            await session.execute(
                update(WebhookEndpointRow)
                .where(WebhookEndpointRow.id == endpoint_id)
                .values(checked_at=now)
            )

    async def answered_validation(self, target: CallbackTarget, subscription_id: int) -> None:
        """The receiver answered a PING's validation code: the subscription counts as
        validated (the next check reads what Toggl says)."""
        now = self._clock.now()
        async with self._db.transaction() as session:
            await session.execute(
                update(WebhookSubscriptionRow)
                .where(
                    WebhookSubscriptionRow.endpoint_id == target.endpoint_id,
                    WebhookSubscriptionRow.subscription_id == subscription_id,
                    WebhookSubscriptionRow.state == WebhookState.UNVALIDATED.value,
                )
                .values(
                    state=WebhookState.ACTIVE.value,
                    problem=None,
                    validated_at=now,
                    updated_at=now,
                )
            )

    async def first_sight(self, target: CallbackTarget, event_id: int) -> bool:
        """Record that the event arrived; False if it had already (a repeated delivery)."""
        now, endpoint_id = self._clock.now(), target.endpoint_id
        async with self._db.transaction() as session:
            inserted = await session.scalar(
                _insert_new(session)
                .values(
                    account_id=target.account_id,
                    endpoint_id=endpoint_id,
                    event_id=event_id,
                    received_at=now,
                )
                .returning(WebhookEventRow.event_id)
            )
            if inserted is None:
                return False
            await session.execute(
                update(WebhookEndpointRow)
                .where(WebhookEndpointRow.id == endpoint_id)
                .values(last_event_at=now)
            )
            return True

    async def delete(self, endpoint_id: int) -> None:
        """Forget the endpoint, its subscriptions and events (Toggl's side is the caller's)."""
        async with self._db.transaction() as session:
            await session.execute(
                delete(WebhookEndpointRow).where(WebhookEndpointRow.id == endpoint_id)
            )

    async def purge_events(self, before: datetime) -> int:
        """Forget event ids received before `before` (kept a day: Toggl repeats within it)."""
        async with self._db.transaction() as session:
            result = await session.execute(
                delete(WebhookEventRow).where(WebhookEventRow.received_at < before)
            )
            return rowcount(result)

    async def _endpoint(self, session: AsyncSession, row: WebhookEndpointRow) -> WebhookEndpoint:
        subscriptions = await session.scalars(
            select(WebhookSubscriptionRow)
            .where(WebhookSubscriptionRow.endpoint_id == row.id)
            .order_by(WebhookSubscriptionRow.workspace_id)
        )
        return WebhookEndpoint(
            id=row.id,
            account_id=row.account_id,
            connection_id=row.connection_id,
            created_at=row.created_at,
            last_event_at=row.last_event_at,
            checked_at=row.checked_at,
            subscriptions=tuple(WebhookSubscription.of(item) for item in subscriptions),
        )


def _insert_new(session: AsyncSession) -> postgresql.Insert | sqlite.Insert:
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(WebhookEventRow).on_conflict_do_nothing()
    return sqlite.insert(WebhookEventRow).on_conflict_do_nothing()


__all__ = [
    "CallbackTarget",
    "WebhookEndpoint",
    "WebhookRepository",
    "WebhookState",
    "WebhookSubscription",
    "token_digest",
]
