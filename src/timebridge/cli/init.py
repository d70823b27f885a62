"""`timebridge init`: guided personal setup, from two tokens to a checked `timebridge.toml`.

Asks for the Toggl API token and the Exist personal token (hidden; `TOGGL_API_TOKEN` and
`EXIST_TOKEN` answer instead), checks both (Toggl's `/me`, Exist's profile), lists the Toggl
projects with numbers and asks which attribute each one feeds, then writes the personal config
`timebridge sync --config` reads, mode 0600 in a 0700 directory, and prints the next command.
`--map "Series=tv"` (repeatable) answers the mapping without questions, for scripts. A token is
never echoed, and an existing config is only replaced with `--force`.

The Toggl and Exist clients load when the command runs.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from timebridge.cli._config import config_dir, write_private
from timebridge.cli._output import ExitCode, console, fail, note
from timebridge.clock import Clock, SystemClock

if TYPE_CHECKING:
    from timebridge.exist import Profile
    from timebridge.toggl import Me, Project, Workspace

T = TypeVar("T")

#: The CLI's notion of "now"; tests replace it to agree with the simulators' fake clock.
CLOCK: Clock = SystemClock()

#: The answers a project's question takes, in the order they are offered.
CHOICES = ("tv", "movies", "gaming", "productive", "neutral", "distracting", "none")
#: How often a refused token may be typed again before `init` gives up.
TOKEN_ATTEMPTS = 3


@dataclass(frozen=True)
class _TogglAccount:
    me: Me
    workspaces: list[Workspace]
    projects: list[Project]


def init(
    config: Path | None = typer.Option(
        None,
        "--config",
        help="Where to write the config (default: timebridge.toml in your config directory).",
        show_default=False,
    ),
    mapping: list[str] = typer.Option(
        [],
        "--map",
        help='PROJECT=ATTRIBUTE, e.g. "Series=tv" (repeatable): no questions about projects.',
    ),
    toggl_base_url: str | None = typer.Option(
        None,
        "--toggl-base-url",
        envvar="TOGGL_BASE_URL",
        help="Toggl Track API base URL (default: Toggl's own; or a simulator).",
    ),
    exist_base_url: str | None = typer.Option(
        None,
        "--exist-base-url",
        envvar="EXIST_BASE_URL",
        help="Exist API base URL (default: Exist's own; or a simulator).",
    ),
    force: bool = typer.Option(False, "--force", help="Replace an existing config file."),
) -> None:
    """Set up personal mode: check your Toggl and Exist tokens, map projects, write the config.

    The tokens are asked for without echo (or taken from TOGGL_API_TOKEN and EXIST_TOKEN). The
    config is written with mode 0600; `timebridge sync --config FILE` then keeps Exist in sync.
    """
    from timebridge.personal import CONFIG_FILE_NAME

    path = (config or config_dir() / CONFIG_FILE_NAME).expanduser()
    if path.is_dir():
        fail(f"{path} is a directory; give a file with --config", ExitCode.USAGE)
    if path.exists() and not force:
        fail(f"{path} already exists; pass --force to replace it", ExitCode.USAGE)
    _check_urls(toggl_base_url, exist_base_url)
    toggl_token, toggl = _with_token(
        "TOGGL_API_TOKEN",
        "Toggl Track API token (Profile settings → API Token)",
        lambda token: _toggl_account(token, toggl_base_url),
    )
    console.print(
        f"Toggl Track: {toggl.me.fullname} <{toggl.me.email}>, time zone {toggl.me.timezone}; "
        f"{len(toggl.projects)} projects.",
        markup=False,
    )
    exist_token, profile = _with_token(
        "EXIST_TOKEN",
        "Exist personal token (your developer client's page)",
        lambda token: _exist_profile(token, exist_base_url),
    )
    console.print(f"Exist: {profile.username}, time zone {profile.timezone}.", markup=False)
    if profile.timezone != toggl.me.timezone:
        note(f"Your days follow Exist's time zone, {profile.timezone}.")
    if not toggl.projects:
        fail(
            "you have no Toggl Track projects to map; create one first "
            "(`timebridge toggl projects create NAME`) and run init again",
            ExitCode.USAGE,
        )
    chosen = _parse_map(mapping, toggl.projects) if mapping else _ask_mapping(toggl)
    # One workspace: say so, and every sync that resolves the mapping skips listing them
    # (a request of the user's small hourly quota).
    only = toggl.workspaces[0].id if len(toggl.workspaces) == 1 else None
    data: dict[str, Any] = {
        "toggl": {"api_token": toggl_token, "base_url": toggl_base_url, "workspace_id": only},
        "exist": {"token": exist_token, "base_url": exist_base_url},
        "mapping": chosen,
    }
    for section in ("toggl", "exist"):
        data[section] = {key: value for key, value in data[section].items() if value}
    _validate(data)
    _write(path, data, default_location=config is None)
    console.print(f"Saved {path} (mode 0600); it holds both tokens, keep it private.", markup=False)
    console.print("Next, see what a sync would write (it changes nothing):", markup=False)
    console.print(f"  timebridge sync --config {shlex.quote(str(path))} --dry-run", markup=False)


# --- tokens ---------------------------------------------------------------------------------------


def _with_token(variable: str, prompt: str, check: Callable[[str], T]) -> tuple[str, T]:
    """A token from `variable`, else typed (hidden, again if refused); and what `check` found."""
    from timebridge.errors import UpstreamError

    given = os.environ.get(variable, "").strip()
    for attempt in range(1, TOKEN_ATTEMPTS + 1):
        token = given or typer.prompt(prompt, hide_input=True).strip()
        try:
            return token, check(token)
        except UpstreamError as exc:
            if exc.status_code not in (401, 403):
                fail(f"{_service(variable)}: {exc}", _exit_code(exc.status_code))
            source = f"the token in {variable}" if given else "that token"
            if given or attempt == TOKEN_ATTEMPTS:
                fail(f"{_service(variable)} refused {source}", ExitCode.AUTHENTICATION)
            note(f"{_service(variable)} refused that token; paste it again.")
        except ValueError as exc:
            fail(str(exc), ExitCode.USAGE)
    raise AssertionError("unreachable")


def _exit_code(status: int | None) -> ExitCode:
    if status in (402, 429):
        return ExitCode.QUOTA
    if status == 404:
        return ExitCode.NOT_FOUND
    return ExitCode.UNAVAILABLE if status is None or status >= 500 else ExitCode.OTHER


def _service(variable: str) -> str:
    return "Toggl Track" if variable.startswith("TOGGL") else "Exist"


def _toggl_account(token: str, base_url: str | None) -> _TogglAccount:
    from timebridge.toggl import DEFAULT_BASE_URL, TogglClient

    with TogglClient(token, base_url=base_url or DEFAULT_BASE_URL, clock=CLOCK) as client:
        me = client.me()
        workspaces = client.workspaces()
        projects = [
            project
            for workspace in workspaces
            for project in client.iter_projects(workspace.id, active="both")
            if project.server_deleted_at is None
        ]
    return _TogglAccount(me, workspaces, projects)


def _exist_profile(token: str, base_url: str | None) -> Profile:
    from timebridge.exist import DEFAULT_BASE_URL, ExistClient

    with ExistClient(token, base_url=base_url or DEFAULT_BASE_URL, clock=CLOCK) as client:
        return client.profile()


# --- the mapping ----------------------------------------------------------------------------------


def _key(project: Project, projects: Sequence[Project]) -> str:
    """How the config names a project: its name, or its id where the name is not unique."""
    folded = project.name.casefold()
    same = [other for other in projects if other.name.casefold() == folded]
    return project.name if len(same) == 1 and not project.name.isdigit() else str(project.id)


def _attribute(answer: str) -> str | None:
    """An answer as the config's attribute alias; None for "none"; ValueError if unknown."""
    from timebridge.personal import ATTRIBUTE_ALIASES, canonical_attribute

    cleaned = answer.strip().lower()
    if cleaned in ("", "none", "-"):
        return None
    canonical = canonical_attribute(cleaned)
    return next(
        (alias for alias, name in ATTRIBUTE_ALIASES.items() if name == canonical), canonical
    )


