"""Runs sharing one `ConnectionPool`: warm connections across users, each with its own data."""

from __future__ import annotations

from tests.jobs.test_tasks import World
from timebridge._pool import ConnectionPool
from timebridge.bridge import Bridge
from timebridge.clock import FakeClock
from timebridge.retry import RetryPolicy
from timebridge.store import Store
from timebridge.sync.runner import RunOutcome, RunReport


async def test_users_synced_over_one_pool_each_get_their_own_values(
    store: Store, clock: FakeClock, world: World
) -> None:
    alice, bob = await world.connect("alice"), await world.connect("bob")
    pool = ConnectionPool()
    bridge = Bridge.from_settings(
        store, world.settings, clock=clock, retry=RetryPolicy.testing(), pool=pool
    )
    try:
        for user in [alice, bob, alice, bob]:
            report = await bridge.sync(user)
            assert isinstance(report, RunReport)
            assert report.outcome is RunOutcome.SUCCEEDED
        await world.assert_exist_matches_toggl(alice, "alice")
        await world.assert_exist_matches_toggl(bob, "bob")
        # Four runs, two services: one warm connection to each, not one per run.
        assert pool.connections_opened == 2
    finally:
        await pool.aclose()
