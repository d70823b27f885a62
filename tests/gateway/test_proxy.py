"""The proxy, through real HTTP: the gateway served by uvicorn, the Toggl simulator behind it."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.gateway.conftest import World, serve
from timebridge.fakes.faults import Fault
from timebridge.fakes.toggl import SimUser
from timebridge.gateway.keys import CONNECTIONS_READ, PROXY_READ, new_key
from timebridge.store import ConnectionStatus, Store


def bearer(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


@pytest.fixture
def key(world: World, alice: SimUser) -> str:
    account = world.account("alice@example.com")
    world.connection(account, alice)
    return world.key(account)


def error_of(answer: httpx.Response) -> tuple[int, str]:
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["message"]
    return answer.status_code, body["error"]["code"]


# --- passing through ------------------------------------------------------------------------


def test_me_is_toggls_answer_without_the_stored_token(
    world: World, gateway: str, key: str, alice: SimUser
) -> None:
    answer = httpx.get(f"{gateway}/toggl-track/api/v9/me", headers=bearer(key))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    me = answer.json()
    assert me["id"] == alice.id and me["fullname"] == "Alice"
    assert "api_token" not in me
    assert alice.api_token not in answer.text
    assert "x-toggl-quota-remaining" in answer.headers
    # And in /me/workspaces, which echoes it too.
    workspaces = httpx.get(f"{gateway}/toggl-track/api/v9/me/workspaces", headers=bearer(key))
    assert workspaces.status_code == 200 and workspaces.json()
    assert alice.api_token not in workspaces.text
    assert all("api_token" not in w for w in workspaces.json())


def test_credentials_injected_caller_identity_stripped(
    world: World, gateway: str, key: str, alice: SimUser
) -> None:
    headers = bearer(
        key,
        Cookie="tb_session=secret",
        **{
            "X-Forwarded-For": "10.0.0.1",
            "X-Custom": "kept",
            "Maton-Connection": "",
            "Connection": "keep-alive, X-Hop",
            "X-Hop": "dropped",
        },
    )
    since = int(time.time()) - 86400
    answer = httpx.get(
        f"{gateway}/toggl-track/api/v9/me/time_entries?since={since}", headers=headers
    )
    assert answer.status_code == 200, answer.text
    seen = world.upstream.seen[-1]
    assert seen.raw_path == "/api/v9/me/time_entries"
    assert answer.json() == []  # Toggl's answer to the forwarded query
    expected = base64.b64encode(f"{alice.api_token}:api_token".encode()).decode()
    assert seen.headers["authorization"] == f"Basic {expected}"
    assert "cookie" not in seen.headers and "x-forwarded-for" not in seen.headers
    assert "x-hop" not in seen.headers
    assert seen.headers["x-custom"] == "kept"
    assert key not in str(seen.headers)


def test_writes_pass_method_body_and_status(
    world: World, gateway: str, key: str, alice: SimUser
) -> None:
    workspace = alice.default_workspace_id
    base = f"{gateway}/toggl-track/api/v9/workspaces/{workspace}"
    created = httpx.post(f"{base}/projects", headers=bearer(key), json={"name": "Via gateway"})
    assert created.status_code == 200, created.text
    project = created.json()["id"]
    renamed = httpx.put(f"{base}/projects/{project}", headers=bearer(key), json={"name": "Renamed"})
    assert renamed.json()["name"] == "Renamed"
    listed = httpx.get(f"{base}/projects", headers=bearer(key))
    assert [p["name"] for p in listed.json()] == ["Renamed"]
    assert httpx.delete(f"{base}/projects/{project}", headers=bearer(key)).status_code == 200
    missing = httpx.get(f"{base}/projects/{project}", headers=bearer(key))
    assert missing.status_code == 404  # Toggl's own answer, passed through


def test_writes_are_audited_without_bodies(
    world: World, gateway: str, key: str, alice: SimUser
) -> None:
    workspace = alice.default_workspace_id
    url = f"{gateway}/toggl-track/api/v9/workspaces/{workspace}/tags"
    assert httpx.post(url, headers=bearer(key), json={"name": "secret-tag"}).status_code == 200
    httpx.get(url, headers=bearer(key))  # a read: not audited

    async def audit(store: Store) -> list[tuple[str, str, int, str]]:
        account = (await store.accounts.ids())[0]
        return [
            (r.method, r.path, r.status, r.key_prefix) for r in await store.api_keys.audit(account)
        ]

    records = world.run(audit)
    assert records == [("POST", f"api/v9/workspaces/{workspace}/tags", 200, key[:11])]
    assert "secret-tag" not in str(records)


# --- choosing the connection -----------------------------------------------------------------


def test_the_connection_header_chooses_and_another_owners_is_a_404(
    world: World, gateway: str, alice: SimUser, bob: SimUser
) -> None:
    a = world.account("a@example.com")
    b = world.account("b@example.com")
    alice_connection = world.connection(a, alice)
    bob_connection = world.connection(b, bob)
    second = world.connection(a, bob)  # Alice also holds a connection to Bob's Toggl user
    key_a = world.key(a)
    me = f"{gateway}/toggl-track/api/v9/me"
    assert httpx.get(me, headers=bearer(key_a)).json()["id"] == alice.id  # the default
    for header in ("Maton-Connection", "Timebridge-Connection"):
        chosen = httpx.get(me, headers=bearer(key_a, **{header: second}))
        assert chosen.json()["id"] == bob.id
        before = world.upstream_count()
        foreign = httpx.get(me, headers=bearer(key_a, **{header: bob_connection}))
        assert error_of(foreign) == (404, "not_found")
        assert world.upstream_count() == before
    assert alice_connection != bob_connection


def test_no_active_connection_is_a_400(world: World, gateway: str, alice: SimUser) -> None:
    account = world.account("a@example.com")
    key = world.key(account)
    answer = httpx.get(f"{gateway}/toggl-track/api/v9/me", headers=bearer(key))
    assert error_of(answer) == (400, "missing_connection")
    pending = world.connection(account, None)
    named = httpx.get(
        f"{gateway}/toggl-track/api/v9/me", headers=bearer(key, **{"Maton-Connection": pending})
    )
    assert error_of(named) == (400, "connection_not_active")
    assert world.upstream_count() == 0
    # Connected now (through another store, as the pages or the CLI would): used at once.
    world.connection(account, alice)
    answer = httpx.get(f"{gateway}/toggl-track/api/v9/me", headers=bearer(key))
    assert answer.status_code == 200 and answer.json()["id"] == alice.id


def test_a_deleted_connection_is_refused_at_once(world: World, gateway: str, key: str) -> None:
    me = f"{gateway}/toggl-track/api/v9/me"
    with httpx.Client(headers=bearer(key)) as client:
        assert client.get(me).status_code == 200
        (listed,) = client.get(f"{gateway}/connections").json()["connections"]
        assert client.delete(f"{gateway}/connections/{listed['connection_id']}").status_code == 200
        before = world.upstream_count()
        assert error_of(client.get(me)) == (400, "missing_connection")
        named = client.get(me, headers={"Timebridge-Connection": listed["connection_id"]})
        assert error_of(named) == (404, "not_found")
    assert world.upstream_count() == before


# --- keys and scopes -------------------------------------------------------------------------


def test_missing_bad_revoked_and_expired_keys_are_401(
    world: World, gateway: str, alice: SimUser
) -> None:
    account = world.account("a@example.com")
    world.connection(account, alice)
    good = world.key(account)
    expired = world.key(account, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    me = f"{gateway}/toggl-track/api/v9/me"
    unknown = new_key().secret
    typo = good[:-1] + ("A" if good[-1] != "A" else "B")
    for headers in (
        {},
        {"Authorization": good},
        {"Authorization": f"Basic {good}"},
        bearer("tb_short"),
        bearer(typo),
        bearer(unknown),
        bearer(expired),
    ):
        answer = httpx.get(me, headers=headers)
        assert error_of(answer) == (401, "unauthorized"), headers
    assert httpx.get(me, headers=bearer(good)).status_code == 200

    async def revoke(store: Store) -> None:
        (listed,) = [k for k in await store.api_keys.list(account) if k.prefix == good[:11]]
        await store.api_keys.revoke(account, listed.id)

    world.run(revoke)
    assert error_of(httpx.get(me, headers=bearer(good))) == (401, "unauthorized")
    assert world.upstream_count() == 1


def test_a_read_key_cannot_write(world: World, gateway: str, alice: SimUser) -> None:
    account = world.account("a@example.com")
    world.connection(account, alice)
    read = world.key(account, (PROXY_READ,))
    url = f"{gateway}/toggl-track/api/v9/workspaces/{alice.default_workspace_id}/tags"
    assert httpx.get(url, headers=bearer(read)).status_code == 200
    before = world.upstream_count()
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        answer = httpx.request(method, url, headers=bearer(read), json={"name": "x"})
        assert error_of(answer) == (403, "forbidden")
    assert world.upstream_count() == before
    no_proxy = world.key(account, (CONNECTIONS_READ,))
    assert error_of(httpx.get(url, headers=bearer(no_proxy))) == (403, "forbidden")


# --- limits ----------------------------------------------------------------------------------


@pytest.fixture
def slow_gateway(world: World) -> Iterator[str]:
    yield from serve(world.settings, gateway_rate_limit=3)


def test_rate_limit_per_key(world: World, slow_gateway: str, alice: SimUser) -> None:
    account = world.account("a@example.com")
    world.connection(account, alice)
    key, other = world.key(account), world.key(account)
    url = f"{slow_gateway}/toggl-track/api/v9/me"
    with httpx.Client() as client:
        statuses = [client.get(url, headers=bearer(key)) for _ in range(6)]
        assert [a.status_code for a in statuses[:3]] == [200, 200, 200]
        limited = [a for a in statuses if a.status_code == 429]
        assert limited, [a.status_code for a in statuses]
        assert error_of(limited[0]) == (429, "rate_limited")
        assert int(limited[0].headers["Retry-After"]) >= 1
        # Another key has its own budget.
        assert client.get(url, headers=bearer(other)).status_code == 200
        time.sleep(0.7)
        assert client.get(url, headers=bearer(key)).status_code == 200


def test_quota_guard_answers_locally_until_the_reset(
    world: World, gateway: str, key: str, alice: SimUser, toggl_sim: object
) -> None:
    world.sim.faults.add(
        Fault(
            path="/api/v9/me",
            status=402,
            body='"You have hit your hourly limit"',
            headers={"X-Toggl-Quota-Resets-In": "2", "X-Toggl-Quota-Remaining": "0"},
            times=1,
        )
    )
    me = f"{gateway}/toggl-track/api/v9/me"
    spent = httpx.get(me, headers=bearer(key))
    assert spent.status_code == 402
    assert spent.headers["X-Toggl-Quota-Resets-In"] == "2"
    before = world.upstream_count()
    for _ in range(5):  # a client looping on the 402
        guarded = httpx.get(me, headers=bearer(key))
        assert error_of(guarded) == (429, "quota_exhausted")
        assert 1 <= int(guarded.headers["Retry-After"]) <= 2
    # The user's other paths share the scope; a workspace's quota is another one.
    assert httpx.get(f"{me}/time_entries", headers=bearer(key)).status_code == 429
    assert world.upstream_count() == before
    workspace = f"{gateway}/toggl-track/api/v9/workspaces/{alice.default_workspace_id}"
    assert httpx.get(workspace, headers=bearer(key)).status_code == 200
    time.sleep(2.05)
    assert httpx.get(me, headers=bearer(key)).status_code == 200


# --- upstream failures -----------------------------------------------------------------------


def test_gets_are_retried_twice_on_5xx_writes_never(
    world: World, gateway: str, key: str, alice: SimUser
) -> None:
    world.sim.faults.add(Fault(path="/api/v9/me", status=503, times=2))
    before = world.upstream_count()
    answer = httpx.get(f"{gateway}/toggl-track/api/v9/me", headers=bearer(key))
    assert answer.status_code == 200
    assert world.upstream_count() - before == 3

    world.sim.faults.add(Fault(path="/api/v9/me", status=503, times=5))
    before = world.upstream_count()
    failed = httpx.get(f"{gateway}/toggl-track/api/v9/me", headers=bearer(key))
    assert failed.status_code == 503
    assert world.upstream_count() - before == 3
    world.sim.faults.clear()

    tags = f"/api/v9/workspaces/{alice.default_workspace_id}/tags"
    world.sim.faults.add(Fault(path=tags, method="POST", status=502, times=1))
    before = world.upstream_count()
    write = httpx.post(f"{gateway}/toggl-track{tags}", headers=bearer(key), json={"name": "t"})
    assert write.status_code == 502
    assert world.upstream_count() - before == 1


@pytest.fixture
def impatient_gateway(world: World) -> Iterator[str]:
    yield from serve(world.settings, gateway_read_timeout=0.3)


def test_a_slow_toggl_is_a_504(world: World, impatient_gateway: str, key: str) -> None:
    world.sim.faults.add(Fault(path="/api/v9/me", latency=1.0))
    answer = httpx.get(f"{impatient_gateway}/toggl-track/api/v9/me", headers=bearer(key))
    assert error_of(answer) == (504, "upstream_timeout")


def test_an_unreachable_toggl_is_a_502(world: World, gateway: str, alice: SimUser) -> None:
    account = world.account("a@example.com")
    world.connection(account, alice, origin="http://127.0.0.1:9")
    key = world.key(account)
    answer = httpx.get(f"{gateway}/toggl-track/api/v9/me", headers=bearer(key))
    assert error_of(answer) == (502, "upstream_unreachable")


def test_a_refused_token_confirmed_by_me_fails_the_connection(
    world: World, gateway: str, key: str, alice: SimUser
) -> None:
    world.sim.faults.add(Fault(path="/api/v9/me/workspaces", status=403, times=3))
    before = world.upstream_count()
    for _ in range(3):  # a client looping on a 403 of one path
        glitch = httpx.get(f"{gateway}/toggl-track/api/v9/me/workspaces", headers=bearer(key))
        assert glitch.status_code == 403
    seen = [s.raw_path for s in world.upstream.seen[before:]]
    assert seen.count("/api/v9/me") == 1, "the token is checked with /me once, not per 403"

    async def statuses(store: Store) -> list[ConnectionStatus]:
        account = (await store.accounts.ids())[0]
        return [c.status for c in await store.toggl_connections.list(account)]

    assert world.run(statuses) == [ConnectionStatus.ACTIVE]  # /me said the token works
    world.sim.world.revoke_token(alice.id)
    refused = httpx.get(f"{gateway}/toggl-track/api/v9/me", headers=bearer(key))
    assert refused.status_code == 403
    assert world.run(statuses) == [ConnectionStatus.FAILED]
    after = httpx.get(f"{gateway}/toggl-track/api/v9/me", headers=bearer(key))
    assert error_of(after) == (400, "missing_connection")


def test_redirects_are_not_followed(world: World, gateway: str, key: str) -> None:
    world.sim.faults.add(
        Fault(path="/api/v9/me", status=302, headers={"Location": "http://127.0.0.1:9/x"})
    )
    before = world.upstream_count()
    answer = httpx.get(f"{gateway}/toggl-track/api/v9/me", headers=bearer(key))
    assert answer.status_code == 302
    assert world.upstream_count() - before == 1


@pytest.fixture
def small_gateway(world: World) -> Iterator[str]:
    yield from serve(world.settings, gateway_max_response_bytes=1024)


def test_an_oversized_answer_is_a_502(world: World, small_gateway: str, key: str) -> None:
    world.sim.faults.add(Fault(path="/api/v9/me", status=200, body='"' + "x" * 5000 + '"'))
    answer = httpx.get(f"{small_gateway}/toggl-track/api/v9/me", headers=bearer(key))
    assert error_of(answer) == (502, "upstream_too_large")


@pytest.mark.parametrize("encoding", ["br", "gzip"])
def test_an_answer_in_an_encoding_the_gateway_cannot_read_is_a_502(
    world: World, gateway: str, key: str, encoding: str
) -> None:
    # The gateway asks for no compression; an answer it could not redact is never passed on
    # (an unknown encoding, or gzip that does not inflate).
    world.sim.faults.add(
        Fault(path="/api/v9/me", status=200, body="opaque", headers={"Content-Encoding": encoding})
    )
    answer = httpx.get(f"{gateway}/toggl-track/api/v9/me", headers=bearer(key))
    assert error_of(answer) == (502, "upstream_encoding")
    assert "accept-encoding" not in world.upstream.seen[-1].headers


def test_toggls_own_429_and_retry_after_pass_through_unretried(
    world: World, gateway: str, key: str
) -> None:
    world.sim.faults.add(
        Fault(
            path="/api/v9/me", status=429, body='"Too Many Requests"', headers={"Retry-After": "7"}
        )
    )
    before = world.upstream_count()
    answer = httpx.get(f"{gateway}/toggl-track/api/v9/me", headers=bearer(key))
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "7"
    assert answer.json() == "Too Many Requests"  # Toggl's body, not the gateway's
    assert world.upstream_count() - before == 1


def test_a_refused_write_is_audited_too(world: World, gateway: str, alice: SimUser) -> None:
    account = world.account("a@example.com")
    world.connection(account, alice)
    read = world.key(account, (PROXY_READ,))
    url = f"{gateway}/toggl-track/api/v9/workspaces/{alice.default_workspace_id}/tags/1"
    assert httpx.delete(url, headers=bearer(read)).status_code == 403

    async def audit(store: Store) -> list[tuple[str, int, str]]:
        return [(r.method, r.status, r.key_prefix) for r in await store.api_keys.audit(account)]

    assert world.run(audit) == [("DELETE", 403, read[:11])]


def test_the_quota_guard_holds_for_every_connection_to_that_toggl_user(
    world: World, gateway: str, alice: SimUser
) -> None:
    """Toggl counts its quota per Toggl user: another account's connection to the same user is
    spared the 402 too."""
    a, b = world.account("a@example.com"), world.account("b@example.com")
    world.connection(a, alice)
    world.connection(b, alice)
    key_a, key_b = world.key(a), world.key(b)
    world.sim.faults.add(
        Fault(
            path="/api/v9/me",
            status=402,
            body='"quota"',
            headers={"X-Toggl-Quota-Resets-In": "600"},
            times=1,
        )
    )
    me = f"{gateway}/toggl-track/api/v9/me"
    assert httpx.get(me, headers=bearer(key_a)).status_code == 402
    before = world.upstream_count()
    guarded = httpx.get(me, headers=bearer(key_b))
    assert error_of(guarded) == (429, "quota_exhausted")
    assert 599 <= int(guarded.headers["Retry-After"]) <= 600
    assert world.upstream_count() == before


def test_the_webhooks_api_is_reached_too(
    world: World, gateway: str, key: str, alice: SimUser
) -> None:
    base = f"{gateway}/toggl-track/webhooks/api/v1"
    filters = httpx.get(f"{base}/event_filters", headers=bearer(key))
    assert filters.status_code == 200, filters.text
    listed = httpx.get(f"{base}/subscriptions/{alice.default_workspace_id}", headers=bearer(key))
    assert listed.status_code == 200 and listed.json() == []
    assert world.upstream.seen[-1].raw_path == (
        f"/webhooks/api/v1/subscriptions/{alice.default_workspace_id}"
    )


def test_the_stored_token_never_reaches_a_key_holder_in_any_format(
    world: World, gateway: str, key: str, alice: SimUser
) -> None:
    for body, content_type in (
        (f"token {alice.api_token} is fine", "text/plain"),
        (f'{{"data": {{"api_token": "{alice.api_token}", "id": 1}}}}', "text/html"),
        (f'["{alice.api_token}"]', "application/json"),
    ):
        world.sim.faults.clear()
        world.sim.faults.add(
            Fault(path="/api/v9/me", status=200, body=body, headers={"Content-Type": content_type})
        )
        answer = httpx.get(f"{gateway}/toggl-track/api/v9/me", headers=bearer(key))
        assert answer.status_code == 200
        assert alice.api_token not in answer.text, body
    assert answer.json() == ["[redacted]"]
