"""The pages of the gateway: the API keys page (a key shown once, listed by prefix, revoked,
the audit trail) and completing a connection made through `POST /connections` on the connect
page it names."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from tests.web.test_pages import (
    Page,
    client_fixture,
    follow,
    get,
    settings_fixture,
    sign_in,
    submit,
)
from timebridge.fakes.toggl import TogglSimulator
from timebridge.gateway.keys import new_key
from timebridge.origins import toggl_origin
from timebridge.store import ConnectionStatus, Store

_FIXTURES = (client_fixture, settings_fixture)


async def test_keys_page_creates_once_lists_revokes_and_audits(
    client: httpx.AsyncClient, store: Store, toggl_sim: TogglSimulator, toggl_url: str
) -> None:
    alice = toggl_sim.add_user(api_token="tok-alice-pages-0123", fullname="Alice")
    account = (await store.accounts.create("alice@example.com")).id
    await store.toggl_connections.create(
        account, alice.api_token, toggl_user_id=alice.id, origin=toggl_origin(toggl_url)
    )
    await sign_in(client, store, account)
    page = await get(client, "/keys")
    assert page.h1 == "API keys"
    assert "No keys yet." in page.text

    # What a browser sends with the boxes as they come checked (all but connections:write).
    assert 'value="proxy:read" checked' in page.html
    assert 'value="connections:write">' in page.html
    checked = ["proxy:read", "proxy:write", "connections:read"]
    csrf = page.form("/keys").field("csrf_token").value
    created = Page(
        await client.post("/keys", data={"csrf_token": csrf, "name": "My script", "scope": checked})
    )
    assert created.status == 200
    key = created.by_id("created-key")
    assert key.startswith("tb_") and "shown only this once" in created.text

    headers = {"Authorization": f"Bearer {key}"}
    me = await client.get("/toggl-track/api/v9/me", headers=headers)
    assert me.status_code == 200 and me.json()["id"] == alice.id
    tags = f"/toggl-track/api/v9/workspaces/{alice.default_workspace_id}/tags"
    assert (await client.post(tags, headers=headers, json={"name": "t"})).status_code == 200

    listed = await get(client, "/keys")
    assert key not in listed.html, "a key is shown only once"
    (row,) = listed.rows("keys")
    assert row[0] == f"{key[:11]}…" and row[1] == "My script"
    assert "proxy:read" in row[2] and "connections:write" not in row[2]
    (audited,) = listed.rows("audit")
    assert audited[1] == f"{key[:11]}…"
    assert audited[3] == f"POST {tags.removeprefix('/toggl-track/')}" and audited[4] == "200"

    (stored,) = await store.api_keys.list(account)
    revoked = await follow(client, await submit(client, listed, f"/keys/{stored.id}/revoke"))
    assert "revoked" in revoked.by_id("flash")
    assert revoked.rows("keys")[0][-1] == "Revoked"
    assert (await client.get("/toggl-track/api/v9/me", headers=headers)).status_code == 401


async def test_no_scope_is_an_inline_error(client: httpx.AsyncClient, store: Store) -> None:
    account = (await store.accounts.create("a@example.com")).id
    await sign_in(client, store, account)
    page = await get(client, "/keys")
    csrf = page.form("/keys").field("csrf_token").value
    refused = Page(await client.post("/keys", data={"csrf_token": csrf, "name": "x"}))
    assert refused.status == 400 and "at least one" in refused.by_id("keys_error")
    assert await store.api_keys.list(account) == []


async def test_a_pending_connection_is_completed_on_the_page_its_url_names(
    client: httpx.AsyncClient, store: Store, toggl_sim: TogglSimulator
) -> None:
    alice = toggl_sim.add_user(api_token="tok-alice-pending-0123", fullname="Alice")
    account = (await store.accounts.create("alice@example.com")).id
    other = (await store.accounts.create("bob@example.com")).id
    made = new_key()
    await store.api_keys.create(
        account, made.secret, prefix=made.prefix, scopes=["connections:read", "connections:write"]
    )
    headers = {"Authorization": f"Bearer {made.secret}"}
    answer = await client.post("/connections", headers=headers, json={"app": "toggl-track"})
    connection = answer.json()["connection"]
    url = urlsplit(connection["url"])
    assert url.path == "/connect/toggl"

    foreign = await store.toggl_connections.create(other)
    await sign_in(client, store, account)
    assert (await client.get(f"/connect/toggl?connection={foreign.id}")).status_code == 404

    page = await get(client, f"{url.path}?{url.query}")
    assert connection["connection_id"] in page.by_id("pending")
    assert page.form("/connect/toggl").field("connection").value == connection["connection_id"]
    bad = Page(await submit(client, page, "/connect/toggl", api_token="not-the-token"))
    assert bad.status == 400
    assert bad.form("/connect/toggl").field("connection").value == connection["connection_id"]
    done = Page(await submit(client, page, "/connect/toggl", api_token=alice.api_token))
    assert done.status == 200, done.text

    after = await client.get(f"/connections/{connection['connection_id']}", headers=headers)
    assert after.json()["connection"]["status"] == "ACTIVE"
    assert after.json()["connection"]["metadata"]["toggl_user_id"] == alice.id
    (only,) = await store.toggl_connections.list(account)
    assert only.status is ConnectionStatus.ACTIVE and only.is_default
    assert (await store.toggl_connections.get(other, foreign.id)).status is (
        ConnectionStatus.PENDING
    )
