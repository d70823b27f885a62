"""The tables, as SQLAlchemy 2 typed declarative models.

Rules the database itself enforces, so no code path (a web form, a race between two workers, a
future integration) can break them:

- an attribute is claimed by at most one integration of a user (`attribute_claims` is unique on
  (account, attribute)), so a Trakt claim blocks a Toggl one;
- a mapping points at its user's Toggl claim of that attribute (a composite foreign key), so
  nothing can be mapped that Toggl does not hold, and a claim cannot be dropped while mapped;
- a Toggl project maps to at most one attribute (unique (account, project));
- a user has at most one default Toggl connection (a partial unique index);
- deleting an account deletes everything of it (ON DELETE CASCADE everywhere).

Columns marked `info={"encrypted": True}` hold Fernet ciphertext only; `timebridge secrets
rotate` finds them by that mark, so a future encrypted column is rotated without more code.
Instants are stored in UTC and always come back aware (`UtcDateTime`), on SQLite too.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from timebridge.origins import EXIST_ORIGIN, TOGGL_ORIGIN

#: Constraint names fixed by convention, so later migrations can refer to them on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Room for Exist attribute names (templates are short; custom names are derived from labels).
ATTRIBUTE_LENGTH = 100
#: Room for an IANA zone name.
ZONE_LENGTH = 64
#: Room for a service's origin (scheme, host, port and a proxy's path prefix).
ORIGIN_LENGTH = 300

#: The column info flag that marks ciphertext columns for rotation.
ENCRYPTED = "encrypted"


class UtcDateTime(TypeDecorator[datetime]):
    """An aware instant, stored in UTC (SQLite keeps no offset, so it is normalised here)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the store keeps aware datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: Local ids: 64-bit on PostgreSQL, SQLite's rowid on SQLite (autoincrement needs INTEGER there).
LocalId = BigInteger().with_variant(Integer(), "sqlite")


class Integration(enum.StrEnum):
    """The integrations that can claim an Exist attribute for a user.

    The column is a plain string, not a database enum, so adding one needs no migration.
    """

    TOGGL = "toggl"
    TRAKT = "trakt"


class ConnectionStatus(enum.StrEnum):
    """A stored connection's state, in the gateway's words (`status` in its JSON)."""

    #: Created through the connections API, waiting for the user to paste a token.
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    #: The service refused the token (Toggl 401/403, Exist refresh refused): reconnect.
    FAILED = "FAILED"


