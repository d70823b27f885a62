"""The status page: per attribute the 14 days as a chart and a table, equal to the oracle; a
day's drill-down with the entries behind its total, cut at midnight; the run history."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx

from tests.jobs.test_tasks import World
from tests.sync.oracle import truth
from tests.web.test_pages import (
    client_fixture,
    get,
    settings_fixture,
    sign_in,
    world_fixture,
)
from timebridge.clock import FakeClock
from timebridge.records import ValueWrite
from timebridge.store import Store
from timebridge.sync.runner import RunKind, RunOutcome, RunReport

#: The pages' fixtures, which tests here ask for by name ("client", "settings", "world").
_FIXTURES = (client_fixture, settings_fixture, world_fixture)

BERLIN = ZoneInfo("Europe/Berlin")
#: 23:30 in Berlin on Sunday 8 March, for an hour: half on the 8th, half on the 9th.
NIGHT = datetime(2026, 3, 8, 22, 30, tzinfo=UTC)


async def alice_with_a_night(world: World, store: Store) -> tuple[int, int]:
    """Alice connected and synced, with an hour of Series across Berlin's midnight."""
    alice = await world.connect("alice")
    series = next(
        m.project_id for m in await store.mappings.for_account(alice) if m.project_name == "Series"
    )
    world.toggl_sim.add_time_entry(
        world.toggl_users[alice], start=NIGHT, duration=3600, project_id=series
    )
    report = await world.bridge.sync(alice)
    assert isinstance(report, RunReport)
    assert report.outcome is RunOutcome.SUCCEEDED
    return alice, series


def number(pattern: str, text: str) -> int:
    found = re.search(pattern, text)
    assert found is not None, (pattern, text)
    return int(found.group(1))


async def expected(
    world: World, store: Store, alice: int, clock: FakeClock
) -> dict[tuple[str, date], int]:
    entries = world.toggl_sim.world.entries_of(world.toggl_users[alice].id, include_deleted=True)
    return truth(entries, await store.mappings.project_map(alice), BERLIN, clock.now())


async def test_the_status_page_shows_each_attributes_days_as_the_oracle_says(
    world: World, client: httpx.AsyncClient, store: Store, clock: FakeClock
) -> None:
    alice, _ = await alice_with_a_night(world, store)
    truths = await expected(world, store, alice, clock)
    await sign_in(client, store, alice)
    page = await get(client, "/status")
    assert page.h1 == "Status"
    assert [text for tag, text in page.headings if tag == "h2"] == [
        "Watching TV",
        "Productive time",
        "Run history",
    ]
    for attribute in ("tv_min", "productive_min"):
        rows = page.rows(f"days-{attribute}")
        assert len(rows) == 14
        shown = {row[0]: (int(row[1]), int(row[2]), row[3]) for row in rows}
        for (name, day), minutes in truths.items():
            if name != attribute:
                continue
            label = f"{day:%a} {day.day} {day:%b}"
            assert shown[label] == (minutes, minutes, "yes"), (attribute, day)
            assert f"/status/{attribute}/{day.isoformat()}" in page.hrefs
    assert truths[("tv_min", date(2026, 3, 8))] == 30
    # The chart: an SVG with a title, and a <title> on every bar.
    assert '<title id="chart-tv_min-title">Watching TV: minutes per day' in page.html
    assert "<title>Sun 8 Mar: Toggl Track 30 min</title>" in page.html
    assert "<title>Sun 8 Mar: Exist 30 min</title>" in page.html
    assert "cdn" not in page.html.lower() and "<script" not in page.html


async def test_a_day_that_differs_is_marked(
    world: World, client: httpx.AsyncClient, store: Store, clock: FakeClock
) -> None:
    alice, _ = await alice_with_a_night(world, store)
    # What Timebridge knows Exist holds disagrees with Toggl (as after a write Exist refused).
    day = date(2026, 3, 8)
    await store.ledger.record_accepted(alice, [ValueWrite("tv_min", day, 12)])
    await sign_in(client, store, alice)
    page = await get(client, "/status")
    row = next(r for r in page.rows("days-tv_min") if r[0] == "Sun 8 Mar")
    assert row == ["Sun 8 Mar", "30", "12", "no"]
    assert "<title>Sun 8 Mar: Toggl Track 30 min, Exist 12 min (differs)</title>" in page.html
    drill = await get(client, f"/status/tv_min/{day.isoformat()}")
    assert drill.by_id("exist-total") == "12 min — differs; the next sync writes 30"


