"""Toggl's Webhooks API v1 in the simulator, against a real HTTP receiver on loopback.

Sources: reference/toggl.md §5 "Webhooks" and the Toggl pages it cites (see
`timebridge.fakes.toggl.webhooks` for what is [docs] and what is [guess]).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from timebridge.clock import FakeClock
from timebridge.fakes import RunningServer, serve_in_thread
from timebridge.fakes.toggl import SimUser, TogglSimulator, WebhookSettings
from timebridge.fakes.toggl import webhooks as hooks

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
TE_ALL = [{"entity": "time_entry", "action": "*"}]
TE_THREE = [{"entity": "time_entry", "action": a} for a in ("created", "updated", "deleted")]


# --- a tiny receiving endpoint ------------------------------------------------------------------


@dataclass
class Call:
    body: bytes
    headers: dict[str, str]
    at: float

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """An ASGI app recording every POST; answers `status` (or the next of `script`), echoes the
    validation code when `echo` is set, and waits `sleep` seconds before answering."""

    status: int = 200
    script: list[int] = field(default_factory=list)
    echo: bool = False
    #: GET the PING's `validation_code_url` before answering it (asynchronous validation).
    visit: bool = False
    sleep: float = 0.0
    calls: list[Call] = field(default_factory=list)
    visited: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        with self.lock:
            self.calls.append(Call(body, headers, time.monotonic()))
            status = self.script.pop(0) if self.script else self.status
        if self.sleep:
            await asyncio.sleep(self.sleep)
        url = json.loads(body).get("validation_code_url")
        if self.visit and url:
            async with httpx.AsyncClient() as client:
                self.visited.append((await client.get(url)).status_code)
        answer = b""
        if self.echo and status == 200:
            code = json.loads(body).get("validation_code")
            if code:
                answer = json.dumps({"validation_code": code}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [call.event for call in self.calls]

    def entry_events(self) -> list[dict[str, Any]]:
        return [e for e in self.events() if e["payload"] != "ping"]


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def sim() -> Iterator[TogglSimulator]:
    simulator = TogglSimulator(
        FakeClock(NOW), enforce_quotas=False, webhook_settings=WebhookSettings.fast()
    )
    yield simulator
    simulator.webhooks.close()


@pytest.fixture
def server(sim: TogglSimulator) -> Iterator[RunningServer]:
    with serve_in_thread(sim.asgi_app) as running:
        yield running


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def callback(receiver: Receiver) -> Iterator[str]:
    with serve_in_thread(receiver) as running:
        yield f"{running.url}/hooks/toggl/abc"


@pytest.fixture
def owner(sim: TogglSimulator) -> SimUser:
    return sim.add_user(api_token="tok-owner", plan="premium", timezone="UTC")


def api(server: RunningServer, user: SimUser) -> httpx.Client:
    return httpx.Client(
        base_url=f"{server.url}{hooks.BASE}/", auth=(user.api_token, "api_token"), timeout=10
    )


def v9(server: RunningServer, user: SimUser) -> httpx.Client:
    return httpx.Client(
        base_url=f"{server.url}/api/v9/", auth=(user.api_token, "api_token"), timeout=10
    )


def subscribe(
    client: httpx.Client,
    wid: int,
    url: str,
    *,
    description: str = "timebridge",
    filters: list[dict[str, str]] | None = None,
    enabled: bool = True,
    secret: str | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {
        "url_callback": url,
        "event_filters": filters or TE_THREE,
        "enabled": enabled,
        "description": description,
    }
    if secret is not None:
        body["secret"] = secret
    return client.post(f"subscriptions/{wid}", json=body)


def verify(call: Call, secret: str) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), call.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(call.headers["x-webhook-signature-256"], expected)


def validated_subscription(
    server: RunningServer, owner: SimUser, callback: str, receiver: Receiver, **kw: Any
) -> dict[str, Any]:
    receiver.echo = True
    with api(server, owner) as client:
        created = subscribe(client, owner.default_workspace_id, callback, **kw)
    assert created.status_code == 200, created.text
    receiver.echo = False
    sub: dict[str, Any] = created.json()
    assert sub["validated_at"] is not None
    return sub


# --- the signature ------------------------------------------------------------------------------


def test_toggls_documented_signature_vector() -> None:
    # The PING event on Toggl's "validating received events" page, in its raw (compact) form.
    event = {
        "event_id": 0,
        "created_at": "2022-06-25T03:58:10.207820267Z",
        "creator_id": 6,
        "metadata": {"request_type": "POST", "event_user_id": 6},
        "payload": "ping",
        "subscription_id": 6,
        "timestamp": "2022-06-25T03:58:10.207820267Z",
        "url_callback": "https://callback-url.com",
    }
    body = hooks.encode(event)
    assert body.startswith(b'{"event_id":0,"created_at":"2022-06-25T03:58:10.207820267Z"')
    assert hooks.sign("PGuRrhCFajIyEvFlreKL", body) == (
        "sha256=bf829606cda0ca6923defb5ca70a43135adc7e8887486a201a19cb50ca6006b1"
    )


def test_a_ping_is_laid_out_as_toggls_documented_one(
    sim: TogglSimulator, server: RunningServer, owner: SimUser, callback: str, receiver: Receiver
) -> None:
    with api(server, owner) as client:
        created = subscribe(client, owner.default_workspace_id, callback, secret="s3cret")
    assert created.status_code == 200
    probe = receiver.calls[0]
    keys = list(probe.event)
    assert keys[:8] == [
        "event_id",
        "created_at",
        "creator_id",
        "metadata",
        "payload",
        "subscription_id",
        "timestamp",
        "url_callback",
    ]
    assert b": " not in probe.body and b", " not in probe.body, "compact JSON"
    assert probe.headers["content-type"] == "application/json"
    assert verify(probe, "s3cret")
    assert not verify(probe, "other")


# --- create and the synchronous probe -----------------------------------------------------------


def test_create_probes_the_callback_before_answering(
    sim: TogglSimulator, server: RunningServer, owner: SimUser, callback: str, receiver: Receiver
) -> None:
    wid = owner.default_workspace_id
    with api(server, owner) as client:
        created = subscribe(client, wid, callback)
    assert created.status_code == 200
    assert created.headers["content-type"] == "application/json; charset=utf-8"
    sub = created.json()
    assert sub["subscription_id"] > 0
    assert sub["workspace_id"] == wid and sub["user_id"] == owner.id
    assert sub["validated_at"] is None
    assert sub["has_pending_events"] is False
    assert sub["enabled"] is True and sub["event_filters"] == TE_THREE
    assert len(sub["secret"]) >= 16, "a secret is generated when none is given"
    # The PING had already reached the callback when the create answered.
    assert len(receiver.calls) == 1
    ping = receiver.calls[0].event
    assert ping["payload"] == "ping"
    assert ping["subscription_id"] == sub["subscription_id"]
    assert ping["validation_code"]
    assert ping["validation_code_url"].startswith(f"{server.url}{hooks.BASE}/validate/{wid}/")
    assert verify(receiver.calls[0], sub["secret"])


@pytest.mark.parametrize("status", [500, 404, 204, 301])
def test_create_fails_unless_the_callback_answers_200(
    sim: TogglSimulator,
    server: RunningServer,
    owner: SimUser,
    callback: str,
    receiver: Receiver,
    status: int,
) -> None:
    receiver.status = status
    with api(server, owner) as client:
        refused = subscribe(client, owner.default_workspace_id, callback)
        assert refused.status_code == 400
        assert refused.json() == (
            f"URL endpoint {callback} responded with status {status} instead of 200"
        )
        assert client.get(f"subscriptions/{owner.default_workspace_id}").json() == []


def test_create_fails_when_the_callback_cannot_be_reached(
    sim: TogglSimulator, server: RunningServer, owner: SimUser
) -> None:
    with api(server, owner) as client:
        refused = subscribe(client, owner.default_workspace_id, "http://127.0.0.1:9/nothing")
    assert refused.status_code == 400
    assert refused.json().startswith("URL endpoint http://127.0.0.1:9/nothing request failed")


def test_a_disabled_subscription_is_created_without_a_probe(
    sim: TogglSimulator, server: RunningServer, owner: SimUser, callback: str, receiver: Receiver
) -> None:
    receiver.status = 500
    with api(server, owner) as client:
        created = subscribe(client, owner.default_workspace_id, callback, enabled=False)
    assert created.status_code == 200
    assert receiver.calls == []


def test_bad_bodies_and_duplicate_descriptions_are_refused(
    sim: TogglSimulator, server: RunningServer, owner: SimUser, callback: str
) -> None:
    wid = owner.default_workspace_id
    with api(server, owner) as client:
        assert subscribe(client, wid, callback, description="one").status_code == 200
        duplicate = subscribe(client, wid, callback, description="one", enabled=False)
        assert duplicate.status_code == 400
        assert "description" in duplicate.json()
        no_filters = client.post(
            f"subscriptions/{wid}",
            json={"url_callback": callback, "event_filters": [], "description": "x"},
        )
        assert no_filters.status_code == 400
        bad_action = subscribe(
            client,
            wid,
            callback,
            description="y",
            filters=[{"entity": "time_entry", "action": "x"}],
        )
        assert bad_action.status_code == 400


# --- validation ---------------------------------------------------------------------------------


def test_answering_the_probe_with_the_code_validates_at_once(
    sim: TogglSimulator, server: RunningServer, owner: SimUser, callback: str, receiver: Receiver
) -> None:
    sub = validated_subscription(server, owner, callback, receiver)
    assert sub["validated_at"] == "2026-03-10T12:00:00Z"


def test_a_later_ping_answered_with_the_code_validates(
    sim: TogglSimulator, server: RunningServer, owner: SimUser, callback: str, receiver: Receiver
) -> None:
    wid = owner.default_workspace_id
    with api(server, owner) as client:
        sid = subscribe(client, wid, callback).json()["subscription_id"]
        receiver.echo = True
        ping = client.post(f"ping/{wid}/{sid}")
        assert ping.status_code == 200
        sim.webhooks.drain()
        [sub] = client.get(f"subscriptions/{wid}").json()
    assert sub["validated_at"] is not None
    assert receiver.calls[1].event["payload"] == "ping"
    # Validated: later PINGs carry no code.
    with api(server, owner) as client:
        client.post(f"ping/{wid}/{sid}")
    sim.webhooks.drain()
    assert "validation_code" not in receiver.calls[2].event


def test_the_validation_url_validates_once(
    sim: TogglSimulator, server: RunningServer, owner: SimUser, callback: str, receiver: Receiver
) -> None:
    wid = owner.default_workspace_id
    with api(server, owner) as client:
        sid = subscribe(client, wid, callback).json()["subscription_id"]
    url = receiver.calls[0].event["validation_code_url"]
    wrong = httpx.get(f"{server.url}{hooks.BASE}/validate/{wid}/{sid}/nope")
    assert wrong.status_code == 400 and wrong.json() == "not found"
    ok = httpx.get(url)
    assert ok.status_code == 200 and ok.json() == "OK"
    again = httpx.get(url)
    assert again.status_code == 400 and again.json() == "already validated"
    assert sim.webhooks.subscription(sid).validated_at is not None


def test_the_validation_url_works_while_the_create_waits_for_the_probe(
    sim: TogglSimulator, server: RunningServer, owner: SimUser, callback: str, receiver: Receiver
) -> None:
    receiver.visit = True
    with api(server, owner) as client:
        created = subscribe(client, owner.default_workspace_id, callback)
    assert receiver.visited == [200]
    assert created.status_code == 200
    assert created.json()["validated_at"] is not None


# --- events -------------------------------------------------------------------------------------


def test_no_events_flow_before_validation(
    sim: TogglSimulator, server: RunningServer, owner: SimUser, callback: str, receiver: Receiver
) -> None:
    with api(server, owner) as client:
        sid = subscribe(client, owner.default_workspace_id, callback).json()["subscription_id"]
    sim.add_time_entry(owner, start=NOW - timedelta(hours=1), duration=600)
    sim.webhooks.drain()
    assert receiver.entry_events() == []
    httpx.get(receiver.calls[0].event["validation_code_url"])
    sim.add_time_entry(owner, start=NOW - timedelta(hours=2), duration=600)
    sim.webhooks.drain()
    [event] = receiver.entry_events()
    assert event["subscription_id"] == sid


def test_entry_changes_over_the_api_arrive_signed_and_shaped_as_toggls(
    sim: TogglSimulator, server: RunningServer, owner: SimUser, callback: str, receiver: Receiver
) -> None:
    sub = validated_subscription(server, owner, callback, receiver, secret="k3y")
    wid = owner.default_workspace_id
    with v9(server, owner) as client:
        started = client.post(
            f"workspaces/{wid}/time_entries",
            json={
                "created_with": "test",
                "workspace_id": wid,
                "start": "2026-03-10T11:00:00Z",
                "duration": -1,
                "description": "deep work",
            },
        ).json()
        entry_id = started["id"]
        client.patch(f"workspaces/{wid}/time_entries/{entry_id}/stop")
        client.put(f"workspaces/{wid}/time_entries/{entry_id}", json={"description": "x"})
        client.delete(f"workspaces/{wid}/time_entries/{entry_id}")
    sim.webhooks.drain()
    calls = [c for c in receiver.calls if c.event["payload"] != "ping"]
    assert all(verify(c, "k3y") for c in calls)
    events = sorted((c.event for c in calls), key=lambda e: e["event_id"])
    assert [e["metadata"]["action"] for e in events] == ["created", "updated", "updated", "deleted"]
    created = events[0]
    assert created["event_id"] > 10**15
    assert created["creator_id"] == owner.id
    assert created["subscription_id"] == sub["subscription_id"]
    assert created["url_callback"] == callback
    assert {"created_at", "timestamp"} <= set(created)
    meta = created["metadata"]
    assert meta["model"] == "time_entry"
    assert meta["request_type"] == "POST"
    assert meta["path"] == f"/api/v9/workspaces/{wid}/time_entries"
    assert meta["time_entry_id"] == str(entry_id)
    assert meta["workspace_id"] == str(wid)
    assert meta["event_user_id"] == str(owner.id)
    assert json.loads(meta["request_body"])["description"] == "deep work"
    payload = created["payload"]
    assert payload["id"] == entry_id and payload["workspace_id"] == wid
    assert payload["user_id"] == owner.id
    assert payload["stop"] is None and payload["duration"] < 0, "a started timer"
    stopped = events[1]
    assert stopped["metadata"]["request_type"] == "PATCH"
    assert stopped["payload"]["stop"] is not None and stopped["payload"]["duration"] >= 0
    assert events[2]["metadata"]["request_type"] == "PUT"
    deleted = events[3]
    assert deleted["metadata"]["request_type"] == "DELETE"
    assert deleted["payload"]["server_deleted_at"] is not None
    assert len({e["event_id"] for e in events}) == 4


def test_python_seeding_also_fires_events(
    sim: TogglSimulator, server: RunningServer, owner: SimUser, callback: str, receiver: Receiver
) -> None:
    validated_subscription(server, owner, callback, receiver)
    first = sim.add_time_entry(owner, start=NOW - timedelta(hours=1), duration=-1)
    # Starting a second timer stops the first: an update for it, a create for the new one.
    sim.add_time_entry(owner, start=NOW - timedelta(minutes=5), duration=-1)
    sim.webhooks.drain()
    seen = sorted(
        (e["event_id"], e["metadata"]["action"], e["payload"]["id"])
        for e in receiver.entry_events()
    )
    actions = [(action, entry_id == first.id) for _, action, entry_id in seen]
    assert actions == [("created", True), ("updated", True), ("created", False)]


def test_filters_choose_the_actions(
    sim: TogglSimulator, server: RunningServer, owner: SimUser, callback: str, receiver: Receiver
) -> None:
    validated_subscription(
        server, owner, callback, receiver, filters=[{"entity": "time_entry", "action": "deleted"}]
    )
    entry = sim.add_time_entry(owner, start=NOW - timedelta(hours=1), duration=60)
    sim.world.delete_time_entry(owner.id, None, entry.id)
    sim.webhooks.drain()
    assert [e["metadata"]["action"] for e in receiver.entry_events()] == ["deleted"]


def test_a_subscription_sees_only_what_its_creator_may_see(
    sim: TogglSimulator, server: RunningServer, owner: SimUser, callback: str, receiver: Receiver
) -> None:
    member = sim.add_user(api_token="tok-member", timezone="UTC")
    wid = owner.default_workspace_id
    sim.world.add_member(wid, member.id)
    validated_subscription(server, owner, callback, receiver)  # the admin's
    other = Receiver(echo=True)
    with serve_in_thread(other) as running, api(server, member) as client:
        created = subscribe(client, wid, f"{running.url}/m", description="member's")
        assert created.status_code == 200
        sim.add_time_entry(owner, workspace_id=wid, start=NOW - timedelta(hours=1), duration=60)
        sim.add_time_entry(member, workspace_id=wid, start=NOW - timedelta(hours=2), duration=60)
        sim.webhooks.drain()
        member_sees = {e["payload"]["user_id"] for e in other.entry_events()}
    assert member_sees == {member.id}
    assert {e["payload"]["user_id"] for e in receiver.entry_events()} == {owner.id, member.id}


def test_deliveries_do_not_hold_up_the_api(
    sim: TogglSimulator, server: RunningServer, owner: SimUser, callback: str, receiver: Receiver
) -> None:
    validated_subscription(server, owner, callback, receiver)
    receiver.sleep = 0.6
    wid = owner.default_workspace_id
    with v9(server, owner) as client:
        began = time.monotonic()
        answer = client.post(
            f"workspaces/{wid}/time_entries",
            json={"created_with": "t", "workspace_id": wid, "start": "2026-03-10T10:00:00Z"},
        )
        took = time.monotonic() - began
    assert answer.status_code == 200
    assert took < 0.4
    assert sim.webhooks.pending() == 1
    sim.webhooks.drain(timeout=5)
    assert len(receiver.entry_events()) == 1


# --- enable, disable, update, delete ------------------------------------------------------------


def test_patch_disables_and_enabling_probes_again(
    sim: TogglSimulator, server: RunningServer, owner: SimUser, callback: str, receiver: Receiver
) -> None:
    sub = validated_subscription(server, owner, callback, receiver)
    wid, sid = owner.default_workspace_id, sub["subscription_id"]
    with api(server, owner) as client:
        off = client.patch(f"subscriptions/{wid}/{sid}", json={"enabled": False})
        assert off.status_code == 200 and off.json()["enabled"] is False
        sim.add_time_entry(owner, start=NOW - timedelta(hours=1), duration=60)
        sim.webhooks.drain()
        assert receiver.entry_events() == []
        assert client.patch(f"subscriptions/{wid}/{sid}", json={"x": 1}).status_code == 400
        receiver.status = 503
        refused = client.patch(f"subscriptions/{wid}/{sid}", json={"enabled": True})
        assert refused.status_code == 400
        assert "responded with status 503 instead of 200" in refused.json()
        assert sim.webhooks.subscription(sid).enabled is False
        receiver.status = 200
        on = client.patch(f"subscriptions/{wid}/{sid}", json={"enabled": True})
        assert on.status_code == 200 and on.json()["enabled"] is True
    sim.add_time_entry(owner, start=NOW - timedelta(hours=2), duration=60)
    sim.webhooks.drain()
    assert len(receiver.entry_events()) == 1


def test_put_replaces_and_a_new_url_needs_validating_again(
    sim: TogglSimulator, server: RunningServer, owner: SimUser, callback: str, receiver: Receiver
) -> None:
    sub = validated_subscription(server, owner, callback, receiver)
    wid, sid = owner.default_workspace_id, sub["subscription_id"]
    with api(server, owner) as client:
        same_url = client.put(
            f"subscriptions/{wid}/{sid}",
            json={**sub, "description": "renamed", "event_filters": TE_ALL},
        )
        assert same_url.status_code == 200
        assert same_url.json()["description"] == "renamed"
        assert same_url.json()["validated_at"] is not None
        moved = client.put(f"subscriptions/{wid}/{sid}", json={"url_callback": callback + "/2"})
        assert moved.status_code == 200
        assert moved.json()["validated_at"] is None
        assert receiver.calls[-1].event["url_callback"] == callback + "/2"


def test_delete_stops_deliveries_and_unknown_ids_are_404(
    sim: TogglSimulator, server: RunningServer, owner: SimUser, callback: str, receiver: Receiver
) -> None:
    sub = validated_subscription(server, owner, callback, receiver)
    wid, sid = owner.default_workspace_id, sub["subscription_id"]
    with api(server, owner) as client:
        gone = client.delete(f"subscriptions/{wid}/{sid}")
        assert gone.status_code == 200 and gone.json()["deleted_at"] is not None
        assert client.get(f"subscriptions/{wid}").json() == []
        missing = client.delete(f"subscriptions/{wid}/{sid}")
        assert missing.status_code == 404
        assert missing.json() == f"subscription {sid} for workspace {wid} was not found"
    sim.add_time_entry(owner, start=NOW - timedelta(hours=1), duration=60)
    sim.webhooks.drain()
    assert receiver.entry_events() == []


def test_auth_and_workspace_access(
    sim: TogglSimulator, server: RunningServer, owner: SimUser, callback: str
) -> None:
    base = f"{server.url}{hooks.BASE}"
    missing = httpx.get(f"{base}/event_filters")
    assert missing.status_code == 401
    wrong = httpx.get(f"{base}/event_filters", auth=("nope", "api_token"))
    assert wrong.status_code == 403
    stranger = sim.add_user(api_token="tok-stranger")
    with api(server, stranger) as client:
        assert client.get(f"subscriptions/{owner.default_workspace_id}").status_code == 403
    with api(server, owner) as client:
        filters = client.get("event_filters").json()
    assert filters["time_entry"] == ["created", "updated", "deleted"]


# --- plan limits --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "subs", "events"), [("free", 1, 3), ("starter", 2, 6), ("premium", 3, 12)]
)
def test_plan_limits_per_workspace(
    sim: TogglSimulator,
    server: RunningServer,
    callback: str,
    plan: str,
    subs: int,
    events: int,
) -> None:
    user = sim.add_user(api_token=f"tok-{plan}", plan=plan)
    wid = user.default_workspace_id
    # Every `*` counts as the entity's three actions: one filter more than the plan allows.
    too_many = [{"entity": entity, "action": "*"} for entity in hooks.ENTITIES][: events // 3 + 1]
    with api(server, user) as client:
        refused = subscribe(client, wid, callback, description="big", filters=too_many)
        assert refused.status_code == 400
        assert f"up to {events} events" in refused.json()
        for n in range(subs):
            assert subscribe(client, wid, callback, description=f"s{n}").status_code == 200
        over = subscribe(client, wid, callback, description="one more")
        assert over.status_code == 400
        assert over.json() == (
            f"User {user.id} already reached the limit of {subs} enabled subscriptions "
            f"for workspace {wid}"
        )
        # A disabled one may be kept, but not enabled while the others are.
        kept = subscribe(client, wid, callback, description="spare", enabled=False)
        assert kept.status_code == 200
        sid = kept.json()["subscription_id"]
        assert client.patch(f"subscriptions/{wid}/{sid}", json={"enabled": True}).status_code == 400


# --- retries, the events log and faults ---------------------------------------------------------


def events_log(server: RunningServer, owner: SimUser, sid: int) -> list[dict[str, Any]]:
    with api(server, owner) as client:
        answer = client.get(f"subscriptions/{owner.default_workspace_id}/{sid}/events")
    assert answer.status_code == 200
    log: list[dict[str, Any]] = answer.json()
    return log


def test_failed_deliveries_are_retried_and_logged(
    sim: TogglSimulator, server: RunningServer, owner: SimUser, callback: str, receiver: Receiver
) -> None:
    sid = validated_subscription(server, owner, callback, receiver)["subscription_id"]
    receiver.script = [500, 502]
    entry = sim.add_time_entry(owner, start=NOW - timedelta(hours=1), duration=60)
    sim.webhooks.drain()
    attempts = [e for e in receiver.entry_events() if e["payload"]["id"] == entry.id]
    assert len(attempts) == 3
    assert len({e["event_id"] for e in attempts}) == 1, "a retry is the same event"
    [record] = [r for r in events_log(server, owner, sid) if r["action"] == "created"]
    assert record["status"] == "delivered"
    assert record["failed_delivery_attempts"] == 2
    assert "502" in record["last_delivery_error"]
    assert record["delivered_at"] is not None


def test_a_callback_that_keeps_failing_is_given_up_after_the_retries(
    sim: TogglSimulator, server: RunningServer, owner: SimUser, callback: str, receiver: Receiver
) -> None:
    sid = validated_subscription(server, owner, callback, receiver)["subscription_id"]
    receiver.status = 500
    sim.add_time_entry(owner, start=NOW - timedelta(hours=1), duration=60)
    sim.webhooks.drain()
    assert len(receiver.entry_events()) == 1 + len(sim.webhooks.settings.retry_delays)
    [record] = events_log(server, owner, sid)
    assert record["status"] == "failed"
    assert record["failed_delivery_attempts"] == 4
    assert record["last_delivery_error"] == "URL endpoint responded with status 500"


def test_a_slow_callback_times_out_and_is_retried(
    sim: TogglSimulator, server: RunningServer, owner: SimUser, callback: str, receiver: Receiver
) -> None:
    sid = validated_subscription(server, owner, callback, receiver)["subscription_id"]
    sim.webhooks.settings.timeout = 0.2
    sim.webhooks.settings.retry_delays = (0.05,)
    receiver.sleep = 0.5
    sim.add_time_entry(owner, start=NOW - timedelta(hours=1), duration=60)
    sim.webhooks.drain(timeout=5)
    [record] = events_log(server, owner, sid)
    assert record["status"] == "failed"
    assert record["failed_delivery_attempts"] == 2
    assert "Timeout" in record["last_delivery_error"]


def test_the_log_keeps_a_week(
    sim: TogglSimulator, server: RunningServer, owner: SimUser, callback: str, receiver: Receiver
) -> None:
    sid = validated_subscription(server, owner, callback, receiver)["subscription_id"]
    sim.add_time_entry(owner, start=NOW - timedelta(hours=1), duration=60)
    sim.webhooks.drain()
    assert len(events_log(server, owner, sid)) == 1
    clock = sim.clock
    assert isinstance(clock, FakeClock)
    clock.advance(timedelta(days=7, seconds=1))
    assert events_log(server, owner, sid) == []


def test_a_dropped_delivery_is_lost_silently(
    sim: TogglSimulator, server: RunningServer, owner: SimUser, callback: str, receiver: Receiver
) -> None:
    sid = validated_subscription(server, owner, callback, receiver)["subscription_id"]
    sim.webhooks.faults.add(drop=True, times=1, action="created")
    lost = sim.add_time_entry(owner, start=NOW - timedelta(hours=1), duration=60)
    kept = sim.add_time_entry(owner, start=NOW - timedelta(hours=2), duration=60)
    sim.webhooks.drain()
    assert [e["payload"]["id"] for e in receiver.entry_events()] == [kept.id]
    assert [e["payload"]["id"] for e in sim.webhooks.dropped] == [lost.id]
    assert len(events_log(server, owner, sid)) == 1


def test_a_delayed_delivery_arrives_late(
    sim: TogglSimulator, server: RunningServer, owner: SimUser, callback: str, receiver: Receiver
) -> None:
    validated_subscription(server, owner, callback, receiver)
    sim.webhooks.faults.add(delay=0.5, times=1)
    began = time.monotonic()
    sim.add_time_entry(owner, start=NOW - timedelta(hours=1), duration=60)
    assert sim.webhooks.pending() == 1
    sim.webhooks.drain(timeout=5)
    [call] = [c for c in receiver.calls if c.event["payload"] != "ping"]
    assert call.at - began >= 0.5


def test_drain_times_out_while_deliveries_are_pending(
    sim: TogglSimulator, server: RunningServer, owner: SimUser, callback: str, receiver: Receiver
) -> None:
    validated_subscription(server, owner, callback, receiver)
    sim.webhooks.faults.add(delay=1.0, times=1)
    sim.add_time_entry(owner, start=NOW - timedelta(hours=1), duration=60)
    with pytest.raises(TimeoutError):
        sim.webhooks.drain(timeout=0.1)
    with api(server, owner) as client:
        [sub] = client.get(f"subscriptions/{owner.default_workspace_id}").json()
    assert sub["has_pending_events"] is True
    sim.webhooks.drain(timeout=5)
    assert sim.webhooks.pending() == 0


def test_the_admin_api_sets_delivery_faults_and_drains(
    sim: TogglSimulator, server: RunningServer, owner: SimUser, callback: str, receiver: Receiver
) -> None:
    validated_subscription(server, owner, callback, receiver)
    added = httpx.post(f"{server.url}/_admin/webhooks/faults", json={"drop": True, "times": 1})
    assert added.status_code == 200
    sim.add_time_entry(owner, start=NOW - timedelta(hours=1), duration=60)
    sim.add_time_entry(owner, start=NOW - timedelta(hours=2), duration=60)
    drained = httpx.post(f"{server.url}/_admin/webhooks/drain", json={"timeout": 5})
    assert drained.json() == {"drained": True}
    assert len(receiver.entry_events()) == 1
    assert httpx.delete(f"{server.url}/_admin/webhooks/faults").status_code == 200
    subs = httpx.get(f"{server.url}/_admin/webhooks/subscriptions").json()
    assert [s["description"] for s in subs] == ["timebridge"]


def test_seeding_a_subscription_from_python(
    sim: TogglSimulator, owner: SimUser, callback: str, receiver: Receiver
) -> None:
    sub = sim.webhooks.create(owner, callback, secret="seeded")
    assert receiver.calls == [], "no handshake"
    sim.add_time_entry(owner, start=NOW - timedelta(hours=1), duration=60)
    sim.webhooks.drain()
    [call] = receiver.calls
    assert call.event["subscription_id"] == sub.id
    assert verify(call, "seeded")
    assert sim.webhooks.attempts[0].status == 200
