"""`/api/v1/webhooks` on the served service: on, checked, off — and unavailable without a
public URL, with the reason."""

from __future__ import annotations

import httpx

from tests.webhooks.conftest import Served, World, signed_in

API = "/api/v1"


async def test_webhooks_on_checked_and_off_through_the_api(world: World, served: Served) -> None:
    alice = await world.connect("alice")
    async with httpx.AsyncClient(base_url=served.url) as client:
        csrf = await signed_in(world, served, alice, client)
        before = (await client.get(f"{API}/webhooks")).json()
        assert before["enabled"] is False and before["available"] is True

        on = await client.put(
            f"{API}/webhooks", json={"enabled": True}, headers={"X-CSRF-Token": csrf}
        )
        assert on.status_code == 200, on.text
        body = on.json()
        assert body["enabled"] is True and body["checked_at"] is not None
        [workspace] = body["workspaces"]
        assert workspace["state"] == "active" and workspace["problem"] is None
        assert "secret" not in on.text and "/hooks/toggl/" not in on.text

        [sub] = world.toggl_sim.webhooks.subscriptions()
        sub.enabled = False
        checked = await client.post(f"{API}/webhooks/check", headers={"X-CSRF-Token": csrf})
        assert checked.status_code == 200 and sub.enabled

        off = await client.put(
            f"{API}/webhooks", json={"enabled": False}, headers={"X-CSRF-Token": csrf}
        )
        assert off.status_code == 200 and off.json()["enabled"] is False
        assert world.toggl_sim.webhooks.subscriptions() == []
        again = await client.post(f"{API}/webhooks/check", headers={"X-CSRF-Token": csrf})
        assert again.status_code == 409 and again.json()["error"]["code"] == "webhooks_off"


async def test_without_toggl_webhooks_cannot_be_turned_on(world: World, served: Served) -> None:
    account = (await world.store.accounts.create("nobody@example.com")).id
    async with httpx.AsyncClient(base_url=served.url) as client:
        csrf = await signed_in(world, served, account, client)
        refused = await client.put(
            f"{API}/webhooks", json={"enabled": True}, headers={"X-CSRF-Token": csrf}
        )
    assert refused.status_code == 409
    assert refused.json()["error"] == {
        "code": "webhooks_unavailable",
        "message": "Connect Toggl Track first: webhooks watch its entries.",
    }
