"""`timebridge sync` against both simulators: personal mode from a timebridge.toml, one user by
id, dry runs, exit codes, and tokens that never show."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
import tomli_w
import typer
from typer.testing import CliRunner, Result

from tests.test_personal import Person, assert_exist_holds_the_truth, config_data, seed_person
from timebridge.cli.service import serve, sync
from timebridge.clock import FakeClock
from timebridge.config import DATABASE_FILE_NAME, KEY_FILE_NAME
from timebridge.fakes.exist import ExistSimulator, SimClient
from timebridge.fakes.toggl import TogglSimulator
from timebridge.logs import forget_secrets
from timebridge.retry import RetryPolicy

Invoke = Callable[..., Result]

#: The two commands as `timebridge` registers them.
cli = typer.Typer()
cli.command("serve")(serve)
cli.command("sync")(sync)


@pytest.fixture
def person(
    toggl_sim: TogglSimulator,
    exist_sim: ExistSimulator,
    exist_oauth_client: SimClient,
    clock: FakeClock,
) -> Person:
    return seed_person(toggl_sim, exist_sim, exist_oauth_client, clock)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The commands configure process-wide logging; later tests must not inherit it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
    forget_secrets()


@pytest.fixture
def outputs() -> list[str]:
    return []


@pytest.fixture(autouse=True)
def _tokens_never_printed(outputs: list[str], person: Person) -> object:
    yield
    for output in outputs:
        assert person.toggl_token not in output
        assert person.exist_token not in output


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def invoke(
    data_dir: Path,
    toggl_url: str,
    exist_api_url: str,
    exist_oauth_url: str,
    clock: FakeClock,
    outputs: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Invoke:
    monkeypatch.setattr("timebridge.cli.service.CLOCK", clock)
    monkeypatch.setattr("timebridge.cli.service.RETRY", RetryPolicy.testing())
    runner = CliRunner()
    env: dict[str, str | None] = {
        "TIMEBRIDGE_DATA_DIR": str(data_dir),
        "TIMEBRIDGE_DATABASE_URL": None,
        "TIMEBRIDGE_SECRET_KEYS": None,
        # `--user` syncs with the service's settings; personal mode with its file's.
        "TIMEBRIDGE_TOGGL_BASE_URL": toggl_url,
        "TIMEBRIDGE_EXIST_BASE_URL": exist_api_url,
        "TIMEBRIDGE_EXIST_OAUTH_BASE_URL": exist_oauth_url,
        "TIMEBRIDGE_LOG_FORMAT": None,
        "TOGGL_API_TOKEN": None,
        "TOGGL_BASE_URL": None,
        "EXIST_TOKEN": None,
        "EXIST_BASE_URL": None,
        "COLUMNS": "200",
    }

    def run(*args: str, env_overrides: dict[str, str | None] | None = None) -> Result:
        result = runner.invoke(cli, ["sync", *args], env={**env, **(env_overrides or {})})
        outputs.append(result.output)
        return result

    return run


@pytest.fixture
def write_config(
    tmp_path: Path, person: Person, toggl_url: str, exist_api_url: str
) -> Callable[..., Path]:
    def write(name: str = "timebridge.toml", **changes: Any) -> Path:
        data = config_data(person, toggl_url, exist_api_url)
        for section, values in changes.items():
            data[section] = values if section == "mapping" else {**data[section], **values}
        path = tmp_path / name
        path.write_text(tomli_w.dumps(data))
        path.chmod(0o600)  # it holds tokens, as `timebridge init` writes it
        return path

    return write


def mapping_of(person: Person) -> dict[int, str]:
    return {
        person.projects["Series"]: "tv_min",
        person.projects["Movies"]: "movies_min",
        person.projects["Deep work"]: "productive_min",
    }


def assert_exit(result: Result, code: int) -> None:
    assert result.exit_code == code, result.output


# --- personal mode --------------------------------------------------------------------------------


def test_personal_mode_from_a_new_config_writes_the_truth_then_costs_one_request(
    invoke: Invoke,
    write_config: Callable[..., Path],
    person: Person,
    data_dir: Path,
    clock: FakeClock,
    toggl_sim: TogglSimulator,
    exist_sim: ExistSimulator,
) -> None:
    config = write_config()
    first = invoke("--config", str(config))
    assert_exit(first, 0)
    assert "Mapping saved: Series → tv_min, Movies → movies_min, Deep work → productive_min" in (
        first.stdout
    )
    assert "personal sync: succeeded;" in first.stdout
    assert_exist_holds_the_truth(person, toggl_sim, exist_sim, clock, mapping_of(person))
    assert (data_dir / DATABASE_FILE_NAME).exists()
    assert (data_dir / KEY_FILE_NAME).exists()

    toggl_sim.clear_requests()
    exist_sim.clear_requests()
    second = invoke("--config", str(config))
    assert_exit(second, 0)
    assert second.stdout.startswith("personal sync: succeeded; 0 values written to Exist")
    assert len(toggl_sim.requests) == 1
    assert exist_sim.requests_to("attributes/update/") == []
    assert exist_sim.requests == []


def test_dry_run_prints_the_plan_and_writes_nothing(
    invoke: Invoke,
    write_config: Callable[..., Path],
    person: Person,
    clock: FakeClock,
    toggl_sim: TogglSimulator,
    exist_sim: ExistSimulator,
) -> None:
    config = write_config()
    before = invoke("--config", str(config), "--dry-run")
    assert_exit(before, 0)
    assert "a real run first acquires movies_min, productive_min, tv_min" in before.stdout
    assert "Dry run: values a sync would write to Exist" in before.stdout
    assert "Now in Exist" in before.stdout
    assert "nothing was written" in before.stdout
    assert [r for r in exist_sim.requests if r.method != "GET"] == []
    assert exist_sim.attributes(person.exist_username) == []

    assert_exit(invoke("--config", str(config), "--quiet"), 0)
    # (The clock stands still: the running timer would change today's productive_min too.)
    toggl_sim.add_time_entry(
        person.toggl_user,
        start=clock.now() - timedelta(minutes=65),
        duration=1200,
        project_id=person.projects["Series"],
    )
    today = clock.now().date()
    held = int(exist_sim.stored_values(person.exist_username, "tv_min")[today])
    exist_sim.clear_requests()
    after = invoke("--config", str(config), "--dry-run")
    assert_exit(after, 0)
    row = next(line for line in after.stdout.splitlines() if today.isoformat() in line)
    assert "tv_min" in row
    assert str(held) in row
    assert str(held + 20) in row
    assert "Dry run: 1 value would be written; nothing was written" in after.stdout
    assert exist_sim.requests_to("attributes/update/") == []
    assert exist_sim.stored_values(person.exist_username, "tv_min")[today] == held

    as_json = invoke("--config", str(config), "--dry-run", "--json")
    assert_exit(as_json, 0)
    data = json.loads(as_json.stdout)
    assert data["dry_run"] is True
    assert data["writes"] == [
        {
            "attribute": "tv_min",
            "date": today.isoformat(),
            "current": held,
            "value": held + 20,
        }
    ]


def test_quiet_prints_nothing_when_the_run_succeeds(
    invoke: Invoke, write_config: Callable[..., Path]
) -> None:
    result = invoke("--config", str(write_config()), "--quiet")
    assert_exit(result, 0)
    assert result.output == ""


def test_json_reports_the_run_and_the_mapping(
    invoke: Invoke, write_config: Callable[..., Path], person: Person
) -> None:
    result = invoke("--config", str(write_config()), "--json")
    assert_exit(result, 0)
    data = json.loads(result.stdout)
    assert data["outcome"] == "succeeded"
    assert data["toggl_requests"] == 1
    assert data["values_written"] == len(data["written"]) > 0
    assert data["mapping_update"]["mapping"] == {
        str(project): attribute for project, attribute in mapping_of(person).items()
    }


def test_verbose_logs_are_structured_and_hold_no_token(
    invoke: Invoke, write_config: Callable[..., Path]
) -> None:
    result = invoke("--config", str(write_config()), "--verbose", "--log-format", "json")
    assert_exit(result, 0)
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any(event["event"] == "sync run finished" for event in events)


def test_a_bad_key_gets_one_message_and_exit_code_2(
    invoke: Invoke, write_config: Callable[..., Path]
) -> None:
    config = write_config(toggl={"workspace_id": "twelve"})
    result = invoke("--config", str(config))
    assert_exit(result, 2)
    assert result.stderr.strip() == f"Error: {config}: toggl.workspace_id: must be a whole number"


def test_a_missing_token_says_where_to_set_it(
    invoke: Invoke, tmp_path: Path, toggl_url: str
) -> None:
    config = tmp_path / "timebridge.toml"
    config.write_text(
        f'[toggl]\nbase_url = "{toggl_url}"\n[exist]\ntoken = "x"\n[mapping]\nSeries = "tv"\n'
    )
    config.chmod(0o600)
    result = invoke("--config", str(config))
    assert_exit(result, 2)
    assert "toggl.api_token: missing (set it or TOGGL_API_TOKEN)" in result.stderr
    from_env = invoke(
        "--config", str(config), "--dry-run", env_overrides={"TOGGL_API_TOKEN": "nope-123456"}
    )
    assert_exit(from_env, 3)
    assert "Toggl Track refused toggl.api_token" in from_env.stderr


def test_an_unknown_project_name_lists_the_real_ones(
    invoke: Invoke, write_config: Callable[..., Path]
) -> None:
    config = write_config(mapping={"Serie": "tv"})
    result = invoke("--config", str(config))
    assert_exit(result, 2)
    assert result.stderr.strip() == (
        f'Error: {config}: mapping."Serie": no such Toggl project; projects are: Chores, '
        'Deep work, Movies, Series (did you mean "Series"?)'
    )


def test_a_refused_toggl_token_exits_3_and_keeps_the_good_one(
    invoke: Invoke, write_config: Callable[..., Path]
) -> None:
    assert_exit(invoke("--config", str(write_config())), 0)
    wrong = write_config("wrong.toml", toggl={"api_token": "wrong-token-0123456789"})
    result = invoke("--config", str(wrong))
    assert_exit(result, 3)
    assert "Toggl Track refused toggl.api_token; check it" in result.stderr
    assert "wrong-token-0123456789" not in result.output
    assert_exit(invoke("--config", str(write_config())), 0)


def test_a_revoked_exist_token_stops_the_sync_with_exit_3(
    invoke: Invoke,
    write_config: Callable[..., Path],
    person: Person,
    clock: FakeClock,
    toggl_sim: TogglSimulator,
    exist_sim: ExistSimulator,
) -> None:
    config = write_config()
    assert_exit(invoke("--config", str(config)), 0)
    toggl_sim.add_time_entry(
        person.toggl_user,
        start=clock.now() - timedelta(minutes=50),
        duration=600,
        project_id=person.projects["Movies"],
    )
    exist_sim.revoke_token(person.exist_token)
    result = invoke("--config", str(config))
    assert_exit(result, 3)
    assert "personal sync: exist_broken;" in result.stdout
    assert "Exist refused the token" in result.stderr
    assert "check exist.token" in result.stderr


def test_toggl_quota_spent_exits_4(
    invoke: Invoke, write_config: Callable[..., Path], toggl_sim: TogglSimulator
) -> None:
    config = write_config()
    assert_exit(invoke("--config", str(config)), 0)
    toggl_sim.faults.add(
        method="GET",
        path="/api/v9/me/time_entries*",
        status=402,
        headers={"X-Toggl-Quota-Remaining": "0", "X-Toggl-Quota-Resets-In": "1200"},
    )
    result = invoke("--config", str(config))
    assert_exit(result, 4)
    assert "hourly API quota used up, resets at 12:20 UTC" in result.stderr


def test_toggl_outage_fails_the_run_with_exit_6(
    invoke: Invoke, write_config: Callable[..., Path], toggl_sim: TogglSimulator
) -> None:
    config = write_config()
    assert_exit(invoke("--config", str(config)), 0)
    toggl_sim.faults.add(method="GET", path="/api/v9/me/time_entries*", status=503)
    result = invoke("--config", str(config))
    assert_exit(result, 6)
    assert "personal sync: failed;" in result.stdout
    assert "the next run repairs it" in result.stderr


# --- one user by id -------------------------------------------------------------------------------


def test_sync_one_user_by_id_dry_run_repair_and_zero_out(
    invoke: Invoke,
    write_config: Callable[..., Path],
    person: Person,
    clock: FakeClock,
    toggl_sim: TogglSimulator,
    exist_sim: ExistSimulator,
) -> None:
    # Personal mode creates account 1 in the same store.
    assert_exit(invoke("--config", str(write_config()), "--quiet"), 0)
    synced = invoke("--user", "1")
    assert_exit(synced, 0)
    assert synced.stdout.startswith("sync of user 1: succeeded; 0 values written")

    preview = invoke("--user", "1", "--dry-run")
    assert_exit(preview, 0)
    assert "Exist already holds Toggl's totals; nothing to write" in preview.stdout

    today = clock.now().date()
    exist_sim.set_value(person.exist_username, "tv_min", today, 999)
    repaired = invoke("--user", "1", "--repair")
    assert_exit(repaired, 0)
    assert "1 value written to Exist, 1 repaired" in repaired.stdout
    assert_exist_holds_the_truth(person, toggl_sim, exist_sim, clock, mapping_of(person))

    zeroed = invoke("--user", "1", "--zero-out", "--json")
    assert_exit(zeroed, 0)
    assert json.loads(zeroed.stdout)["kind"] == "zero_out"
    assert_exist_holds_the_truth(person, toggl_sim, exist_sim, clock, mapping_of(person))


def test_a_user_whose_toggl_token_was_revoked_is_disconnected_with_exit_3(
    invoke: Invoke, write_config: Callable[..., Path], person: Person, toggl_sim: TogglSimulator
) -> None:
    assert_exit(invoke("--config", str(write_config()), "--quiet"), 0)
    toggl_sim.world.revoke_token(person.toggl_user.id)
    result = invoke("--user", "1")
    assert_exit(result, 3)
    assert "Toggl was disconnected" in result.stderr
    assert "the user must reconnect" in result.stderr
    again = invoke("--user", "1")
    assert_exit(again, 3)
    assert "user 1: no active Toggl connection" in again.stderr
    preview = invoke("--user", "1", "--dry-run")
    assert_exit(preview, 3)
    assert "user 1: no active Toggl connection; connect it again" in preview.stderr


def test_a_bad_secret_key_is_a_usage_error_that_never_shows_the_key(invoke: Invoke) -> None:
    result = invoke("--user", "1", env_overrides={"TIMEBRIDGE_SECRET_KEYS": "not-a-fernet-key"})
    assert_exit(result, 2)
    assert "not-a-fernet-key" not in result.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ((), 2, "pass either --user ID or --config FILE"),
        (("--user", "1", "--config", "x.toml"), 2, "pass either --user ID or --config FILE"),
        (("--user", "1", "--zero-out", "--repair"), 2, "cannot be combined"),
        (("--user", "1", "--dry-run", "--repair"), 2, "--dry-run plans a normal sync"),
        (
            (
                "--user",
                "42",
            ),
            5,
            "no account 42",
        ),
        (("--config", "missing.toml"), 2, "missing.toml: no such file"),
    ],
)
def test_usage_errors_have_their_exit_codes(
    invoke: Invoke, args: tuple[str, ...], code: int, message: str
) -> None:
    result = invoke(*args)
    assert_exit(result, code)
    assert message in result.stderr


# --- where the upstreams are ----------------------------------------------------------------------

#: `serve` or `sync --user` as a new user runs them: nothing says where Toggl or Exist are.
NO_SERVICE_URLS: dict[str, str | None] = {
    "TIMEBRIDGE_TOGGL_BASE_URL": None,
    "TIMEBRIDGE_EXIST_BASE_URL": None,
    "TIMEBRIDGE_EXIST_OAUTH_BASE_URL": None,
}


def test_a_stored_account_syncs_with_the_urls_its_config_gave_not_the_services(
    invoke: Invoke, write_config: Callable[..., Path], person: Person, toggl_sim: TogglSimulator
) -> None:
    assert_exit(invoke("--config", str(write_config()), "--quiet"), 0)
    toggl_sim.clear_requests()
    result = invoke("--user", "1", env_overrides=NO_SERVICE_URLS)
    assert_exit(result, 0)
    assert result.stdout.startswith("sync of user 1: succeeded")
    assert toggl_sim.requests, "the token went to the simulator it was checked against"


def test_a_config_others_can_read_gets_a_warning_like_ssh(
    invoke: Invoke, write_config: Callable[..., Path]
) -> None:
    config = write_config()
    config.chmod(0o644)
    result = invoke("--config", str(config), "--quiet")
    assert_exit(result, 0)
    assert f"Warning: {config} holds your tokens and others can read it" in result.stderr
    assert f"chmod 600 {config}" in result.stderr
    config.chmod(0o600)
    assert invoke("--config", str(config), "--quiet").stderr == ""


def test_a_toggl_base_url_of_another_api_version_is_configuration(
    invoke: Invoke, write_config: Callable[..., Path], toggl_url: str
) -> None:
    config = write_config(toggl={"base_url": toggl_url.replace("/api/v9", "/api/v8")})
    result = invoke("--config", str(config))
    assert_exit(result, 2)
    assert "toggl.base_url" in result.stderr
    assert "names another API version" in result.stderr


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_base_url_typo_names_the_service_and_url_and_exits_2(
    invoke: Invoke,
    write_config: Callable[..., Path],
    toggl_url: str,
    exist_api_url: str,
    dry_run: bool,
) -> None:
    extra = ["--dry-run"] if dry_run else []
    toggl_typo = toggl_url.replace("/api/v9", "/v9")  # a path Toggl does not serve
    result = invoke("--config", str(write_config(toggl={"base_url": toggl_typo})), *extra)
    assert_exit(result, 2)
    assert "Toggl Track answered 404 Not Found under" in result.stderr
    assert "check toggl.base_url" in result.stderr
    assert "this is configuration" in result.stderr

    exist_typo = exist_api_url.replace("/api/2/", "/api2/")
    result = invoke("--config", str(write_config(exist={"base_url": exist_typo})), *extra)
    assert_exit(result, 2)
    assert "Exist answered 404 Not Found under" in result.stderr
    assert "check exist.base_url" in result.stderr
