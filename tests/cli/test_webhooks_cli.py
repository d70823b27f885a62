"""`timebridge webhooks on|off|status|check`: the service served on its public URL, the Toggl
simulator subscribing and delivering to it over real HTTP, the Exist simulator receiving the
syncs the deliveries start."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner, Result

from tests.webhooks.conftest import ZONE, free_socket, serve_app
from timebridge.cli import app
from timebridge.clock import FakeClock
from timebridge.config import Settings
from timebridge.exist import ExistTokens
from timebridge.fakes.exist import ExistSimulator, SimClient
from timebridge.fakes.toggl import SimUser, TogglSimulator, WebhookSettings
from timebridge.retry import RetryPolicy
from timebridge.store import ProjectMapping, open_store
from timebridge.web import create_app

#: A schedule that never comes during a test: the runs seen here are the webhooks' own.
NEVER = "0 3 29 2 *"


@pytest.fixture
def toggl_sim(clock: FakeClock) -> Iterator[TogglSimulator]:
    simulator = TogglSimulator(clock, webhook_settings=WebhookSettings.fast())
    yield simulator
    simulator.webhooks.close()


@pytest.fixture
def site() -> Iterator[socket.socket]:
    """The service's socket, bound (its port is in the public URL) but not yet serving."""
    sock = free_socket()
    yield sock
    sock.close()


@pytest.fixture
def public_url(site: socket.socket) -> str:
    return f"http://127.0.0.1:{site.getsockname()[1]}"


