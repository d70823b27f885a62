"""Connecting Toggl Track and Exist from the pages: tokens checked with each service, inline
errors with nothing stored, and what was connected shown."""

from __future__ import annotations

from pathlib import Path

import httpx
from pydantic import SecretStr

from tests.conftest import EXIST_CLIENT_ID, EXIST_CLIENT_SECRET
from tests.web.test_app import running
from tests.web.test_pages import (
    Page,
    client_fixture,
    get,
    settings_fixture,
    sign_in,
    submit,
)
from timebridge.clock import FakeClock
from timebridge.config import Settings
from timebridge.fakes.exist import ExistSimulator, SimClient
from timebridge.fakes.toggl import TogglSimulator
from timebridge.retry import RetryPolicy
from timebridge.store import ConnectionStatus, Store
from timebridge.web import create_app

TOKEN = "tok-alice-connect-0123456789"

#: The pages' fixtures, which tests here ask for by name ("client", "settings").
_FIXTURES = (client_fixture, settings_fixture)


async def test_connect_toggl_refuses_a_bad_token_then_keeps_a_good_one(
    client: httpx.AsyncClient, store: Store, toggl_sim: TogglSimulator
) -> None:
    alice = toggl_sim.add_user(
        api_token=TOKEN, fullname="Alice Liddell", email="alice@example.com",
        workspace_name="Alice's workspace",
    )  # fmt: skip
    toggl_sim.world.add_workspace(owner_id=alice.id, name="Book club")
    account = await store.accounts.create("alice@example.com")
    await sign_in(client, store, account.id)
    page = await get(client, "/connect/toggl")
    assert page.h1 == "Connect Toggl Track"
    assert "Profile settings → API Token" in page.text
    assert page.field_labelled("Toggl Track API token").kind == "password"

    empty = Page(await submit(client, page, "/connect/toggl", api_token="  "))
    assert empty.status == 400
    assert "Paste your Toggl Track API token" in empty.by_id("api_token_error")

    bad = Page(await submit(client, page, "/connect/toggl", api_token="not-a-token-123"))
    assert bad.status == 400
    assert bad.by_id("api_token_error").startswith("Toggl Track did not accept this token.")
    assert 'aria-invalid="true"' in bad.html
    assert "not-a-token-123" not in bad.html, "a pasted token is never echoed"
    assert await store.toggl_connections.list(account.id) == [], "nothing stored"

    good = Page(await submit(client, bad, "/connect/toggl", api_token=TOKEN))
    assert good.status == 200
    assert good.h1 == "Toggl Track connected"
    assert "Connected to Toggl Track as Alice Liddell (alice@example.com)." in good.text
    assert good.by_id("workspaces") == "Alice's workspace Book club", "the default one first"
    assert good.links["Choose which projects to send to Exist"] == "/mapping"
    connection = await store.toggl_connections.default(account.id)
    assert connection is not None
    assert connection.status is ConnectionStatus.ACTIVE
    assert connection.toggl_user_id == alice.id

    home = await get(client, "/")
    assert "Toggl Track Active as Alice Liddell." in home.text
    again = await get(client, "/connect/toggl")
    assert "A new token replaces this one." in again.text
    assert TOKEN not in again.html and TOKEN not in home.html, "a stored token is never shown"


async def test_connect_toggl_when_toggl_is_down_stores_nothing_and_says_so(
    client: httpx.AsyncClient, store: Store, toggl_sim: TogglSimulator
) -> None:
    toggl_sim.add_user(api_token=TOKEN)
    toggl_sim.faults.add(path="*/me", status=503)
    account = await store.accounts.create("alice@example.com")
    await sign_in(client, store, account.id)
    page = await get(client, "/connect/toggl")
    down = Page(await submit(client, page, "/connect/toggl", api_token=TOKEN))
    assert down.status == 502
    assert "Toggl Track could not be asked right now" in down.by_id("api_token_error")
    assert await store.toggl_connections.list(account.id) == []


async def test_connect_exist_with_a_personal_token(
    client: httpx.AsyncClient,
    store: Store,
    exist_sim: ExistSimulator,
    exist_oauth_client: SimClient,
) -> None:
    exist_sim.add_user("alice", timezone="America/New_York")
    token = exist_sim.issue_personal_token("alice", exist_oauth_client.client_id)
    account = await store.accounts.create("alice@example.com")
    await sign_in(client, store, account.id)
    page = await get(client, "/connect/exist")
    assert page.h1 == "Connect Exist"
    assert "Connect with Exist" not in page.links, "no Exist OAuth client is configured"
    assert page.field_labelled("Exist personal token").kind == "password"

    bad = Page(await submit(client, page, "/connect/exist", access_token="nope-nope-nope"))
    assert bad.status == 400
    assert bad.by_id("access_token_error").startswith("Exist did not accept this token.")
    assert await store.exist_connections.get(account.id) is None

    good = Page(await submit(client, page, "/connect/exist", access_token=token))
    assert good.h1 == "Exist connected"
    assert "Connected to Exist as alice. Exist counts your days in America/New_York." in good.text
    connection = await store.exist_connections.get(account.id)
    assert connection is not None
    assert connection.status is ConnectionStatus.ACTIVE
    assert connection.time_zone == "America/New_York"
    home = await get(client, "/")
    assert "Exist Active; Exist counts your days in America/New_York." in home.text
    assert token not in home.html


async def test_connect_exist_offers_exists_own_sign_in_where_configured(
    tmp_path: Path,
    store: Store,
    clock: FakeClock,
    toggl_url: str,
    exist_api_url: str,
    exist_oauth_client: SimClient,
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        toggl_base_url=toggl_url,
        exist_base_url=exist_api_url,
        exist_client_id=EXIST_CLIENT_ID,
        exist_client_secret=SecretStr(EXIST_CLIENT_SECRET),
    )
    app = create_app(
        settings, store=store, run_scheduler=False, clock=clock, retry=RetryPolicy.testing()
    )
    account = await store.accounts.create("alice@example.com")
    async with running(app) as client:
        await sign_in(client, store, account.id)
        page = await get(client, "/connect/exist")
        assert page.links["Connect with Exist"] == "/signin/exist"
        assert page.form("/connect/exist").buttons == ["Connect with a token"]
        home = await get(client, "/")
        assert home.links["Connect Exist"] == "/connect/exist"