class Base(DeclarativeBase):
    """Every table's base: one metadata, one naming convention, UTC instants."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime()}


def _uuid() -> str:
    return str(uuid.uuid4())


class AccountRow(Base):
    """A person using Timebridge; everything else hangs off an account."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(LocalId, primary_key=True)
    #: Stored lowercased by the repository, so sign-in is case-insensitive.
    email: Mapped[str] = mapped_column(String(320), unique=True)
    #: The Exist user this account signs in as ("Sign in with Exist"); None until then.
    exist_username: Mapped[str | None] = mapped_column(String(150), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    #: The user's own choice of zone; wins over Exist's (DESIGN.md, "Window").
    time_zone: Mapped[str | None] = mapped_column(String(ZONE_LENGTH))
    created_at: Mapped[datetime]


class TogglConnectionRow(Base):
    """A Toggl API token of a user, shared by the bridge and the gateway."""

    __tablename__ = "toggl_connections"
    __table_args__ = (
        Index(
            "uq_toggl_connections_one_default",
            "account_id",
            unique=True,
            sqlite_where=text("is_default"),
            postgresql_where=text("is_default"),
        ),
    )

    #: The gateway's `connection_id`: opaque and unguessable, unlike a sequence.
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    #: None while PENDING (created through the API, token not pasted yet).
    token_encrypted: Mapped[str | None] = mapped_column(Text, info={ENCRYPTED: True})
    status: Mapped[str] = mapped_column(String(16))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    label: Mapped[str | None] = mapped_column(String(200))
    #: Where the token was checked and so the only place it is sent (`timebridge.origins`).
    origin: Mapped[str] = mapped_column(String(ORIGIN_LENGTH), server_default=TOGGL_ORIGIN)
    #: Toggl's id of the account behind the token (from `/me`), to spot duplicates.
    toggl_user_id: Mapped[int | None] = mapped_column(BigInteger)
    #: Why the connection failed, in words safe to show the user.
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ExistConnectionRow(Base):
    """A user's Exist OAuth grant (or personal token): at most one per account."""

    __tablename__ = "exist_connections"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    access_token_encrypted: Mapped[str] = mapped_column(Text, info={ENCRYPTED: True})
    #: None for a personal token, which Exist never refreshes.
    refresh_token_encrypted: Mapped[str | None] = mapped_column(Text, info={ENCRYPTED: True})
    expires_at: Mapped[datetime | None]
    #: The granted scopes, space-separated as Exist sends them.
    scopes: Mapped[str] = mapped_column(String(500), default="")
    #: Where the tokens were granted and so the only place they are sent (`timebridge.origins`).
    origin: Mapped[str] = mapped_column(String(ORIGIN_LENGTH), server_default=EXIST_ORIGIN)
    #: The zone Exist uses for the user's days, and when it was last read from the profile.
    time_zone: Mapped[str | None] = mapped_column(String(ZONE_LENGTH))
    time_zone_checked_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AttributeClaimRow(Base):
    """Which integration of a user feeds an Exist attribute: one per (user, attribute)."""

    __tablename__ = "attribute_claims"
    __table_args__ = (
        UniqueConstraint("account_id", "attribute"),
        # Redundant with the one above, but a foreign key needs exactly these columns unique.
        UniqueConstraint("account_id", "attribute", "integration"),
    )

    id: Mapped[int] = mapped_column(LocalId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    attribute: Mapped[str] = mapped_column(String(ATTRIBUTE_LENGTH))
    integration: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]


class MappingRow(Base):
    """One Toggl project mapped to one Exist attribute."""

    __tablename__ = "mappings"
    __table_args__ = (
        # One project maps to at most one attribute (several projects may share one).
        UniqueConstraint("account_id", "project_id"),
        ForeignKeyConstraint(
            ["account_id", "attribute", "integration"],
            [
                "attribute_claims.account_id",
                "attribute_claims.attribute",
                "attribute_claims.integration",
            ],
        ),
        CheckConstraint(f"integration = '{Integration.TOGGL.value}'", name="toggl_only"),
    )

    id: Mapped[int] = mapped_column(LocalId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    workspace_id: Mapped[int] = mapped_column(BigInteger)
    project_id: Mapped[int] = mapped_column(BigInteger)
    #: The project's name when the user last saw the mapping page (Toggl may rename it).
    project_name: Mapped[str] = mapped_column(String(255))
    attribute: Mapped[str] = mapped_column(String(ATTRIBUTE_LENGTH))
    #: Always "toggl": it makes the foreign key point at a Toggl claim, not any claim.
    integration: Mapped[str] = mapped_column(String(32), default=Integration.TOGGL.value)
    updated_at: Mapped[datetime]


class LedgerRow(Base):
    """The value Timebridge last wrote to Exist for (user, attribute, local date), and Exist
    accepted."""

    __tablename__ = "ledger"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    attribute: Mapped[str] = mapped_column(String(ATTRIBUTE_LENGTH), primary_key=True)
    #: The user's local date (Exist's day).
    day: Mapped[date] = mapped_column(Date, primary_key=True, index=True)
    value: Mapped[int] = mapped_column(Integer)
    recorded_at: Mapped[datetime]


class EntrySnapshotRow(Base):
    """The user's Toggl entries as the bridge last saw them (`timebridge.entries`).

    Every entry of a range, in one row: a run reads and writes them together, and one row is one
    read (a row per entry made loading the two weeks of a user cost more than fetching them).
    `entries` is a JSON array of `[id, project id, start, stop, updated at]` (`KeptEntry`'s
    fields), the instants in microseconds since the epoch (UTC), null where Toggl has none; no
    descriptions.
    """

    __tablename__ = "entry_snapshots"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    covered_from: Mapped[datetime]
    covered_to: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    fetched_at: Mapped[datetime]
    entries: Mapped[str] = mapped_column(Text)
    #: The last settled mark (`timebridge.sync.settled.Settled`), if a run left one.
    settled_digest: Mapped[str | None] = mapped_column(String(32))
    settled_at: Mapped[datetime | None]
    settled_until: Mapped[datetime | None]


class SyncRunRow(Base):
    """The record of one sync run, for the status page and the scheduler."""

    __tablename__ = "sync_runs"
    __table_args__ = (Index("ix_sync_runs_account_id_started_at", "account_id", "started_at"),)

    id: Mapped[int] = mapped_column(LocalId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]
    duration_ms: Mapped[int] = mapped_column(Integer)
    toggl_requests: Mapped[int] = mapped_column(Integer)
    exist_requests: Mapped[int] = mapped_column(Integer)
    values_written: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    next_sync_after: Mapped[datetime | None]


class WebSessionRow(Base):
    """A signed-in browser. The cookie holds a random id; only its SHA-256 is stored, so a copy
    of the database signs nobody in."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    #: The token every state-changing request of this session must carry.
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class LoginLinkRow(Base):
    """A one-time sign-in link (`timebridge login-link`): single use, short-lived; only the
    SHA-256 of its token is stored."""

    __tablename__ = "login_links"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class ApiKeyRow(Base):
    """A gateway API key (`tb_…`). Only its SHA-256 is stored, with a display prefix: the key
    itself is shown once, when it is created."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(LocalId, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    #: SHA-256 of the whole key, hex.
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    #: The key's first characters, to recognise it in lists and the audit trail.
    prefix: Mapped[str] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(200))
    #: Space-separated scopes (`proxy:read proxy:write connections:read connections:write`).
    scopes: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    #: Written at most once a minute (a request is a read).
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class AuditRow(Base):
    """One write made through the gateway: who, what, when, how it ended; never a body."""

    __tablename__ = "gateway_audit"
    __table_args__ = (Index("ix_gateway_audit_account_id_at", "account_id", "at"),)

    id: Mapped[int] = mapped_column(LocalId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    key_id: Mapped[int | None] = mapped_column(LocalId)
    key_prefix: Mapped[str] = mapped_column(String(32))
    connection_id: Mapped[str | None] = mapped_column(String(36))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(500))
    status: Mapped[int] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer)


