"""What only the SQL ledger store promises: a batch commits whole or not at all, a purge drops
old rows for everyone, and the ledger belongs to an account."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from timebridge.clock import FakeClock
from timebridge.entries import EntrySnapshot, KeptEntry
from timebridge.records import PURGE_AFTER_DAYS, ValueWrite
from timebridge.store import Store
from timebridge.store.ledger import purge_cutoff

D1, D2, D3 = date(2026, 3, 8), date(2026, 3, 9), date(2026, 3, 10)


class Crash(Exception):
    """The process 'dies' between writing a batch and committing it."""


@dataclass
class CrashSwitch:
    """When armed, the process 'dies' right after the ledger rows are written, before commit."""

    armed: bool = False


@pytest.fixture
def crash_after_ledger_write(store: Store) -> Iterator[CrashSwitch]:
    switch = CrashSwitch()
    engine = store.database.engine.sync_engine

    def crash(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if switch.armed and statement.lstrip().upper().startswith("INSERT INTO LEDGER"):
            raise Crash

    event.listen(engine, "after_cursor_execute", crash)
    yield switch
    event.remove(engine, "after_cursor_execute", crash)


async def test_a_batch_that_fails_after_writing_leaves_nothing_behind(
    store: Store, crash_after_ledger_write: CrashSwitch
) -> None:
    user = (await store.accounts.create("ada@example.com")).id
    await store.ledger.record_accepted(user, [ValueWrite("tv_min", D1, 10)])

    crash_after_ledger_write.armed = True
    batch = [
        ValueWrite("tv_min", D1, 99),
        ValueWrite("tv_min", D2, 5),
        ValueWrite("gaming_min", D3, 7),
    ]
    with pytest.raises(Crash):
        await store.ledger.record_accepted(user, batch)
    crash_after_ledger_write.armed = False

    assert await store.ledger.load(user) == {("tv_min", D1): 10}


async def test_a_bad_item_in_the_middle_of_a_batch_fails_the_whole_batch(store: Store) -> None:
    user = (await store.accounts.create("ada@example.com")).id
    await store.ledger.record_accepted(user, [ValueWrite("tv_min", D1, 10)])

    batch = [
        ValueWrite("tv_min", D1, 99),
        ValueWrite("tv_min", D2, 5),
        ValueWrite("gaming_min", D1, 2**70),  # no SQL integer holds it
        ValueWrite("gaming_min", D3, 7),
    ]
    with pytest.raises((SQLAlchemyError, OverflowError)):
        await store.ledger.record_accepted(user, batch)

    assert await store.ledger.load(user) == {("tv_min", D1): 10}


async def test_the_ledger_belongs_to_an_existing_account(store: Store) -> None:
    with pytest.raises(IntegrityError):
        await store.ledger.record_accepted(4242, [ValueWrite("tv_min", D1, 10)])


async def test_deleting_an_account_deletes_its_ledger_and_entries(store: Store) -> None:
    user = (await store.accounts.create("ada@example.com")).id
    await store.ledger.record_accepted(user, [ValueWrite("tv_min", D1, 10)])
    start = datetime(2026, 3, 9, 8, tzinfo=UTC)
    await store.ledger.keep_snapshot(
        user,
        EntrySnapshot.of(
            [KeptEntry.of(1, 2, start, None, None)], (start, start + timedelta(days=1)), start
        ),
    )

    assert await store.accounts.delete(user)

    assert await store.ledger.load(user) == {}
    assert await store.ledger.entries(user) == []


async def test_purge_drops_rows_older_than_the_cutoff_for_every_user(store: Store) -> None:
    alice = (await store.accounts.create("alice@example.com")).id
    bob = (await store.accounts.create("bob@example.com")).id
    cutoff = date(2026, 2, 17)
    for user in (alice, bob):
        await store.ledger.record_accepted(
            user,
            [
                ValueWrite("tv_min", cutoff - timedelta(days=1), 1),
                ValueWrite("tv_min", cutoff, 2),
                ValueWrite("tv_min", cutoff + timedelta(days=5), 3),
            ],
        )
    # Alice's last full fetch covered nothing after the cutoff (she stopped syncing); Bob's
    # reaches one second past it.
    midnight = datetime(2026, 2, 17, tzinfo=UTC)
    for user, covered_to in ((alice, midnight), (bob, midnight + timedelta(seconds=1))):
        start = covered_to - timedelta(days=16)
        kept = [KeptEntry.of(1, 2, start, None, None)]
        snapshot = EntrySnapshot.of(kept, (start, covered_to), start)
        await store.ledger.keep_snapshot(user, snapshot)

    counts = await store.ledger.purge(cutoff)

    assert (counts.ledger_rows, counts.snapshots) == (2, 1)
    for user in (alice, bob):
        assert await store.ledger.load(user) == {
            ("tv_min", cutoff): 2,
            ("tv_min", cutoff + timedelta(days=5)): 3,
        }
    assert await store.ledger.entries(alice) == []
    assert [kept.id for kept in await store.ledger.entries(bob)] == [1]


async def test_the_regular_purge_keeps_21_days_in_every_zone(
    store: Store, clock: FakeClock
) -> None:
    today = clock.now().date()
    cutoff = purge_cutoff(clock.now())
    # A user a day behind UTC still has today - 1 - 21 inside their 21 days.
    assert cutoff == today - timedelta(days=PURGE_AFTER_DAYS + 1)
    user = (await store.accounts.create("ada@example.com")).id
    await store.ledger.record_accepted(
        user, [ValueWrite("tv_min", cutoff - timedelta(days=1), 1), ValueWrite("tv_min", cutoff, 2)]
    )

    counts = await store.ledger.purge_expired()

    assert counts.ledger_rows == 1
    assert await store.ledger.load(user) == {("tv_min", cutoff): 2}


async def test_a_batch_of_hundreds_of_values_commits_in_one_go(store: Store) -> None:
    user = (await store.accounts.create("ada@example.com")).id
    start = date(2026, 1, 1)
    batch = [
        ValueWrite(attribute, start + timedelta(days=day), day)
        for attribute in ("tv_min", "gaming_min", "productive_min")
        for day in range(60)
    ]
    await store.ledger.record_accepted(user, batch)
    assert len(await store.ledger.load(user)) == 180
