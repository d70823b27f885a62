"""The Toggl client and `timebridge toggl` through the real gateway (served by uvicorn, its own
store on SQLite) in front of the Toggl simulator, all over real HTTP: what a key holder sees
of every answer the gateway gives for itself or passes on from Toggl."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.gateway.conftest import World, alice, bob, gateway, toggl_sim, world
from timebridge.cli import app
from timebridge.fakes.toggl import SimUser
from timebridge.gateway.keys import PROXY_READ
from timebridge.retry import RetryPolicy
from timebridge.toggl import (
    AsyncTogglClient,
    AuthenticationError,
    InvalidRequest,
    NotFound,
    QuotaExceeded,
    RateLimited,
    ServerError,
    TimeEntryCreate,
    TogglClient,
)

# The gateway's fixtures (tests/gateway/conftest.py), used here as they are.
__all__ = ["alice", "bob", "gateway", "toggl_sim", "world"]


def basic(token: str) -> str:
    return "Basic " + base64.b64encode(f"{token}:api_token".encode()).decode()


@pytest.fixture
def account(world: World) -> int:
    return world.account("alice@example.com")


@pytest.fixture
def key(world: World, account: int, alice: SimUser) -> str:
    world.connection(account, alice)
    return world.key(account)


def altered(key: str) -> str:
    """The key with its last character changed: well formed no more, refused by the gateway."""
    return key[:-1] + ("A" if key[-1] != "A" else "B")


def client(gateway: str, key: str, connection: str | None = None) -> TogglClient:
    return TogglClient.through_gateway(
        gateway, key, connection=connection, retry=RetryPolicy.testing()
    )


def test_every_kind_of_call_reaches_the_default_connections_account(
    world: World, gateway: str, key: str, alice: SimUser
) -> None:
    with client(gateway, key) as toggl:
        me = toggl.me()
        assert (me.id, me.fullname) == (alice.id, "Alice")
        assert me.api_token is None, "the gateway never hands out the stored token"
        workspace = me.default_workspace_id
        assert workspace is not None
        tag = toggl.create_tag(workspace, "focus")
        assert [t.name for t in toggl.tags(workspace)] == ["focus"]
        entry = toggl.create_time_entry(
            TimeEntryCreate(
                workspace_id=workspace,
                start=world.sim.clock.now(),
                duration=-1,
                description="through the gateway",
            )
        )
        running = toggl.current_time_entry()
        assert running is not None and running.id == entry.id
        toggl.delete_tag(workspace, tag.id)
        assert toggl.quota is not None, "Toggl's quota headers come back through the gateway"
    reached = [seen for seen in world.upstream.seen if seen.raw_path.startswith("/api/v9/")]
    assert len(reached) == 6
    for seen in reached:
        assert seen.headers["authorization"] == basic(alice.api_token)
        assert key not in str(seen.headers)


def test_a_named_connection_is_that_accounts(
    world: World, gateway: str, key: str, account: int, bob: SimUser
) -> None:
    bobs = world.connection(account, bob)
    with client(gateway, key, connection=bobs) as toggl:
        assert toggl.me().fullname == "Bob"


async def test_the_async_client_goes_through_too(gateway: str, key: str, alice: SimUser) -> None:
    async with AsyncTogglClient.through_gateway(gateway, key) as toggl:
        assert (await toggl.me()).id == alice.id


def test_an_unknown_key_is_an_authentication_error_with_the_gateways_message(
    gateway: str, key: str
) -> None:
    wrong = altered(key)
    with client(gateway, wrong) as toggl, pytest.raises(AuthenticationError) as refused:
        toggl.me()
    assert refused.value.status_code == 401
    assert refused.value.gateway_code == "unauthorized"
    assert refused.value.message == "Invalid API key."
    assert wrong not in str(refused.value)


def test_a_read_key_that_writes_is_refused_with_the_missing_scope(
    world: World, gateway: str, account: int, alice: SimUser
) -> None:
    world.connection(account, alice)
    reader = world.key(account, (PROXY_READ,))
    with client(gateway, reader) as toggl:
        workspace = toggl.me().default_workspace_id
        assert workspace is not None
        with pytest.raises(AuthenticationError) as refused:
            toggl.create_tag(workspace, "nope")
    assert refused.value.status_code == 403
    assert "proxy:write" in refused.value.message


def test_another_owners_connection_is_not_found(
    world: World, gateway: str, key: str, bob: SimUser
) -> None:
    strangers = world.connection(world.account("bob@example.com"), bob)
    with client(gateway, key, connection=strangers) as toggl, pytest.raises(NotFound) as missing:
        toggl.me()
    assert missing.value.gateway_code == "not_found"


def test_togglss_402_then_the_quota_guards_429_spends_nothing_upstream(
    world: World, gateway: str, key: str
) -> None:
    with client(gateway, key) as toggl:
        for _ in range(30):
            toggl.me()
        with pytest.raises(QuotaExceeded) as spent:
            toggl.me()
        assert spent.value.resets_in is not None
        before = world.upstream_count()
        with pytest.raises(RateLimited) as guarded:
            toggl.me()
    assert guarded.value.gateway_code == "quota_exhausted"
    assert guarded.value.retry_after is not None and guarded.value.retry_after > 60
    assert world.upstream_count() == before


def test_an_unreachable_toggl_is_a_server_error_with_the_gateways_message(
    world: World, gateway: str, account: int, alice: SimUser
) -> None:
    connection = world.connection(account, alice, origin="http://127.0.0.1:9")
    reader = world.key(account)
    with client(gateway, reader, connection=connection) as toggl, pytest.raises(ServerError) as e:
        toggl.me()
    assert (e.value.status_code, e.value.gateway_code) == (502, "upstream_unreachable")
    assert e.value.message == "Toggl Track could not be reached."


def test_the_cli_through_the_gateway(
    gateway: str, key: str, alice: SimUser, tmp_path: Path
) -> None:
    env = {
        "TIMEBRIDGE_GATEWAY_URL": gateway,
        "TIMEBRIDGE_GATEWAY_KEY": key,
        "TIMEBRIDGE_GATEWAY_CONNECTION": "",
        "TOGGL_API_TOKEN": "",
        "TOGGL_BASE_URL": "",
        "TIMEBRIDGE_CONFIG": str(tmp_path / "config.toml"),
        "TOGGL_WORKSPACE_ID": "",
    }
    runner = CliRunner()
    me = runner.invoke(app, ["toggl", "me"], env=env)
    assert me.exit_code == 0, me.output
    assert "Alice" in me.stdout
    created = runner.invoke(app, ["toggl", "tags", "create", "focus", "--yes"], env=env)
    assert created.exit_code == 0, created.output
    assert "focus" in runner.invoke(app, ["toggl", "tags", "list"], env=env).stdout
    refused = runner.invoke(
        app, ["toggl", "me"], env={**env, "TIMEBRIDGE_GATEWAY_KEY": altered(key)}
    )
    assert refused.exit_code == 3
    assert "the gateway refused the key" in refused.stderr
    for result in (me, created, refused):
        assert key not in result.output
        assert alice.api_token not in result.output


def test_the_cli_says_the_quota_is_spent_when_toggl_or_the_quota_guard_says_so(
    gateway: str, key: str, tmp_path: Path
) -> None:
    with client(gateway, key) as toggl:
        for _ in range(30):
            toggl.me()
    env = {
        "TIMEBRIDGE_GATEWAY_URL": gateway,
        "TIMEBRIDGE_GATEWAY_KEY": key,
        "TOGGL_API_TOKEN": "",
        "TIMEBRIDGE_CONFIG": str(tmp_path / "config.toml"),
    }
    runner = CliRunner()
    told_by_toggl = runner.invoke(app, ["toggl", "me"], env=env)
    told_by_the_guard = runner.invoke(app, ["toggl", "me"], env=env)
    for result in (told_by_toggl, told_by_the_guard):
        assert result.exit_code == 4, result.output
        assert "Toggl's hourly API quota is used up; it resets in" in result.stderr
    assert "(the gateway said)" in told_by_the_guard.stderr


def test_a_key_whose_owner_has_no_connection_is_told_to_make_one(
    world: World, gateway: str, account: int, tmp_path: Path
) -> None:
    lonely = world.key(account)
    with client(gateway, lonely) as toggl, pytest.raises(InvalidRequest) as refused:
        toggl.me()
    assert refused.value.gateway_code == "missing_connection"
    env = {
        "TIMEBRIDGE_GATEWAY_URL": gateway,
        "TIMEBRIDGE_GATEWAY_KEY": lonely,
        "TOGGL_API_TOKEN": "",
        "TIMEBRIDGE_CONFIG": str(tmp_path / "config.toml"),
    }
    result = CliRunner().invoke(app, ["toggl", "me"], env=env)
    assert result.exit_code == 2
    assert "the gateway: No active Toggl Track connection" in result.stderr


def test_webhook_calls_go_through_the_gateway_beside_v9(
    world: World, gateway: str, key: str, alice: SimUser
) -> None:
    from tests.toggl.callbacks import Receiver
    from timebridge.fakes import serve_in_thread
    from timebridge.toggl import WebhookEventFilter, WebhookSubscriptionCreate

    workspace = alice.default_workspace_id
    with serve_in_thread(Receiver()) as callback, client(gateway, key) as toggl:
        assert "time_entry" in toggl.webhook_event_filters()
        created = toggl.create_webhook_subscription(
            workspace,
            WebhookSubscriptionCreate(
                url_callback=f"{callback.url}/hook",
                description="through the gateway",
                event_filters=[WebhookEventFilter(entity="time_entry", action="*")],
            ),
        )
        assert created.secret is not None, "Toggl's answer passes through, secret included"
        assert [s.subscription_id for s in toggl.webhook_subscriptions(workspace)] == [
            created.subscription_id
        ]
        toggl.delete_webhook_subscription(workspace, created.subscription_id)
        with pytest.raises(NotFound):
            toggl.delete_webhook_subscription(workspace, created.subscription_id)
    paths = [r.path for r in world.sim.requests if "/webhooks/" in r.path]
    assert paths and all(p.startswith("/webhooks/api/v1/") for p in paths)
