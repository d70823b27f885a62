"""Signing in and out in a real browser: a Toggl token, Exist's OAuth pages, one-time links."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ALICE_TOGGL_TOKEN, Browsing, RunningApp, screenshot
from timebridge.clock import FakeClock
from timebridge.fakes.toggl import SimUser

pytestmark = pytest.mark.e2e


def sign_in_with_exist(page: Page, username: str) -> None:
    """From /signin through the Exist simulator's approval page, as `username`."""
    page.goto("/signin")
    page.get_by_role("link", name="Sign in with Exist").click()
    expect(page.get_by_role("heading", name="Authorise Timebridge")).to_be_visible()
    page.get_by_label("Signed in as").select_option(username)
    page.get_by_role("button", name="Allow").click()


def signed_in_home(page: Page, site: RunningApp) -> None:
    expect(page).to_have_url(f"{site.url}/")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def test_toggl_token_a_bad_one_is_refused_inline_then_a_good_one_signs_in(
    page: Page, site: RunningApp, alice_toggl: SimUser
) -> None:
    page.goto("/signin")
    expect(page.get_by_role("heading", name="Sign in to Timebridge")).to_be_visible()
    screenshot(page, "signin")

    token = page.get_by_label("Toggl Track API token", exact=True)
    token.fill("not-a-real-token-0000")
    page.get_by_role("button", name="Sign in with Toggl Track").click()
    error = page.locator("#api_token_error")
    expect(error).to_have_text(re.compile("Toggl Track did not accept this token"))
    expect(error).to_have_attribute("role", "alert")
    expect(token).to_have_attribute("aria-describedby", re.compile(r"\bapi_token_error\b"))
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    screenshot(page, "signin-bad-toggl-token")

    page.get_by_label("Toggl Track API token", exact=True).fill(ALICE_TOGGL_TOKEN)
    page.get_by_role("button", name="Sign in with Toggl Track").click()
    signed_in_home(page, site)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Alice Liddell")


def test_exist_sign_in_through_the_approval_page_and_a_refusal(
    browsing: Browsing, site: RunningApp, exist_people: list[str]
) -> None:
    page = browsing.new_page()
    page.goto("/signin")
    page.get_by_role("link", name="Sign in with Exist").click()
    expect(page.get_by_role("heading", name="Authorise Timebridge")).to_be_visible()
    screenshot(page, "exist-approval")
    page.get_by_role("button", name="Deny").click()
    expect(page.get_by_role("alert")).to_contain_text("Exist did not sign you in")
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)

    sign_in_with_exist(page, "alice")
    signed_in_home(page, site)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Alice")
    screenshot(page, "home-after-exist-sign-in")

    # Signing in again finds the same account, and another person gets another one.
    again = browsing.new_page()
    sign_in_with_exist(again, "alice")
    signed_in_home(again, site)
    bob = browsing.new_page()
    sign_in_with_exist(bob, "bob")
    signed_in_home(bob, site)
    expect(bob.get_by_role("heading", level=1)).to_contain_text("Bob")
    me = page.request.get("/api/v1/me").json()
    assert again.request.get("/api/v1/me").json()["id"] == me["id"]
    assert me["exist_username"] == "alice"
    assert bob.request.get("/api/v1/me").json()["id"] != me["id"]


def test_a_login_link_works_once_and_expires(
    page: Page, site: RunningApp, clock: FakeClock
) -> None:
    account = site.new_account("carol@example.com", "Carol")
    link = site.login_link(account)
    page.goto(link)
    signed_in_home(page, site)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Carol")

    page.get_by_role("button", name="Sign out").click()
    page.goto(link)
    expect(page.get_by_role("alert")).to_contain_text("used already or has expired")
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    screenshot(page, "signin-link-used")

    late = site.login_link(account)
    clock.advance(timedelta(minutes=11))
    page.goto(late)
    expect(page.get_by_role("alert")).to_contain_text("used already or has expired")
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/signin\?next=%2F$"))


def test_sign_out_ends_the_session_and_pages_ask_to_sign_in_again(
    page: Page, site: RunningApp, alice_toggl: SimUser
) -> None:
    page.goto("/?from=test")
    expect(page).to_have_url(re.compile(r"/signin\?next=%2F%3Ffrom%3Dtest$"))
    page.get_by_label("Toggl Track API token", exact=True).fill(ALICE_TOGGL_TOKEN)
    page.get_by_role("button", name="Sign in with Toggl Track").click()
    expect(page).to_have_url(f"{site.url}/?from=test")
    cookies = {cookie["name"]: cookie for cookie in page.context.cookies()}
    assert cookies["tb_session"]["httpOnly"] is True
    assert cookies["tb_session"]["sameSite"] == "Lax"

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{site.url}/signin")
    assert "tb_session" not in {cookie["name"] for cookie in page.context.cookies()}
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/signin\?next=%2F$"))
    assert page.request.get("/api/v1/me").status == 401


def test_a_second_person_sees_only_their_own_account(
    browsing: Browsing, site: RunningApp, alice_toggl: SimUser, exist_people: list[str]
) -> None:
    alice = browsing.new_page()
    alice.goto("/signin")
    alice.get_by_label("Toggl Track API token", exact=True).fill(ALICE_TOGGL_TOKEN)
    alice.get_by_role("button", name="Sign in with Toggl Track").click()
    signed_in_home(alice, site)

    bob = browsing.new_page()
    sign_in_with_exist(bob, "bob")
    signed_in_home(bob, site)
    expect(bob.get_by_role("heading", level=1)).not_to_contain_text("Alice")
    alice_me = alice.request.get("/api/v1/me").json()
    bob_me = bob.request.get("/api/v1/me").json()
    assert alice_me["id"] != bob_me["id"]
    assert bob_me["exist_username"] == "bob"
    assert alice_me["exist_username"] is None

    # A state-changing form without the session's CSRF token (as another site would post it)
    # is refused, and Bob stays signed in.
    refused = bob.request.post("/signout", form={"csrf_token": "not-his"})
    assert refused.status == 403
    expect(bob.get_by_role("button", name="Sign out")).to_be_visible()
