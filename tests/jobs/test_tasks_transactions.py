"""What one `Bridge.sync` costs the database, counted on SQLite and PostgreSQL.

At thousands of users an hour the worker's time goes to the store, so the steady state (nothing
changed in Toggl) is held to a budget: a handful of short transactions, one of them a write.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import event

from tests.jobs.test_tasks import World
from tests.store.transaction_log import transaction_log
from timebridge.entries import KeptEntry
from timebridge.store.database import SQLITE_POOL_SIZE
from timebridge.sync.runner import RunOutcome, RunReport

#: The steady-state budget: the context with the ledger and the entry snapshot; the run record.
MAX_TRANSACTIONS = 2
MAX_WRITERS = 1


async def _synced(world: World, user: int) -> RunReport:
    report = await world.bridge.sync(user)
    assert isinstance(report, RunReport)
    assert report.outcome is RunOutcome.SUCCEEDED, report.failures
    return report


def _toggl_entries(world: World, user: int) -> list[KeptEntry]:
    entries = world.toggl_sim.world.entries_of(world.toggl_users[user].id)
    return sorted((KeptEntry.from_entry(e) for e in entries), key=lambda e: (e.start, e.id))


async def test_a_steady_state_run_is_two_transactions_and_one_write(world: World) -> None:
    alice = await world.connect("alice")
    await _synced(world, alice)

    with transaction_log(world.store.database) as log:
        again = await _synced(world, alice)

    assert again.values_written == 0
    assert len(log.transactions) <= MAX_TRANSACTIONS, [t.statements for t in log.transactions]
    assert len(log.writers) <= MAX_WRITERS, [t.statements for t in log.writers]
    [writer] = log.writers
    assert {table for table, _ in writer.writes} == {"sync_runs"}
    assert not any(t.writes for t in log.transactions if t.read_only)
    assert log.rows_written("entry_snapshots") == [], "unchanged entries are not rewritten"
    assert log.rows_written("exist_connections") == [], "an unchanged zone is not rewritten"
    assert await world.store.sync_runs.count(alice) == 2


async def test_a_changed_entry_is_one_write_of_the_snapshot(world: World) -> None:
    alice = await world.connect("alice")
    await _synced(world, alice)
    toggl_user = world.toggl_users[alice]
    first, *_ = world.toggl_sim.world.entries_of(toggl_user.id)
    world.toggl_sim.world.update_time_entry(
        toggl_user.id, None, first.id, {"duration": first.duration + 600}
    )

    with transaction_log(world.store.database) as log:
        await _synced(world, alice)

    assert len(log.rows_written("entry_snapshots")) == 1, "one write for the changed snapshot"
    assert await world.store.ledger.entries(alice) == _toggl_entries(world, alice)
    await world.assert_exist_matches_toggl(alice, "alice")


async def test_an_added_and_a_deleted_entry_reach_the_snapshot_and_exist(world: World) -> None:
    alice = await world.connect("alice")
    await _synced(world, alice)
    toggl_user = world.toggl_users[alice]
    first, *_ = world.toggl_sim.world.entries_of(toggl_user.id)
    world.toggl_sim.world.delete_time_entry(toggl_user.id, None, first.id)
    added = world.toggl_sim.add_time_entry(
        toggl_user,
        start=world.clock.now() - timedelta(hours=5),
        duration=1200,
        project_id=first.project_id,
    )

    with transaction_log(world.store.database) as log:
        await _synced(world, alice)

    assert len(log.rows_written("entry_snapshots")) == 1
    kept = await world.store.ledger.entries(alice)
    assert added.id in {entry.id for entry in kept}
    assert first.id not in {entry.id for entry in kept}
    assert kept == _toggl_entries(world, alice)
    await world.assert_exist_matches_toggl(alice, "alice")


async def test_a_zone_read_again_is_kept_in_the_same_write_as_the_run(world: World) -> None:
    alice = await world.connect("alice")
    await _synced(world, alice)
    before = await world.store.exist_connections.get(alice)
    assert before is not None and before.time_zone_checked_at is not None

    world.clock.advance(timedelta(days=1, hours=1))
    with transaction_log(world.store.database) as log:
        report = await _synced(world, alice)

    assert report.zone_checked_at == world.clock.now()
    [record] = [t for t in log.transactions if t.rows_written("sync_runs")]
    assert [row["time_zone_checked_at"] for row in record.rows_written("exist_connections")] == [
        world.clock.now()
    ]
    after = await world.store.exist_connections.get(alice)
    assert after is not None
    assert after.time_zone == "Europe/Berlin"
    assert after.time_zone_checked_at == world.clock.now()


async def test_many_runs_at_once_share_a_fixed_set_of_sqlite_connections(world: World) -> None:
    users = [await world.connect(f"user{n}") for n in range(12)]
    connects = 0

    def count(*_: object) -> None:
        nonlocal connects
        connects += 1

    engine = world.store.database.engine.sync_engine
    event.listen(engine, "connect", count)
    try:
        for _ in range(3):
            reports = await asyncio.gather(*(world.bridge.sync(user) for user in users))
            assert all(
                isinstance(r, RunReport) and r.outcome is RunOutcome.SUCCEEDED for r in reports
            )
    finally:
        event.remove(engine, "connect", count)

    if world.store.database.dialect == "sqlite":
        # No connection (and thread) opened and closed again as the load comes and goes.
        assert connects <= SQLITE_POOL_SIZE
    for user in users:
        assert await world.store.sync_runs.count(user) == 3
