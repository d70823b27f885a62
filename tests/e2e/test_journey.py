"""The whole journey of a person, by clicking: sign in with Exist, connect Toggl Track (a bad
token first), map projects (taking one attribute over from another service), Sync now, read
the chart and a drill-down (equal to the test oracle), see an edit made in Toggl Track after the
next sync, Zero Out, disconnect Toggl Track, sign out. And a second person sees none of it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import ALICE_TOGGL_TOKEN, Browsing, RunningApp, screenshot
from tests.e2e.test_signin import sign_in_with_exist
from tests.sync.oracle import truth
from timebridge.clock import FakeClock
from timebridge.fakes.exist import ExistSimulator
from timebridge.fakes.toggl import SimUser, TogglSimulator

pytestmark = pytest.mark.e2e

BERLIN = ZoneInfo("Europe/Berlin")


@dataclass(frozen=True)
class Seeded:
    """Alice's Toggl Track projects and the entries the test looks at."""

    user: SimUser
    series: int
    deep_work: int
    email: int
    #: A Series entry from 23:30 to 00:45 (Berlin): cut at midnight.
    late_night: int
    #: A Series entry on yesterday evening, edited in Toggl Track during the journey.
    evening: int
    #: The days those two count on.
    night_before: date
    night_after: date
    yesterday: date


def berlin(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=BERLIN)


def seed_toggl(toggl_sim: TogglSimulator, user: SimUser, clock: FakeClock) -> Seeded:
    """Three projects (two to map, one not) and two weeks of entries, with a midnight cut, a
    half minute to round, an entry before the window and a timer running now."""
    workspace = user.default_workspace_id
    home = toggl_sim.add_client(workspace, "Home")
    series = toggl_sim.add_project(workspace, "Series", client_id=home.id, color="#d94182")
    deep = toggl_sim.add_project(workspace, "Deep work", color="#2da608")
    email = toggl_sim.add_project(workspace, "Email", color="#c9806b")
    today = clock.now().astimezone(BERLIN).date()

    def entry(project: int, start: datetime, seconds: int, description: str) -> int:
        made = toggl_sim.add_time_entry(
            user,
            start=start,
            duration=seconds,
            project_id=project,
            description=description,
            saved_at=min(start + timedelta(seconds=max(seconds, 0)), clock.now()),
        )
        return made.id

    day = timedelta(days=1)
    night = today - 3 * day
    entry(series.id, berlin(today - 20 * day, 20), 3600, "Before the window")
    late = entry(series.id, berlin(night, 23, 30), 75 * 60, "Late episode")
    evening = entry(series.id, berlin(today - day, 20), 90 * 60, "Evening episode")
    entry(series.id, berlin(today - 6 * day, 19), 45 * 60 + 30, "Short episode")
    entry(deep.id, berlin(today - day, 9), 140 * 60, "Writing")
    entry(deep.id, berlin(today - 5 * day, 14), 67 * 60 + 30, "Reading")
    entry(deep.id, berlin(today - 9 * day, 8, 15), 3 * 3600, "Long session")
    entry(email.id, berlin(today - day, 12), 30 * 60, "Inbox")
    entry(email.id, berlin(today, 8), 20 * 60, "Inbox")
    # A timer started 25 minutes ago and still running.
    toggl_sim.add_time_entry(
        user,
        start=clock.now() - timedelta(minutes=25),
        duration=-1,
        project_id=deep.id,
        description="Now",
    )
    return Seeded(
        user, series.id, deep.id, email.id, late, evening, night, night + day, today - day
    )


def expected(
    toggl_sim: TogglSimulator, seeded: Seeded, clock: FakeClock
) -> dict[tuple[str, date], int]:
    """What Exist should hold: the test oracle over the simulator's entries."""
    return truth(
        toggl_sim.world.entries_of(seeded.user.id, include_deleted=True),
        {seeded.series: "tv_min", seeded.deep_work: "productive_min"},
        BERLIN,
        clock.now(),
    )


def assert_exist_holds(
    exist_sim: ExistSimulator, want: dict[tuple[str, date], int], username: str = "alice"
) -> None:
    for attribute in {attribute for attribute, _ in want}:
        stored = exist_sim.stored_values(username, attribute)
        held = {day: stored.get(day, 0) for (a, day) in want if a == attribute}
        wanted = {day: minutes for (a, day), minutes in want.items() if a == attribute}
        assert held == wanted, attribute


_CHART_LABEL = re.compile(r"Toggl Track (\d+) min.*, Exist (\d+|unknown)")


