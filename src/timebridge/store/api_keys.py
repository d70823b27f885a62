"""Gateway API keys and the audit trail of writes made through the gateway.

A key is a random secret shown once: only its SHA-256 and a display prefix are stored, so a copy
of the database lets nobody in. Every method is one transaction and returns a plain record.

`grant` (what one proxied request needs) is remembered for `GRANT_TTL` seconds. Any write in this
process to a table a grant is read from (`api_keys`, `toggl_connections`, `accounts`), through
any engine, forgets every remembered grant at once: a revocation, a deletion or a connection
turned FAILED holds for the very next request here. A write made by another process (another
`serve`, a worker, the CLI) is seen within `GRANT_TTL`.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Engine, Select, and_, bindparam, event, select, update
from sqlalchemy.engine import Connection, ExecutionContext
from sqlalchemy.pool import Pool

from timebridge.clock import Clock
from timebridge.store.crypto import SecretBox
from timebridge.store.database import Database
from timebridge.store.errors import NotFound
from timebridge.store.models import ApiKeyRow, AuditRow, ConnectionStatus, TogglConnectionRow
from timebridge.store.repositories import TogglConnection

logger = logging.getLogger(__name__)

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

#: How long a grant is reused without asking the database (seconds): what another process's
#: revocation, deletion or FAILED marking may take to be seen here.
GRANT_TTL = 2.0
#: A grant this close to the end of its time is read again while it is still used (seconds).
GRANT_REFRESH_AHEAD = 0.5
#: Grants remembered at most (then all are forgotten).
_GRANTS_MAX = 10_000
#: Execution option of a write that changes nothing a grant answers (`last_used_at`).
_KEEPS_GRANTS = "timebridge_keeps_grants"
#: Marks a pooled connection that wrote to a grant's tables, until it is returned committed.
_WROTE_GRANTS = "timebridge_wrote_grants"
_GRANT_WRITE = re.compile(
    r"\s*(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|UPDATE|DELETE\s+FROM)\s+[\"`]?"
    r"(?:api_keys|toggl_connections|accounts)\b",
    re.IGNORECASE,
)


class _Generation:
    """Counts the writes to a grant's tables in this process: a remembered grant is good only
    while the count is the one it was read under."""

    value = 0

    @classmethod
    def bump(cls) -> None:
        cls.value += 1


@event.listens_for(Engine, "after_cursor_execute")
def _after_cursor_execute(
    connection: Connection,
    _cursor: Any,
    statement: str,
    _parameters: Any,
    context: ExecutionContext,
    _executemany: bool,
) -> None:
    if statement[:1] in "IiUuDd \n" and _GRANT_WRITE.match(statement):
        if context.execution_options.get(_KEEPS_GRANTS):
            return
        # Now (a read after this sees the write or not: either way not remembered) and once
        # more when the connection is back in the pool, committed (`_after_checkin`).
        _Generation.bump()
        connection.info[_WROTE_GRANTS] = True


@event.listens_for(Pool, "checkin")
def _after_checkin(_dbapi_connection: Any, record: Any) -> None:
    if record is not None and record.info.pop(_WROTE_GRANTS, False):
        _Generation.bump()


@dataclass(frozen=True)
class _Remembered:
    grant: ProxyGrant
    generation: int
    until: float


class ApiKeyRepository:
    """An account's gateway keys and its audit trail."""

    def __init__(self, database: Database, clock: Clock, box: SecretBox | None = None) -> None:
        self._db = database
        self._clock = clock
        self._box = box
        self._plaintexts: dict[str, SecretStr] = {}
        self._grants: dict[tuple[str, str | None], _Remembered] = {}
        self._reading: dict[tuple[str, str | None], asyncio.Task[ProxyGrant | None]] = {}
        #: When this process last wrote a key's `last_used_at` (key id → time).
        self._touched: dict[int, datetime] = {}
        self._touching: set[asyncio.Task[None]] = set()

    async def grant(self, key: str, connection_id: str | None) -> ProxyGrant | None:
        """The stored key of this secret and, in the same single read, the connection a proxied
        request of its owner uses: `connection_id` (any status; None if it is not the owner's),
        else the owner's default connection if ACTIVE, else their oldest ACTIVE one. None if the
        key is unknown. `last_used_at` is brought up to date at most once a minute (in the
        background).

        A grant found is remembered for `GRANT_TTL` seconds (see the module's docstring); the
        requests that miss it at the same moment share one read, and one still in use is read
        again shortly before its time is up."""
        lookup = (key_digest(key), connection_id)
        remembered = self._grants.get(lookup)
        now = time.monotonic()
        if (
            remembered is not None
            and remembered.generation == _Generation.value
            and now < remembered.until
        ):
            if remembered.until - now < GRANT_REFRESH_AHEAD:
                # Read again in the background: under steady use no caller waits at the expiry.
                self._reading_of(lookup)
            found = remembered.grant
        else:
            read = await asyncio.shield(self._reading_of(lookup))
            if read is None:
                return None
            found = read
        due = self._touch_due(found.key)
        if due is not None:
            # In the background: a caller never waits for the write lock (a sync may hold it).
            touching = asyncio.ensure_future(self._write_touch(found.key.id, due))
            self._touching.add(touching)
            touching.add_done_callback(self._touch_done)
        return found

    async def settle(self) -> None:
        """Wait for the reads and `last_used_at` writes still under way in the background (on
        this event loop): before whoever owns the store closes it."""
        loop = asyncio.get_running_loop()
        pending = [
            task
            for task in (*self._touching, *self._reading.values())
            if task.get_loop() is loop and not task.done()
        ]
        if pending:
            await asyncio.wait(pending)

    def _reading_of(self, lookup: tuple[str, str | None]) -> asyncio.Task[ProxyGrant | None]:
        """The read of this grant under way (on this event loop), or a new one."""
        reading = self._reading.get(lookup)
        if reading is None or reading.get_loop() is not asyncio.get_running_loop():
            reading = asyncio.ensure_future(self._read_grant(*lookup))
            self._reading[lookup] = reading

            def done(task: asyncio.Task[ProxyGrant | None]) -> None:
                if self._reading.get(lookup) is task:
                    del self._reading[lookup]
                if not task.cancelled() and task.exception() is not None:
                    logger.warning("could not read a gateway grant", exc_info=task.exception())

            reading.add_done_callback(done)
        return reading

    def _touch_due(self, found: ApiKey) -> datetime | None:
        """Now, if the key's `last_used_at` is due to be written (it is marked written)."""
        now = self._clock.now()
        last = self._touched.get(found.id, found.last_used_at)
        if not found.usable(now) or (last is not None and now - last < TOUCH_EVERY):
            return None
        if len(self._touched) >= _GRANTS_MAX:
            self._touched.clear()
        self._touched[found.id] = now
        return now

    async def _touch(self, found: ApiKey) -> None:
        due = self._touch_due(found)
        if due is not None:
            await self._write_touch(found.id, due)

    async def _write_touch(self, key_id: int, now: datetime) -> None:
        async with self._db.write_connection() as db:
            await db.execute(
                update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(last_used_at=now),
                execution_options={_KEEPS_GRANTS: True},
            )

    def _touch_done(self, task: asyncio.Task[None]) -> None:
        self._touching.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("could not record when an API key was used", exc_info=task.exception())

    async def _read_grant(self, digest: str, connection_id: str | None) -> ProxyGrant | None:
        generation = _Generation.value
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
        grant = ProxyGrant(found, chosen, token)
        if generation == _Generation.value:  # nothing it was read from changed meanwhile
            if len(self._grants) >= _GRANTS_MAX:
                self._grants.clear()
            self._grants[(digest, connection_id)] = _Remembered(
                grant, generation, time.monotonic() + GRANT_TTL
            )
        return grant

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
        digest = key_digest(key)
        async with self._db.read() as session:
            row = await session.scalar(select(ApiKeyRow).where(ApiKeyRow.digest == digest))
            found = ApiKey.of(row) if row is not None else None
        if found is not None:
            await self._touch(found)
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
    "GRANT_TTL",
    "TOUCH_EVERY",
    "ApiKey",
    "ApiKeyNotFound",
    "ApiKeyRepository",
    "AuditRecord",
    "ProxyGrant",
    "key_digest",
]