@pytest.fixture
def settings(
    tmp_path: Path,
    public_url: str,
    toggl_url: str,
    exist_api_url: str,
    exist_oauth_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Settings:
    """The environment both `timebridge serve` and the commands read."""
    for name, value in {
        "TIMEBRIDGE_DATA_DIR": str(tmp_path),
        "TIMEBRIDGE_PUBLIC_URL": public_url,
        "TIMEBRIDGE_TOGGL_BASE_URL": toggl_url,
        "TIMEBRIDGE_EXIST_BASE_URL": exist_api_url,
        "TIMEBRIDGE_EXIST_OAUTH_BASE_URL": exist_oauth_url,
        "TIMEBRIDGE_WEBHOOK_COALESCE_SECONDS": "0.3",
        "TIMEBRIDGE_SYNC_CRON": NEVER,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TIMEBRIDGE_DATABASE_URL", raising=False)
    return Settings()


@dataclass(frozen=True)
class Person:
    """An account connected to both simulators, with Series → tv_min mapped."""

    account_id: int
    toggl: SimUser
    exist_name: str
    series: int


def _connect(
    settings: Settings,
    clock: FakeClock,
    toggl_sim: TogglSimulator,
    exist_sim: ExistSimulator,
    exist_client: SimClient,
    *,
    toggl: bool = True,
    toggl_origin: str | None = None,
) -> Person:
    user = toggl_sim.add_user(
        api_token="toggl-alice-0123456789", timezone="Europe/Berlin", plan="premium"
    )
    series = toggl_sim.add_project(user.default_workspace_id, "Series")
    exist_sim.add_user("alice", timezone="Europe/Berlin")
    exist_token = exist_sim.issue_personal_token("alice", exist_client.client_id)

    async def go() -> int:
        async with await open_store(settings, clock=clock) as store:
            account = await store.accounts.create("alice@example.com")
            if toggl:
                await store.toggl_connections.create(
                    account.id,
                    user.api_token,
                    toggl_user_id=user.id,
                    origin=toggl_origin or settings.toggl_base_url,
                )
            await store.exist_connections.save(
                account.id,
                ExistTokens(access_token=SecretStr(exist_token), scope=""),
                origin=settings.exist_base_url,
            )
            await store.mappings.replace(
                account.id,
                [ProjectMapping(user.default_workspace_id, series.id, "Series", "tv_min")],
            )
            return account.id

    return Person(asyncio.run(go()), user, "alice", series.id)


ConnectPerson = Callable[..., Person]


@pytest.fixture
def connect(
    settings: Settings,
    clock: FakeClock,
    toggl_sim: TogglSimulator,
    exist_sim: ExistSimulator,
    exist_oauth_client: SimClient,
) -> ConnectPerson:
    def make(*, toggl: bool = True, toggl_origin: str | None = None) -> Person:
        return _connect(
            settings,
            clock,
            toggl_sim,
            exist_sim,
            exist_oauth_client,
            toggl=toggl,
            toggl_origin=toggl_origin,
        )

    return make


Serving = Callable[[], AbstractContextManager[None]]


@pytest.fixture
def serving(settings: Settings, clock: FakeClock, site: socket.socket) -> Serving:
    """`timebridge serve` on the public URL, for the duration of a `with` block."""

    def start() -> AbstractContextManager[None]:
        return serve_app(create_app(settings, clock=clock, retry=RetryPolicy.testing()), site)

    return start


def webhooks(*args: str) -> Result:
    return CliRunner().invoke(app, ["webhooks", *args])


def eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.05)


def exist_minutes(exist_sim: ExistSimulator, person: Person, day: date) -> int:
    try:
        value = exist_sim.stored_values(person.exist_name, "tv_min").get(day)
    except ValueError:  # the attribute is not acquired yet: no run has written
        return 0
    return int(value or 0)


def test_on_subscribes_and_then_a_stopped_timer_reaches_exist_within_seconds(
    connect: ConnectPerson,
    serving: Serving,
    public_url: str,
    toggl_sim: TogglSimulator,
    exist_sim: ExistSimulator,
    clock: FakeClock,
) -> None:
    alice = connect()
    with serving():
        turned_on = webhooks("on")
        assert turned_on.exit_code == 0, turned_on.output
        assert f"Webhooks are on for account {alice.account_id}" in turned_on.stdout
        row = next(line for line in turned_on.stdout.splitlines() if "active" in line)
        assert str(alice.toggl.default_workspace_id) in row
        assert "within seconds" in turned_on.stderr
        [made] = toggl_sim.webhooks.subscriptions(alice.toggl.default_workspace_id)
        assert made.enabled and made.validated_at is not None
        assert made.url_callback.startswith(f"{public_url}/hooks/toggl/")
        # The callback's token is a secret of the service: never printed.
        assert made.url_callback not in turned_on.output

        running = toggl_sim.add_time_entry(
            alice.toggl,
            start=clock.now() - timedelta(minutes=50),
            duration=-1,
            project_id=alice.series,
        )
        toggl_sim.world.stop_time_entry(
            alice.toggl.id, alice.toggl.default_workspace_id, running.id
        )
        today = clock.now().astimezone(ZONE).date()
        eventually(lambda: exist_minutes(exist_sim, alice, today) == 50)

        shown = webhooks("status")
        assert shown.exit_code == 0, shown.output
        assert "active" in shown.stdout
        last_event = next(line for line in shown.stdout.splitlines() if "Last event:" in line)
        assert "Last event: —" not in last_event, "the delivery was recorded"

        as_json = webhooks("status", "--json")
        assert as_json.exit_code == 0, as_json.output
        data = json.loads(as_json.stdout)
        assert data["on"] is True and data["account"] == alice.account_id
        [workspace] = data["workspaces"]
        assert workspace["state"] == "active"
        assert workspace["validated_at"] is not None
        assert workspace["failed_deliveries"] == 0
        assert data["last_event_at"] is not None and data["checked_at"] is not None


def test_off_removes_the_subscription_at_toggl_and_status_says_so(
    connect: ConnectPerson, serving: Serving, toggl_sim: TogglSimulator
) -> None:
    alice = connect()
    with serving():
        assert webhooks("on").exit_code == 0
        assert len(toggl_sim.webhooks.subscriptions()) == 1

        turned_off = webhooks("off", "--account", str(alice.account_id))
        assert turned_off.exit_code == 0, turned_off.output
        assert "Webhooks are off" in turned_off.stdout
        assert toggl_sim.webhooks.subscriptions() == []

        shown = webhooks("status")
        assert shown.exit_code == 0, shown.output
        assert "Webhooks are off" in shown.stdout
        assert "timebridge webhooks on" in shown.stdout
        again = webhooks("off")
        assert again.exit_code == 0
        assert "were not on" in again.stdout


def test_on_while_the_service_is_down_shows_toggls_words_and_what_to_do(
    connect: ConnectPerson, serving: Serving, public_url: str, toggl_sim: TogglSimulator
) -> None:
    alice = connect()

    turned_on = webhooks("on")  # nothing answers at the public URL yet

    assert turned_on.exit_code == 1, turned_on.output
    row = next(line for line in turned_on.stdout.splitlines() if "failing" in line)
    assert "URL endpoint" in row, "Toggl's own words"
    assert "timebridge serve" in turned_on.stderr
    assert public_url in turned_on.stderr
    assert "Traceback" not in turned_on.output
    assert toggl_sim.webhooks.subscriptions() == []
    as_json = webhooks("status", "--json")
    assert json.loads(as_json.stdout)["workspaces"][0]["state"] == "failing"

    with serving():
        checked = webhooks("check")  # every account's, as the daily check does

    assert checked.exit_code == 0, checked.output
    assert "Checked 1 webhook endpoints (0 failed" in checked.stdout
    assert "active" in checked.stdout
    [made] = toggl_sim.webhooks.subscriptions(alice.toggl.default_workspace_id)
    assert made.validated_at is not None


def test_check_of_one_account_prints_json(
    connect: ConnectPerson, serving: Serving, toggl_sim: TogglSimulator
) -> None:
    alice = connect()
    with serving():
        assert webhooks("on").exit_code == 0
        [made] = toggl_sim.webhooks.subscriptions()
        made.enabled = False  # as if someone had disabled it at Toggl

        checked = webhooks("check", "--account", str(alice.account_id), "--json")

    assert checked.exit_code == 0, checked.output
    [endpoint] = json.loads(checked.stdout)["endpoints"]
    assert endpoint["account"] == alice.account_id
    assert endpoint["workspaces"][0]["state"] == "active"
    assert made.enabled, "the check enabled it again"


def test_no_account_is_exit_5(settings: Settings) -> None:
    for command in ("on", "off", "status", "check"):
        result = webhooks(command, "--account", "7") if command == "check" else webhooks(command)
        assert result.exit_code == 5, (command, result.output)
        assert "account" in result.stderr
        assert "Traceback" not in result.output


def test_no_toggl_connection_is_exit_5(connect: ConnectPerson) -> None:
    alice = connect(toggl=False)
    result = webhooks("on")
    assert result.exit_code == 5, result.output
    assert f"account {alice.account_id} has no Toggl Track connection" in result.stderr
    shown = webhooks("status")
    assert shown.exit_code == 0
    assert "No Toggl Track connection" in shown.stdout


def test_no_public_url_is_exit_2_naming_the_setting(
    connect: ConnectPerson, monkeypatch: pytest.MonkeyPatch, toggl_sim: TogglSimulator
) -> None:
    connect()
    monkeypatch.delenv("TIMEBRIDGE_PUBLIC_URL")
    for command in ("on", "check"):
        result = webhooks(command)
        assert result.exit_code == 2, (command, result.output)
        assert "TIMEBRIDGE_PUBLIC_URL" in result.stderr
    shown = webhooks("status")
    assert shown.exit_code == 0
    assert "TIMEBRIDGE_PUBLIC_URL" in shown.stdout
    assert toggl_sim.webhooks.subscriptions() == []


def test_a_loopback_public_url_for_the_real_toggl_is_exit_2(connect: ConnectPerson) -> None:
    connect(toggl_origin="https://api.track.toggl.com")
    result = webhooks("on")
    assert result.exit_code == 2, result.output
    assert "Toggl Track cannot reach" in result.stderr
