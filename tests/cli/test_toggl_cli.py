"""`timebridge toggl …` against the simulator: every command, tables, JSON, errors, exit codes."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from timebridge.cli import app
from timebridge.clock import FakeClock
from timebridge.fakes.toggl import SimUser, TogglSimulator

Invoke = Callable[..., Result]
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


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
def _token_never_printed(outputs: list[str], toggl_user: SimUser) -> object:
    yield
    for output in outputs:
        assert toggl_user.api_token not in output


def json_of(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_me_as_table_and_json(invoke: Invoke, toggl_user: SimUser) -> None:
    table = invoke("me")
    assert table.exit_code == 0
    assert "Alice" in table.stdout
    assert "Europe/Berlin" in table.stdout
    data = json_of(invoke("me", "--json"))
    assert isinstance(data, dict)
    assert data["id"] == toggl_user.id
    assert "api_token" not in data


def test_workspaces_users_and_quota(invoke: Invoke, toggl_user: SimUser) -> None:
    workspaces = json_of(invoke("workspaces", "--json"))
    assert [w["id"] for w in workspaces] == [toggl_user.default_workspace_id]
    assert "Premium" in invoke("workspaces").stdout
    users = json_of(invoke("users", "--json"))
    assert [u["fullname"] for u in users] == ["Alice"]
    quotas = json_of(invoke("quota", "--json"))
    assert {q["total"] for q in quotas} == {30, 600}
    assert "Resets in" in invoke("quota").stdout


def test_entry_commands_end_to_end(
    invoke: Invoke, toggl_sim: TogglSimulator, toggl_user: SimUser
) -> None:
    project = toggl_sim.add_project(toggl_user.default_workspace_id, "Deep work")
    added = json_of(
        invoke(
            "entries",
            "add",
            "--start",
            "2026-03-10T08:00:00+00:00",
            "--duration",
            "1h30m",
            "-d",
            "Report",
            "-p",
            str(project.id),
            "-t",
            "focus",
            "--yes",
            "--json",
        )
    )
    assert isinstance(added, dict)
    assert added["duration"] == 5400
    assert added["tags"] == ["focus"]
    entry_id = str(added["id"])

    assert json_of(invoke("entries", "get", entry_id, "--json"))["description"] == "Report"
    listed = json_of(
        invoke(
            "entries",
            "list",
            "--start",
            "2026-03-10T00:00:00+00:00",
            "--end",
            "2026-03-11T00:00:00+00:00",
            "--json",
        )
    )
    assert [e["id"] for e in listed] == [added["id"]]
    assert "Report" in invoke("entries", "list", "--days", "3").stdout

    updated = json_of(
        invoke("entries", "update", entry_id, "-d", "Final report", "--yes", "--json")
    )
    assert updated["description"] == "Final report"
    assert updated["project_id"] == project.id

    started = json_of(invoke("entries", "start", "Reading", "--yes", "--json"))
    assert started["stop"] is None
    current = json_of(invoke("entries", "current", "--json"))
    assert current["id"] == started["id"]
    stopped = json_of(invoke("entries", "stop", "--yes", "--json"))
    assert stopped["stop"] is not None
    assert "No time entry is running" in invoke("entries", "current").stdout
    assert json_of(invoke("entries", "current", "--json")) is None

    deleted = invoke("entries", "delete", entry_id, "--yes")
    assert deleted.exit_code == 0
    assert invoke("entries", "get", entry_id).exit_code == 5


def test_project_commands(invoke: Invoke, toggl_user: SimUser) -> None:
    created = json_of(
        invoke("projects", "create", "Movies", "--color", "#123456", "--yes", "--json")
    )
    project_id = str(created["id"])
    assert json_of(invoke("projects", "get", project_id, "--json"))["color"] == "#123456"
    renamed = json_of(
        invoke("projects", "update", project_id, "--name", "Films", "--yes", "--json")
    )
    assert renamed["name"] == "Films"
    archived = json_of(invoke("projects", "update", project_id, "--archived", "--yes", "--json"))
    assert archived["active"] is False
    assert json_of(invoke("projects", "list", "--json")) == []
    assert [
        p["name"] for p in json_of(invoke("projects", "list", "--active", "both", "--json"))
    ] == ["Films"]
    assert "Films" in invoke("projects", "list", "--active", "false").stdout
    assert invoke("projects", "delete", project_id, "--yes").exit_code == 0
    assert invoke("projects", "get", project_id).exit_code == 5


def test_client_commands(invoke: Invoke, toggl_sim: TogglSimulator, toggl_user: SimUser) -> None:
    created = json_of(invoke("clients", "create", "Acme", "--notes", "n", "--yes", "--json"))
    client_id = str(created["id"])
    toggl_sim.add_project(toggl_user.default_workspace_id, "Acme site", client_id=int(client_id))
    assert json_of(invoke("clients", "get", client_id, "--json"))["notes"] == "n"
    assert (
        json_of(invoke("clients", "update", client_id, "--name", "Acme Inc", "--yes", "--json"))[
            "name"
        ]
        == "Acme Inc"
    )
    archived = json_of(invoke("clients", "archive", client_id, "--yes", "--json"))
    assert len(archived["archived_project_ids"]) == 1
    assert json_of(invoke("clients", "list", "--json")) == []
    assert len(json_of(invoke("clients", "list", "--status", "archived", "--json"))) == 1
    restored = json_of(invoke("clients", "restore", client_id, "--all-projects", "--yes", "--json"))
    assert restored["archived"] is False
    assert "Acme Inc" in invoke("clients", "list").stdout
    assert invoke("clients", "delete", client_id, "--yes").exit_code == 0


def test_tag_commands(invoke: Invoke) -> None:
    created = json_of(invoke("tags", "create", "later", "--yes", "--json"))
    tag_id = str(created["id"])
    assert json_of(invoke("tags", "update", tag_id, "soon", "--yes", "--json"))["name"] == "soon"
    assert "soon" in invoke("tags", "list").stdout
    assert invoke("tags", "delete", tag_id, "--yes").exit_code == 0
    assert json_of(invoke("tags", "list", "--json")) == []


def test_writes_ask_first_and_a_no_changes_nothing(
    invoke: Invoke, toggl_sim: TogglSimulator, toggl_user: SimUser
) -> None:
    refused = invoke("tags", "create", "maybe", input="n\n")
    assert refused.exit_code == 1
    assert "About to create tag 'maybe'" in refused.output
    assert "Aborted" in refused.output
    assert toggl_sim.world.tags == {}
    accepted = invoke("tags", "create", "maybe", input="y\n")
    assert accepted.exit_code == 0
    assert [tag.name for tag in toggl_sim.world.tags.values()] == ["maybe"]


def test_bad_token_is_one_clear_line_and_exit_code_3(invoke: Invoke) -> None:
    result = invoke("me", env_overrides={"TOGGL_API_TOKEN": "wrong-token"})
    assert result.exit_code == 3
    assert "authentication failed" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "wrong-token" not in result.output


def test_missing_token_is_a_usage_error(invoke: Invoke) -> None:
    result = invoke("me", env_overrides={"TOGGL_API_TOKEN": ""})
    assert result.exit_code == 2
    assert "no Toggl API token" in result.stderr


def test_exhausted_quota_says_when_it_resets(
    invoke: Invoke, toggl_sim: TogglSimulator, clock: FakeClock
) -> None:
    for _ in range(30):
        assert invoke("me").exit_code == 0
    clock.advance(timedelta(minutes=25))
    result = invoke("me")
    assert result.exit_code == 4
    assert "resets in 35 min" in result.stderr


def test_not_found_exit_code(invoke: Invoke) -> None:
    result = invoke("entries", "get", "123456")
    assert result.exit_code == 5
    assert "not found" in result.stderr


def test_bad_arguments_are_usage_errors(invoke: Invoke) -> None:
    assert invoke("entries", "add", "--start", "yesterday", "--duration", "1h").exit_code == 2
    assert (
        invoke("entries", "add", "--start", "2026-03-10T08:00", "--duration", "soon").exit_code == 2
    )
    both = invoke(
        "entries",
        "add",
        "--start",
        "2026-03-10T08:00",
        "--duration",
        "1h",
        "--stop",
        "2026-03-10T09:00",
    )
    assert both.exit_code == 2
    assert invoke("entries", "update", "1").exit_code == 2
    assert invoke("projects", "list", "--active", "maybe").exit_code == 2


def test_login_checks_and_saves_the_token_privately(
    invoke: Invoke, toggl_user: SimUser, tmp_path: Path
) -> None:
    result = invoke(
        "login", env_overrides={"TOGGL_API_TOKEN": ""}, input=f"{toggl_user.api_token}\n"
    )
    assert result.exit_code == 0, result.output
    assert "Logged in as Alice" in result.stdout
    config = tmp_path / "config.toml"
    assert stat.S_IMODE(os.stat(config).st_mode) == 0o600
    assert toggl_user.api_token in config.read_text()
    again = invoke("me", "--json", env_overrides={"TOGGL_API_TOKEN": ""})
    assert json_of(again)["id"] == toggl_user.id


def test_login_with_a_bad_token_saves_nothing(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("login", "--token", "nope-nope", env_overrides={"TOGGL_API_TOKEN": ""})
    assert result.exit_code == 3
    assert not (tmp_path / "config.toml").exists()


# --- sparing Toggl's hourly quota -----------------------------------------------------------------


def sent(toggl_sim: TogglSimulator) -> list[str]:
    """The API requests the simulator answered, as `METHOD /path` (its request log)."""
    return [
        f"{r.method} {r.path.removeprefix('/api/v9')}"
        for r in toggl_sim.requests
        if r.path.startswith("/api/v9/")
    ]


def test_a_second_workspace_command_spends_no_me(
    invoke: Invoke, toggl_sim: TogglSimulator, toggl_user: SimUser, tmp_path: Path
) -> None:
    toggl_sim.add_project(toggl_user.default_workspace_id, "Series")
    assert "Series" in invoke("projects", "list").stdout
    assert "Series" in invoke("projects", "list").stdout
    assert json_of(invoke("tags", "list", "--json")) == []
    assert sent(toggl_sim).count("GET /me") == 1
    remembered = tmp_path / "toggl-cache.json"
    assert stat.S_IMODE(os.stat(remembered).st_mode) == 0o600
    assert toggl_user.api_token not in remembered.read_text()


def test_a_declined_write_spends_nothing(
    invoke: Invoke, toggl_sim: TogglSimulator, toggl_user: SimUser
) -> None:
    project = toggl_sim.add_project(toggl_user.default_workspace_id, "Series")
    declined = [
        ("entries", "start", "Reading", "--project", str(project.id)),
        ("entries", "add", "--start", "2026-03-10T08:00", "--duration", "1h"),
        ("entries", "update", "1", "-d", "Other"),
        ("entries", "stop"),
        ("entries", "delete", "1"),
        ("projects", "create", "Films"),
        ("projects", "update", str(project.id), "--name", "Shows"),
        ("projects", "delete", str(project.id)),
        ("clients", "create", "Acme"),
        ("clients", "update", "1", "--name", "Acme Inc"),
        ("clients", "archive", "1"),
        ("clients", "restore", "1"),
        ("clients", "delete", "1"),
        ("tags", "create", "maybe"),
        ("tags", "update", "1", "soon"),
        ("tags", "delete", "1"),
    ]
    for args in declined:
        result = invoke(*args, input="n\n")
        assert result.exit_code == 1, args
        assert "Aborted; nothing was changed" in result.output
    assert sent(toggl_sim) == []


def test_the_readme_walkthrough_spends_under_a_third_of_the_hourly_quota(
    invoke: Invoke, toggl_sim: TogglSimulator, toggl_user: SimUser
) -> None:
    project = toggl_sim.add_project(toggl_user.default_workspace_id, "Reading")
    for args in [
        ("me",),
        ("projects", "list"),
        ("entries", "list", "--days", "3"),
        ("quota",),
        ("entries", "start", "Reading", "--project", str(project.id), "--yes"),
        ("entries", "stop", "--yes"),
        ("entries", "list", "--days", "1", "--json"),
        ("clients", "create", "Acme", "--yes"),
        ("tags", "list"),
    ]:
        assert invoke(*args).exit_code == 0, args
    quotas = json_of(invoke("quota", "--json"))
    user_scoped = next(q for q in quotas if q["organization_id"] is None)
    assert user_scoped["total"] - user_scoped["remaining"] < 10
    spent = [request for request in sent(toggl_sim) if request != "GET /me/quota"]
    assert len(spent) < 10, spent


def test_a_remembered_workspace_toggl_refuses_is_looked_up_again(
    invoke: Invoke, toggl_sim: TogglSimulator, toggl_user: SimUser
) -> None:
    assert invoke("me").exit_code == 0
    # Alice leaves her old default workspace for a new one.
    old = toggl_user.default_workspace_id
    new = toggl_sim.world.add_workspace(owner_id=toggl_user.id, name="New home", plan="premium")
    toggl_sim.add_project(new.id, "Moved here")
    toggl_user.default_workspace_id = new.id
    del toggl_sim.world.workspaces[old].members[toggl_user.id]
    first = invoke("projects", "list")
    assert first.exit_code == 0, first.output
    assert "Moved here" in first.stdout
    assert "Moved here" in invoke("projects", "list").stdout
    assert sent(toggl_sim).count("GET /me") == 2


def test_an_explicit_workspace_wins(
    invoke: Invoke, toggl_sim: TogglSimulator, toggl_user: SimUser
) -> None:
    other = toggl_sim.world.add_workspace(owner_id=toggl_user.id, name="Side", plan="premium")
    toggl_sim.add_project(other.id, "Side project")
    assert "Side project" in invoke("projects", "list", "--workspace", str(other.id)).stdout
    assert "GET /me" not in sent(toggl_sim)


# --- what the entries table shows -----------------------------------------------------------------


def test_entries_table_shows_project_names_in_the_users_time_zone(
    invoke: Invoke, toggl_sim: TogglSimulator, toggl_user: SimUser
) -> None:
    project = toggl_sim.add_project(toggl_user.default_workspace_id, "Deep work")
    toggl_sim.add_time_entry(
        toggl_user, start=NOW - timedelta(hours=4), duration=5400, project_id=project.id
    )
    table = invoke("entries", "list", "--days", "1").stdout
    assert "Europe/Berlin" in table
    assert "2026-03-10 09:00" in table  # 08:00 UTC is 09:00 in Berlin
    assert "Deep work" in table
    assert str(project.id) not in table


def test_instants_without_offset_are_read_in_the_users_time_zone(invoke: Invoke) -> None:
    added = json_of(
        invoke(
            "entries", "add", "--start", "2026-03-10T09:00", "--duration", "30m", "--yes", "--json"
        )
    )
    assert datetime.fromisoformat(added["start"]) == NOW - timedelta(hours=4)


def test_days_beyond_toggls_floor_say_how_far_back_toggl_allows(invoke: Invoke) -> None:
    result = invoke("entries", "list", "--days", "400")
    assert result.exit_code == 2
    assert "back to 2025-12-10" in result.stderr
    assert "--days 90 or fewer" in result.stderr
    assert invoke("entries", "list", "--days", "90").exit_code == 0
