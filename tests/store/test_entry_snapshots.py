"""A user's entry snapshot in the database: one row, read with the ledger in one read, written in
one write, exact to the microsecond, and gone with whatever deletes the user's Toggl data."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.store.transaction_log import transaction_log
from timebridge.entries import EntrySnapshot, KeptEntry, decode_entries, encode_entries
from timebridge.exist.models import ExistTokens
from timebridge.records import ValueWrite
from timebridge.store import Store

T0 = datetime(2026, 3, 9, 8, 0, tzinfo=UTC)
COVERED = (T0 - timedelta(days=15), T0 + timedelta(hours=16))


def fetch(count: int = 5) -> list[KeptEntry]:
    return [
        KeptEntry.of(
            entry_id=100 + n,
            project_id=7 if n % 2 else None,
            start=T0 + timedelta(hours=n),
            stop=T0 + timedelta(hours=n, minutes=40) if n < count - 1 else None,
            updated_at=T0 + timedelta(hours=n, minutes=41, microseconds=n),
        )
        for n in range(count)
    ]


def snapshot(entries: list[KeptEntry], fetched_at: datetime = T0) -> EntrySnapshot:
    return EntrySnapshot.of(entries, COVERED, fetched_at)


async def new_user(store: Store) -> int:
    return (await store.accounts.create("ada@example.com")).id


def test_the_entries_column_keeps_every_field_exactly_whatever_the_offset() -> None:
    berlin = timezone(timedelta(hours=1))
    entries = [
        *fetch(),
        KeptEntry.of(2**53 + 1, 2**40, T0.astimezone(berlin), None, None),
        KeptEntry.of(1, None, datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), T0, T0),
    ]

    decoded = decode_entries(encode_entries(reversed(entries)))

    assert decoded == sorted(entries, key=lambda entry: entry.id)
    assert all(entry.start.utcoffset() == timedelta(0) for entry in decoded), "kept in UTC"


async def test_a_run_reads_its_ledger_and_snapshot_in_one_read(store: Store) -> None:
    user = await new_user(store)
    await store.ledger.record_accepted(user, [ValueWrite("tv_min", T0.date(), 12)])
    await store.ledger.keep_snapshot(user, snapshot(fetch()))

    with transaction_log(store.database) as log:
        ledger, kept, _ = await store.ledger.load_with_snapshot(user)

    assert ledger == {("tv_min", T0.date()): 12}
    assert kept == snapshot(fetch())
    assert len(log.transactions) == 1
    assert log.writers == []


async def test_keeping_a_snapshot_is_one_write_of_one_row(store: Store) -> None:
    user = await new_user(store)
    await store.ledger.keep_snapshot(user, snapshot(fetch()))
    _, *rest = fetch()
    later = snapshot(rest, T0 + timedelta(hours=1))

    with transaction_log(store.database) as log:
        await store.ledger.keep_snapshot(user, later)

    assert len(log.writers) == len(log.transactions) == 1
    assert len(log.rows_written("entry_snapshots")) == 1
    assert (await store.ledger.load_with_snapshot(user))[1] == later
    assert await store.ledger.entries(user) == rest


async def _disconnect(store: Store, user: int) -> None:
    report = await store.disconnect_toggl(user)
    assert report.entries == len(fetch())


async def _clear(store: Store, user: int) -> None:
    await store.ledger.clear(user)


async def _purge(store: Store, user: int) -> None:
    counts = await store.ledger.purge(COVERED[1].date() + timedelta(days=1))
    assert counts.snapshots == 1


@pytest.mark.parametrize("forget", [_disconnect, _clear, _purge], ids=lambda f: f.__name__[1:])
async def test_a_snapshot_deleted_otherwise_leaves_the_next_run_to_fetch_in_full(
    store: Store, forget: Callable[[Store, int], Awaitable[None]]
) -> None:
    user = await new_user(store)
    await store.toggl_connections.create(user, "tok-ada-1")
    await store.exist_connections.save(user, ExistTokens.personal("exist-ada"))
    await store.ledger.keep_snapshot(user, snapshot(fetch()))

    await forget(store, user)

    assert (await store.ledger.load_with_snapshot(user))[1] is None
    assert await store.ledger.entries(user) == []


async def test_a_purge_keeps_the_snapshots_of_users_who_sync(store: Store) -> None:
    user = await new_user(store)
    await store.ledger.keep_snapshot(user, snapshot(fetch()))

    # Its range reaches past the cutoff's midnight: it still says something about kept days.
    counts = await store.ledger.purge(COVERED[1].date() - timedelta(days=1))

    assert counts.snapshots == 0
    assert await store.ledger.entries(user) == fetch()
