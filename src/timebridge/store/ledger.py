"""`SqlLedgerStore`: the runner's ledger and kept entries in the database.

It implements `timebridge.sync.ledger.LedgerStore` call for call, each call one transaction:
the values Exist accepted from one write batch are committed together or not at all, so the
ledger never claims a value Exist did not confirm (DESIGN.md, "Write"). Loads are read
transactions, which on SQLite do not queue for the write lock.

Kept entries are replaced every run, but most runs fetch exactly what the last one did: a digest
of the kept entries (`kept_entry_digests`) lets an unchanged fetch end after one read (shared
with the ledger's load in `replace_entries_and_load`), and a changed one writes only the entries
that differ.

`purge` is the store-wide clean-up of rows older than the 21 days the bridge keeps; the runner
also forgets its own user's old dates every run, in the user's zone.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from timebridge.clock import Clock, SystemClock
from timebridge.store._sql import rowcount, upsert
from timebridge.store.database import Database
from timebridge.store.models import Base, KeptEntryDigestRow, KeptEntryRow, LedgerRow
from timebridge.sync.ledger import KeptEntry, LedgerStore, UserId
from timebridge.sync.planner import IN_FLIGHT, PURGE_AFTER_DAYS, AttributeDate, ValueWrite

_LEDGER: Table = Base.metadata.tables[LedgerRow.__tablename__]
_ENTRIES: Table = Base.metadata.tables[KeptEntryRow.__tablename__]
_DIGESTS: Table = Base.metadata.tables[KeptEntryDigestRow.__tablename__]
#: Built once: the compiled-statement cache then serves every run's SQL.
_DIGEST_QUERY = select(_DIGESTS.c.digest).where(_DIGESTS.c.account_id == bindparam("account_id"))
_LEDGER_QUERY = select(_LEDGER.c.attribute, _LEDGER.c.day, _LEDGER.c.value).where(
    _LEDGER.c.account_id == bindparam("account_id")
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class PurgeCounts:
    """What one purge deleted."""

    ledger_rows: int
    entries: int


def purge_cutoff(now: datetime, days: int = PURGE_AFTER_DAYS) -> date:
    """The first date a store-wide purge keeps.

    Ledger dates are the users' local dates, and a user's today may be a day behind UTC's: one
    day of slack means no user loses a row the runner would still keep for them.
    """
    return now.astimezone(UTC).date() - timedelta(days=days + 1)


async def delete_ledger(session: AsyncSession, user_id: UserId) -> int:
    """Delete the user's whole ledger inside the caller's transaction."""
    return rowcount(await session.execute(delete(LedgerRow).where(LedgerRow.account_id == user_id)))


async def delete_entries(session: AsyncSession, user_id: UserId) -> int:
    """Delete the user's kept entries (and their digest) inside the caller's transaction."""
    await session.execute(
        delete(KeptEntryDigestRow).where(KeptEntryDigestRow.account_id == user_id)
    )
    return rowcount(
        await session.execute(delete(KeptEntryRow).where(KeptEntryRow.account_id == user_id))
    )


#: One kept entry in the digest: id, then project, stop and updated_at each as a presence flag
#: and a value, and start; fixed width, so equal encodings mean equal entries.
_ENTRY_KEY = struct.Struct("<q?qq?q?q")


def _micros(instant: datetime) -> int:
    return (instant - _EPOCH) // _MICROSECOND


def entries_digest(entries: Iterable[KeptEntry]) -> str:
    """SHA-256 (hex) of the entries as the store keeps them: by id, instants to the microsecond
    whatever their offset, so a fetch equal to the kept rows has the kept rows' digest.

    Ids are unique among kept entries, so sorting by id alone orders them.
    """
    pack = _ENTRY_KEY.pack
    digest = hashlib.sha256()
    for entry in sorted(entries, key=_entry_id):
        project_id, stop, updated_at = entry.project_id, entry.stop, entry.updated_at
        digest.update(
            pack(
                entry.id,
                project_id is not None,
                project_id or 0,
                _micros(entry.start),
                stop is not None,
                _micros(stop) if stop is not None else 0,
                updated_at is not None,
                _micros(updated_at) if updated_at is not None else 0,
            )
        )
    return digest.hexdigest()


def _entry_id(entry: KeptEntry) -> int:
    return entry.id


def _entry_row(user_id: UserId, entry: KeptEntry) -> dict[str, Any]:
    return {
        "account_id": user_id,
        "entry_id": entry.id,
        "project_id": entry.project_id,
        "start": entry.start,
        "stop": entry.stop,
        "updated_at": entry.updated_at,
    }


class SqlLedgerStore:
    """A `LedgerStore` in the database (SQLite or PostgreSQL).

    The user id is the account id: writing for an account that does not exist fails on its
    foreign key, and deleting an account deletes its ledger.
    """

    def __init__(self, database: Database, clock: Clock | None = None) -> None:
        self._db = database
        self._clock = clock or SystemClock()

    def __repr__(self) -> str:
        return f"SqlLedgerStore({self._db!r})"

    async def load(self, user_id: UserId) -> dict[AttributeDate, int]:
        async with self._db.read() as session:
            return await _ledger(session, user_id)

    async def mark_in_flight(self, user_id: UserId, keys: Iterable[AttributeDate]) -> None:
        await self.record_accepted(
            user_id, [ValueWrite(attribute, day, IN_FLIGHT) for attribute, day in keys]
        )

    async def record_accepted(self, user_id: UserId, accepted: Sequence[ValueWrite]) -> None:
        # The last write of a key wins, as it would one by one; one statement cannot touch a
        # row twice on PostgreSQL.
        latest = {(write.attribute, write.date): write.value for write in accepted}
        if not latest:
            return
        now = self._clock.now()
        rows = [
            {
                "account_id": user_id,
                "attribute": attribute,
                "day": day,
                "value": value,
                "recorded_at": now,
            }
            for (attribute, day), value in latest.items()
        ]
        async with self._db.transaction() as session:
            statement = upsert(
                session, _LEDGER, ["account_id", "attribute", "day"], ["value", "recorded_at"]
            )
            await session.execute(statement, rows)

    async def forget(self, user_id: UserId, keys: Iterable[AttributeDate]) -> None:
        params = [{"b_attribute": attribute, "b_day": day} for attribute, day in set(keys)]
        if not params:
            return
        statement = _LEDGER.delete().where(
            _LEDGER.c.account_id == user_id,
            _LEDGER.c.attribute == bindparam("b_attribute"),
            _LEDGER.c.day == bindparam("b_day"),
        )
        async with self._db.transaction() as session:
            await session.execute(statement, params)

    async def clear(self, user_id: UserId) -> None:
        async with self._db.transaction() as session:
            await delete_ledger(session, user_id)
            await delete_entries(session, user_id)

    async def replace_entries(self, user_id: UserId, entries: Sequence[KeptEntry]) -> None:
        fetch = _Fetch.of(entries)
        async with self._db.read_connection() as connection:
            unchanged = await fetch.is_kept(connection, user_id)
        if not unchanged:
            async with self._db.transaction() as session:
                await fetch.keep(session, user_id)

    async def replace_entries_and_load(
        self, user_id: UserId, entries: Sequence[KeptEntry]
    ) -> dict[AttributeDate, int]:
        # In steady state the fetch is unchanged: one read transaction for both.
        fetch = _Fetch.of(entries)
        async with self._db.read_connection() as connection:
            if await fetch.is_kept(connection, user_id):
                return await _ledger(connection, user_id)
        async with self._db.transaction() as session:
            await fetch.keep(session, user_id)
            return await _ledger(session, user_id)

    async def entries(self, user_id: UserId) -> list[KeptEntry]:
        async with self._db.read() as session:
            return await _kept_entries(session, user_id)

    async def purge(self, before: date) -> PurgeCounts:
        """Delete every user's ledger rows dated before `before`, and kept entries that started
        before it (UTC midnight)."""
        cutoff = datetime.combine(before, time(), tzinfo=UTC)
        async with self._db.transaction() as session:
            ledger_rows = rowcount(
                await session.execute(delete(LedgerRow).where(LedgerRow.day < before))
            )
            # Their kept entries change, so their digests no longer describe them.
            await session.execute(
                delete(KeptEntryDigestRow).where(
                    KeptEntryDigestRow.account_id.in_(
                        select(KeptEntryRow.account_id).where(KeptEntryRow.start < cutoff)
                    )
                )
            )
            entries = rowcount(
                await session.execute(delete(KeptEntryRow).where(KeptEntryRow.start < cutoff))
            )
        return PurgeCounts(ledger_rows=ledger_rows, entries=entries)

    async def purge_expired(self) -> PurgeCounts:
        """`purge` with the bridge's 21 days, counted from the store's clock."""
        return await self.purge(purge_cutoff(self._clock.now()))


@dataclass(frozen=True)
class _Fetch:
    """A fetch's entries, by id, and their digest."""

    by_id: dict[int, KeptEntry]
    digest: str

    @classmethod
    def of(cls, entries: Sequence[KeptEntry]) -> _Fetch:
        # An entry seen twice (adjacent fetch ranges can both return it) is kept once: the last
        # sighting is the newest.
        by_id = {entry.id: entry for entry in entries}
        return cls(by_id, entries_digest(by_id.values()))

    async def is_kept(self, connection: AsyncConnection, user_id: UserId) -> bool:
        """Whether the user's kept entries are exactly these already."""
        kept = await connection.scalar(_DIGEST_QUERY, {"account_id": user_id})
        return kept == self.digest

    async def keep(self, session: AsyncSession, user_id: UserId) -> None:
        """Make these the user's kept entries, writing only the rows that differ."""
        kept = {entry.id: entry for entry in await _kept_entries(session, user_id)}
        gone = [{"b_entry_id": entry_id} for entry_id in kept.keys() - self.by_id.keys()]
        if gone:
            await session.execute(
                _ENTRIES.delete().where(
                    _ENTRIES.c.account_id == user_id,
                    _ENTRIES.c.entry_id == bindparam("b_entry_id"),
                ),
                gone,
            )
        # Equal entries compare equal whatever their instants' offsets (as stored: UTC).
        changed = [
            _entry_row(user_id, entry)
            for entry_id, entry in self.by_id.items()
            if kept.get(entry_id) != entry
        ]
        if changed:
            statement = upsert(
                session,
                _ENTRIES,
                ["account_id", "entry_id"],
                ["project_id", "start", "stop", "updated_at"],
            )
            await session.execute(statement, changed)
        await session.execute(
            upsert(session, _DIGESTS, ["account_id"], ["digest"]),
            [{"account_id": user_id, "digest": self.digest}],
        )


async def _ledger(
    executor: AsyncSession | AsyncConnection, user_id: UserId
) -> dict[AttributeDate, int]:
    rows = await executor.execute(_LEDGER_QUERY, {"account_id": user_id})
    return {(attribute, day): value for attribute, day, value in rows}


async def _kept_entries(session: AsyncSession, user_id: UserId) -> list[KeptEntry]:
    """The user's kept entries, oldest first."""
    rows = await session.execute(
        select(
            KeptEntryRow.entry_id,
            KeptEntryRow.project_id,
            KeptEntryRow.start,
            KeptEntryRow.stop,
            KeptEntryRow.updated_at,
        )
        .where(KeptEntryRow.account_id == user_id)
        .order_by(KeptEntryRow.start, KeptEntryRow.entry_id)
    )
    return [KeptEntry(*row) for row in rows]


def _implements_the_protocol(store: SqlLedgerStore) -> LedgerStore:
    """Never called: mypy checks here that `SqlLedgerStore` is a `LedgerStore`."""
    return store