def _ask_mapping(toggl: _TogglAccount) -> dict[str, str]:
    workspaces = {workspace.id: workspace.name for workspace in toggl.workspaces}
    several = len(workspaces) > 1
    console.print("Your Toggl Track projects:")
    for number, project in enumerate(toggl.projects, start=1):
        where = (
            f"  ({workspaces.get(project.workspace_id, project.workspace_id)})" if several else ""
        )
        archived = "  (archived)" if not project.active else ""
        console.print(f"  {number:>3}  {project.name}{where}{archived}", markup=False)
    console.print(
        f"Which Exist attribute should each project feed? Answer {', '.join(CHOICES[:-1])} "
        "or none (Enter: none).",
        markup=False,
    )
    chosen: dict[str, str] = {}
    for number, project in enumerate(toggl.projects, start=1):
        while True:
            answer = typer.prompt(
                f"  {number:>3}  {project.name}", default="none", show_default=False
            )
            try:
                attribute = _attribute(answer)
            except ValueError:
                note(f"  {answer!r} is not one of {', '.join(CHOICES)}.")
                continue
            break
        if attribute is not None:
            chosen[_key(project, toggl.projects)] = attribute
    if not chosen:
        fail(
            "no project feeds an attribute, so there is nothing to sync; run init again and "
            "choose an attribute for at least one project",
            ExitCode.USAGE,
        )
    return chosen


