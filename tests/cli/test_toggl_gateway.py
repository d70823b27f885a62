"""`timebridge toggl …` through a gateway (`--gateway URL --key KEY [--connection ID]`, or
`TIMEBRIDGE_GATEWAY_URL` / `_KEY` / `_CONNECTION`): every command of `test_toggl_cli.py` runs
again here with no Toggl token anywhere, the key never printed.

The gateway here is a stand-in served over real HTTP in front of the Toggl simulator: it checks
the bearer key, picks a connection by `Timebridge-Connection`/`Maton-Connection` (else the
default), injects that connection's Toggl token, passes Toggl's answer back without `api_token`,
and answers for itself with the gateway's JSON errors. It holds the contract the CLI relies on
(`shared/DESIGN.md`, "The gateway"), no more; the real gateway is tested in `tests/gateway/`.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from typer.testing import CliRunner, Result

from tests.cli.test_toggl_cli import (
    Invoke,
    json_of,
    sent,
    test_a_declined_write_spends_nothing,
    test_a_second_workspace_command_spends_no_me,
    test_bad_arguments_are_usage_errors,
    test_client_commands,
    test_entries_table_shows_project_names_in_the_users_time_zone,
    test_entry_commands_end_to_end,
    test_exhausted_quota_says_when_it_resets,
    test_me_as_table_and_json,
    test_not_found_exit_code,
    test_project_commands,
    test_tag_commands,
    test_workspaces_users_and_quota,
    test_writes_ask_first_and_a_no_changes_nothing,
)
from timebridge.cli import app
from timebridge.clock import FakeClock
from timebridge.fakes import serve_in_thread
from timebridge.fakes.toggl import SimUser, TogglSimulator

KEY = "tb_4fJq9ZrX2mWb8KcT1nLp7YdVhE3sGa6UoQiR0zNe5BxC_k3x9"
OTHER_KEY = "tb_nope0000000000000000000000000000000000000000000"

# The commands of the direct CLI's tests, run here through the gateway (their fixtures are this
# module's: `invoke` goes through the gateway).
__all__ = [
    "test_a_declined_write_spends_nothing",
    "test_a_second_workspace_command_spends_no_me",
    "test_bad_arguments_are_usage_errors",
    "test_client_commands",
    "test_entries_table_shows_project_names_in_the_users_time_zone",
    "test_entry_commands_end_to_end",
    "test_exhausted_quota_says_when_it_resets",
    "test_me_as_table_and_json",
    "test_not_found_exit_code",
    "test_project_commands",
    "test_tag_commands",
    "test_workspaces_users_and_quota",
    "test_writes_ask_first_and_a_no_changes_nothing",
]


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _without_tokens(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_tokens(v) for k, v in value.items() if k != "api_token"}
    if isinstance(value, list):
        return [_without_tokens(item) for item in value]
    return value


class StandInGateway:
    """A gateway with one key and some connections (id → Toggl token), the first the default."""

    def __init__(self, toggl_origin: str, key: str, connections: dict[str, str]) -> None:
        self.origin = toggl_origin
        self.key = key
        self.connections = connections
        #: (connection id, method, path) of every request forwarded to Toggl.
        self.forwarded: list[tuple[str, str, str]] = []
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        self.app = Starlette(
            routes=[Route("/toggl-track/{path:path}", self.proxy, methods=methods)]
        )

    async def proxy(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.key}":
            return _error(401, "unauthorized", "Invalid API key.")
        named = request.headers.get("timebridge-connection") or request.headers.get(
            "maton-connection"
        )
        connection = named or next(iter(self.connections))
        if connection not in self.connections:
            return _error(404, "not_found", "No such Toggl Track connection.")
        path = request.path_params["path"]
        if not path.startswith("api/v9/"):
            return _error(400, "invalid_path", "Not a Toggl Track API path.")
        self.forwarded.append((connection, request.method, f"/{path}"))
        basic = base64.b64encode(f"{self.connections[connection]}:api_token".encode()).decode()
        headers = {"Authorization": f"Basic {basic}"}
        if "content-type" in request.headers:
            headers["Content-Type"] = request.headers["content-type"]
        async with httpx.AsyncClient() as toggl:
            answer = await toggl.request(
                request.method,
                f"{self.origin}/{path}",
                params=str(request.query_params),
                content=await request.body(),
                headers=headers,
            )
        passed = {
            name: value
            for name, value in answer.headers.items()
            if name.lower() in ("content-type", "retry-after")
            or name.lower().startswith("x-toggl-quota")
        }
        content = answer.content
        if b"api_token" in content:
            content = json.dumps(_without_tokens(json.loads(content))).encode()
        return Response(content, status_code=answer.status_code, headers=passed)


@pytest.fixture
def bob(toggl_sim: TogglSimulator) -> SimUser:
    return toggl_sim.add_user(
        api_token="tok-bob-0987654321", fullname="Bob", timezone="Asia/Tokyo", plan="premium"
    )


@pytest.fixture
def gateway(
    toggl_url: str, toggl_user: SimUser, bob: SimUser
) -> Iterator[tuple[StandInGateway, str]]:
    standin = StandInGateway(
        toggl_url.removesuffix("/api/v9"),
        KEY,
        {"conn_alice": toggl_user.api_token, "conn_bob": bob.api_token},
    )
    with serve_in_thread(standin.app) as server:
        yield standin, server.url


@pytest.fixture
def outputs() -> list[str]:
    return []


@pytest.fixture
def invoke(
    gateway: tuple[StandInGateway, str],
    tmp_path: Path,
    outputs: list[str],
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> Invoke:
    """`timebridge toggl …` through the gateway; no Toggl token or base URL is set anywhere."""
    monkeypatch.setattr("timebridge.cli.toggl.CLOCK", clock)
    runner = CliRunner()
    env = {
        "TIMEBRIDGE_GATEWAY_URL": gateway[1],
        "TIMEBRIDGE_GATEWAY_KEY": KEY,
        "TIMEBRIDGE_GATEWAY_CONNECTION": "",
        "TOGGL_API_TOKEN": "",
        "TOGGL_BASE_URL": "",
        "TIMEBRIDGE_CONFIG": str(tmp_path / "config.toml"),
        "TOGGL_WORKSPACE_ID": "",
        "COLUMNS": "200",
    }

    def run(
        *args: str, input: str | None = None, env_overrides: dict[str, str] | None = None
    ) -> Result:
        result = runner.invoke(
            app, ["toggl", *args], input=input, env={**env, **(env_overrides or {})}
        )
        outputs.append(result.output)
        return result

    return run


@pytest.fixture(autouse=True)
def _secrets_never_printed(
    outputs: list[str], toggl_user: SimUser, bob: SimUser, tmp_path: Path
) -> Iterator[None]:
    yield
    for output in outputs:
        for secret in (KEY, toggl_user.api_token, bob.api_token):
            assert secret not in output
    cache = tmp_path / "toggl-cache.json"
    if cache.exists():
        assert KEY not in cache.read_text()


def test_every_request_went_through_the_gateway(
    invoke: Invoke, gateway: tuple[StandInGateway, str], toggl_sim: TogglSimulator
) -> None:
    assert json_of(invoke("me", "--json"))["fullname"] == "Alice"
    assert json_of(invoke("tags", "list", "--json")) == []
    standin = gateway[0]
    assert [(c, m) for c, m, _ in standin.forwarded] == [("conn_alice", "GET")] * 2
    assert len(sent(toggl_sim)) == 2


def test_flags_instead_of_the_environment(
    invoke: Invoke, gateway: tuple[StandInGateway, str]
) -> None:
    result = invoke(
        "--gateway",
        gateway[1],
        "--key",
        KEY,
        "me",
        "--json",
        env_overrides={"TIMEBRIDGE_GATEWAY_URL": "", "TIMEBRIDGE_GATEWAY_KEY": ""},
    )
    assert json_of(result)["fullname"] == "Alice"


def test_a_named_connection_reaches_that_connections_account(
    invoke: Invoke, gateway: tuple[StandInGateway, str], bob: SimUser
) -> None:
    by_flag = json_of(invoke("--connection", "conn_bob", "me", "--json"))
    assert (by_flag["fullname"], by_flag["timezone"]) == ("Bob", "Asia/Tokyo")
    by_env = invoke("me", "--json", env_overrides={"TIMEBRIDGE_GATEWAY_CONNECTION": "conn_bob"})
    assert json_of(by_env)["id"] == bob.id
    # Each connection's account is remembered apart: Alice's workspace is not Bob's.
    alice_tags = invoke("tags", "list")
    bob_tags = invoke("--connection", "conn_bob", "tags", "list")
    assert alice_tags.exit_code == bob_tags.exit_code == 0
    workspaces = {path.split("/")[4] for _, _, path in gateway[0].forwarded if "/tags" in path}
    assert workspaces == {str(bob.default_workspace_id), str(alice_workspace(gateway))}


def alice_workspace(gateway: tuple[StandInGateway, str]) -> str:
    alice_paths = [p for c, _, p in gateway[0].forwarded if c == "conn_alice" and "/tags" in p]
    return alice_paths[0].split("/")[4]


def test_a_refused_key_is_one_line_exit_3_and_never_printed(invoke: Invoke) -> None:
    result = invoke("me", env_overrides={"TIMEBRIDGE_GATEWAY_KEY": OTHER_KEY})
    assert result.exit_code == 3
    assert "the gateway refused the key (Invalid API key.)" in result.stderr
    assert "TIMEBRIDGE_GATEWAY_KEY" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert OTHER_KEY not in result.output


def test_an_unknown_connection_is_not_found(invoke: Invoke) -> None:
    result = invoke("--connection", "conn_nobody", "me")
    assert result.exit_code == 5
    assert "No such Toggl Track connection." in result.stderr


def test_a_key_without_a_gateway_and_a_gateway_without_a_key_are_usage_errors(
    invoke: Invoke,
) -> None:
    no_url = invoke("me", env_overrides={"TIMEBRIDGE_GATEWAY_URL": ""})
    assert no_url.exit_code == 2
    assert "give its URL too" in no_url.stderr
    no_key = invoke("me", env_overrides={"TIMEBRIDGE_GATEWAY_KEY": ""})
    assert no_key.exit_code == 2
    assert "no gateway key" in no_key.stderr
    bad_url = invoke("me", env_overrides={"TIMEBRIDGE_GATEWAY_URL": "gateway.test"})
    assert bad_url.exit_code == 2
    assert "not an http(s) URL" in bad_url.stderr


def test_a_gateway_that_is_down_is_unavailable(invoke: Invoke) -> None:
    result = invoke("me", env_overrides={"TIMEBRIDGE_GATEWAY_URL": "http://127.0.0.1:9"})
    assert result.exit_code == 6
    assert "no answer from the Timebridge gateway at http://127.0.0.1:9" in result.stderr


def test_the_gateway_wins_over_a_token_in_the_environment(
    invoke: Invoke, gateway: tuple[StandInGateway, str], toggl_user: SimUser
) -> None:
    result = invoke("me", "--json", env_overrides={"TOGGL_API_TOKEN": toggl_user.api_token})
    assert json_of(result)["id"] == toggl_user.id
    assert len(gateway[0].forwarded) == 1


NO_GATEWAY_ENV = {"TIMEBRIDGE_GATEWAY_URL": "", "TIMEBRIDGE_GATEWAY_KEY": ""}


def test_login_through_a_gateway_saves_it_privately_for_later_commands(
    invoke: Invoke, gateway: tuple[StandInGateway, str], tmp_path: Path, bob: SimUser
) -> None:
    result = invoke("--connection", "conn_bob", "login")
    assert result.exit_code == 0, result.output
    assert f"Logged in as Bob <{bob.email}> through the gateway {gateway[1]}" in result.stdout
    config = tmp_path / "config.toml"
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    saved = tomllib.loads(config.read_text())["toggl"]
    assert saved["gateway_url"] == gateway[1]
    assert saved["gateway_key"] == KEY
    assert saved["gateway_connection"] == "conn_bob"
    assert "api_token" not in saved
    # Nothing in the environment now: the saved gateway, key and connection are used.
    again = invoke("me", "--json", env_overrides=NO_GATEWAY_ENV)
    assert json_of(again)["fullname"] == "Bob"
    assert [c for c, _, _ in gateway[0].forwarded] == ["conn_bob", "conn_bob"]


def test_login_with_a_token_goes_straight_to_toggl_again(
    invoke: Invoke, gateway: tuple[StandInGateway, str], toggl_url: str, toggl_user: SimUser
) -> None:
    assert invoke("login").exit_code == 0
    direct = {**NO_GATEWAY_ENV, "TOGGL_BASE_URL": toggl_url}
    result = invoke("login", "--token", toggl_user.api_token, env_overrides=direct)
    assert result.exit_code == 0, result.output
    assert "token saved" in result.stdout
    forwarded = len(gateway[0].forwarded)
    assert json_of(invoke("me", "--json", env_overrides=direct))["id"] == toggl_user.id
    assert len(gateway[0].forwarded) == forwarded, "no longer through the gateway"


def test_login_with_a_refused_key_saves_nothing(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("login", env_overrides={"TIMEBRIDGE_GATEWAY_KEY": OTHER_KEY})
    assert result.exit_code == 3
    assert not (tmp_path / "config.toml").exists()
