"""The connections API in the seed gateway's shapes, through real HTTP."""

from __future__ import annotations

import re

import httpx

from tests.gateway.conftest import World
from timebridge.fakes.toggl import SimUser
from timebridge.gateway.keys import CONNECTIONS_READ, PROXY_READ, PROXY_WRITE
from timebridge.store import Store

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
FIELDS = {
    "connection_id",
    "status",
    "creation_time",
    "last_updated_time",
    "url",
    "app",
    "method",
    "metadata",
}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_create_pending_then_direct_list_get_delete(
    world: World, gateway: str, alice: SimUser
) -> None:
    account = world.account("a@example.com")
    key = world.key(account)
    pending = httpx.post(f"{gateway}/connections", headers=bearer(key), json={"app": "toggl-track"})
    assert pending.status_code == 201, pending.text
    connection = pending.json()["connection"]
    assert set(connection) == FIELDS
    assert connection["status"] == "PENDING"
    assert connection["app"] == "toggl-track" and connection["method"] == "BASIC"
    assert ISO.match(connection["creation_time"]) and ISO.match(connection["last_updated_time"])
    assert connection["url"] == (
        f"http://timebridge.test/connect/toggl?connection={connection['connection_id']}"
    )

    direct = httpx.post(
        f"{gateway}/connections",
        headers=bearer(key),
        json={"app": "toggl-track", "api_token": alice.api_token},
    )
    assert direct.status_code == 201, direct.text
    active = direct.json()["connection"]
    assert active["status"] == "ACTIVE"
    assert active["metadata"]["toggl_user_id"] == alice.id
    # The PENDING default gave way to the working one (the bridge syncs the default).
    assert active["metadata"]["default"] is True
    assert alice.api_token not in direct.text

    listed = httpx.get(f"{gateway}/connections", headers=bearer(key)).json()["connections"]
    assert [c["connection_id"] for c in listed] == [
        connection["connection_id"],
        active["connection_id"],
    ]
    only_active = httpx.get(
        f"{gateway}/connections?app=toggl-track&status=ACTIVE", headers=bearer(key)
    ).json()
    assert [c["connection_id"] for c in only_active["connections"]] == [active["connection_id"]]
    other_app = httpx.get(f"{gateway}/connections?app=slack", headers=bearer(key)).json()
    assert other_app == {"connections": []}

    one = httpx.get(f"{gateway}/connections/{active['connection_id']}", headers=bearer(key))
    assert one.json() == {"connection": active}

    # The proxy uses the ACTIVE one (the PENDING default cannot be used).
    me = httpx.get(f"{gateway}/toggl-track/api/v9/me", headers=bearer(key))
    assert me.json()["id"] == alice.id

    gone = httpx.delete(f"{gateway}/connections/{connection['connection_id']}", headers=bearer(key))
    assert gone.status_code == 200 and gone.json()["connection"]["connection_id"]
    again = httpx.get(f"{gateway}/connections/{connection['connection_id']}", headers=bearer(key))
    assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"

    async def audit(store: Store) -> list[tuple[str, str, int]]:
        return [(r.method, r.path, r.status) for r in await store.api_keys.audit(account)]

    assert world.run(audit) == [
        ("DELETE", f"/connections/{connection['connection_id']}", 200),
        ("POST", "/connections", 201),
        ("POST", "/connections", 201),
    ]


def test_a_bad_token_is_refused_and_nothing_stored(world: World, gateway: str) -> None:
    account = world.account("a@example.com")
    key = world.key(account)
    answer = httpx.post(
        f"{gateway}/connections",
        headers=bearer(key),
        json={"app": "toggl-track", "api_token": "not-a-token"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_token"
    assert httpx.get(f"{gateway}/connections", headers=bearer(key)).json() == {"connections": []}


def test_invalid_bodies_are_json_errors(world: World, gateway: str) -> None:
    key = world.key(world.account("a@example.com"))
    bodies: list[object] = [{"app": "slack"}, {}, [], "x"]
    for body in bodies:
        answer = httpx.post(f"{gateway}/connections", headers=bearer(key), json=body)
        assert answer.status_code == 422
        assert set(answer.json()["error"]) == {"code", "message"}
    bad_status = httpx.get(f"{gateway}/connections?status=DELETED", headers=bearer(key))
    assert bad_status.status_code == 422 and "error" in bad_status.json()


def test_another_owners_connection_is_a_404_and_scopes_hold(
    world: World, gateway: str, alice: SimUser, bob: SimUser
) -> None:
    a, b = world.account("a@example.com"), world.account("b@example.com")
    world.connection(a, alice)
    bobs = world.connection(b, bob)
    key_a = world.key(a)
    for method in ("GET", "DELETE"):
        answer = httpx.request(method, f"{gateway}/connections/{bobs}", headers=bearer(key_a))
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
    listed = httpx.get(f"{gateway}/connections", headers=bearer(key_a)).json()["connections"]
    assert bobs not in [c["connection_id"] for c in listed]
    proxy_only = world.key(a, (PROXY_READ, PROXY_WRITE))
    assert httpx.get(f"{gateway}/connections", headers=bearer(proxy_only)).status_code == 403
    read_only = world.key(a, (CONNECTIONS_READ,))
    refused = httpx.post(
        f"{gateway}/connections", headers=bearer(read_only), json={"app": "toggl-track"}
    )
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert httpx.get(f"{gateway}/connections").status_code == 401
    # Bob's connection is still there.
    key_b = world.key(b)
    assert httpx.get(f"{gateway}/connections/{bobs}", headers=bearer(key_b)).status_code == 200
