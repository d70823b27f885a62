"""Reads never queue for SQLite's write lock; anything that may write still takes it first."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from tests.store.transaction_log import transaction_log
from timebridge.entries import EntrySnapshot, KeptEntry
from timebridge.exist.models import ExistTokens
from timebridge.records import ValueWrite
from timebridge.store import Integration, ProjectMapping, Store, count_stale_secrets
from timebridge.store.models import AccountRow

DAY = datetime(2026, 3, 9, tzinfo=UTC)


def snapshot_of(*entries: KeptEntry) -> EntrySnapshot:
    return EntrySnapshot.of(entries, (DAY - timedelta(days=15), DAY + timedelta(days=1)), DAY)


async def connected_user(store: Store) -> tuple[int, str]:
    user = (await store.accounts.create("ada@example.com")).id
    connection = await store.toggl_connections.create(user, "tok-ada-1")
    await store.exist_connections.save(user, ExistTokens.personal("exist-ada"))
    await store.mappings.replace(user, [ProjectMapping(1, 10, "Games", "gaming_min")])
    await store.claims.claim(user, "tv_min", Integration.TRAKT)
    await store.ledger.record_accepted(user, [ValueWrite("gaming_min", DAY.date(), 5)])
    await store.ledger.keep_snapshot(user, snapshot_of(KeptEntry.of(1, 10, DAY, None, None)))
    return user, connection.id


async def test_loads_read_while_another_transaction_holds_the_write_lock(store: Store) -> None:
    user, _ = await connected_user(store)

    async with store.database.transaction() as writer:
        await writer.execute(
            update(AccountRow).where(AccountRow.id == user).values(display_name="Ada")
        )
        # On SQLite the writer holds the database's only write lock until it commits; a read
        # that asked for it would wait the whole busy timeout (10 s) here.
        account, ledger, context, entries = await asyncio.wait_for(
            asyncio.gather(
                store.accounts.get(user),
                store.ledger.load(user),
                store.sync_context(user),
                store.ledger.entries(user),
            ),
            timeout=5,
        )

    assert account.display_name is None, "a read sees only what was committed"
    assert ledger == {("gaming_min", DAY.date()): 5}
    assert context.secrets is not None
    assert [entry.id for entry in entries] == [1]


async def test_every_read_only_call_is_a_read_transaction(store: Store) -> None:
    user, connection_id = await connected_user(store)

    with transaction_log(store.database) as log:
        await store.accounts.get(user)
        await store.accounts.by_email("ada@example.com")
        await store.accounts.ready_to_sync()
        await store.toggl_connections.list(user)
        await store.toggl_connections.get(user, connection_id)
        await store.toggl_connections.default(user)
        await store.toggl_connections.token(user, connection_id)
        await store.exist_connections.get(user)
        await store.exist_connections.tokens(user)
        await store.claims.holders(user)
        await store.claims.retiring_toggl(user)
        await store.mappings.for_account(user)
        await store.mappings.project_map(user)
        await store.sync_runs.recent(user)
        await store.sync_runs.count(user)
        await store.ledger.load(user)
        await store.ledger.entries(user)
        await store.ledger.load_with_snapshot(user)
        await store.sync_context(user)
        await count_stale_secrets(store.database, store.box)

    assert log.transactions
    assert log.writers == []
    if store.database.dialect == "sqlite":
        assert {t.statements[0] for t in log.transactions} == {"BEGIN"}


async def test_a_call_that_may_write_takes_the_write_lock_at_its_start(store: Store) -> None:
    user, _ = await connected_user(store)

    with transaction_log(store.database) as log:
        await store.accounts.set_time_zone(user, "Europe/Berlin")
        await store.ledger.keep_snapshot(user, snapshot_of(KeptEntry.of(2, 10, DAY, None, None)))

    assert [t.read_only for t in log.transactions] == [False, False]
    if store.database.dialect == "sqlite":
        assert [t.statements[0] for t in log.transactions] == ["BEGIN IMMEDIATE", "BEGIN IMMEDIATE"]
