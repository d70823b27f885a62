"""What the pages and the API show: the status of every mapped attribute equals the oracle and
what Exist holds, and a day's drill-down lists the entries behind its total."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.jobs.test_tasks import World
from tests.sync.oracle import truth
from timebridge.bridge import Bridge, DayNotFound
from timebridge.clock import FakeClock
from timebridge.config import Settings
from timebridge.retry import RetryPolicy
from timebridge.store import Store

BERLIN = ZoneInfo("Europe/Berlin")


def bridge_for(store: Store, clock: FakeClock) -> Bridge:
    return Bridge.from_settings(store, Settings(), clock=clock, retry=RetryPolicy.testing())


async def test_the_status_shows_toggls_truth_and_what_exist_holds(
    world: World, store: Store, clock: FakeClock
) -> None:
    alice = await world.connect("alice")
    bridge = bridge_for(store, clock)
    await bridge.sync(alice)

    status = await bridge.views.status(alice)

    mapping = await store.mappings.project_map(alice)
    entries = world.toggl_sim.world.entries_of(world.toggl_users[alice].id)
    expected = truth(entries, mapping, BERLIN, clock.now())
    shown = {(a.attribute, d.date): d.minutes for a in status.attributes for d in a.days}
    assert shown == expected
    assert all(day.in_sync for attribute in status.attributes for day in attribute.days)
    assert status.zone == "Europe/Berlin"
    assert [a.attribute for a in status.attributes] == ["productive_min", "tv_min"]


async def test_a_day_lists_its_entries_and_what_midnight_cut(
    world: World, store: Store, clock: FakeClock
) -> None:
    alice = await world.connect("alice")
    toggl_user = world.toggl_users[alice]
    series = next(iter(await store.mappings.for_account(alice)))
    today = clock.now().astimezone(BERLIN).date()
    yesterday_late = clock.now().astimezone(BERLIN).replace(hour=23, minute=30) - timedelta(days=1)
    crossing = world.toggl_sim.add_time_entry(
        toggl_user, start=yesterday_late, duration=3600, project_id=series.project_id
    )
    bridge = bridge_for(store, clock)
    await bridge.sync(alice)

    day = await bridge.views.day(alice, series.attribute, today)

    part = next(p for p in day.entries if p.entry_id == crossing.id)
    assert part.cut_before and not part.cut_after
    assert part.seconds == 30 * 60, "only the half hour after midnight counts today"
    assert part.project_name == series.project_name
    assert part.start.utcoffset() == yesterday_late.utcoffset(), "shown in the user's zone"
    assert day.seconds == sum(p.seconds for p in day.entries)


async def test_a_day_outside_the_window_or_unmapped_is_not_found(
    world: World, store: Store, clock: FakeClock
) -> None:
    alice = await world.connect("alice")
    bridge = bridge_for(store, clock)
    today = clock.now().astimezone(BERLIN).date()
    with pytest.raises(DayNotFound):
        await bridge.views.day(alice, "tv_min", today - timedelta(days=14))
    with pytest.raises(DayNotFound):
        await bridge.views.day(alice, "gaming_min", today)


async def test_the_overview_names_both_connections_and_the_last_run(
    world: World, store: Store, clock: FakeClock
) -> None:
    alice = await world.connect("alice")
    bridge = bridge_for(store, clock)
    before = await bridge.views.overview(alice)
    assert before.last_run is None
    await bridge.sync(alice)

    overview = await bridge.views.overview(alice)

    assert overview.toggl is not None and overview.toggl.status.value == "ACTIVE"
    assert overview.exist is not None
    assert overview.last_run is not None and overview.last_run.outcome == "succeeded"
    assert len(overview.mapping) == 2
