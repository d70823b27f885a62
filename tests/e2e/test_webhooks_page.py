"""Turning Toggl webhooks on from the settings page, by clicking: a change in Toggl then reaches
Exist with no scheduled run, the page shows the workspace working and the change received, and
turning them off removes the subscription at Toggl."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ALICE_TOGGL_TOKEN, Browsing, RunningApp, screenshot
from tests.e2e.test_journey import card, expected, seed_toggl
from timebridge.clock import FakeClock
from timebridge.fakes.exist import ExistSimulator
from timebridge.fakes.toggl import SimUser, TogglSimulator

pytestmark = pytest.mark.e2e


def test_webhooks_from_the_settings_page(
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
    page.goto("/signin")
    page.get_by_label("Toggl Track API token", exact=True).fill(ALICE_TOGGL_TOKEN)
    page.get_by_role("button", name="Sign in with Toggl Track").click()
    card(page, "Exist").get_by_role("link", name="Connect Exist").click()
    page.get_by_role("link", name="Connect with Exist").click()
    page.get_by_label("Signed in as").select_option("alice")
    page.get_by_role("button", name="Allow").click()
    expect(card(page, "Exist")).to_contain_text("Active")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Mapping").click()
    page.get_by_label("Series").select_option(label="Watching TV")
    page.get_by_role("button", name="Save the mapping").click()
    expect(page.locator("#mapped")).to_contain_text("Watching TV from Series")
    page.goto("/")
    page.get_by_role("button", name="Sync now").click()
    expect(page.locator("#flash")).to_be_visible()

    expect(page.locator("#webhooks")).to_contain_text("Off")
    page.locator("#webhooks").get_by_role("link", name="Turn them on").click()
    section = card(page, "Near-real-time updates (Toggl webhooks)")
    expect(section).to_contain_text("Webhooks are off")
    section.get_by_role("button", name="Turn webhooks on").click()
    expect(page.locator("#flash")).to_contain_text("Webhooks are on")
    expect(page.locator("#webhook-workspaces")).to_contain_text("Working")
    expect(section).to_contain_text("none yet")
    [subscription] = toggl_sim.webhooks.subscriptions()
    assert subscription.validated_at is not None and subscription.enabled
    screenshot(page, "settings-webhooks")

    # A 40-minute episode logged in Toggl reaches Exist with no scheduled run and no click.
    toggl_sim.add_time_entry(
        alice_toggl,
        start=clock.now() - timedelta(hours=2),
        duration=40 * 60,
        project_id=seeded.series,
    )
    want = expected(toggl_sim, seeded, clock)
    deadline = time.monotonic() + 15
    while True:
        stored = exist_sim.stored_values("alice", "tv_min")
        if all(
            stored.get(day, 0) == minutes for (a, day), minutes in want.items() if a == "tv_min"
        ):
            break
        assert time.monotonic() < deadline, "the change did not reach Exist"
        time.sleep(0.1)
    page.reload()
    expect(section).not_to_contain_text("none yet")
    page.goto("/")
    expect(page.locator("#webhooks")).to_contain_text("On: a change in Toggl Track reaches Exist")
    page.goto("/settings")

    section.get_by_role("button", name="Turn webhooks off").click()
    expect(page.locator("#flash")).to_contain_text("Webhooks are off")
    expect(section.get_by_role("button", name="Turn webhooks on")).to_be_visible()
    assert toggl_sim.webhooks.subscriptions() == []