def _parse_map(answers: Sequence[str], projects: Sequence[Project]) -> dict[str, str]:
    """`--map` answers, each project matched as `timebridge sync` will match it."""
    from timebridge.personal import PersonalConfigError, resolve_projects

    requested: dict[str, str] = {}
    for answer in answers:
        name, separator, value = answer.rpartition("=")
        if not separator or not name.strip():
            fail(f"--map {answer!r}: write PROJECT=ATTRIBUTE, e.g. Series=tv", ExitCode.USAGE)
        try:
            attribute = _attribute(value)
        except ValueError as exc:
            fail(f"--map {answer!r}: {exc}", ExitCode.USAGE)
        if attribute is not None:
            requested[name.strip()] = attribute
    if not requested:
        fail("--map maps no project to an attribute: nothing to sync", ExitCode.USAGE)
    try:
        resolved = resolve_projects(requested, projects)
    except PersonalConfigError as exc:
        fail(str(exc).removeprefix("mapping."), ExitCode.USAGE)
    by_id = {project.id: project for project in projects}
    return {_key(by_id[found.project_id], projects): requested[found.key] for found in resolved}


# --- the file -------------------------------------------------------------------------------------


def _check_urls(toggl_base_url: str | None, exist_base_url: str | None) -> None:
    """A base URL the config would refuse is said before any question."""
    placeholder = {
        "toggl": {"api_token": "-", **({"base_url": toggl_base_url} if toggl_base_url else {})},
        "exist": {"token": "-", **({"base_url": exist_base_url} if exist_base_url else {})},
        "mapping": {"-": "tv"},
    }
    _validate(placeholder)


def _validate(data: dict[str, Any]) -> None:
    from timebridge.personal import PersonalConfigError, parse_personal_config

    try:
        parse_personal_config(data, environ={})
    except PersonalConfigError as exc:
        fail(str(exc), ExitCode.USAGE)


def _write(path: Path, data: dict[str, Any], *, default_location: bool) -> None:
    import tomli_w

    if default_location or not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if default_location:
        path.parent.chmod(0o700)  # Timebridge's own directory: it holds tokens
    header = (
        "# Timebridge personal mode, written by `timebridge init`: read by\n"
        f"#   timebridge sync --config {shlex.quote(str(path))}\n"
        "# It holds your Toggl Track and Exist tokens: keep it private (mode 0600).\n\n"
    )
    write_private(path, (header + tomli_w.dumps(data)).encode())
