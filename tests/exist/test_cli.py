"""`timebridge exist …` against the simulator: login (token and OAuth), attributes, values."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from typer.testing import CliRunner, Result

from timebridge.cli import app
from timebridge.clock import FakeClock
from timebridge.fakes.exist import ExistSimulator, SimUser
from timebridge.retry import RetryPolicy

from .conftest import CLIENT_ID, CLIENT_SECRET

Invoke = Callable[..., Result]
DAY = date(2026, 3, 9)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return tmp_path / "config.toml"


@pytest.fixture
def outputs() -> list[str]:
    return []


@pytest.fixture
def invoke(
    api_url: str,
    config_file: Path,
    outputs: list[str],
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> Invoke:
    monkeypatch.setattr("timebridge.cli.exist.CLOCK", clock)
    monkeypatch.setattr("timebridge.cli.exist.RETRY", RetryPolicy.testing())
    runner = CliRunner()
    env = {
        "EXIST_BASE_URL": api_url,
        "EXIST_TOKEN": "",
        "EXIST_OAUTH_BASE_URL": "",
        "EXIST_CLIENT_ID": "",
        "EXIST_CLIENT_SECRET": "",
        "TIMEBRIDGE_CONFIG": str(config_file),
        "COLUMNS": "200",
    }

    def run(*args: str, input: str | None = None, **overrides: str) -> Result:
        result = runner.invoke(app, ["exist", *args], input=input, env={**env, **overrides})
        outputs.append(result.output)
        return result

    return run


@pytest.fixture
def secrets_seen(config_file: Path) -> list[str]:
    """Every secret a test handles; none may appear in any output."""
    return [CLIENT_SECRET]


@pytest.fixture(autouse=True)
def _no_secret_is_ever_printed(
    outputs: list[str], secrets_seen: list[str], config_file: Path
) -> Iterator[None]:
    yield
    if config_file.exists():
        section = tomllib.loads(config_file.read_text()).get("exist", {})
        secrets_seen += [section.get("access_token", ""), section.get("refresh_token", "")]
    for output in outputs:
        for secret in secrets_seen:
            if secret:
                assert secret not in output


def json_of(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def saved(config_file: Path) -> dict[str, str]:
    section: dict[str, str] = tomllib.loads(config_file.read_text())["exist"]
    return section


def test_login_with_a_personal_token_saves_it_hidden(
    invoke: Invoke, personal_token: str, config_file: Path, secrets_seen: list[str]
) -> None:
    secrets_seen.append(personal_token)
    result = invoke("login", input=f"{personal_token}\n")
    assert result.exit_code == 0, result.output
    assert "Logged in to Exist as alice (Europe/Berlin)" in result.stdout
    assert saved(config_file)["access_token"] == personal_token
    assert stat.S_IMODE(os.stat(config_file).st_mode) == 0o600
    # The saved token is used when none is given.
    assert json_of(invoke("profile", "--json"))["username"] == "alice"


def test_login_with_a_bad_token_exits_3_and_saves_nothing(
    invoke: Invoke, user: SimUser, config_file: Path
) -> None:
    result = invoke("login", "--token", "not-a-real-token")
    assert result.exit_code == 3
    assert "authentication failed" in result.output
    assert "not-a-real-token" not in result.output
    assert not config_file.exists()


def test_no_token_anywhere_is_a_usage_error(invoke: Invoke) -> None:
    result = invoke("attributes")
    assert result.exit_code == 2
    assert "no Exist token" in result.output


def test_attributes_as_table_and_json(
    invoke: Invoke, personal_token: str, exist_sim: ExistSimulator, user: SimUser
) -> None:
    exist_sim.add_attribute(user.username, template="tv_min", owner="timebridge")
    exist_sim.add_attribute(user.username, template="productive_min", owner="rescuetime")
    listed = json_of(invoke("attributes", "--json", EXIST_TOKEN=personal_token))
    assert isinstance(listed, list)
    assert [a["name"] for a in listed] == ["productive_min", "tv_min"]
    owned = json_of(invoke("attributes", "--owned", "--json", EXIST_TOKEN=personal_token))
    assert [a["name"] for a in owned] == ["tv_min"]
    table = invoke("--token", personal_token, "attributes")
    assert table.exit_code == 0
    assert "Time watching TV" in table.stdout
    assert "Rescuetime" in table.stdout


def test_values_as_json_and_table(
    invoke: Invoke, personal_token: str, exist_sim: ExistSimulator, user: SimUser
) -> None:
    exist_sim.add_attribute(user.username, template="tv_min", owner="timebridge")
    exist_sim.set_value(user.username, "tv_min", DAY, 95)
    exist_sim.set_value(user.username, "tv_min", DAY - timedelta(days=2), 30)
    exist_sim.set_value(user.username, "tv_min", DAY - timedelta(days=40), 1)
    found = json_of(
        invoke(
            "values",
            "tv_min",
            "--days",
            "3",
            "--until",
            "2026-03-09",
            "--json",
            EXIST_TOKEN=personal_token,
        )
    )
    assert found == [
        {"date": "2026-03-09", "value": 95},
        {"date": "2026-03-08", "value": None},
        {"date": "2026-03-07", "value": 30},
    ]
    # Without --until: the user's today (2026-03-10 in Berlin) and 13 days before.
    recent = json_of(invoke("values", "tv_min", "--json", EXIST_TOKEN=personal_token))
    assert isinstance(recent, list)
    assert len(recent) == 14
    assert recent[0]["date"] == "2026-03-10"
    table = invoke("values", "tv_min", "--days", "2", EXIST_TOKEN=personal_token)
    assert table.exit_code == 0
    assert "2026-03-09" in table.stdout and "95" in table.stdout


def test_unknown_attribute_exits_5(invoke: Invoke, personal_token: str) -> None:
    result = invoke("values", "nope", EXIST_TOKEN=personal_token)
    assert result.exit_code == 5
    assert "not found" in result.output


def test_rate_limited_exits_4_with_the_wait(
    invoke: Invoke, personal_token: str, exist_sim: ExistSimulator
) -> None:
    exist_sim.faults.add(
        path="/api/2/attributes/*", status=429, headers={"Retry-After": "1800"}, times=1
    )
    result = invoke("attributes", EXIST_TOKEN=personal_token)
    assert result.exit_code == 4
    assert "rate limit" in result.output
    assert "30 min" in result.output


def test_server_trouble_exits_6(
    invoke: Invoke, personal_token: str, exist_sim: ExistSimulator
) -> None:
    exist_sim.faults.add(path="/api/2/attributes/*", status=503)
    result = invoke("attributes", EXIST_TOKEN=personal_token)
    assert result.exit_code == 6


def test_expired_token_exits_3(invoke: Invoke, personal_token: str, clock: FakeClock) -> None:
    clock.advance(timedelta(days=366))
    result = invoke("attributes", EXIST_TOKEN=personal_token)
    assert result.exit_code == 3
    assert "expired" in result.output


@pytest.fixture
def browser(
    monkeypatch: pytest.MonkeyPatch, user: SimUser, oauth_client: object
) -> Callable[[str], None]:
    """Stands in for the user's browser: clicks a button on Exist's authorize page."""
    decisions = {"decision": "allow"}

    def open_page(url: str) -> bool:
        with httpx.Client(follow_redirects=False) as client:
            page = client.get(url)
            assert page.status_code == 200
            form = {key: value[0] for key, value in parse_qs(urlsplit(url).query).items()}
            answer = client.post(
                url.split("?")[0],
                data={**form, "username": user.username, "decision": decisions["decision"]},
            )
            client.get(answer.headers["location"])
        return True

    monkeypatch.setattr("timebridge.cli._exist_session.webbrowser.open", open_page)

    def choose(decision: str) -> None:
        decisions["decision"] = decision

    return choose


def _oauth_login(invoke: Invoke, *extra: str) -> Result:
    return invoke(
        "login",
        "--oauth",
        "--client-id",
        CLIENT_ID,
        "--port",
        "0",
        "--timeout",
        "10",
        *extra,
        input=f"{CLIENT_SECRET}\n",
    )


def test_oauth_login_saves_the_pair_and_the_client(
    invoke: Invoke, browser: Callable[[str], None], config_file: Path
) -> None:
    result = _oauth_login(invoke)
    assert result.exit_code == 0, result.output
    assert "Logged in to Exist as alice" in result.stdout
    assert "/oauth2/authorize?" in result.output
    section = saved(config_file)
    assert section["refresh_token"]
    assert section["client_id"] == CLIENT_ID
    assert section["client_secret"] == CLIENT_SECRET
    assert set(section["scope"].split()) == {
        "productivity_read",
        "productivity_write",
        "media_read",
        "media_write",
    }
    assert json_of(invoke("profile", "--json"))["timezone"] == "Europe/Berlin"


def test_oauth_login_refused_in_the_browser_exits_3(
    invoke: Invoke, browser: Callable[[str], None], config_file: Path
) -> None:
    browser("deny")
    result = _oauth_login(invoke)
    assert result.exit_code == 3
    assert "access_denied" in result.output
    assert not config_file.exists()


def test_a_rotated_pair_is_saved_back_to_the_config_file(
    invoke: Invoke,
    browser: Callable[[str], None],
    config_file: Path,
    secrets_seen: list[str],
    api_url: str,
) -> None:
    assert _oauth_login(invoke).exit_code == 0
    first = saved(config_file)
    secrets_seen += [first["access_token"], first["refresh_token"]]
    # Make the saved access token stale: the next command gets a 401 and refreshes.
    text = config_file.read_text().replace(first["access_token"], "stale-access-token")
    config_file.write_text(text)
    assert invoke("attributes", "--json").exit_code == 0
    second = saved(config_file)
    assert second["access_token"] not in (first["access_token"], "stale-access-token")
    assert second["refresh_token"] != first["refresh_token"]
    # And Exist no longer takes the old refresh token.
    answer = httpx.post(
        api_url.replace("/api/2/", "/oauth2/access_token"),
        data={
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_values_pages_through_as_many_days_as_asked(
    invoke: Invoke, personal_token: str, exist_sim: ExistSimulator, user: SimUser
) -> None:
    exist_sim.add_attribute(user.username, template="tv_min", owner="timebridge")
    exist_sim.set_value(user.username, "tv_min", DAY - timedelta(days=119), 7)
    found = json_of(
        invoke(
            "values",
            "tv_min",
            "--days",
            "110",
            "--until",
            "2026-03-09",
            "--json",
            EXIST_TOKEN=personal_token,
        )
    )
    assert len(found) == 110
    assert found[-1]["date"] == (DAY - timedelta(days=109)).isoformat()


def test_values_say_when_exist_has_fewer_days_than_asked(
    invoke: Invoke, personal_token: str, exist_sim: ExistSimulator, user: SimUser
) -> None:
    exist_sim.add_attribute(user.username, template="tv_min", owner="timebridge")
    exist_sim.set_value(user.username, "tv_min", DAY - timedelta(days=119), 7)
    result = invoke(
        "values", "tv_min", "--days", "150", "--until", "2026-03-09", EXIST_TOKEN=personal_token
    )
    assert result.exit_code == 0, result.output
    first = (DAY - timedelta(days=119)).isoformat()
    assert f"Exist has tv_min from {first} on: 120 of the 150 days" in result.stderr
    assert "tv_min, last 120 days" in result.stdout
    assert first in result.stdout


def test_profile_shows_the_local_time_to_the_minute(invoke: Invoke, personal_token: str) -> None:
    table = invoke("profile", EXIST_TOKEN=personal_token)
    assert table.exit_code == 0, table.output
    assert "2026-03-10 13:00" in table.stdout  # noon UTC, in Berlin
    assert "13:00:00" not in table.stdout
