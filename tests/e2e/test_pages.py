"""The pages the journey does not pass through, by clicking: connecting Exist to an account made
with a Toggl token (Exist's sign-in, then a personal token), settings, Repair, Disconnect Exist,
Delete my account; and the home page on a phone's screen."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ALICE_TOGGL_TOKEN, EXIST_CLIENT_ID, Browsing, RunningApp, screenshot
from tests.e2e.test_journey import (
    assert_exist_holds,
    card,
    drill_down_minutes,
    expected,
    seed_toggl,
)
from timebridge.clock import FakeClock
from timebridge.fakes.exist import ExistSimulator
from timebridge.fakes.toggl import SimUser, TogglSimulator

pytestmark = pytest.mark.e2e


def test_settings_repair_disconnect_exist_and_delete_the_account(
    browsing: Browsing,
    site: RunningApp,
    clock: FakeClock,
    toggl_sim: TogglSimulator,
    exist_sim: ExistSimulator,
    alice_toggl: SimUser,
    exist_people: list[str],
) -> None:
    seeded = seed_toggl(toggl_sim, alice_toggl, clock)
    page = browsing.new_page()

    # Signed in with a Toggl token: no Exist yet, and nothing to sync.
    page.goto("/signin")
    page.get_by_label("Toggl Track API token", exact=True).fill(ALICE_TOGGL_TOKEN)
    page.get_by_role("button", name="Sign in with Toggl Track").click()
    expect(card(page, "Toggl Track")).to_contain_text("Active")
    expect(card(page, "Exist")).to_contain_text("Not connected")
    account = page.request.get("/api/v1/me").json()["id"]
    page.get_by_role("button", name="Sync now").click()
    expect(page.locator("#flash")).to_contain_text("connect Exist first")

    # Exist's sign-in joins this account: no second account is made.
    card(page, "Exist").get_by_role("link", name="Connect Exist").click()
    expect(page.get_by_role("heading", name="Connect Exist", level=1)).to_be_visible()
    screenshot(page, "connect-exist")
    page.get_by_role("link", name="Connect with Exist").click()
    page.get_by_label("Signed in as").select_option("alice")
    page.get_by_role("button", name="Allow").click()
    expect(card(page, "Exist")).to_contain_text("Active")
    me = page.request.get("/api/v1/me").json()
    assert (me["id"], me["exist_username"]) == (account, "alice")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Mapping").click()
    page.get_by_label("Series").select_option(label="Watching TV")
    page.get_by_role("button", name="Save the mapping").click()
    expect(page.locator("#mapped")).to_contain_text("Watching TV from Series")

    # Settings: a zone that is none is an inline error; the schedule is shown.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    expect(page.locator("#schedule")).to_contain_text("every hour at :40")
    zone = page.get_by_role("combobox", name="Time zone")
    zone.fill("Mars/Olympus_Mons")
    page.get_by_role("button", name="Save the time zone").click()
    expect(page.locator("#time_zone_error")).to_contain_text("is not a time zone name")
    expect(zone).to_have_attribute("aria-invalid", "true")
    screenshot(page, "settings-bad-zone")
    page.get_by_role("combobox", name="Time zone").fill("Europe/Berlin")
    page.get_by_role("button", name="Save the time zone").click()
    expect(page.locator("#flash")).to_have_text("Your time zone is saved.")
    expect(page.get_by_role("combobox", name="Time zone")).to_have_value("Europe/Berlin")
    screenshot(page, "settings")

    page.goto("/")
    page.get_by_role("button", name="Sync now").click()
    expect(page.locator("#flash")).to_contain_text("Sync finished: Succeeded")
    want = {key: m for key, m in expected(toggl_sim, seeded, clock).items() if key[0] == "tv_min"}
    assert_exist_holds(exist_sim, want)

    # Someone changes a value in Exist by hand; Repair puts it back.
    exist_sim.set_value("alice", "tv_min", seeded.yesterday, 7)
    page.get_by_role("link", name="Repair").click()
    expect(page.get_by_role("heading", name="Repair", level=1)).to_be_visible()
    screenshot(page, "repair")
    page.get_by_role("button", name="Repair now").click()
    expect(page.locator("#flash")).to_contain_text("Repair finished: Succeeded. 1 value written")
    assert_exist_holds(exist_sim, want)
    page.goto(f"/status/tv_min/{seeded.yesterday.isoformat()}")
    assert drill_down_minutes(page) == want[("tv_min", seeded.yesterday)]

    # Disconnect Exist: the attribute is given back, the mapping kept.
    page.goto("/")
    page.get_by_role("link", name="Disconnect Exist").click()
    expect(page.get_by_role("main")).to_contain_text("gives Watching TV back to Exist")
    screenshot(page, "disconnect-exist")
    page.get_by_role("button", name="Disconnect Exist").click()
    expect(page.locator("#flash")).to_contain_text("Exist is disconnected")
    expect(card(page, "Exist")).to_contain_text("Not connected")
    expect(card(page, "Mapping")).to_contain_text("Series → Watching TV")
    assert exist_sim.attribute("alice", "tv_min").service is None

    # A self-hoster's way back: a personal token (a bad one first).
    card(page, "Exist").get_by_role("link", name="Connect Exist").click()
    token = page.get_by_label("Exist personal token")
    token.fill("not-an-exist-token")
    page.get_by_role("button", name="Connect with a token").click()
    expect(page.locator("#access_token_error")).to_contain_text("Exist did not accept this token")
    expect(token).to_have_attribute("aria-invalid", "true")
    personal = exist_sim.issue_personal_token("alice", EXIST_CLIENT_ID)
    page.get_by_label("Exist personal token").fill(personal)
    page.get_by_role("button", name="Connect with a token").click()
    expect(page.get_by_role("heading", name="Exist connected")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("alice")
    screenshot(page, "connect-exist-connected")

    # Delete my account: typed confirmation, then everything is gone.
    page.goto("/settings")
    page.get_by_role("link", name="Delete my account").click()
    page.get_by_label("Type DELETE to confirm").fill("delete")
    page.get_by_role("button", name="Delete my account").click()
    expect(page.locator("#confirm_error")).to_contain_text("Nothing was deleted")
    screenshot(page, "delete-account")
    page.get_by_label("Type DELETE to confirm").fill("DELETE")
    page.get_by_role("button", name="Delete my account").click()
    expect(page).to_have_url(f"{site.url}/signin?deleted=1")
    assert page.request.get("/api/v1/me").status == 401
    page.get_by_label("Toggl Track API token", exact=True).fill(ALICE_TOGGL_TOKEN)
    page.get_by_role("button", name="Sign in with Toggl Track").click()
    # A new account: nothing of the deleted one is left.
    expect(card(page, "Mapping")).to_contain_text("No Toggl Track project is mapped")
    expect(card(page, "Exist")).to_contain_text("Not connected")
    expect(page.locator("#last-run")).to_have_text("None yet.")
    assert page.request.get("/api/v1/runs").json() == []


def test_home_on_a_phone(
    browsing: Browsing, site: RunningApp, alice_toggl: SimUser, exist_people: list[str]
) -> None:
    page = browsing.new_page(viewport=(390, 844))
    page.goto(site.login_link(site.new_account("dana@example.com", "Dana")))
    expect(page.get_by_role("heading", name="Hello, Dana")).to_be_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width} px wide)"
    page.get_by_role("button", name="Sync now").focus()
    expect(page.get_by_role("button", name="Sync now")).to_be_focused()
    screenshot(page, "home-phone")
    page.goto("/mapping")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "mapping-phone")


def test_the_api_docs_are_served_by_the_app(browsing: Browsing, site: RunningApp) -> None:
    """Swagger UI from the app's own files (the off-site guard fails a CDN load) renders."""
    page = browsing.new_page()
    page.goto("/docs")
    title = page.get_by_role("heading", name=re.compile("^Timebridge"))
    expect(title).to_be_visible()  # Swagger UI renders the schema in script: a busy moment
    expect(page.get_by_text("/api/v1/me").first).to_be_visible()
    screenshot(page, "api-docs")
