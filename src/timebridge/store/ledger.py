"""`SqlLedgerStore`: the runner's ledger and entry snapshot in the database.

It implements `timebridge.sync.ledger.LedgerStore` call for call, each call one transaction:
the values Exist accepted from one write batch are committed together or not at all, so the
ledger never claims a value Exist did not confirm (DESIGN.md, "Write"). Loads are read
transactions, which on SQLite do not queue for the write lock.

A run reads its ledger and its entry snapshot together (one read); the snapshot is written only
when a fetch changed it, so a steady-state run writes nothing here.

`purge` is the store-wide clean-up of rows older than the 21 days the bridge keeps; the runner
also forgets its own user's old dates every run, in the user's zone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType

from sqlalchemy import Table, bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from timebridge.clock import Clock, SystemClock
from timebridge.store._sql import rowcount, upsert
from timebridge.store.database import Database
from timebridge.store.models import Base, EntrySnapshotRow, LedgerRow
from timebridge.sync.ledger import LedgerStore, LoadedState, UserId
from timebridge.sync.planner import IN_FLIGHT, PURGE_AFTER_DAYS, AttributeDate, ValueWrite
from timebridge.sync.snapshot import EntrySnapshot, KeptEntry

_LEDGER: Table = Base.metadata.tables[LedgerRow.__tablename__]
_SNAPSHOTS: Table = Base.metadata.tables[EntrySnapshotRow.__tablename__]
#: Built once: the compiled-statement cache then serves every run's SQL.
_LEDGER_QUERY = select(_LEDGER.c.attribute, _LEDGER.c.day, _LEDGER.c.value).where(
    _LEDGER.c.account_id == bindparam("account_id")
)
_SNAPSHOT_QUERY = select(
    _SNAPSHOTS.c.covered_from,
    _SNAPSHOTS.c.covered_to,
    _SNAPSHOTS.c.fetched_at,
    _SNAPSHOTS.c.entries,
).where(_SNAPSHOTS.c.account_id == bindparam("account_id"))


@dataclass(frozen=True)
class PurgeCounts:
    """What one purge deleted."""

    ledger_rows: int
    #: Entry snapshots of users who have not synced for that long.
    snapshots: int


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
    """Delete the user's entry snapshot inside the caller's transaction; how many entries it
    held."""
    snapshot = await session.scalar(
        select(EntrySnapshotRow.entries).where(EntrySnapshotRow.account_id == user_id)
    )
    if snapshot is None:
        return 0
    await session.execute(delete(EntrySnapshotRow).where(EntrySnapshotRow.account_id == user_id))
    return len(json.loads(snapshot))


def encode_entries(entries: Iterable[KeptEntry]) -> str:
    """The `entries` column: each entry's fields in order, by id."""
    return json.dumps(sorted(entries, key=_entry_id), separators=(",", ":"))


def decode_entries(text: str) -> list[KeptEntry]:
    """The entries of an `entries` column, by id."""
    make = KeptEntry._make
    return [make(fields) for fields in json.loads(text)]


def _entry_id(entry: KeptEntry) -> int:
    return entry.id


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
        async with self._db.read_connection() as connection:
            return await read_ledger(connection, user_id)

    async def load_with_snapshot(self, user_id: UserId) -> LoadedState:
        async with self._db.read_connection() as connection:
            ledger = await read_ledger(connection, user_id)
            snapshot = await read_snapshot(connection, user_id)
        return LoadedState(ledger, snapshot)

    async def keep_snapshot(self, user_id: UserId, snapshot: EntrySnapshot) -> None:
        row = {
            "account_id": user_id,
            "covered_from": snapshot.covered_from,
            "covered_to": snapshot.covered_to,
            "fetched_at": snapshot.fetched_at,
            "entries": encode_entries(snapshot.entries.values()),
        }
        async with self._db.transaction() as session:
            statement = upsert(
                session,
                _SNAPSHOTS,
                ["account_id"],
                ["covered_from", "covered_to", "fetched_at", "entries"],
            )
            await session.execute(statement, [row])

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

    async def entries(self, user_id: UserId) -> list[KeptEntry]:
        async with self._db.read_connection() as connection:
            snapshot = await read_snapshot(connection, user_id)
        return snapshot.sorted_entries() if snapshot is not None else []

    async def purge(self, before: date) -> PurgeCounts:
        """Delete every user's ledger rows dated before `before`, and the entry snapshots of
        users whose last full fetch covered nothing since (UTC midnight): a user who syncs keeps
        only their window in theirs."""
        cutoff = datetime.combine(before, time(), tzinfo=UTC)
        async with self._db.transaction() as session:
            ledger_rows = rowcount(
                await session.execute(delete(LedgerRow).where(LedgerRow.day < before))
            )
            snapshots = rowcount(
                await session.execute(
                    delete(EntrySnapshotRow).where(EntrySnapshotRow.covered_to <= cutoff)
                )
            )
        return PurgeCounts(ledger_rows=ledger_rows, snapshots=snapshots)

    async def purge_expired(self) -> PurgeCounts:
        """`purge` with the bridge's 21 days, counted from the store's clock."""
        return await self.purge(purge_cutoff(self._clock.now()))


async def read_ledger(connection: AsyncConnection, user_id: UserId) -> dict[AttributeDate, int]:
    """The user's ledger, read inside the caller's transaction."""
    rows = await connection.execute(_LEDGER_QUERY, {"account_id": user_id})
    return {(attribute, day): value for attribute, day, value in rows}


async def read_snapshot(connection: AsyncConnection, user_id: UserId) -> EntrySnapshot | None:
    """The user's entry snapshot, read inside the caller's transaction."""
    row = (await connection.execute(_SNAPSHOT_QUERY, {"account_id": user_id})).one_or_none()
    if row is None:
        return None
    covered_from, covered_to, fetched_at, entries = row
    by_id = {entry.id: entry for entry in decode_entries(entries)}
    return EntrySnapshot(MappingProxyType(by_id), covered_from, covered_to, fetched_at)


def _implements_the_protocol(store: SqlLedgerStore) -> LedgerStore:
    """Never called: mypy checks here that `SqlLedgerStore` is a `LedgerStore`."""
    return store
