"""`timebridge toggl webhooks …` against the simulator, with a real callback on loopback."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tests.toggl.callbacks import Receiver
from timebridge.cli import app
from timebridge.clock import FakeClock
from timebridge.fakes import serve_in_thread
from timebridge.fakes.toggl import SimUser, TogglSimulator, WebhookSettings

Invoke = Callable[..., Result]


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
def outputs() -> list[str]:
    return []


@pytest.fixture
def invoke(
    toggl_url: str,
    toggl_user: SimUser,
    tmp_path: Path,
    outputs: list[str],
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> Invoke:
    monkeypatch.setattr("timebridge.cli.toggl.CLOCK", clock)
    runner = CliRunner()
    env = {
        "TOGGL_BASE_URL": toggl_url,
        "TOGGL_API_TOKEN": toggl_user.api_token,
        "TIMEBRIDGE_CONFIG": str(tmp_path / "config.toml"),
        "TOGGL_WORKSPACE_ID": "",
        "TOGGL_WEBHOOK_SECRET": "",
        "COLUMNS": "200",
    }

    def run(*args: str, input: str | None = None) -> Result:
        result = runner.invoke(app, ["toggl", "webhooks", *args], input=input, env=env)
        outputs.append(result.output)
        return result

    return run


@pytest.fixture(autouse=True)
def _token_never_printed(outputs: list[str], toggl_user: SimUser) -> object:
    yield
    for output in outputs:
        assert toggl_user.api_token not in output


def json_of(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_every_command_and_the_generated_secret_shown_once(
    invoke: Invoke,
    toggl_sim: TogglSimulator,
    toggl_user: SimUser,
    callback: str,
    receiver: Receiver,
    outputs: list[str],
) -> None:
    created = invoke("create", callback, "-d", "bridge", "-e", "time_entry:created", "--yes")
    assert created.exit_code == 0, created.output
    (subscription,) = toggl_sim.webhooks.subscriptions(toggl_user.default_workspace_id)
    secret = subscription.secret
    assert secret in created.stdout, "a generated secret is shown, once"
    assert "shown only now" in created.stdout
    assert "time_entry:created" in created.stdout
    sid = str(subscription.id)

    listed = invoke("list")
    assert listed.exit_code == 0, listed.output
    assert "bridge" in listed.stdout and callback in listed.stdout
    assert [s["subscription_id"] for s in json_of(invoke("list", "--json"))] == [subscription.id]

    disabled = json_of(invoke("disable", sid, "--yes", "--json"))
    assert disabled["enabled"] is False
    assert "Enabled" in invoke("enable", sid, "--yes").stdout
    assert subscription.enabled is True

    pinged = invoke("ping", sid, "--yes")
    assert pinged.exit_code == 0, pinged.output
    toggl_sim.webhooks.drain()
    deliveries = json_of(invoke("deliveries", sid, "--json"))
    assert deliveries and deliveries[0]["status"] == "delivered"
    table = invoke("deliveries", sid)
    assert "delivered" in table.stdout and "Europe/Berlin" in table.stdout

    deleted = invoke("delete", sid, "--yes")
    assert deleted.exit_code == 0, deleted.output
    assert toggl_sim.webhooks.subscriptions(toggl_user.default_workspace_id) == []
    missing = invoke("delete", sid, "--yes")
    assert missing.exit_code == 5
    assert "was not found" in missing.output

    assert sum(secret in output for output in outputs) == 1


def test_a_given_secret_is_never_printed(
    invoke: Invoke, toggl_sim: TogglSimulator, callback: str, outputs: list[str]
) -> None:
    created = json_of(
        invoke("create", callback, "-d", "mine", "--secret", "my-own-secret-1", "--yes", "--json")
    )
    assert "secret" not in created
    assert toggl_sim.webhooks.subscription(created["subscription_id"]).secret == "my-own-secret-1"
    invoke("list")
    invoke("list", "--json")
    assert not any("my-own-secret-1" in output for output in outputs)


def test_json_create_carries_the_generated_secret_and_list_never(
    invoke: Invoke, toggl_sim: TogglSimulator, callback: str
) -> None:
    created = json_of(invoke("create", callback, "-d", "scripted", "--yes", "--json"))
    stored = toggl_sim.webhooks.subscription(created["subscription_id"]).secret
    assert created["secret"] == stored
    assert all("secret" not in s for s in json_of(invoke("list", "--json")))
    assert stored not in invoke("list").stdout


def test_a_callback_that_refuses_the_probe_is_one_line_with_toggls_message(
    invoke: Invoke, callback: str, receiver: Receiver
) -> None:
    receiver.status = 503
    result = invoke("create", callback, "-d", "down", "--yes")
    assert result.exit_code == 1
    assert f"URL endpoint {callback} responded with status 503 instead of 200" in result.output


def test_the_plans_limit_is_reported(
    invoke: Invoke, toggl_sim: TogglSimulator, toggl_user: SimUser, callback: str
) -> None:
    for n in range(3):  # premium: 3 enabled subscriptions
        toggl_sim.webhooks.create(toggl_user, callback, description=f"seed {n}")
    result = invoke("create", callback, "-d", "fourth", "--yes")
    assert result.exit_code == 1
    assert "already reached the limit of 3 enabled subscriptions" in result.output


def test_a_declined_create_and_a_bad_filter_send_nothing(
    invoke: Invoke, toggl_sim: TogglSimulator, callback: str
) -> None:
    before = len(toggl_sim.requests)
    declined = invoke("create", callback, "-d", "no", input="n\n")
    assert declined.exit_code != 0
    assert "create the enabled webhook subscription 'no' sending time_entry:*" in declined.output
    bad = invoke("create", callback, "-d", "bad", "-e", "time_entry:touched", "--yes")
    assert bad.exit_code == 2
    assert "is not an event filter" in bad.output
    assert len(toggl_sim.requests) == before


def test_the_help_says_when_a_secret_is_printed(invoke: Invoke) -> None:
    result = invoke("create", "--help")
    assert result.exit_code == 0
    assert "printed this once" in result.output
    assert "never printed" in result.output
    commands = invoke("--help").output
    for name in ("list", "create", "enable", "disable", "delete", "ping", "deliveries"):
        assert name in commands
