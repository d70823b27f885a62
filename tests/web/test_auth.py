"""Signing in and out: Exist OAuth against the simulator, a Toggl token, one-time links; sessions,
CSRF, and never a second account for one person."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from tests.web.test_app import running
from timebridge.clock import FakeClock
from timebridge.config import Settings
from timebridge.fakes.exist import ExistSimulator
from timebridge.fakes.toggl import SimUser
from timebridge.retry import RetryPolicy
from timebridge.store import Store
from timebridge.web import create_app
from timebridge.web.auth import PRE_SESSION_CSRF_COOKIE, SESSION_COOKIE

PUBLIC_URL = "http://127.0.0.1:8000"  # Exist allows plain http on loopback only
CLIENT_ID, CLIENT_SECRET = "timebridge-web", "timebridge-web-secret"


@pytest.fixture
def settings(tmp_path: Path, toggl_url: str, exist_api_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        toggl_base_url=toggl_url,
        exist_base_url=exist_api_url,
        exist_client_id=CLIENT_ID,
        exist_client_secret=CLIENT_SECRET,
        public_url=PUBLIC_URL,
    )


@pytest.fixture
def app(settings: Settings, store: Store, clock: FakeClock, exist_sim: ExistSimulator) -> FastAPI:
    exist_sim.add_client(
        "Timebridge",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uris=[f"{PUBLIC_URL}/signin/exist/callback"],
    )
    return create_app(
        settings, store=store, run_scheduler=False, clock=clock, retry=RetryPolicy.testing()
    )


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with running(app) as client:
        yield client


def form_token(page: str) -> str:
    marker = 'name="csrf_token" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


async def sign_in_with_toggl(browser: httpx.AsyncClient, token: str) -> httpx.Response:
    page = await browser.get("/signin")
    return await browser.post(
        "/signin/toggl", data={"api_token": token, "csrf_token": form_token(page.text)}
    )


async def exist_approves(
    browser: httpx.AsyncClient, exist_base: str, username: str
) -> httpx.Response:
    """Start "Sign in with Exist", approve on the simulator's page as `username`, come back."""
    start = await browser.get("/signin/exist")
    assert start.status_code == 303
    authorize = urlsplit(start.headers["location"])
    assert f"{authorize.scheme}://{authorize.netloc}" == exist_base
    query = {k: v[0] for k, v in parse_qs(authorize.query).items()}
    async with httpx.AsyncClient() as exist:
        decision = await exist.post(
            f"{exist_base}/oauth2/authorize",
            data={**query, "username": username, "decision": "allow"},
        )
    assert decision.status_code in (302, 303), decision.text
    back = urlsplit(decision.headers["location"])
    return await browser.get(f"{back.path}?{back.query}")


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def test_a_signed_out_browser_is_sent_to_sign_in_and_the_api_says_401(
    browser: httpx.AsyncClient,
) -> None:
    page = await browser.get("/?x=1")
    assert page.status_code == 303
    assert page.headers["location"] == "/signin?next=%2F%3Fx%3D1"
    api = await browser.get("/api/v1/me")
    assert api.status_code == 401
    assert api.json()["error"]["code"] == "unauthorized"


async def test_a_toggl_token_signs_in_and_a_bad_one_is_an_inline_error(
    browser: httpx.AsyncClient, toggl_user: SimUser, store: Store
) -> None:
    bad = await sign_in_with_toggl(browser, "not-a-real-token-123")
    assert bad.status_code == 400
    assert "Toggl Track did not accept this token" in bad.text
    assert SESSION_COOKIE not in browser.cookies
    assert await store.accounts.ids() == []

    good = await sign_in_with_toggl(browser, toggl_user.api_token)
    assert good.status_code == 303
    me = (await browser.get("/api/v1/me")).json()
    [connection] = await store.toggl_connections.list(me["id"])
    assert connection.toggl_user_id == toggl_user.id
    assert toggl_user.api_token not in (await browser.get("/")).text


async def test_the_session_cookie_is_httponly_samesite_and_holds_no_stored_value(
    browser: httpx.AsyncClient, toggl_user: SimUser, store: Store
) -> None:
    response = await sign_in_with_toggl(browser, toggl_user.api_token)
    header = next(
        value
        for name, value in response.headers.multi_items()
        if name == "set-cookie" and value.startswith(f"{SESSION_COOKIE}=")
    )
    assert "HttpOnly" in header
    assert "SameSite=lax" in header or "samesite=lax" in header.lower()
    secret = browser.cookies[SESSION_COOKIE]
    async with store.database.read() as session:
        from sqlalchemy import text

        ids = list(await session.scalars(text("SELECT id FROM web_sessions")))
    assert secret not in ids, "only a digest of the cookie is stored"


async def test_sign_in_with_exist_creates_the_account_with_its_exist_connection(
    browser: httpx.AsyncClient, exist_sim: ExistSimulator, exist_api_url: str, store: Store
) -> None:
    exist_sim.add_user("ada", timezone="Europe/Berlin")

    back = await exist_approves(browser, origin(exist_api_url), "ada")

    assert back.status_code == 303
    me = (await browser.get("/api/v1/me")).json()
    assert me["exist_username"] == "ada"
    connection = await store.exist_connections.get(me["id"])
    assert connection is not None and connection.time_zone == "Europe/Berlin"
    assert connection.has_refresh_token


