"""The actions behind confirmation pages — Zero Out, Repair, Disconnect Toggl Track, Disconnect
Exist — do what their pages say, against both simulators; Sync now goes through the service's
scheduler when one runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.jobs.test_tasks import World
from tests.web.test_app import running
from tests.web.test_pages import (
    client_fixture,
    follow,
    get,
    settings_fixture,
    sign_in,
    submit,
    world_fixture,
)
from timebridge.bridge import Skipped
from timebridge.clock import FakeClock
from timebridge.config import Settings
from timebridge.fakes.exist import ExistSimulator
from timebridge.jobs import EmbeddedScheduler
from timebridge.retry import RetryPolicy
from timebridge.store import Store
from timebridge.sync.runner import RunReport
from timebridge.web import create_app
from timebridge.web.state import SyncScheduler

#: The pages' fixtures, which tests here ask for by name ("client", "settings", "world").
_FIXTURES = (client_fixture, settings_fixture, world_fixture)

BERLIN = ZoneInfo("Europe/Berlin")


def today(clock: FakeClock) -> date:
    return clock.now().astimezone(BERLIN).date()


async def synced(world: World, name: str) -> int:
    account = await world.connect(name)
    report = await world.bridge.sync(account)
    assert isinstance(report, RunReport)
    return account


async def test_zero_out_says_what_happens_then_starts_over(
    world: World,
    client: httpx.AsyncClient,
    store: Store,
    exist_sim: ExistSimulator,
    clock: FakeClock,
) -> None:
    alice = await synced(world, "alice")
    # A value Timebridge does not know about (typed into Exist by hand): a sync leaves it,
    # Zero Out clears it.
    stray = today(clock) - timedelta(days=5)
    exist_sim.set_value("alice", "tv_min", stray, 999)
    await sign_in(client, store, alice)
    await follow(client, await submit(client, await get(client, "/"), "/sync"))
    assert exist_sim.stored_values("alice", "tv_min")[stray] == 999

    page = await get(client, "/zero-out")
    assert page.h1 == "Zero Out"
    assert "each mapped attribute (Watching TV, Productive time)" in page.text
    assert "the last two weeks (Wed 25 Feb to Tue 10 Mar)" in page.text
    assert "then it syncs as usual" in page.text
    after = await follow(client, await submit(client, page, "/zero-out"))
    assert after.by_id("flash").startswith("Zero Out finished: Succeeded.")
    assert exist_sim.stored_values("alice", "tv_min")[stray] == 0
    await world.assert_exist_matches_toggl(alice, "alice")
    status = await get(client, "/status")
    assert status.rows("runs")[0][1] == "Zero Out"


async def test_repair_rewrites_what_differs_in_exist(
    world: World,
    client: httpx.AsyncClient,
    store: Store,
    exist_sim: ExistSimulator,
    clock: FakeClock,
) -> None:
    alice = await synced(world, "alice")
    yesterday = today(clock) - timedelta(days=1)
    right = exist_sim.stored_values("alice", "tv_min")[yesterday]
    exist_sim.set_value("alice", "tv_min", yesterday, 999)
    await sign_in(client, store, alice)
    page = await get(client, "/repair")
    assert page.h1 == "Repair"
    assert "rewrites every value that differs" in page.text
    after = await follow(client, await submit(client, page, "/repair"))
    assert after.by_id("flash").startswith("Repair finished: Succeeded. 1 value written to Exist")
    assert exist_sim.stored_values("alice", "tv_min")[yesterday] == right
    await world.assert_exist_matches_toggl(alice, "alice")


async def test_disconnect_toggl_lists_what_is_deleted_then_deletes_it(
    world: World, client: httpx.AsyncClient, store: Store, exist_sim: ExistSimulator
) -> None:
    alice = await synced(world, "alice")
    ledger = len(await store.ledger.load(alice))
    entries = len(await store.ledger.entries(alice))
    await sign_in(client, store, alice)
    page = await get(client, "/disconnect/toggl")
    assert page.by_id("deleted") == (
        "your Toggl Track API token (1 connection); your mapping (2 projects); "
        f"what Timebridge remembered writing to Exist ({ledger} values); "
        f"the kept start and stop times of your entries ({entries} entries)."
    )
    assert "gives Productive time, Watching TV back to Exist" in page.text

    home = await follow(client, await submit(client, page, "/disconnect/toggl"))
    assert home.by_id("flash").startswith("Toggl Track is disconnected")
    assert "Not connected." in home.text
    assert await store.toggl_connections.list(alice) == []
    assert await store.mappings.for_account(alice) == []
    assert await store.ledger.load(alice) == {}
    assert await store.ledger.entries(alice) == []
    owned = {a.name for a in exist_sim.attributes("alice") if a.service is not None}
    assert not owned & {"tv_min", "productive_min"}, "given back to Exist"
    again = await get(client, "/disconnect/toggl")
    assert "Toggl Track is not connected." in again.text


async def test_disconnect_exist_keeps_the_mapping_and_stops_syncing(
    world: World, client: httpx.AsyncClient, store: Store, exist_sim: ExistSimulator
) -> None:
    alice = await synced(world, "alice")
    await sign_in(client, store, alice)
    page = await get(client, "/disconnect/exist")
    assert "Your mapping is kept" in page.text
    home = await follow(client, await submit(client, page, "/disconnect/exist"))
    assert home.by_id("flash").startswith("Exist is disconnected")
    assert home.links["Connect Exist"] == "/connect/exist"
    assert home.by_id("next-run") == "No sync is planned: connect Exist first."
    assert await store.exist_connections.get(alice) is None
    assert len(await store.mappings.for_account(alice)) == 2
    owned = {a.name for a in exist_sim.attributes("alice") if a.service is not None}
    assert not owned & {"tv_min", "productive_min"}
    synced_now = await follow(client, await submit(client, home, "/sync"))
    assert synced_now.by_id("flash") == (
        "Nothing was synced: connect Exist first (or connect it again)."
    )


@dataclass
class Scheduled:
    """The app running its own scheduler, and the accounts that scheduler synced."""

    client: httpx.AsyncClient
    synced: list[int]


@pytest.fixture
async def scheduled(
    world: World, store: Store, clock: FakeClock, settings: Settings
) -> AsyncIterator[Scheduled]:
    """The app with its own scheduler (cron at :05), whose cycles never come in the test."""
    never = asyncio.Event()
    synced: list[int] = []

    async def sleep(_: float) -> None:
        await never.wait()

    async def sync_user(account_id: int) -> RunReport | Skipped:
        synced.append(account_id)
        return await world.bridge.sync(account_id)

    scheduler: SyncScheduler = EmbeddedScheduler(
        cron="5 * * * *",
        list_users=world.bridge.users_to_sync,
        sync_user=sync_user,
        clock=clock,
        sleep=sleep,
    )
    app = create_app(
        settings, store=store, scheduler=scheduler, clock=clock, retry=RetryPolicy.testing()
    )
    async with running(app) as client:
        yield Scheduled(client, synced)


async def test_sync_now_goes_through_the_running_scheduler_and_the_next_run_is_its_own(
    world: World, store: Store, scheduled: Scheduled
) -> None:
    client = scheduled.client
    alice = await world.connect("alice")
    await sign_in(client, store, alice)
    home = await get(client, "/")
    # At :05 every hour (UTC); no zone is known before Exist's profile is first read.
    assert home.by_id("next-run") == "Tue 10 Mar 2026, 12:05"
    assert "every hour at :05 (UTC cron “5 * * * *”). Times here are in UTC." in home.text
    after = await follow(client, await submit(client, home, "/sync"))
    assert after.by_id("flash").startswith("Sync finished: Succeeded.")
    assert scheduled.synced == [alice]
    await world.assert_exist_matches_toggl(alice, "alice")
