"""Kept entries are rewritten only where a fetch changed them: an unchanged fetch is one read,
and whatever else changes a user's kept entries makes the next fetch compare them again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.store.transaction_log import TransactionLog, transaction_log
from timebridge.exist.models import ExistTokens
from timebridge.store import Store
from timebridge.store.ledger import entries_digest
from timebridge.sync.ledger import KeptEntry
from timebridge.sync.planner import ValueWrite

T0 = datetime(2026, 3, 9, 8, 0, tzinfo=UTC)


def fetch(count: int = 5) -> list[KeptEntry]:
    return [
        KeptEntry(
            id=100 + n,
            project_id=7 if n % 2 else None,
            start=T0 + timedelta(hours=n),
            stop=T0 + timedelta(hours=n, minutes=40) if n < count - 1 else None,
            updated_at=T0 + timedelta(hours=n, minutes=41, microseconds=n),
        )
        for n in range(count)
    ]


def entry_writes(log: TransactionLog) -> list[int]:
    rows = log.rows_written("kept_entries")
    return sorted(row.get("entry_id", row.get("b_entry_id")) for row in rows)


async def new_user(store: Store) -> int:
    return (await store.accounts.create("ada@example.com")).id


async def test_an_unchanged_fetch_is_one_read_and_writes_nothing(store: Store) -> None:
    user = await new_user(store)
    await store.ledger.replace_entries(user, fetch())

    with transaction_log(store.database) as log:
        await store.ledger.replace_entries(user, list(reversed(fetch())))

    assert len(log.transactions) == 1
    assert log.writers == []
    assert await store.ledger.entries(user) == fetch()


async def test_an_unchanged_fetch_and_the_ledger_are_one_read(store: Store) -> None:
    user = await new_user(store)
    await store.ledger.record_accepted(user, [ValueWrite("tv_min", T0.date(), 12)])
    await store.ledger.replace_entries(user, fetch())

    with transaction_log(store.database) as log:
        ledger = await store.ledger.replace_entries_and_load(user, fetch())

    assert ledger == {("tv_min", T0.date()): 12}
    assert len(log.transactions) == 1
    assert log.writers == []


async def test_a_changed_fetch_and_the_ledger_are_one_read_and_one_write(store: Store) -> None:
    user = await new_user(store)
    await store.ledger.record_accepted(user, [ValueWrite("tv_min", T0.date(), 12)])
    await store.ledger.replace_entries(user, fetch())
    _, *rest = fetch()

    with transaction_log(store.database) as log:
        ledger = await store.ledger.replace_entries_and_load(user, rest)

    assert ledger == {("tv_min", T0.date()): 12}
    assert [t.writes_or_locks for t in log.transactions] == [False, True]
    assert entry_writes(log) == [fetch()[0].id]
    assert await store.ledger.entries(user) == rest


async def test_the_same_instants_in_another_offset_are_the_same_fetch(store: Store) -> None:
    user = await new_user(store)
    await store.ledger.replace_entries(user, fetch())
    berlin = timezone(timedelta(hours=1))
    shifted = [
        KeptEntry(e.id, e.project_id, e.start.astimezone(berlin), e.stop, e.updated_at)
        for e in fetch()
    ]
    assert entries_digest(shifted) == entries_digest(fetch())

    with transaction_log(store.database) as log:
        await store.ledger.replace_entries(user, shifted)

    assert log.writers == []


def test_any_difference_in_a_fetch_is_another_digest() -> None:
    first, *rest = fetch()
    variants = [
        KeptEntry(first.id, 0, first.start, first.stop, first.updated_at),
        KeptEntry(first.id, first.project_id, first.start, None, first.updated_at),
        KeptEntry(first.id, first.project_id, first.start, first.stop, None),
        KeptEntry(first.id, first.project_id, first.start + timedelta(microseconds=1), first.stop,
                  first.updated_at),
        KeptEntry(first.id + 1000, first.project_id, first.start, first.stop, first.updated_at),
    ]  # fmt: skip
    digests = {entries_digest([variant, *rest]) for variant in variants}
    assert entries_digest(fetch()) not in digests
    assert len(digests) == len(variants)
    assert entries_digest(reversed(fetch())) == entries_digest(fetch())


async def test_a_changed_fetch_writes_only_what_changed(store: Store) -> None:
    user = await new_user(store)
    await store.ledger.replace_entries(user, fetch())
    first, second, third, *rest = fetch()
    moved = KeptEntry(second.id, second.project_id, second.start, second.stop, T0 + timedelta(1))
    added = KeptEntry(999, 7, T0 - timedelta(hours=3), T0 - timedelta(hours=2), T0)
    new_fetch = [first, moved, added, *rest]  # `third` was deleted in Toggl

    with transaction_log(store.database) as log:
        await store.ledger.replace_entries(user, new_fetch)

    assert entry_writes(log) == sorted([moved.id, added.id, third.id])
    assert len(log.writers) == 1
    assert await store.ledger.entries(user) == sorted(new_fetch, key=lambda e: (e.start, e.id))
    with transaction_log(store.database) as again:
        await store.ledger.replace_entries(user, new_fetch)
    assert again.writers == []


async def test_an_empty_fetch_after_entries_empties_them_and_stays_empty(store: Store) -> None:
    user = await new_user(store)
    await store.ledger.replace_entries(user, fetch())
    await store.ledger.replace_entries(user, [])
    assert await store.ledger.entries(user) == []

    with transaction_log(store.database) as log:
        await store.ledger.replace_entries(user, [])
    assert log.writers == []


async def test_an_entry_fetched_twice_is_kept_once_as_last_seen(store: Store) -> None:
    user = await new_user(store)
    older, *_ = fetch()
    newer = KeptEntry(older.id, 8, older.start, older.stop, older.updated_at)
    await store.ledger.replace_entries(user, [older, newer])
    assert await store.ledger.entries(user) == [newer]
    with transaction_log(store.database) as log:
        await store.ledger.replace_entries(user, [newer])
    assert log.writers == []


async def _disconnect(store: Store, user: int) -> None:
    await store.disconnect_toggl(user)


async def _clear(store: Store, user: int) -> None:
    await store.ledger.clear(user)


async def _purge(store: Store, user: int) -> None:
    counts = await store.ledger.purge((T0 + timedelta(days=1)).date())
    assert counts.entries == len(fetch())


@pytest.mark.parametrize("forget", [_disconnect, _clear, _purge], ids=lambda f: f.__name__[1:])
async def test_entries_deleted_otherwise_are_written_again_by_the_same_fetch(
    store: Store, forget: Callable[[Store, int], Awaitable[None]]
) -> None:
    user = await new_user(store)
    await store.toggl_connections.create(user, "tok-ada-1")
    await store.exist_connections.save(user, ExistTokens.personal("exist-ada"))
    await store.ledger.replace_entries(user, fetch())

    await forget(store, user)
    assert await store.ledger.entries(user) == []
    await store.ledger.replace_entries(user, fetch())

    assert await store.ledger.entries(user) == fetch()


async def test_a_purge_leaves_other_users_digests_alone(store: Store) -> None:
    old, recent = await new_user(store), (await store.accounts.create("bob@example.com")).id
    await store.ledger.replace_entries(old, fetch())
    later = [
        KeptEntry(e.id, e.project_id, e.start + timedelta(days=3), None, None) for e in fetch()
    ]
    await store.ledger.replace_entries(recent, later)

    await store.ledger.purge((T0 + timedelta(days=1)).date())

    with transaction_log(store.database) as log:
        await store.ledger.replace_entries(recent, later)
    assert log.writers == []