def chart_days(page: Page, attribute: str) -> dict[date, tuple[int, int | None]]:
    """Per day of an attribute's chart: (Toggl's minutes, Exist's), read from its links."""
    days: dict[date, tuple[int, int | None]] = {}
    links = page.locator(f"#chart-{attribute}-title").locator("xpath=..").locator("a.day")
    for index in range(links.count()):
        link = links.nth(index)
        href = link.get_attribute("href") or ""
        label = link.get_attribute("aria-label") or ""
        match = _CHART_LABEL.search(label)
        assert match, label
        when = date.fromisoformat(href.rsplit("/", 1)[-1])
        exist = None if match.group(2) == "unknown" else int(match.group(2))
        days[when] = (int(match.group(1)), exist)
    return days


def table_days(page: Page, attribute: str) -> dict[str, tuple[int, int]]:
    """Per row of an attribute's table: (Toggl's minutes, Exist's), by the day's link text."""
    rows = page.locator(f"#days-{attribute} tbody tr")
    days: dict[str, tuple[int, int]] = {}
    for index in range(rows.count()):
        row = rows.nth(index)
        cells = row.locator("td")
        days[row.locator("th").inner_text()] = (
            int(cells.nth(0).inner_text()),
            int(cells.nth(1).inner_text()),
        )
    return days


def assert_status_shows(page: Page, want: dict[tuple[str, date], int]) -> None:
    """The status page's chart and table of each attribute equal `want`, in sync."""
    for attribute in ("tv_min", "productive_min"):
        wanted = {day: minutes for (a, day), minutes in want.items() if a == attribute}
        assert chart_days(page, attribute) == {
            day: (minutes, minutes) for day, minutes in wanted.items()
        }, attribute
        table = table_days(page, attribute)
        assert len(table) == 14
        assert sorted(table.values()) == sorted((m, m) for m in wanted.values()), attribute
    expect(page.locator("tr.differs")).to_have_count(0)


def card(page: Page, heading: str) -> Locator:
    """A section of a page, by its heading."""
    return page.get_by_role("region", name=heading, exact=True)


def drill_down_minutes(page: Page) -> int:
    total = page.locator("#toggl-total").inner_text()
    match = re.match(r"(\d+) min", total)
    assert match, total
    return int(match.group(1))


