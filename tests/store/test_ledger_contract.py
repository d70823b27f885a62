"""The `LedgerStore` contract, run against every implementation: the in-memory store the runner
was built with, and the SQL store on SQLite and on PostgreSQL. Whatever one does, all do."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.store.fixtures import BACKENDS, migrated_url
from timebridge.clock import FakeClock
from timebridge.entries import EntrySnapshot, KeptEntry
from timebridge.records import IN_FLIGHT, Settled, ValueWrite
from timebridge.store import Database, Store
from timebridge.store.crypto import SecretBox
from timebridge.sync.ledger import InMemoryLedgerStore, LedgerStore

D1, D2, D3 = date(2026, 3, 8), date(2026, 3, 9), date(2026, 3, 10)
T0 = datetime(2026, 3, 9, 8, 0, tzinfo=UTC)
#: The range the snapshots of these tests cover, and when they were fetched.
COVERED = (T0 - timedelta(days=15), T0 + timedelta(days=1))
FETCHED_AT = T0 + timedelta(hours=3, microseconds=7)


@dataclass
class LedgerCase:
    store: LedgerStore
    new_user: Callable[[], Awaitable[int]]


@pytest.fixture(params=("memory", *BACKENDS))
async def case(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock, box: SecretBox
) -> AsyncIterator[LedgerCase]:
    if request.param == "memory":
        ids = iter(range(1, 1000))

        async def next_id() -> int:
            return next(ids)

        yield LedgerCase(InMemoryLedgerStore(), next_id)
        return
    database = Database(migrated_url(request, request.param, tmp_path))
    store = Store(database, box, clock)
    emails = iter(range(1, 1000))

    async def new_account() -> int:
        return (await store.accounts.create(f"user{next(emails)}@example.com")).id

    try:
        yield LedgerCase(store.ledger, new_account)
    finally:
        await database.dispose()


def entry(
    entry_id: int,
    start: datetime,
    minutes: int | None = 30,
    project_id: int | None = 1,
) -> KeptEntry:
    stop = start + timedelta(minutes=minutes) if minutes is not None else None
    return KeptEntry.of(entry_id, project_id, start, stop, start + timedelta(hours=2))


async def test_a_new_user_has_an_empty_ledger(case: LedgerCase) -> None:
    user = await case.new_user()
    assert await case.store.load(user) == {}
    assert await case.store.entries(user) == []


async def test_accepted_values_are_what_load_returns(case: LedgerCase) -> None:
    user = await case.new_user()
    await case.store.record_accepted(
        user,
        [
            ValueWrite("tv_min", D1, 30),
            ValueWrite("tv_min", D2, 0),
            ValueWrite("gaming_min", D1, 5),
        ],
    )
    assert await case.store.load(user) == {
        ("tv_min", D1): 30,
        ("tv_min", D2): 0,
        ("gaming_min", D1): 5,
    }


async def test_a_later_batch_overwrites_the_same_day(case: LedgerCase) -> None:
    user = await case.new_user()
    await case.store.record_accepted(user, [ValueWrite("tv_min", D1, 30)])
    await case.store.record_accepted(
        user, [ValueWrite("tv_min", D1, 12), ValueWrite("tv_min", D2, 7)]
    )
    assert await case.store.load(user) == {("tv_min", D1): 12, ("tv_min", D2): 7}


async def test_cells_in_flight_are_marked_until_exist_answers(case: LedgerCase) -> None:
    user = await case.new_user()
    await case.store.record_accepted(user, [ValueWrite("tv_min", D1, 30)])
    await case.store.mark_in_flight(user, [("tv_min", D1), ("tv_min", D2)])
    assert await case.store.load(user) == {("tv_min", D1): IN_FLIGHT, ("tv_min", D2): IN_FLIGHT}
    await case.store.record_accepted(user, [ValueWrite("tv_min", D1, 45)])
    assert await case.store.load(user) == {("tv_min", D1): 45, ("tv_min", D2): IN_FLIGHT}


async def test_the_last_write_of_a_key_in_one_batch_wins(case: LedgerCase) -> None:
    user = await case.new_user()
    await case.store.record_accepted(
        user, [ValueWrite("tv_min", D1, 30), ValueWrite("tv_min", D1, 45)]
    )
    assert await case.store.load(user) == {("tv_min", D1): 45}


async def test_an_empty_batch_changes_nothing(case: LedgerCase) -> None:
    user = await case.new_user()
    await case.store.record_accepted(user, [ValueWrite("tv_min", D1, 30)])
    await case.store.record_accepted(user, [])
    assert await case.store.load(user) == {("tv_min", D1): 30}


async def test_users_never_see_each_others_ledger(case: LedgerCase) -> None:
    alice, bob = await case.new_user(), await case.new_user()
    await case.store.record_accepted(alice, [ValueWrite("tv_min", D1, 30)])
    await case.store.record_accepted(bob, [ValueWrite("tv_min", D1, 99)])
    assert await case.store.load(alice) == {("tv_min", D1): 30}
    assert await case.store.load(bob) == {("tv_min", D1): 99}


async def test_forget_deletes_only_the_given_keys(case: LedgerCase) -> None:
    alice, bob = await case.new_user(), await case.new_user()
    writes = [
        ValueWrite("tv_min", D1, 1),
        ValueWrite("tv_min", D2, 2),
        ValueWrite("gaming_min", D1, 3),
    ]
    await case.store.record_accepted(alice, writes)
    await case.store.record_accepted(bob, writes)
    await case.store.forget(alice, [("tv_min", D1), ("gaming_min", D1), ("never", D3)])
    assert await case.store.load(alice) == {("tv_min", D2): 2}
    assert len(await case.store.load(bob)) == 3


async def test_forget_accepts_any_iterable_even_empty(case: LedgerCase) -> None:
    user = await case.new_user()
    await case.store.record_accepted(user, [ValueWrite("tv_min", D1, 1)])
    await case.store.forget(user, iter([]))
    await case.store.forget(user, (key for key in [("tv_min", D1)]))
    assert await case.store.load(user) == {}


async def test_load_returns_a_copy(case: LedgerCase) -> None:
    user = await case.new_user()
    await case.store.record_accepted(user, [ValueWrite("tv_min", D1, 1)])
    loaded = await case.store.load(user)
    loaded[("tv_min", D2)] = 5
    assert await case.store.load(user) == {("tv_min", D1): 1}


async def keep(store: LedgerStore, user: int, entries: list[KeptEntry]) -> EntrySnapshot:
    snapshot = EntrySnapshot.of(entries, COVERED, FETCHED_AT)
    await store.keep_snapshot(user, snapshot)
    return snapshot


async def test_entries_come_back_oldest_first(case: LedgerCase) -> None:
    user = await case.new_user()
    later, earlier, same_start = entry(3, T0 + timedelta(hours=3)), entry(9, T0), entry(4, T0)
    await keep(case.store, user, [later, earlier, same_start])
    assert await case.store.entries(user) == [same_start, earlier, later]


async def test_a_kept_snapshot_comes_back_whole_with_the_ledger(case: LedgerCase) -> None:
    user = await case.new_user()
    await case.store.record_accepted(user, [ValueWrite("tv_min", D1, 30)])
    assert await case.store.load_with_snapshot(user) == ({("tv_min", D1): 30}, None, None)
    kept = await keep(case.store, user, [entry(1, T0), entry(2, T0 + timedelta(hours=1))])

    ledger, snapshot, _ = await case.store.load_with_snapshot(user)

    assert ledger == {("tv_min", D1): 30}
    assert snapshot == kept
    assert snapshot is not None
    assert (snapshot.covered_from, snapshot.covered_to) == COVERED
    assert snapshot.fetched_at == FETCHED_AT
    ledger[("tv_min", D2)] = 5  # the caller's copy, not the store's
    assert await case.store.load(user) == {("tv_min", D1): 30}


async def test_keeping_a_snapshot_replaces_the_last_one(case: LedgerCase) -> None:
    user = await case.new_user()
    await keep(case.store, user, [entry(1, T0), entry(2, T0 + timedelta(hours=1))])
    await keep(case.store, user, [entry(2, T0 + timedelta(hours=2))])
    assert await case.store.entries(user) == [entry(2, T0 + timedelta(hours=2))]
    await keep(case.store, user, [])
    assert await case.store.entries(user) == []
    snapshot = (await case.store.load_with_snapshot(user)).snapshot
    assert snapshot is not None and dict(snapshot.entries) == {}


async def test_entries_keep_running_timers_missing_projects_and_instants(case: LedgerCase) -> None:
    user = await case.new_user()
    berlin = timezone(timedelta(hours=1))
    running = KeptEntry.of(
        7, None, datetime(2026, 3, 9, 23, 30, 15, 123456, tzinfo=berlin), None, None
    )
    await keep(case.store, user, [running])
    [kept] = await case.store.entries(user)
    assert kept == running
    assert kept.start.utcoffset() is not None
    assert kept.stop is None and kept.project_id is None and kept.updated_at is None


async def test_entry_ids_beyond_32_bits_are_kept(case: LedgerCase) -> None:
    user = await case.new_user()
    big = entry(4_123_456_789_012, T0, project_id=9_876_543_210)
    await keep(case.store, user, [big])
    assert await case.store.entries(user) == [big]


async def test_clear_deletes_the_ledger_and_entries_of_one_user(case: LedgerCase) -> None:
    alice, bob = await case.new_user(), await case.new_user()
    for user in (alice, bob):
        await case.store.record_accepted(user, [ValueWrite("tv_min", D1, 30)])
        await keep(case.store, user, [entry(1, T0)])
    await case.store.clear(alice)
    assert await case.store.load_with_snapshot(alice) == ({}, None, None)
    assert await case.store.entries(alice) == []
    assert await case.store.load(bob) == {("tv_min", D1): 30}
    assert await case.store.entries(bob) == [entry(1, T0)]


async def test_a_settled_mark_is_kept_with_its_snapshot_and_goes_with_it(
    case: LedgerCase,
) -> None:
    alice, bob = await case.new_user(), await case.new_user()
    mark = Settled("0f" * 16, T0 + timedelta(microseconds=3), T0 + timedelta(hours=15))
    # Without a snapshot there is nothing to keep a mark with.
    await case.store.keep_settled(alice, mark)
    assert (await case.store.load_with_snapshot(alice)).settled is None

    await keep(case.store, alice, [entry(1, T0)])
    await keep(case.store, bob, [entry(2, T0)])
    await case.store.keep_settled(alice, mark)
    assert (await case.store.load_with_snapshot(alice)).settled == mark
    assert (await case.store.load_with_snapshot(bob)).settled is None

    # A new snapshot drops the mark, unless it comes with its own.
    await keep(case.store, alice, [entry(1, T0), entry(3, T0)])
    assert (await case.store.load_with_snapshot(alice)).settled is None
    newer = mark._replace(digest="1e" * 16, at=T0 + timedelta(hours=1))
    snapshot = EntrySnapshot.of([entry(1, T0)], COVERED, FETCHED_AT)
    await case.store.keep_snapshot(alice, snapshot, settled=newer)
    assert await case.store.load_with_snapshot(alice) == ({}, snapshot, newer)

    await case.store.clear(alice)
    assert (await case.store.load_with_snapshot(alice)).settled is None