class WebhookEndpointRow(Base):
    """A Toggl connection's webhook callback: its unguessable path and the secret Toggl signs
    deliveries with. It exists while the user has webhooks turned on for that connection."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(LocalId, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    connection_id: Mapped[str] = mapped_column(
        ForeignKey("toggl_connections.id", ondelete="CASCADE"), unique=True
    )
    #: SHA-256 of the callback path's token, hex: how a delivery finds its endpoint.
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    #: The token itself, to build the callback URL again (a re-created subscription).
    token_encrypted: Mapped[str] = mapped_column(Text, info={ENCRYPTED: True})
    #: The HMAC key of `X-Webhook-Signature-256`, given to Toggl when subscribing.
    secret_encrypted: Mapped[str] = mapped_column(Text, info={ENCRYPTED: True})
    created_at: Mapped[datetime]
    #: When a signed event (not a PING) last arrived.
    last_event_at: Mapped[datetime | None]
    #: When the subscriptions were last reconciled with Toggl (turning on, the daily check).
    checked_at: Mapped[datetime | None]


class WebhookSubscriptionRow(Base):
    """What Toggl holds for an endpoint in one workspace, as last seen."""

    __tablename__ = "webhook_subscriptions"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), primary_key=True
    )
    workspace_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    workspace_name: Mapped[str | None] = mapped_column(String(200))
    #: Toggl's id; None when none could be made (the plan's limit, an unreachable callback).
    subscription_id: Mapped[int | None] = mapped_column(BigInteger)
    #: `WebhookState` value.
    state: Mapped[str] = mapped_column(String(16))
    #: What is wrong, in words safe to show the user.
    problem: Mapped[str | None] = mapped_column(String(500))
    validated_at: Mapped[datetime | None]
    #: Deliveries Toggl reported failing at the last check.
    failed_deliveries: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime]


class WebhookEventRow(Base):
    """A delivered event's id, kept a day, so a delivery Toggl repeats starts no second sync."""

    __tablename__ = "webhook_events"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), primary_key=True
    )
    event_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(index=True)


def encrypted_columns() -> list[tuple[str, str]]:
    """(table, column) of every ciphertext column, in a stable order."""
    return [
        (table.name, column.name)
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if column.info.get(ENCRYPTED)
    ]


class GatewayQuotaRow(Base):
    """A Toggl quota the gateway saw spent (a 402, or a sync's), until Toggl said it resets:
    how every `serve` process sharing the database refuses that scope's calls locally, one
    started later too. Kept per account whose connection saw it; rows past `resets_at` are dead."""

    __tablename__ = "gateway_quotas"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    #: Whose quota (`timebridge.gateway.limits.quota_spender`).
    spender: Mapped[str] = mapped_column(String(ORIGIN_LENGTH + 40), primary_key=True)
    #: Which of its quotas: `user` or `workspace:<id>`.
    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    resets_at: Mapped[datetime] = mapped_column(index=True)


class GatewayRateBucketRow(Base):
    """A key's shared token bucket: `serve` processes lease allowance from it in small batches
    (`timebridge.store.gateway_limits`), so the key's rate limit holds across them."""

    __tablename__ = "gateway_rate_buckets"

    key_id: Mapped[int] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    #: What is left in the bucket as of `at`.
    tokens: Mapped[float] = mapped_column(Float)
    #: What the last lease took (read back by that lease).
    granted: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