async def test_a_days_drill_down_lists_the_entries_and_the_part_cut_at_midnight(
    world: World, client: httpx.AsyncClient, store: Store, clock: FakeClock
) -> None:
    alice, _ = await alice_with_a_night(world, store)
    truths = await expected(world, store, alice, clock)
    await sign_in(client, store, alice)

    before = await get(client, "/status/tv_min/2026-03-08")
    assert before.h1 == "Watching TV on Sun 8 Mar 2026"
    assert before.by_id("toggl-total").startswith("30 min (1800 seconds")
    assert before.rows("entries") == [
        [
            "Series",
            "Sun 8 Mar 2026, 23:30 – Mon 9 Mar 2026, 00:30",
            "30.0 min (1800 s)",
            "yes, goes on into the next day",
        ]
    ]
    assert "(times in Europe/Berlin)" in before.text

    after = await get(client, "/status/tv_min/2026-03-09")
    rows = after.rows("entries")
    assert rows[0] == [
        "Series",
        "Sun 8 Mar 2026, 23:30 – Mon 9 Mar 2026, 00:30",
        "30.0 min (1800 s)",
        "yes, began the day before",
    ]
    assert [row[3] for row in rows[1:]] == ["no"] * (len(rows) - 1)
    total = number(r"^(\d+) min", after.by_id("toggl-total"))
    assert total == truths[("tv_min", date(2026, 3, 9))]
    seconds = sum(number(r"\((\d+) s\)", row[2]) for row in rows)
    assert (seconds + 30) // 60 == total, "the entries add up to the total, rounded once"


async def test_the_run_history_says_what_each_run_did_in_words(
    world: World, client: httpx.AsyncClient, store: Store, clock: FakeClock
) -> None:
    alice = await world.connect("alice")
    await world.bridge.sync(alice)
    world.toggl_sim.world.revoke_token(world.toggl_users[alice].id)
    clock.advance(timedelta(minutes=5))
    refused = await world.bridge.sync(alice)
    assert isinstance(refused, RunReport)
    await sign_in(client, store, alice)

    page = await get(client, "/status")
    newest, first = page.rows("runs")
    assert newest[:3] == [
        "Tue 10 Mar 2026, 13:05",
        "Sync",
        "Toggl Track refused the token, so Toggl Track was disconnected",
    ]
    assert newest[5] == refused.error
    assert first[:3] == ["Tue 10 Mar 2026, 13:00", "Sync", "Succeeded"]
    assert re.fullmatch(r"[1-9]\d* Toggl, [1-9]\d* Exist", first[3])
    assert int(first[4]) > 0, "values written"
    home = await get(client, "/")
    assert "Toggl Track refused your token (twice)" in home.text
    assert home.links["Connect Toggl Track"] == "/connect/toggl"


async def test_the_run_history_shows_the_last_fifty_runs(
    client: httpx.AsyncClient, store: Store, clock: FakeClock
) -> None:
    account = await store.accounts.create("busy@example.com")
    start = clock.now() - timedelta(hours=60)
    for hour in range(60):
        at = start + timedelta(hours=hour)
        await store.sync_runs.record(
            RunReport(
                account.id,
                RunKind.SYNC,
                RunOutcome.SUCCEEDED,
                at,
                at,
                timedelta(seconds=1),
                toggl_requests=1,
                exist_requests=0,
            )
        )
    await sign_in(client, store, account.id)
    page = await get(client, "/status")
    rows = page.rows("runs")
    assert len(rows) == 50
    assert rows[0][0] == "Tue 10 Mar 2026, 11:00", "newest first (UTC: nothing says otherwise)"
    assert "The last 50 runs, newest first" in page.text


async def test_before_any_sync_the_status_page_says_so(
    world: World, client: httpx.AsyncClient, store: Store
) -> None:
    alice = await world.connect("alice")
    await sign_in(client, store, alice)
    page = await get(client, "/status")
    assert "Nothing synced yet" in page.text
    assert "No run yet." in page.text
