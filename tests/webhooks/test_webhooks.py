"""Webhooks end to end: the service served on its public URL, the Toggl simulator delivering to
it over real HTTP, the Exist simulator receiving the sync's writes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx
import pytest

from tests.webhooks.conftest import WINDOW, ZONE, Served, World, serve_app, signed_in
from timebridge.bridge import WebhooksUnavailable
from timebridge.fakes.toggl.webhooks import encode, sign
from timebridge.retry import RetryPolicy
from timebridge.store import WebhookState
from timebridge.toggl import QuotaExceeded
from timebridge.web import create_app
from timebridge.webhooks.signature import SIGNATURE_HEADER


async def test_turning_on_subscribes_each_workspace_and_validates_at_once(
    world: World, served: Served
) -> None:
    alice = await world.connect("alice")
    user = world.toggl_users[alice]

    endpoint = await world.bridge.webhooks.turn_on(alice)

    subscriptions = world.toggl_sim.webhooks.subscriptions(user.default_workspace_id)
    assert len(subscriptions) == 1
    made = subscriptions[0]
    assert made.enabled and made.validated_at is not None, "the probe's PING was answered"
    assert made.url_callback.startswith(f"{served.url}/hooks/toggl/")
    assert {f["action"] for f in made.event_filters} == {"created", "updated", "deleted"}
    [state] = endpoint.subscriptions
    assert state.state is WebhookState.ACTIVE and state.subscription_id == made.id
    # Turning on again changes nothing at Toggl.
    again = await world.bridge.webhooks.turn_on(alice)
    assert [s.id for s in world.toggl_sim.webhooks.subscriptions()] == [made.id]
    assert again.id == endpoint.id


async def test_a_stopped_timer_reaches_exist_within_the_window_and_one_run(
    world: World, served: Served
) -> None:
    alice = await world.connect("alice")
    await world.bridge.sync(alice)
    await world.bridge.webhooks.turn_on(alice)
    user = world.toggl_users[alice]
    series = next(iter(await world.store.mappings.project_map(alice)))
    day = world.clock.now().astimezone(ZONE).date()
    before = world.exist_value(alice, "tv_min", day)

    running = world.toggl_sim.add_time_entry(
        user, start=world.clock.now() - timedelta(minutes=50), duration=-1, project_id=series
    )
    world.toggl_sim.world.stop_time_entry(user.id, user.default_workspace_id, running.id)

    await world.eventually(lambda: world.exist_value(alice, "tv_min", day) == before + 50)
    assert await world.exist_matches_toggl(alice)
    # The run a webhook starts costs what a steady run costs: one Toggl request (`since`) and
    # one Exist write for the one changed day.
    await world.eventually(lambda: _runs_above(world, alice, 1))
    [run, *_] = await world.store.sync_runs.recent(alice, limit=1)
    assert (run.toggl_requests, run.exist_requests, run.values_written) == (1, 1, 1)


async def test_a_burst_of_edits_makes_one_run(world: World) -> None:
    # A window long enough that every delivery of the burst lands in it, however busy the
    # machine (the service's default is 3 s).
    settings = world.settings.model_copy(update={"webhook_coalesce_seconds": 2.0})
    app = create_app(settings, clock=world.clock, retry=RetryPolicy.testing())
    alice = await world.connect("alice")
    await world.bridge.sync(alice)
    with serve_app(app, world.socket):
        await world.bridge.webhooks.turn_on(alice)
        runs_before = await world.store.sync_runs.count(alice)
        user = world.toggl_users[alice]
        series = next(iter(await world.store.mappings.project_map(alice)))

        for minutes in (5, 10, 15, 20, 25):
            world.toggl_sim.add_time_entry(
                user,
                start=world.clock.now() - timedelta(hours=2, minutes=minutes),
                duration=60,
                project_id=series,
            )
        world.toggl_sim.webhooks.drain()

        await world.eventually(world_matches(world, alice))
        await world.eventually(lambda: _runs_above(world, alice, runs_before))
        await _quiet(2.5)
        assert await world.store.sync_runs.count(alice) == runs_before + 1


def world_matches(world: World, account: int) -> Callable[[], Awaitable[bool]]:
    return lambda: world.exist_matches_toggl(account)


async def _quiet(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def test_a_deleted_entry_takes_its_time_out_of_exist(world: World, served: Served) -> None:
    alice = await world.connect("alice")
    await world.bridge.sync(alice)
    await world.bridge.webhooks.turn_on(alice)
    user = world.toggl_users[alice]
    newest = max(world.toggl_sim.world.entries_of(user.id), key=lambda entry: entry.start)

    world.toggl_sim.world.delete_time_entry(user.id, user.default_workspace_id, newest.id)

    await world.eventually(world_matches(world, alice))
    day = newest.start.astimezone(ZONE).date()
    assert world.exist_value(alice, "tv_min", day) == 0


async def test_a_repeated_delivery_starts_no_second_run(world: World, served: Served) -> None:
    alice = await world.connect("alice")
    await world.bridge.sync(alice)
    await world.bridge.webhooks.turn_on(alice)
    user = world.toggl_users[alice]
    world.toggl_sim.add_time_entry(user, start=world.clock.now() - timedelta(hours=5), duration=600)
    world.toggl_sim.webhooks.drain()
    await world.eventually(world_matches(world, alice))
    await _quiet(WINDOW * 3)
    runs = await world.store.sync_runs.count(alice)
    delivered = [a for a in world.toggl_sim.webhooks.attempts if a.event_id and a.status == 200]
    assert delivered

    async with httpx.AsyncClient() as http:
        again = await http.post(
            _callback(world),
            content=delivered[-1].body,
            headers={"content-type": "application/json", **_signature(delivered[-1].headers)},
        )
    assert again.status_code == 200
    await _quiet(WINDOW * 3)
    assert await world.store.sync_runs.count(alice) == runs


def _callback(world: World) -> str:
    [sub] = world.toggl_sim.webhooks.subscriptions()
    return sub.url_callback


def _signature(headers: dict[str, str]) -> dict[str, str]:
    return {
        name: value for name, value in headers.items() if name.lower() == SIGNATURE_HEADER.lower()
    }


async def test_a_bad_or_missing_signature_is_refused_and_starts_nothing(
    world: World, served: Served
) -> None:
    alice = await world.connect("alice")
    await world.bridge.webhooks.turn_on(alice)
    runs = await world.store.sync_runs.count(alice)
    url = _callback(world)
    event = {"event_id": 77, "payload": {"id": 1, "user_id": world.toggl_users[alice].id}}
    body = encode(event)

    async with httpx.AsyncClient() as http:
        missing = await http.post(url, content=body)
        wrong = await http.post(url, content=body, headers={SIGNATURE_HEADER: sign("nope", body)})
        tampered = await http.post(
            url,
            content=body.replace(b"77", b"78"),
            headers={SIGNATURE_HEADER: sign(_secret(world), body)},
        )
        unknown = await http.post(
            f"{served.url}/hooks/toggl/not-a-token",
            content=body,
            headers={SIGNATURE_HEADER: sign(_secret(world), body)},
        )
        good = await http.post(
            url, content=body, headers={SIGNATURE_HEADER: sign(_secret(world), body)}
        )

    assert missing.status_code == wrong.status_code == tampered.status_code == 401
    assert missing.json()["error"]["code"] == "bad_signature"
    assert unknown.status_code == 404
    assert good.status_code == 200
    await world.eventually(lambda: _runs_above(world, alice, runs))


async def _runs_above(world: World, account: int, runs: int) -> bool:
    return await world.store.sync_runs.count(account) > runs


def _secret(world: World) -> str:
    [sub] = world.toggl_sim.webhooks.subscriptions()
    return sub.secret


async def test_an_unvalidated_subscription_is_validated_by_the_check(
    world: World, served: Served
) -> None:
    alice = await world.connect("alice")
    endpoint = await world.bridge.webhooks.turn_on(alice)
    [sub] = world.toggl_sim.webhooks.subscriptions()
    sub.validated_at = None  # as if the probe's answer had been lost: no events flow

    checked = await world.bridge.webhooks.check(endpoint.id)

    assert checked is not None
    assert checked.subscriptions[0].state is WebhookState.UNVALIDATED
    world.toggl_sim.webhooks.drain()
    assert sub.validated_at is not None, "the PING's validation code was answered"
    after = await world.bridge.webhooks.check(endpoint.id)
    assert after is not None and after.subscriptions[0].state is WebhookState.ACTIVE


async def test_a_lost_or_disabled_subscription_is_restored_by_the_check(
    world: World, served: Served
) -> None:
    alice = await world.connect("alice")
    endpoint = await world.bridge.webhooks.turn_on(alice)
    user = world.toggl_users[alice]
    [first] = world.toggl_sim.webhooks.subscriptions()
    world.toggl_sim.webhooks.delete(user, user.default_workspace_id, first.id)

    report = await world.bridge.webhooks.check_all()

    assert report.checked == 1
    [made] = world.toggl_sim.webhooks.subscriptions()
    assert made.id != first.id and made.enabled and made.validated_at is not None
    made.enabled = False
    checked = await world.bridge.webhooks.check(endpoint.id)
    assert made.enabled
    assert checked is not None and checked.subscriptions[0].state is WebhookState.ACTIVE


async def test_a_full_plan_is_said_and_the_schedule_keeps_syncing(
    world: World, served: Served
) -> None:
    alice = await world.connect("alice", plan="free")
    user = world.toggl_users[alice]
    world.toggl_sim.webhooks.create(user, "https://elsewhere.example/hook")

    endpoint = await world.bridge.webhooks.turn_on(alice)

    [state] = endpoint.subscriptions
    assert state.state is WebhookState.LIMITED
    assert state.problem is not None and "allows no more webhooks" in state.problem
    assert len(world.toggl_sim.webhooks.subscriptions()) == 1
    await world.bridge.sync(alice)
    assert await world.exist_matches_toggl(alice)


async def test_disconnecting_toggl_removes_the_subscription(world: World, served: Served) -> None:
    alice = await world.connect("alice")
    await world.bridge.webhooks.turn_on(alice)
    assert world.toggl_sim.webhooks.subscriptions()

    await world.bridge.disconnect_toggl(alice)

    assert world.toggl_sim.webhooks.subscriptions() == []
    assert await world.store.webhooks.of_account(alice) == []


async def test_turning_off_removes_the_subscriptions_and_the_callback(
    world: World, served: Served
) -> None:
    alice = await world.connect("alice")
    await world.bridge.webhooks.turn_on(alice)
    url, secret = _callback(world), _secret(world)
    event = encode({"event_id": 5, "payload": {"id": 1, "user_id": world.toggl_users[alice].id}})
    signed = {SIGNATURE_HEADER: sign(secret, event)}

    async with httpx.AsyncClient(base_url=served.url) as client:
        assert (await client.post(url, content=event, headers=signed)).status_code == 200
        csrf = await signed_in(world, served, alice, client)
        off = await client.put(
            "/api/v1/webhooks", json={"enabled": False}, headers={"X-CSRF-Token": csrf}
        )
        assert off.status_code == 200
        assert (await client.post(url, content=event, headers=signed)).status_code == 404

    assert world.toggl_sim.webhooks.subscriptions() == []


async def test_a_dropped_delivery_is_repaired_by_the_scheduled_run(
    world: World, served: Served
) -> None:
    alice = await world.connect("alice")
    await world.bridge.sync(alice)
    await world.bridge.webhooks.turn_on(alice)
    world.toggl_sim.webhooks.faults.add(drop=True)
    user = world.toggl_users[alice]
    series = next(iter(await world.store.mappings.project_map(alice)))
    world.toggl_sim.add_time_entry(
        user, start=world.clock.now() - timedelta(hours=6), duration=1800, project_id=series
    )
    world.toggl_sim.webhooks.drain()
    await _quiet(WINDOW * 3)
    assert world.toggl_sim.webhooks.dropped
    assert not await world.exist_matches_toggl(alice), "the change waits for the schedule"

    await world.bridge.sync(alice)  # the hourly run

    assert await world.exist_matches_toggl(alice)


async def test_events_about_other_members_entries_start_nothing(
    world: World, served: Served
) -> None:
    alice = await world.connect("alice")
    await world.bridge.webhooks.turn_on(alice)
    user = world.toggl_users[alice]
    colleague = world.toggl_sim.add_user(api_token="toggl-colleague-0123456789")
    world.toggl_sim.world.add_member(user.default_workspace_id, colleague.id)
    runs = await world.store.sync_runs.count(alice)

    world.toggl_sim.add_time_entry(
        colleague,
        workspace_id=user.default_workspace_id,
        start=world.clock.now() - timedelta(hours=1),
        duration=600,
    )
    world.toggl_sim.webhooks.drain()

    assert any(a.event_id and a.status == 200 for a in world.toggl_sim.webhooks.attempts)
    await _quiet(WINDOW * 3)
    assert await world.store.sync_runs.count(alice) == runs


async def test_without_a_public_url_webhooks_are_off_and_say_why(world: World) -> None:
    alice = await world.connect("alice")
    settings = world.settings.model_copy()
    settings.__pydantic_fields_set__.discard("public_url")
    from timebridge.bridge import Bridge

    bridge = Bridge.from_settings(world.store, settings, clock=world.clock)

    status = await bridge.webhooks.status(alice)
    assert status.unavailable is not None and "TIMEBRIDGE_PUBLIC_URL" in status.unavailable
    with pytest.raises(WebhooksUnavailable, match="TIMEBRIDGE_PUBLIC_URL"):
        await bridge.webhooks.turn_on(alice)
    assert world.toggl_sim.webhooks.subscriptions() == []


async def test_nothing_of_an_events_body_is_logged(
    world: World, served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    alice = await world.connect("alice")
    await world.bridge.sync(alice)
    await world.bridge.webhooks.turn_on(alice)
    user = world.toggl_users[alice]
    secret_words = "Lawyer call about the Elm Street divorce"

    series = next(iter(await world.store.mappings.project_map(alice)))
    world.toggl_sim.add_time_entry(
        user,
        start=world.clock.now() - timedelta(hours=1),
        duration=900,
        description=secret_words,
        project_id=series,
    )
    world.toggl_sim.webhooks.drain()
    await world.eventually(
        lambda: any("webhook event" in record.getMessage() for record in caplog.records)
    )
    await world.eventually(world_matches(world, alice))

    logged = caplog.text + "".join(str(record.__dict__) for record in caplog.records)
    assert secret_words not in logged
    assert _secret(world) not in logged


async def test_a_spent_quota_while_turning_on_leaves_webhooks_off(
    world: World, served: Served
) -> None:
    alice = await world.connect("alice")
    world.toggl_sim.faults.add(
        method="GET",
        path="/api/v9/me/workspaces*",
        status=402,
        body='"You have hit your hourly limit for API calls."',
        headers={"X-Toggl-Quota-Resets-In": "1200"},
    )

    with pytest.raises(QuotaExceeded):
        await world.bridge.webhooks.turn_on(alice)

    assert not (await world.bridge.webhooks.status(alice)).on
    assert world.toggl_sim.webhooks.subscriptions() == []


async def test_an_outage_of_toggls_webhooks_is_shown_and_repaired_by_the_check(
    world: World, served: Served
) -> None:
    alice = await world.connect("alice")
    world.toggl_sim.faults.add(path="/webhooks/api/v1/subscriptions/*", status=503, times=10)

    endpoint = await world.bridge.webhooks.turn_on(alice)

    [state] = endpoint.subscriptions
    assert state.state is WebhookState.FAILING
    assert state.problem is not None and "the daily check tries again" in state.problem
    world.toggl_sim.faults.clear()
    checked = await world.bridge.webhooks.check(endpoint.id)
    assert checked is not None and checked.subscriptions[0].state is WebhookState.ACTIVE
    assert len(world.toggl_sim.webhooks.subscriptions()) == 1


async def test_deleting_one_of_two_connections_removes_its_subscription(
    world: World, served: Served
) -> None:
    alice = await world.connect("alice")
    await world.bridge.webhooks.turn_on(alice)
    [hooked] = await world.store.toggl_connections.list(alice)
    other = world.toggl_sim.add_user(api_token="toggl-alice-second-0123456789")
    await world.store.toggl_connections.create(
        alice, other.api_token, toggl_user_id=other.id, origin=world.settings.toggl_base_url
    )
    assert world.toggl_sim.webhooks.subscriptions()

    await world.bridge.delete_toggl_connection(alice, hooked.id)

    assert world.toggl_sim.webhooks.subscriptions() == []
    assert await world.store.webhooks.of_account(alice) == []
    assert len(await world.store.toggl_connections.list(alice)) == 1
