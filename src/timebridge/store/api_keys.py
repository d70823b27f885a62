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

from sqlalchemy import select, update

from timebridge.clock import Clock
from timebridge.store.database import Database
from timebridge.store.errors import NotFound
from timebridge.store.models import ApiKeyRow, AuditRow

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


class ApiKeyRepository:
    """An account's gateway keys and its audit trail."""

    def __init__(self, database: Database, clock: Clock) -> None:
        self._db = database
        self._clock = clock

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
    "key_digest",
]