async def test_connecting_the_other_side_later_never_makes_a_second_account(
    browser: httpx.AsyncClient,
    app: FastAPI,
    exist_sim: ExistSimulator,
    exist_api_url: str,
    toggl_user: SimUser,
    store: Store,
) -> None:
    exist_sim.add_user("ada", timezone="Europe/Berlin")
    await sign_in_with_toggl(browser, toggl_user.api_token)
    await exist_approves(browser, origin(exist_api_url), "ada")  # signed in: Exist joins
    assert len(await store.accounts.ids()) == 1

    # Another browser finds the same account by either identity.
    async with running(app) as other:
        await exist_approves(other, origin(exist_api_url), "ada")
        by_exist = (await other.get("/api/v1/me")).json()["id"]
    async with running(app) as third:
        await sign_in_with_toggl(third, toggl_user.api_token)
        by_toggl = (await third.get("/api/v1/me")).json()["id"]
    assert by_exist == by_toggl == (await store.accounts.ids())[0]


async def test_a_forged_exist_callback_is_refused(
    browser: httpx.AsyncClient, exist_sim: ExistSimulator, store: Store
) -> None:
    page = await browser.get("/signin/exist/callback?code=stolen&state=guessed")
    assert page.status_code == 400
    assert "Try again" in page.text
    assert await store.accounts.ids() == []


async def test_a_login_link_works_once_and_not_after_ten_minutes(
    browser: httpx.AsyncClient, store: Store, clock: FakeClock
) -> None:
    account = await store.accounts.create("owner@example.com")
    secret, _ = await store.login_links.create(account.id)
    used = await browser.get(f"/signin/link/{secret}")
    assert used.status_code == 303
    assert (await browser.get("/api/v1/me")).json()["id"] == account.id
    again = await browser.get(f"/signin/link/{secret}")
    assert again.status_code == 410
    assert "used already or has expired" in again.text

    late, _ = await store.login_links.create(account.id)
    clock.advance(timedelta(minutes=10, seconds=1))
    assert (await browser.get(f"/signin/link/{late}")).status_code == 410


async def test_signing_out_needs_the_csrf_token_and_ends_the_session(
    browser: httpx.AsyncClient, app: FastAPI, store: Store
) -> None:
    account = await store.accounts.create("owner@example.com")
    secret, _ = await store.login_links.create(account.id)
    await browser.get(f"/signin/link/{secret}")
    forged = await browser.post("/signout", data={"csrf_token": "wrong"})
    assert forged.status_code == 403
    assert (await browser.get("/api/v1/me")).status_code == 200

    page = await browser.get("/")
    out = await browser.post("/signout", data={"csrf_token": form_token(page.text)})
    assert out.status_code == 303
    assert (await browser.get("/api/v1/me")).status_code == 401


async def test_sign_out_everywhere_ends_every_session_of_the_account(
    app: FastAPI, store: Store
) -> None:
    account = await store.accounts.create("owner@example.com")
    async with running(app) as laptop, running(app) as phone:
        for browser in (laptop, phone):
            secret, _ = await store.login_links.create(account.id)
            await browser.get(f"/signin/link/{secret}")
        page = await laptop.get("/")
        await laptop.post("/signout/everywhere", data={"csrf_token": form_token(page.text)})
        assert (await phone.get("/api/v1/me")).status_code == 401


async def test_a_session_idle_too_long_is_signed_out(
    browser: httpx.AsyncClient, store: Store, clock: FakeClock
) -> None:
    account = await store.accounts.create("owner@example.com")
    secret, _ = await store.login_links.create(account.id)
    await browser.get(f"/signin/link/{secret}")
    clock.advance(timedelta(days=13))
    assert (await browser.get("/api/v1/me")).status_code == 200
    clock.advance(timedelta(days=15))
    assert (await browser.get("/api/v1/me")).status_code == 401


async def test_the_sign_in_form_needs_its_own_csrf_cookie(
    browser: httpx.AsyncClient, toggl_user: SimUser
) -> None:
    response = await browser.post(
        "/signin/toggl", data={"api_token": toggl_user.api_token, "csrf_token": "x"}
    )
    assert response.status_code == 403
    await browser.get("/signin")
    assert PRE_SESSION_CSRF_COOKIE in browser.cookies


async def test_next_never_leaves_the_site(browser: httpx.AsyncClient, toggl_user: SimUser) -> None:
    page = await browser.get("/signin")
    response = await browser.post(
        "/signin/toggl",
        data={
            "api_token": toggl_user.api_token,
            "csrf_token": form_token(page.text),
            "next": "//evil.example/steal",
        },
    )
    assert response.headers["location"] == "/"


async def test_an_api_error_keeps_its_headers(browser: httpx.AsyncClient) -> None:
    response = await browser.delete("/api/v1/me")  # the route has GET and PATCH only
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["allow"]
