"""Runs sharing one `ConnectionPool`: warm connections across users, each with its own data."""

from __future__ import annotations

import httpx

from tests.jobs.test_tasks import make_world
from timebridge._http import ConnectionPool
from timebridge.clock import FakeClock
from timebridge.fakes.exist import ExistSimulator, SimClient
from timebridge.fakes.toggl import TogglSimulator
from timebridge.jobs.tasks import SyncService
from timebridge.retry import RetryPolicy
from timebridge.store import Store
from timebridge.sync.runner import RunOutcome, RunReport


def _open_connections(pool: ConnectionPool) -> int:
    transport: httpx.AsyncHTTPTransport = pool._transport
    return len(transport._pool.connections)


async def test_users_synced_over_one_pool_each_get_their_own_values(
    store: Store,
    clock: FakeClock,
    toggl_sim: TogglSimulator,
    toggl_url: str,
    exist_sim: ExistSimulator,
    exist_api_url: str,
    exist_oauth_url: str,
    exist_oauth_client: SimClient,
) -> None:
    world = make_world(
        store,
        clock,
        toggl_sim,
        toggl_url,
        exist_sim,
        exist_api_url,
        exist_oauth_url,
        exist_oauth_client,
    )
    alice, bob = await world.connect("alice"), await world.connect("bob")
    pool = ConnectionPool()
    service = SyncService(
        store, world.service._settings, clock=clock, retry=RetryPolicy.testing(), pool=pool
    )
    try:
        for user in [alice, bob, alice, bob]:
            report = await service.sync_user(user)
            assert isinstance(report, RunReport)
            assert report.outcome is RunOutcome.SUCCEEDED
        await world.assert_exist_matches_toggl(alice, "alice")
        await world.assert_exist_matches_toggl(bob, "bob")
        # Four runs, two services: one warm connection to each, not one per run.
        assert _open_connections(pool) == 2
    finally:
        await pool.aclose()
