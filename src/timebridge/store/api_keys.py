"""Gateway API keys and the audit trail of writes made through the gateway.

A key is a random secret shown once: only its SHA-256 and a display prefix are stored, so a copy
of the database lets nobody in. Every method is one transaction and returns a plain record.
"""

from __future__ import annotations

import builtins
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Select, and_, bindparam, select, update

from timebridge.clock import Clock
from timebridge.store.crypto import SecretBox
from timebridge.store.database import Database
from timebridge.store.errors import NotFound
from timebridge.store.models import ApiKeyRow, AuditRow, ConnectionStatus, TogglConnectionRow
from timebridge.store.repositories import TogglConnection

#: `last_used_at` is written at most this often (a request is otherwise a read).
TOUCH_EVERY = timedelta(minutes=1)
#: How many audit records a listing returns at most.
AUDIT_LIMIT = 200


class ApiKeyNotFound(NotFound):
    """No such key of this account."""


def key_digest(key: str) -> str:
    """What is stored of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """A stored key, as lists and the gateway see it (never the key itself)."""

    id: int
    account_id: int
    prefix: str
    name: str | None
    scopes: frozenset[str]
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    @classmethod
    def of(cls, row: ApiKeyRow) -> ApiKey:
        return cls(
            id=row.id,
            account_id=row.account_id,
            prefix=row.prefix,
            name=row.name,
            scopes=frozenset(row.scopes.split()),
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
        )


@dataclass(frozen=True)
class AuditRecord:
    """One write made through the gateway."""

    at: datetime
    key_prefix: str
    connection_id: str | None
    method: str
    path: str
    status: int
    duration_ms: int


@dataclass(frozen=True)
class ProxyGrant:
    """What one proxied request needs, read at once: the key, and the connection it asked for
    (by id) or its owner's default-or-oldest ACTIVE one, with that connection's token."""

    key: ApiKey
    connection: TogglConnection | None
    token: SecretStr | None


def _grant_query(*, named: bool) -> Select[Any]:
    """One key (by digest) joined with the connection a proxied request uses (see `grant`);
    built once, run with bound parameters."""
    connection = TogglConnectionRow.__table__.c
    keys = ApiKeyRow.__table__.c
    joined = and_(
        connection.account_id == keys.account_id,
        connection.id == bindparam("named")
        if named
        else connection.status == ConnectionStatus.ACTIVE.value,
    )
    return (
        select(*keys, *[column.label(f"c_{column.name}") for column in connection])
        .select_from(ApiKeyRow.__table__.outerjoin(TogglConnectionRow.__table__, joined))
        .where(keys.digest == bindparam("digest"))
        .order_by(connection.is_default.desc(), connection.created_at, connection.id)
        .limit(1)
    )


_GRANT_NAMED = _grant_query(named=True)
_GRANT_DEFAULT = _grant_query(named=False)

#: Decrypted tokens by ciphertext (a ciphertext always decrypts to the same token); bounded.
_PLAINTEXTS_MAX = 4096


class ApiKeyRepository:
    """An account's gateway keys and its audit trail."""

    def __init__(self, database: Database, clock: Clock, box: SecretBox | None = None) -> None:
        self._db = database
        self._clock = clock
        self._box = box
        self._plaintexts: dict[str, SecretStr] = {}

    async def grant(self, key: str, connection_id: str | None) -> ProxyGrant | None:
        """The stored key of this secret and, in the same single read, the connection a proxied
        request of its owner uses: `connection_id` (any status; None if it is not the owner's),
        else the owner's default connection if ACTIVE, else their oldest ACTIVE one. None if the
        key is unknown. `last_used_at` is brought up to date at most once a minute."""
        digest, now = key_digest(key), self._clock.now()
        async with self._db.read_connection() as db:
            if connection_id is not None:
                result = await db.execute(_GRANT_NAMED, {"digest": digest, "named": connection_id})
            else:
                result = await db.execute(_GRANT_DEFAULT, {"digest": digest})
            row = result.mappings().first()
        if row is None:
            return None
        found = ApiKey(
            id=row["id"],
            account_id=row["account_id"],
            prefix=row["prefix"],
            name=row["name"],
            scopes=frozenset(row["scopes"].split()),
            created_at=row["created_at"],
            last_used_at=row["last_used_at"],
            expires_at=row["expires_at"],
            revoked_at=row["revoked_at"],
        )
        chosen: TogglConnection | None = None
        token: SecretStr | None = None
        if row["c_id"] is not None:
            chosen = TogglConnection(
                id=row["c_id"],
                account_id=row["c_account_id"],
                status=ConnectionStatus(row["c_status"]),
                is_default=bool(row["c_is_default"]),
                has_token=row["c_token_encrypted"] is not None,
                label=row["c_label"],
                toggl_user_id=row["c_toggl_user_id"],
                failure_reason=row["c_failure_reason"],
                created_at=row["c_created_at"],
                updated_at=row["c_updated_at"],
                origin=row["c_origin"],
            )
            token = self._plaintext(row["c_token_encrypted"])
        if found.usable(now) and (
            found.last_used_at is None or now - found.last_used_at >= TOUCH_EVERY
        ):
            async with self._db.transaction() as session:
                await session.execute(
                    update(ApiKeyRow).where(ApiKeyRow.id == found.id).values(last_used_at=now)
                )
        return ProxyGrant(found, chosen, token)

    def _plaintext(self, ciphertext: str | None) -> SecretStr | None:
        if ciphertext is None or self._box is None:
            return None
        token = self._plaintexts.get(ciphertext)
        if token is None:
            token = self._box.decrypt(ciphertext)
            if len(self._plaintexts) >= _PLAINTEXTS_MAX:
                self._plaintexts.clear()
            self._plaintexts[ciphertext] = token
        return token

    async def create(
        self,
        account_id: int,
        key: str,
        *,
        prefix: str,
        scopes: Iterable[str],
        name: str | None = None,
        expires_at: datetime | None = None,
    ) -> ApiKey:
        """Store a new key (its digest and prefix; the caller shows the key once)."""
        row = ApiKeyRow(
            account_id=account_id,
            digest=key_digest(key),
            prefix=prefix,
            name=name[:200] if name else None,
            scopes=" ".join(sorted(set(scopes))),
            created_at=self._clock.now(),
            expires_at=expires_at,
        )
        async with self._db.transaction() as session:
            session.add(row)
            await session.flush()
            return ApiKey.of(row)

    async def find(self, key: str) -> ApiKey | None:
        """The stored key of this secret (revoked and expired ones too), or None; its
        `last_used_at` is brought up to date at most once a minute."""
        digest, now = key_digest(key), self._clock.now()
        async with self._db.read() as session:
            row = await session.scalar(select(ApiKeyRow).where(ApiKeyRow.digest == digest))
            found = ApiKey.of(row) if row is not None else None
        if found is None or not found.usable(now):
            return found
        if found.last_used_at is None or now - found.last_used_at >= TOUCH_EVERY:
            async with self._db.transaction() as session:
                await session.execute(
                    update(ApiKeyRow).where(ApiKeyRow.id == found.id).values(last_used_at=now)
                )
        return found

    async def list(self, account_id: int) -> list[ApiKey]:
        """The account's keys, newest first (revoked ones too)."""
        async with self._db.read() as session:
            rows = await session.scalars(
                select(ApiKeyRow)
                .where(ApiKeyRow.account_id == account_id)
                .order_by(ApiKeyRow.created_at.desc(), ApiKeyRow.id.desc())
            )
            return [ApiKey.of(row) for row in rows]

    async def accounts_of_prefix(self, prefix: str) -> builtins.list[ApiKey]:
        """Keys whose display prefix is `prefix` (for the CLI, which may not know the owner)."""
        async with self._db.read() as session:
            rows = await session.scalars(select(ApiKeyRow).where(ApiKeyRow.prefix == prefix))
            return [ApiKey.of(row) for row in rows]

    async def revoke(self, account_id: int, key_id: int) -> ApiKey:
        """Revoke one of the account's keys (at once, for every later request)."""
        now = self._clock.now()
        async with self._db.transaction() as session:
            await session.execute(
                update(ApiKeyRow)
                .where(
                    ApiKeyRow.id == key_id,
                    ApiKeyRow.account_id == account_id,
                    ApiKeyRow.revoked_at.is_(None),
                )
                .values(revoked_at=now)
            )
            row = await session.scalar(
                select(ApiKeyRow).where(ApiKeyRow.id == key_id, ApiKeyRow.account_id == account_id)
            )
            if row is None:
                raise ApiKeyNotFound(f"no API key {key_id}")
            return ApiKey.of(row)

    async def record(
        self,
        account_id: int,
        *,
        key_id: int | None,
        key_prefix: str,
        connection_id: str | None,
        method: str,
        path: str,
        status: int,
        duration_ms: int,
    ) -> None:
        """Add one write to the audit trail."""
        async with self._db.transaction() as session:
            session.add(
                AuditRow(
                    account_id=account_id,
                    at=self._clock.now(),
                    key_id=key_id,
                    key_prefix=key_prefix,
                    connection_id=connection_id,
                    method=method[:10],
                    path=path[:500],
                    status=status,
                    duration_ms=max(0, duration_ms),
                )
            )

    async def audit(
        self, account_id: int, *, limit: int = AUDIT_LIMIT
    ) -> builtins.list[AuditRecord]:
        """The account's latest audited writes, newest first."""
        async with self._db.read() as session:
            rows = await session.scalars(
                select(AuditRow)
                .where(AuditRow.account_id == account_id)
                .order_by(AuditRow.at.desc(), AuditRow.id.desc())
                .limit(limit)
            )
            return [
                AuditRecord(
                    row.at,
                    row.key_prefix,
                    row.connection_id,
                    row.method,
                    row.path,
                    row.status,
                    row.duration_ms,
                )
                for row in rows
            ]


__all__ = [
    "AUDIT_LIMIT",
    "TOUCH_EVERY",
    "ApiKey",
    "ApiKeyNotFound",
    "ApiKeyRepository",
    "AuditRecord",
    "ProxyGrant",
    "key_digest",
]
