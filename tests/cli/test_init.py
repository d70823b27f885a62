"""`timebridge init` against both simulators: tokens checked, projects mapped, a private config
that `timebridge sync --config` reads, and tokens that never show."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.test_personal import Person, seed_person
from timebridge.cli import app
from timebridge.clock import FakeClock
from timebridge.fakes.exist import ExistSimulator, SimClient
from timebridge.fakes.toggl import TogglSimulator
from timebridge.personal import load_personal_config
from timebridge.retry import RetryPolicy

Invoke = Callable[..., Result]
#: The projects `seed_person` makes, as init lists them (by name).
PROJECTS = ["Chores", "Deep work", "Movies", "Series"]


@pytest.fixture
def person(
    toggl_sim: TogglSimulator,
    exist_sim: ExistSimulator,
    exist_oauth_client: SimClient,
    clock: FakeClock,
) -> Person:
    return seed_person(toggl_sim, exist_sim, exist_oauth_client, clock)


@pytest.fixture
def outputs() -> list[str]:
    return []


@pytest.fixture(autouse=True)
def _tokens_never_printed(outputs: list[str], person: Person) -> Iterator[None]:
    yield
    for output in outputs:
        assert person.toggl_token not in output
        assert person.exist_token not in output


@pytest.fixture
def config_home(tmp_path: Path) -> Path:
    return tmp_path / "xdg"


@pytest.fixture
def default_config(config_home: Path) -> Path:
    return config_home / "timebridge" / "timebridge.toml"


@pytest.fixture
def invoke(
    toggl_url: str,
    exist_api_url: str,
    config_home: Path,
    tmp_path: Path,
    outputs: list[str],
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> Invoke:
    monkeypatch.setattr("timebridge.cli.init.CLOCK", clock)
    monkeypatch.setattr("timebridge.cli.service.CLOCK", clock)
    monkeypatch.setattr("timebridge.cli.service.RETRY", RetryPolicy.testing())
    runner = CliRunner()
    env: dict[str, str | None] = {
        "XDG_CONFIG_HOME": str(config_home),
        "TIMEBRIDGE_DATA_DIR": str(tmp_path / "data"),
        "TIMEBRIDGE_DATABASE_URL": None,
        "TIMEBRIDGE_SECRET_KEYS": None,
        "TIMEBRIDGE_LOG_FORMAT": None,
        "TOGGL_API_TOKEN": None,
        "EXIST_TOKEN": None,
        "TOGGL_BASE_URL": toggl_url,
        "EXIST_BASE_URL": exist_api_url,
        "COLUMNS": "200",
    }

    def run(*args: str, input: str | None = None, **overrides: str | None) -> Result:
        result = runner.invoke(app, list(args), input=input, env={**env, **overrides})
        outputs.append(result.output)
        return result

    return run


def answers(person: Person, *per_project: str) -> str:
    """What a person types: both tokens, then one answer per listed project."""
    return "\n".join([person.toggl_token, person.exist_token, *per_project]) + "\n"


def test_init_asks_checks_and_writes_a_private_config_that_sync_reads(
    invoke: Invoke, person: Person, default_config: Path, toggl_url: str
) -> None:
    result = invoke("init", input=answers(person, "", "productive", "movies", "TV"))
    assert result.exit_code == 0, result.output
    for number, name in enumerate(PROJECTS, start=1):
        assert f"  {number:>3}  {name}\n" in result.stdout
    assert stat.S_IMODE(os.stat(default_config).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(default_config.parent).st_mode) == 0o700
    config = load_personal_config(default_config, environ={})
    assert config.mapping == {
        "Deep work": "productive_min",
        "Movies": "movies_min",
        "Series": "tv_min",
    }
    assert config.toggl.api_token.get_secret_value() == person.toggl_token
    assert config.exist.token.get_secret_value() == person.exist_token
    assert config.toggl.base_url == toggl_url
    # The only workspace is named, so syncs resolving the mapping need not list workspaces.
    assert config.toggl.workspace_id == person.toggl_user.default_workspace_id
    next_command = f"timebridge sync --config {default_config} --dry-run"
    assert next_command in result.stdout

    dry_run = invoke(*next_command.split()[1:])
    assert dry_run.exit_code == 0, dry_run.output
    assert "Dry run" in dry_run.stdout
    assert "tv_min" in dry_run.stdout


def test_init_takes_tokens_from_the_environment_and_the_mapping_from_options(
    invoke: Invoke, person: Person, tmp_path: Path, toggl_sim: TogglSimulator
) -> None:
    target = tmp_path / "elsewhere" / "me.toml"
    result = invoke(
        "init",
        "--config",
        str(target),
        "--map",
        "Series=tv",
        "--map",
        "movies=movies",  # names match as `sync` matches them: case aside
        "--map",
        "Chores=none",
        TOGGL_API_TOKEN=person.toggl_token,
        EXIST_TOKEN=person.exist_token,
    )
    assert result.exit_code == 0, result.output
    assert "?" not in result.output  # no question was asked
    config = load_personal_config(target, environ={})
    assert config.mapping == {"Series": "tv_min", "Movies": "movies_min"}
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600


def test_an_existing_config_is_kept_unless_forced(
    invoke: Invoke, person: Person, default_config: Path, toggl_sim: TogglSimulator
) -> None:
    default_config.parent.mkdir(parents=True)
    default_config.write_text("# mine\n")
    refused = invoke("init", input=answers(person, "tv"))
    assert refused.exit_code == 2
    assert "already exists; pass --force" in refused.stderr
    assert default_config.read_text() == "# mine\n"
    assert toggl_sim.requests == []  # refused before asking anything
    forced = invoke(
        "init",
        "--force",
        "--map",
        "Series=tv",
        TOGGL_API_TOKEN=person.toggl_token,
        EXIST_TOKEN=person.exist_token,
    )
    assert forced.exit_code == 0, forced.output
    assert load_personal_config(default_config, environ={}).mapping == {"Series": "tv_min"}


def test_a_refused_token_is_asked_for_again(
    invoke: Invoke, person: Person, default_config: Path
) -> None:
    typed = "\n".join(
        ["wrong-toggl-token-1", person.toggl_token, "wrong-exist-token-2", person.exist_token]
    )
    result = invoke("init", "--map", "Series=tv", input=typed + "\n")
    assert result.exit_code == 0, result.output
    assert "Toggl Track refused that token; paste it again." in result.stderr
    assert "Exist refused that token; paste it again." in result.stderr
    assert "wrong-toggl-token-1" not in result.output
    assert default_config.exists()


def test_a_refused_token_from_the_environment_exits_3_and_writes_nothing(
    invoke: Invoke, person: Person, default_config: Path
) -> None:
    result = invoke("init", "--map", "Series=tv", TOGGL_API_TOKEN="not-a-token-at-all")
    assert result.exit_code == 3
    assert "Toggl Track refused the token in TOGGL_API_TOKEN" in result.stderr
    assert not default_config.exists()


def test_a_map_naming_no_project_names_the_real_ones(
    invoke: Invoke, person: Person, default_config: Path
) -> None:
    result = invoke(
        "init",
        "--map",
        "Seris=tv",
        TOGGL_API_TOKEN=person.toggl_token,
        EXIST_TOKEN=person.exist_token,
    )
    assert result.exit_code == 2
    assert "no such Toggl project" in result.stderr
    assert '"Series"' in result.stderr
    assert not default_config.exists()


def test_an_unknown_attribute_is_asked_again_and_none_for_all_writes_nothing(
    invoke: Invoke, person: Person, default_config: Path
) -> None:
    result = invoke("init", input=answers(person, "reading", "", "none", "", ""))
    assert result.exit_code == 2
    assert "'reading' is not one of tv, movies" in result.stderr
    assert "nothing to sync" in result.stderr
    assert not default_config.exists()
