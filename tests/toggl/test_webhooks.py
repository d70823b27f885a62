"""The Toggl client's Webhooks API v1 calls against the simulator, over real HTTP, with a real
callback endpoint on loopback (the simulator probes it when a subscription is created or
enabled, and delivers PINGs to it)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from tests.toggl.callbacks import Receiver
from timebridge.clock import FakeClock
from timebridge.fakes import serve_in_thread
from timebridge.fakes.toggl import SimUser, TogglSimulator, WebhookSettings
from timebridge.retry import RetryPolicy
from timebridge.toggl import (
    AsyncTogglClient,
    CallbackUnreachable,
    InvalidRequest,
    NotFound,
    ServerError,
    TogglClient,
    WebhookDelivery,
    WebhookEventFilter,
    WebhookLimitReached,
    WebhookSubscription,
    WebhookSubscriptionCreate,
)

TE_ALL = [WebhookEventFilter(entity="time_entry", action="*")]


@pytest.fixture
def toggl_sim(clock: FakeClock) -> Iterator[TogglSimulator]:
    simulator = TogglSimulator(clock, webhook_settings=WebhookSettings.fast())
    yield simulator
    simulator.webhooks.close()


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def callback(receiver: Receiver) -> Iterator[str]:
    with serve_in_thread(receiver) as running:
        yield f"{running.url}/hooks/toggl"


@pytest.fixture
def wid(toggl_user: SimUser) -> int:
    return toggl_user.default_workspace_id


def new(callback: str, description: str = "timebridge", **fields: Any) -> WebhookSubscriptionCreate:
    return WebhookSubscriptionCreate(
        url_callback=callback, event_filters=TE_ALL, description=description, **fields
    )


# --- the calls ------------------------------------------------------------------------------------


def test_event_filters_name_each_entity_and_its_actions(toggl: TogglClient) -> None:
    filters = toggl.webhook_event_filters()
    assert set(filters["time_entry"]) >= {"created", "updated", "deleted"}
    assert all(isinstance(actions, list) for actions in filters.values())


def test_create_probes_the_callback_and_answers_the_subscription(
    toggl: TogglClient,
    toggl_sim: TogglSimulator,
    toggl_user: SimUser,
    wid: int,
    callback: str,
    receiver: Receiver,
) -> None:
    receiver.echo = True
    created = toggl.create_webhook_subscription(wid, new(callback, secret="s3cret-given"))
    assert isinstance(created, WebhookSubscription)
    assert (created.workspace_id, created.user_id) == (wid, toggl_user.id)
    assert (created.enabled, created.url_callback, created.description) == (
        True,
        callback,
        "timebridge",
    )
    assert created.event_filters == TE_ALL
    assert created.validated_at is not None, "the PING answered with its code validates"
    assert created.secret is not None and created.secret.get_secret_value() == "s3cret-given"
    assert len(receiver.pings()) == 1, "the probe reached the callback before the answer"
    sent = [r for r in toggl_sim.requests if r.path == f"/webhooks/api/v1/subscriptions/{wid}"]
    assert [r.method for r in sent] == ["POST"]
    listed = toggl.webhook_subscriptions(wid)
    assert [s.subscription_id for s in listed] == [created.subscription_id]


def test_without_a_secret_toggl_generates_one(toggl: TogglClient, wid: int, callback: str) -> None:
    created = toggl.create_webhook_subscription(wid, new(callback))
    assert created.secret is not None and created.secret.get_secret_value()
    assert "secret" not in new(callback).body()


def test_disable_then_enable_again(
    toggl: TogglClient, toggl_sim: TogglSimulator, wid: int, callback: str, receiver: Receiver
) -> None:
    created = toggl.create_webhook_subscription(wid, new(callback))
    sid = created.subscription_id
    disabled = toggl.set_webhook_subscription_enabled(wid, sid, False)
    assert disabled.enabled is False
    assert toggl_sim.webhooks.subscription(sid).enabled is False
    probes = len(receiver.pings())
    enabled = toggl.set_webhook_subscription_enabled(wid, sid, True)
    assert enabled.enabled is True
    assert len(receiver.pings()) == probes + 1, "enabling probes the callback again"
    patches = [r for r in toggl_sim.requests if r.method == "PATCH"]
    assert [r.path for r in patches] == [f"/webhooks/api/v1/subscriptions/{wid}/{sid}"] * 2


def test_delete_and_a_missing_subscription_is_not_found(
    toggl: TogglClient, wid: int, callback: str
) -> None:
    created = toggl.create_webhook_subscription(wid, new(callback))
    toggl.delete_webhook_subscription(wid, created.subscription_id)
    assert toggl.webhook_subscriptions(wid) == []
    with pytest.raises(NotFound, match="was not found"):
        toggl.delete_webhook_subscription(wid, created.subscription_id)
    with pytest.raises(NotFound):
        toggl.set_webhook_subscription_enabled(wid, created.subscription_id, True)
    with pytest.raises(NotFound):
        toggl.ping_webhook_subscription(wid, created.subscription_id)
    with pytest.raises(NotFound):
        toggl.webhook_deliveries(wid, created.subscription_id)


def test_ping_is_delivered_and_listed_among_the_deliveries(
    toggl: TogglClient, toggl_sim: TogglSimulator, wid: int, callback: str, receiver: Receiver
) -> None:
    created = toggl.create_webhook_subscription(wid, new(callback))
    before = len(receiver.pings())
    toggl.ping_webhook_subscription(wid, created.subscription_id)
    toggl_sim.webhooks.drain()
    assert len(receiver.pings()) == before + 1
    deliveries = toggl.webhook_deliveries(wid, created.subscription_id)
    assert deliveries and all(isinstance(d, WebhookDelivery) for d in deliveries)
    assert deliveries[0].status == "delivered"
    assert deliveries[0].delivered_at is not None
    assert deliveries[0].failed_delivery_attempts == 0
    assert toggl.webhook_deliveries(wid, created.subscription_id, offset=len(deliveries)) == []
    with pytest.raises(ValueError, match="offset"):
        toggl.webhook_deliveries(wid, created.subscription_id, offset=-1)


def test_validate_with_the_code_a_ping_carried(
    toggl: TogglClient, toggl_sim: TogglSimulator, wid: int, callback: str, receiver: Receiver
) -> None:
    created = toggl.create_webhook_subscription(wid, new(callback))
    assert created.validated_at is None, "the probe was answered without its code"
    code = receiver.pings()[-1]["validation_code"]
    with pytest.raises(InvalidRequest, match="not found"):
        toggl.validate_webhook_subscription(wid, created.subscription_id, "wrong-code")
    toggl.validate_webhook_subscription(wid, created.subscription_id, code)
    assert toggl_sim.webhooks.subscription(created.subscription_id).validated_at is not None
    (listed,) = toggl.webhook_subscriptions(wid)
    assert listed.validated_at is not None
    with pytest.raises(InvalidRequest, match="already validated"):
        toggl.validate_webhook_subscription(wid, created.subscription_id, code)
    with pytest.raises(ValueError, match="empty"):
        toggl.validate_webhook_subscription(wid, created.subscription_id, " ")


async def test_the_async_client_has_the_same_calls(
    atoggl: AsyncTogglClient,
    toggl_sim: TogglSimulator,
    wid: int,
    callback: str,
    receiver: Receiver,
) -> None:
    receiver.echo = True
    assert "time_entry" in await atoggl.webhook_event_filters()
    created = await atoggl.create_webhook_subscription(wid, new(callback))
    sid = created.subscription_id
    assert [s.subscription_id for s in await atoggl.webhook_subscriptions(wid)] == [sid]
    assert (await atoggl.set_webhook_subscription_enabled(wid, sid, False)).enabled is False
    assert (await atoggl.set_webhook_subscription_enabled(wid, sid, True)).enabled is True
    await atoggl.ping_webhook_subscription(wid, sid)
    await asyncio.to_thread(toggl_sim.webhooks.drain)
    assert await atoggl.webhook_deliveries(wid, sid)
    with pytest.raises(InvalidRequest, match="already validated"):
        await atoggl.validate_webhook_subscription(wid, sid, "any")
    await atoggl.delete_webhook_subscription(wid, sid)
    assert await atoggl.webhook_subscriptions(wid) == []


# --- what Toggl refuses -----------------------------------------------------------------------


def test_a_callback_answering_otherwise_than_200_is_callback_unreachable(
    toggl: TogglClient, toggl_sim: TogglSimulator, wid: int, callback: str, receiver: Receiver
) -> None:
    receiver.status = 500
    with pytest.raises(CallbackUnreachable) as caught:
        toggl.create_webhook_subscription(wid, new(callback))
    error = caught.value
    assert isinstance(error, InvalidRequest)
    assert (error.status_code, error.url, error.callback_status) == (400, callback, 500)
    assert "responded with status 500 instead of 200" in error.message
    assert toggl_sim.webhooks.subscriptions(wid) == []
    # Enabling probes too.
    receiver.status = 200
    created = toggl.create_webhook_subscription(wid, new(callback, enabled=False))
    receiver.status = 404
    with pytest.raises(CallbackUnreachable, match="status 404"):
        toggl.set_webhook_subscription_enabled(wid, created.subscription_id, True)


def test_a_callback_nobody_answers_is_callback_unreachable(toggl: TogglClient, wid: int) -> None:
    with serve_in_thread(Receiver()) as gone:
        url = f"{gone.url}/hooks"
    with pytest.raises(CallbackUnreachable, match="request failed with error") as caught:
        toggl.create_webhook_subscription(wid, new(url))
    assert (caught.value.url, caught.value.callback_status) == (url, None)


def test_the_plans_limits_are_webhook_limit_reached(
    toggl: TogglClient, toggl_sim: TogglSimulator, callback: str
) -> None:
    free = toggl_sim.add_user(api_token="tok-free-user-123", plan="free")
    with TogglClient(
        free.api_token, base_url=toggl.base_url, retry=RetryPolicy.testing()
    ) as client:
        workspace = free.default_workspace_id
        too_many_events = WebhookSubscriptionCreate(
            url_callback=callback,
            description="many",
            event_filters=[*TE_ALL, WebhookEventFilter(entity="project", action="created")],
        )
        with pytest.raises(WebhookLimitReached, match="allows up to 3 events") as caught:
            client.create_webhook_subscription(workspace, too_many_events)
        assert (caught.value.limit, caught.value.per) == (3, "events")
        toggl_sim.webhooks.create(free, callback, description="seeded")
        with pytest.raises(WebhookLimitReached, match="limit of 1 enabled") as caught:
            client.create_webhook_subscription(workspace, new(callback))
        assert isinstance(caught.value, InvalidRequest)
        assert (caught.value.limit, caught.value.per, caught.value.status_code) == (
            1,
            "subscriptions",
            400,
        )
        disabled = client.create_webhook_subscription(workspace, new(callback, enabled=False))
        with pytest.raises(WebhookLimitReached):
            client.set_webhook_subscription_enabled(workspace, disabled.subscription_id, True)


def test_other_refusals_stay_invalid_request(toggl: TogglClient, wid: int, callback: str) -> None:
    toggl.create_webhook_subscription(wid, new(callback))
    with pytest.raises(InvalidRequest, match="description already exists") as caught:
        toggl.create_webhook_subscription(wid, new(callback))
    assert type(caught.value) is InvalidRequest


def test_creating_and_enabling_are_never_retried(
    toggl: TogglClient, toggl_sim: TogglSimulator, wid: int, callback: str
) -> None:
    toggl_sim.faults.add(method="POST", path="*/subscriptions/*", status=503, times=2)
    # Each call meets one 503 and gives up: had the first been retried, it would have used
    # both and the second would have succeeded.
    for _ in range(2):
        with pytest.raises(ServerError):
            toggl.create_webhook_subscription(wid, new(callback))
    created = toggl.create_webhook_subscription(wid, new(callback))
    toggl_sim.faults.add(method="PATCH", path="*/subscriptions/*", status=503, times=2)
    for _ in range(2):
        with pytest.raises(ServerError):
            toggl.set_webhook_subscription_enabled(wid, created.subscription_id, False)
    assert toggl.set_webhook_subscription_enabled(wid, created.subscription_id, False).enabled is (
        False
    )
    # A read is retried as any other.
    toggl_sim.faults.add(method="GET", path="*/subscriptions/*", status=503, times=1)
    assert len(toggl.webhook_subscriptions(wid)) == 1


def test_ids_are_checked_before_any_request(toggl: TogglClient, toggl_sim: TogglSimulator) -> None:
    before = len(toggl_sim.requests)
    with pytest.raises(ValueError, match="workspace_id"):
        toggl.webhook_subscriptions(0)
    with pytest.raises(ValueError, match="subscription_id"):
        toggl.ping_webhook_subscription(1, -3)
    assert len(toggl_sim.requests) == before


# --- the models -----------------------------------------------------------------------------------


def test_a_subscriptions_secret_never_shows() -> None:
    subscription = WebhookSubscription.model_validate(
        {
            "subscription_id": 3,
            "workspace_id": 70,
            "user_id": 7,
            "enabled": True,
            "description": "d",
            "event_filters": [{"entity": "time_entry", "action": "*"}],
            "url_callback": "https://example.test/hook",
            "secret": "very-secret-value",
            "validated_at": None,
            "has_pending_events": False,
            "created_at": "2026-03-10T12:00:00Z",
            "updated_at": "2026-03-10T12:00:00+00:00",
            "something_new": 1,
        }
    )
    assert isinstance(subscription.secret, SecretStr)
    assert subscription.secret.get_secret_value() == "very-secret-value"
    for shown in (
        repr(subscription),
        str(subscription),
        subscription.model_dump_json(),
        json.dumps(subscription.model_dump(mode="json")),
    ):
        assert "very-secret-value" not in shown
    body = new("https://example.test/hook", secret="given-secret-value")
    assert "given-secret-value" not in repr(body) and "given-secret-value" not in str(body)
    assert body.body()["secret"] == "given-secret-value"
    assert body.body()["enabled"] is True


def test_a_create_body_needs_a_filter_and_a_description() -> None:
    with pytest.raises(ValidationError):
        WebhookSubscriptionCreate(url_callback="https://x.test", event_filters=[], description="d")
    with pytest.raises(ValidationError):
        new("https://x.test", description="")
    with pytest.raises(ValidationError):
        new("https://x.test", secret="")
    with pytest.raises(ValidationError):
        new("https://x.test", colour="red")


def test_a_delivery_record_is_read_tolerantly() -> None:
    assert WebhookDelivery.model_validate({}) == WebhookDelivery()
    record = WebhookDelivery.model_validate(
        {"event_id": 8, "status": "failed", "failed_delivery_attempts": 2, "extra": [1]}
    )
    assert (record.event_id, record.status, record.failed_delivery_attempts) == (8, "failed", 2)


# --- through a gateway ----------------------------------------------------------------------------


def test_through_a_gateway_webhooks_live_beside_v9() -> None:
    seen: list[tuple[str, str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.raw_path.decode()))
        if request.url.path.endswith("/event_filters"):
            return httpx.Response(200, json={"time_entry": ["created"]})
        if request.url.path.endswith("/events") or request.method == "GET":
            return httpx.Response(200, json=[])
        return httpx.Response(200, json="OK")

    with TogglClient.through_gateway(
        "https://tb.example/prefix",
        "tb_4fJq9ZrX2mWb8KcT1nLp7YdVhE3sGa6UoQiR0zNe5BxC_k3x9",
        transport=httpx.MockTransport(answer),
    ) as client:
        client.webhook_event_filters()
        client.webhook_subscriptions(70)
        client.delete_webhook_subscription(70, 3)
        client.ping_webhook_subscription(70, 3)
        client.webhook_deliveries(70, 3, offset=50)
        client.validate_webhook_subscription(70, 3, "a b/c")
    root = "/prefix/toggl-track/webhooks/api/v1"
    assert seen == [
        ("GET", f"{root}/event_filters"),
        ("GET", f"{root}/subscriptions/70"),
        ("DELETE", f"{root}/subscriptions/70/3"),
        ("POST", f"{root}/ping/70/3"),
        ("GET", f"{root}/subscriptions/70/3/events?offset=50"),
        ("GET", f"{root}/validate/70/3/a%20b%2Fc"),
    ]