def test_the_whole_journey_by_clicking(
    page: Page,
    site: RunningApp,
    clock: FakeClock,
    toggl_sim: TogglSimulator,
    exist_sim: ExistSimulator,
    alice_toggl: SimUser,
    exist_people: list[str],
) -> None:
    seeded = seed_toggl(toggl_sim, alice_toggl, clock)
    # RescueTime feeds Productive time in Exist now: mapping it is a takeover.
    exist_sim.add_service("rescuetime", "RescueTime")
    exist_sim.add_attribute("alice", template="productive_min", owner="rescuetime")

    # --- sign in with Exist: the account and its Exist connection in one step ------------------
    sign_in_with_exist(page, "alice")
    expect(page).to_have_url(f"{site.url}/")
    exist_card = card(page, "Exist")
    expect(exist_card).to_contain_text("Active")
    expect(exist_card).to_contain_text("Europe/Berlin")
    toggl_card = card(page, "Toggl Track")
    expect(toggl_card).to_contain_text("Not connected")
    expect(page.locator("#next-run")).to_contain_text("connect Toggl Track first")
    screenshot(page, "home-new-account")

    # --- connect Toggl Track: a bad token first -------------------------------------------------
    toggl_card.get_by_role("link", name="Connect Toggl Track").click()
    expect(page).to_have_url(f"{site.url}/connect/toggl")
    expect(page.get_by_role("heading", name="Connect Toggl Track", level=1)).to_be_visible()
    token = page.get_by_label("Toggl Track API token", exact=True)
    token.fill("wrong-token-123")
    page.get_by_role("button", name="Connect Toggl Track").click()
    expect(page.get_by_role("alert")).to_contain_text("Toggl Track did not accept this token")
    expect(token).to_have_attribute("aria-invalid", "true")
    assert site.run(site.store.toggl_connections.list(_account(page))) == []
    screenshot(page, "connect-toggl-bad-token")

    page.get_by_label("Toggl Track API token", exact=True).fill(ALICE_TOGGL_TOKEN)
    page.get_by_role("button", name="Connect Toggl Track").click()
    expect(page.get_by_role("heading", name="Toggl Track connected")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Alice Liddell")
    expect(page.locator("#workspaces")).to_have_text("Alice's workspace")
    screenshot(page, "connect-toggl-connected")

    # --- map projects, taking Productive time over from RescueTime -----------------------------
    page.get_by_role("link", name="Choose which projects to send to Exist").click()
    expect(
        page.get_by_role("heading", name="Set the Attributes from Toggl Track to send to Exist")
    ).to_be_visible()
    expect(page.locator("li.takeover")).to_contain_text("Productive time")
    expect(page.locator("li.takeover")).to_contain_text("RescueTime")
    expect(page.locator(f"#meta-{seeded.series}")).to_contain_text("Home")
    page.get_by_label("Series").select_option(label="Watching TV")
    page.get_by_label("Deep work").select_option(label="Productive time")
    expect(page.get_by_label("Email")).to_have_value("")
    screenshot(page, "mapping")
    page.get_by_role("button", name="Save the mapping").click()

    expect(
        page.get_by_role("heading", name="Take over attributes from another service?")
    ).to_be_visible()
    expect(page.locator("#takeovers")).to_contain_text("RescueTime")
    expect(page.locator("#takeovers")).to_contain_text("Deep work")
    assert _owner(exist_sim, "productive_min") == "rescuetime", "nothing is taken yet"
    screenshot(page, "mapping-confirm-takeover")
    page.get_by_role("button", name="Take over and save").click()
    expect(page.get_by_role("heading", name="Mapping saved")).to_be_visible()
    expect(page.locator("#mapped")).to_contain_text("Watching TV from Series")
    expect(page.locator("#mapped")).to_contain_text("Productive time from Deep work")
    expect(page.locator("#taken-over")).to_contain_text("RescueTime")
    screenshot(page, "mapping-saved")

    # --- Sync now -------------------------------------------------------------------------------
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Home").click()
    expect(page.locator("#last-run")).to_have_text("None yet.")
    page.get_by_role("button", name="Sync now").click()
    expect(page.locator("#flash")).to_contain_text("Sync finished: Succeeded")
    want = expected(toggl_sim, seeded, clock)
    written = sum(1 for minutes in want.values() if minutes)
    expect(page.locator("#flash")).to_contain_text(f"{written} values written to Exist")
    expect(page.locator("#last-run")).to_contain_text("Succeeded")
    assert_exist_holds(exist_sim, want)
    screenshot(page, "home")

    # --- the chart and a drill-down equal the oracle --------------------------------------------
    nav.get_by_role("link", name="Status").click()
    expect(page.get_by_role("heading", name="Status", level=1)).to_be_visible()
    assert_status_shows(page, want)
    expect(page.locator("#runs tbody tr")).to_have_count(1)
    screenshot(page, "status")

    night = seeded.night_after
    page.locator(f'#chart-tv_min-title ~ a.day[href$="/{night.isoformat()}"]').click()
    expect(page).to_have_url(f"{site.url}/status/tv_min/{night.isoformat()}")
    assert drill_down_minutes(page) == want[("tv_min", night)] == 45
    rows = page.locator("#entries tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Series")
    expect(rows.first).to_contain_text("45.0 min (2700 s)")
    expect(rows.first).to_contain_text("began the day before")
    screenshot(page, "status-day")
    before = seeded.night_before
    page.goto(f"/status/tv_min/{before.isoformat()}")
    assert drill_down_minutes(page) == want[("tv_min", before)] == 30
    expect(page.locator("#entries tbody tr").first).to_contain_text("goes on into the next day")

    # --- an entry edited in Toggl Track shows after the next sync -------------------------------
    clock.advance(timedelta(minutes=10))
    toggl_sim.world.update_time_entry(
        seeded.user.id, None, seeded.evening, {"duration": 2 * 3600 + 5 * 60}
    )
    page.goto("/")
    page.get_by_role("button", name="Sync now").click()
    expect(page.locator("#flash")).to_contain_text("Sync finished: Succeeded")
    edited = expected(toggl_sim, seeded, clock)
    assert edited[("tv_min", seeded.yesterday)] == 125
    assert_exist_holds(exist_sim, edited)
    page.goto(f"/status/tv_min/{seeded.yesterday.isoformat()}")
    assert drill_down_minutes(page) == 125
    expect(page.locator("#exist-total")).to_have_text("125 min (2 h 5 min)")
    page.goto("/status")
    assert_status_shows(page, edited)

    # --- Zero Out -------------------------------------------------------------------------------
    page.goto("/")
    page.get_by_role("link", name="Zero Out").click()
    expect(page.get_by_role("heading", name="Zero Out", level=1)).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text("Watching TV, Productive time")
    screenshot(page, "zero-out")
    exist_sim.clear_requests()
    page.get_by_role("button", name="Zero Out and sync").click()
    expect(page.locator("#flash")).to_contain_text("Zero Out finished: Succeeded")
    updates = exist_sim.requests_to("attributes/update/", "POST")
    zeros_then_values = sum(request.items or 0 for request in updates)
    assert zeros_then_values >= 2 * 14, "each day of both attributes is written 0 first"
    assert_exist_holds(exist_sim, expected(toggl_sim, seeded, clock))
    page.goto("/status")
    expect(page.locator("#runs tbody tr").first).to_contain_text("Zero Out")

    # --- disconnect Toggl Track -----------------------------------------------------------------
    page.goto("/")
    page.get_by_role("link", name="Disconnect Toggl Track").click()
    deleted = page.locator("#deleted")
    expect(deleted).to_contain_text("API token")
    expect(deleted).to_contain_text("your mapping (2 projects)")
    screenshot(page, "disconnect-toggl")
    page.get_by_role("button", name="Disconnect Toggl Track").click()
    expect(page.locator("#flash")).to_contain_text("Toggl Track is disconnected")
    expect(card(page, "Toggl Track")).to_contain_text("Not connected")
    expect(card(page, "Mapping")).to_contain_text("No Toggl Track project")
    # Given back: Exist passes an attribute to another service that can feed it, if any.
    assert _owner(exist_sim, "tv_min") is None
    assert _owner(exist_sim, "productive_min") == "rescuetime"

    # --- sign out -------------------------------------------------------------------------------
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{site.url}/signin")
    page.goto("/status")
    expect(page).to_have_url(re.compile(r"/signin\?next=%2Fstatus$"))


def _owner(exist_sim: ExistSimulator, attribute: str) -> str | None:
    service = exist_sim.attribute("alice", attribute).service
    return service.name if service is not None else None


def _account(page: Page) -> int:
    me = page.request.get("/api/v1/me")
    assert me.ok, me.status
    account_id = me.json()["id"]
    assert isinstance(account_id, int)
    return account_id


def test_a_second_person_sees_none_of_the_first_ones_pages_or_api_objects(
    browsing: Browsing,
    site: RunningApp,
    clock: FakeClock,
    toggl_sim: TogglSimulator,
    alice_toggl: SimUser,
    exist_people: list[str],
) -> None:
    seeded = seed_toggl(toggl_sim, alice_toggl, clock)
    alice = browsing.new_page()
    sign_in_with_exist(alice, "alice")
    alice.goto("/connect/toggl")
    alice.get_by_label("Toggl Track API token", exact=True).fill(ALICE_TOGGL_TOKEN)
    alice.get_by_role("button", name="Connect Toggl Track").click()
    alice.goto("/mapping")
    alice.get_by_label("Series").select_option("tv_min")
    alice.get_by_role("button", name="Save the mapping").click()
    expect(alice.get_by_role("heading", name="Mapping saved")).to_be_visible()
    alice.goto("/")
    alice.get_by_role("button", name="Sync now").click()
    expect(alice.locator("#flash")).to_contain_text("Sync finished: Succeeded")
    day_path = f"/status/tv_min/{seeded.yesterday.isoformat()}"
    alice.goto(day_path)
    expect(alice.locator("#entries tbody tr")).to_have_count(1)
    alice_connection = alice.request.get("/api/v1/connections").json()["toggl"][0]["id"]
    assert alice.request.get(f"/api/v1/connections/toggl/{alice_connection}").ok
    assert alice.request.get(f"/api/v1/days/tv_min/{seeded.yesterday.isoformat()}").ok

    bob = browsing.new_page()
    sign_in_with_exist(bob, "bob")
    expect(bob).to_have_url(f"{site.url}/")
    expect(card(bob, "Toggl Track")).to_contain_text("Not connected")
    expect(bob.get_by_role("main")).not_to_contain_text("Series")

    response = bob.goto(day_path)
    assert response is not None and response.status == 404
    expect(bob.get_by_role("heading", name="Not found")).to_be_visible()
    expect(bob.get_by_role("main")).not_to_contain_text("Series")
    screenshot(bob, "not-found-for-another-person")
    bob.goto("/status")
    expect(bob.get_by_role("main")).to_contain_text("No project is mapped yet")
    expect(bob.locator("#runs")).to_have_count(0)

    api = bob.request
    assert api.get(f"/api/v1/connections/toggl/{alice_connection}").status == 404
    assert api.get(f"/api/v1/days/tv_min/{seeded.yesterday.isoformat()}").status == 404
    assert api.get("/api/v1/connections").json()["toggl"] == []
    assert api.get("/api/v1/mapping").json() == []
    assert api.get("/api/v1/runs").json() == []
    assert api.get("/api/v1/days").json()["attributes"] == []
    # Alice's page is still hers.
    alice.goto(day_path)
    expect(alice.locator("#entries tbody tr")).to_have_count(1)
