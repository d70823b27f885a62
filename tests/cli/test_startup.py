"""Starting `timebridge` loads only what the command line needs, and its help reads plainly.

How long a start takes is measured by `bench/cli_start.py`, not here: these tests check what a
start loads, which is what makes it slow.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from timebridge import __version__
from timebridge.cli import app

#: Packages the CLI must not load until a command needs them.
HEAVY = (
    "sqlalchemy",
    "alembic",
    "uvicorn",
    "fastapi",
    "starlette",
    "procrastinate",
    "psycopg",
    "httpx",
    "aiohttp",
    "pydantic",
    "rich.console",
)


def _loaded_after(code: str) -> list[str]:
    probe = (
        f"{code}\nimport sys, json\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_importing_the_cli_loads_no_storage_server_or_http_stack() -> None:
    assert _loaded_after("import timebridge.cli") == []


def test_building_every_command_loads_none_of_them_either() -> None:
    code = "import timebridge.cli, typer.main\ntyper.main.get_command(timebridge.cli.app)"
    assert _loaded_after(code) == []


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"timebridge {__version__}"


def _command_paths(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command's words, groups included (Typer's groups have `commands`)."""
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from _command_paths(sub, (*path, name))


ALL_COMMANDS = list(_command_paths(typer.main.get_command(app)))


@pytest.mark.parametrize("path", ALL_COMMANDS, ids=lambda path: " ".join(path) or "timebridge")
def test_help_shows_flags_without_a_type(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "--help" in result.stdout
    assert "<bool>" not in result.stdout


def test_a_flag_reads_as_a_flag_and_an_option_shows_its_value() -> None:
    help_text = CliRunner().invoke(app, ["toggl", "entries", "start", "--help"]).stdout
    assert any(line.split()[:1] == ["--json"] for line in help_text.splitlines())
    assert "--project <int>" in help_text


def test_every_documented_top_level_command_is_there() -> None:
    names = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert {"demo", "init", "serve", "worker", "sync", "toggl", "exist", "db"} <= names
    assert {"secrets", "fakes"} <= names


def test_worker_help_names_the_engines_queues() -> None:
    from timebridge.jobs.distributed import SCHEDULE_QUEUE, SYNC_QUEUE

    help_text = CliRunner().invoke(app, ["worker", "--help"]).stdout
    assert f"'{SYNC_QUEUE}'" in help_text
    assert f"'{SCHEDULE_QUEUE}'" in help_text
