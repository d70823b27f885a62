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

from sqlalchemy import BindParameter, Table, bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from timebridge.clock import Clock, SystemClock
from timebridge.entries import EntrySnapshot, KeptEntry
from timebridge.records import (
    IN_FLIGHT,
    PURGE_AFTER_DAYS,
    AttributeDate,
    LoadedState,
    Settled,
    UserId,
    ValueWrite,
)
from timebridge.store._sql import rowcount, upsert
from timebridge.store.database import Database
from timebridge.store.models import Base, EntrySnapshotRow, LedgerRow
from timebridge.sync.ledger import LedgerStore

_LEDGER: Table = Base.metadata.tables[LedgerRow.__tablename__]
_SNAPSHOTS: Table = Base.metadata.tables[EntrySnapshotRow.__tablename__]
#: Built once: the compiled-statement cache then serves every run's SQL.
_ACCOUNT_IDS: BindParameter[int] = bindparam("account_ids", expanding=True)
_LEDGER_QUERY = select(
    _LEDGER.c.account_id, _LEDGER.c.attribute, _LEDGER.c.day, _LEDGER.c.value
).where(_LEDGER.c.account_id.in_(_ACCOUNT_IDS))
_SNAPSHOT_QUERY = select(
    _SNAPSHOTS.c.account_id,
    _SNAPSHOTS.c.covered_from,
    _SNAPSHOTS.c.covered_to,
    _SNAPSHOTS.c.fetched_at,
    _SNAPSHOTS.c.entries,
    _SNAPSHOTS.c.settled_digest,
    _SNAPSHOTS.c.settled_at,
    _SNAPSHOTS.c.settled_until,
).where(_SNAPSHOTS.c.account_id.in_(_ACCOUNT_IDS))
_KEEP_SETTLED = (
    _SNAPSHOTS.update()
    .where(_SNAPSHOTS.c.account_id == bindparam("b_account_id"))
    .values(
        settled_digest=bindparam("settled_digest"),
        settled_at=bindparam("settled_at"),
        settled_until=bindparam("settled_until"),
    )
)


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
            snapshot, settled = await read_snapshot(connection, user_id)
        return LoadedState(ledger, snapshot, settled)

    async def keep_snapshot(
        self, user_id: UserId, snapshot: EntrySnapshot, *, settled: Settled | None = None
    ) -> None:
        row = {
            "account_id": user_id,
            "covered_from": snapshot.covered_from,
            "covered_to": snapshot.covered_to,
            "fetched_at": snapshot.fetched_at,
            "entries": snapshot.encoded,
            "settled_digest": settled.digest if settled is not None else None,
            "settled_at": settled.at if settled is not None else None,
            "settled_until": settled.until if settled is not None else None,
        }
        async with self._db.transaction() as session:
            statement = upsert(session, _SNAPSHOTS, ["account_id"], list(row)[1:])
            await session.execute(statement, [row])

    async def keep_settled(self, user_id: UserId, settled: Settled) -> None:
        params = {
            "b_account_id": user_id,
            "settled_digest": settled.digest,
            "settled_at": settled.at,
            "settled_until": settled.until,
        }
        async with self._db.write_connection() as connection:
            await connection.execute(_KEEP_SETTLED, params)

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
            snapshot, _ = await read_snapshot(connection, user_id)
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
    return (await read_ledgers(connection, [user_id])).get(user_id, {})


async def read_ledgers(
    connection: AsyncConnection, user_ids: Sequence[UserId]
) -> dict[UserId, dict[AttributeDate, int]]:
    """The ledgers of these users (none for a user without rows), in one statement."""
    ledgers: dict[UserId, dict[AttributeDate, int]] = {}
    rows = await connection.execute(_LEDGER_QUERY, {"account_ids": list(user_ids)})
    for user_id, attribute, day, value in rows:
        ledger = ledgers.get(user_id)
        if ledger is None:
            ledger = ledgers[user_id] = {}
        ledger[(attribute, day)] = value
    return ledgers


async def read_snapshot(
    connection: AsyncConnection, user_id: UserId
) -> tuple[EntrySnapshot | None, Settled | None]:
    """The user's entry snapshot (its entries still encoded) and settled mark, read inside the
    caller's transaction."""
    return (await read_snapshots(connection, [user_id])).get(user_id, (None, None))


async def read_snapshots(
    connection: AsyncConnection, user_ids: Sequence[UserId]
) -> dict[UserId, tuple[EntrySnapshot, Settled | None]]:
    """The entry snapshots and settled marks of these users who have one, in one statement."""
    found: dict[UserId, tuple[EntrySnapshot, Settled | None]] = {}
    rows = await connection.execute(_SNAPSHOT_QUERY, {"account_ids": list(user_ids)})
    for user_id, covered_from, covered_to, fetched_at, entries, digest, at, until in rows:
        snapshot = EntrySnapshot.from_encoded(entries, covered_from, covered_to, fetched_at)
        settled = None
        if digest is not None and at is not None and until is not None:
            settled = Settled(digest, at, until)
        found[user_id] = (snapshot, settled)
    return found


def _implements_the_protocol(store: SqlLedgerStore) -> LedgerStore:
    """Never called: mypy checks here that `SqlLedgerStore` is a `LedgerStore`."""
    return store
