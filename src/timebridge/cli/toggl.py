"""`timebridge toggl …`: one sub-command per Toggl Track client call.

Tables by default, `--json` for scripts; every write says what it will do and asks first unless
`--yes`; errors are one line and a distinct exit code. The API token comes from `--token`,
`TOGGL_API_TOKEN` or the config file (`timebridge toggl login`), and is never printed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import typer
from pydantic import ValidationError

from timebridge.cli._config import ConfigError, config_value, save_section
from timebridge.cli._output import (
    ExitCode,
    confirm_or_abort,
    console,
    fail,
    print_json,
    print_table,
    to_jsonable,
)
from timebridge.clock import Clock, SystemClock
from timebridge.toggl import (
    DEFAULT_BASE_URL,
    AuthenticationError,
    ClientCreate,
    ClientUpdate,
    NotFound,
    ProjectCreate,
    ProjectUpdate,
    QuotaExceeded,
    RateLimited,
    ServerError,
    TimeEntry,
    TimeEntryCreate,
    TimeEntryUpdate,
    TogglClient,
    TogglError,
    TransportError,
)
from timebridge.toggl.models import ClientStatus, ProjectActivity

T = TypeVar("T")

#: The CLI's notion of "now"; tests replace it to agree with a simulator's fake clock.
CLOCK: Clock = SystemClock()

toggl_app = typer.Typer(help="Use the Toggl Track API: entries, projects, clients, tags…")
entries_app = typer.Typer(help="Time entries.", no_args_is_help=True)
projects_app = typer.Typer(help="Projects of a workspace.", no_args_is_help=True)
clients_app = typer.Typer(help="Clients of a workspace.", no_args_is_help=True)
tags_app = typer.Typer(help="Tags of a workspace.", no_args_is_help=True)
toggl_app.add_typer(entries_app, name="entries")
toggl_app.add_typer(projects_app, name="projects")
toggl_app.add_typer(clients_app, name="clients")
toggl_app.add_typer(tags_app, name="tags")

JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of a table.")
YES_OPTION = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")
WORKSPACE_OPTION = typer.Option(
    None,
    "--workspace",
    "-w",
    envvar="TOGGL_WORKSPACE_ID",
    help="Workspace id (default: the config file's, else your default workspace).",
)


@dataclass
class _Settings:
    token: str | None
    base_url: str


@toggl_app.callback()
def _toggl(
    ctx: typer.Context,
    token: str | None = typer.Option(
        None, "--token", envvar="TOGGL_API_TOKEN", help="Toggl API token.", show_default=False
    ),
    base_url: str | None = typer.Option(
        None,
        "--base-url",
        envvar="TOGGL_BASE_URL",
        help=f"API base URL (default {DEFAULT_BASE_URL}; a simulator or a gateway).",
    ),
) -> None:
    try:
        ctx.obj = _Settings(
            token=token or config_value("toggl", "api_token"),
            base_url=base_url or config_value("toggl", "base_url") or DEFAULT_BASE_URL,
        )
    except ConfigError as exc:
        fail(str(exc), ExitCode.USAGE)


def _describe(error: TogglError) -> tuple[str, ExitCode]:
    if isinstance(error, AuthenticationError):
        return f"authentication failed ({error.message}); check your API token", (
            ExitCode.AUTHENTICATION
        )
    if isinstance(error, QuotaExceeded):
        wait = "" if error.resets_in is None else f"; it resets in {_human(error.resets_in)}"
        return f"Toggl's hourly API quota is used up{wait}", ExitCode.QUOTA
    if isinstance(error, NotFound):
        return f"not found ({error.message})", ExitCode.NOT_FOUND
    if isinstance(error, RateLimited | ServerError | TransportError):
        return str(error), ExitCode.UNAVAILABLE
    return str(error), ExitCode.OTHER


@contextmanager
def _client(ctx: typer.Context) -> Iterator[TogglClient]:
    settings: _Settings = ctx.find_object(_Settings)  # type: ignore[assignment]
    if not settings.token:
        fail(
            "no Toggl API token: pass --token, set TOGGL_API_TOKEN, or run "
            "`timebridge toggl login`",
            ExitCode.USAGE,
        )
    try:
        with TogglClient(settings.token, base_url=settings.base_url, clock=CLOCK) as client:
            yield client
    except TogglError as exc:
        message, code = _describe(exc)
        fail(f"Toggl Track: {message}", code)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        fail(f"{where}: {first['msg']}" if where else first["msg"], ExitCode.USAGE)
    except ValueError as exc:
        fail(str(exc), ExitCode.USAGE)


def _call(ctx: typer.Context, action: Callable[[TogglClient], T]) -> T:
    with _client(ctx) as client:
        return action(client)


def _workspace(ctx: typer.Context, client: TogglClient, workspace: int | None) -> int:
    if workspace is not None:
        return workspace
    configured = config_value("toggl", "workspace_id")
    if configured:
        return int(configured)
    default = client.me().default_workspace_id
    if default is None:
        fail("you have no default workspace; pass --workspace", ExitCode.USAGE)
    return default


# --- parsing and formatting -----------------------------------------------------------------------

_DURATION = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")


def _parse_duration(text: str) -> int:
    """Seconds from `90`, `45m`, `1h30m`, `2h`, `30s`."""
    text = text.strip().lower()
    if text.isdigit():
        return int(text)
    match = _DURATION.match(text)
    if not text or match is None:
        raise typer.BadParameter(f"{text!r} is not a duration like 1h30m, 45m or 90")
    return int(match["h"] or 0) * 3600 + int(match["m"] or 0) * 60 + int(match["s"] or 0)


def _parse_instant(text: str) -> datetime:
    """ISO 8601; without an offset it is read in this machine's local time zone."""
    if text == "now":
        return CLOCK.now()
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date-time like 2026-03-10T09:30") from None
    return value if value.tzinfo is not None else value.astimezone()


def _human(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _clock(seconds: int) -> str:
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _local(instant: datetime | None) -> str:
    return "" if instant is None else instant.astimezone().strftime("%Y-%m-%d %H:%M")


def _entry_rows(entries: list[TimeEntry]) -> list[list[Any]]:
    now = CLOCK.now()
    return [
        [
            entry.id,
            _local(entry.start),
            "running" if entry.is_running else _local(entry.stop),
            _clock(entry.elapsed_seconds(now)),
            entry.project_id,
            entry.description,
            ", ".join(entry.tags or []),
        ]
        for entry in entries
    ]


_ENTRY_COLUMNS = ["ID", "Start", "Stop", "Duration", "Project", "Description", "Tags"]


def _show_entries(entries: list[TimeEntry], as_json: bool, title: str) -> None:
    if as_json:
        print_json(entries)
    else:
        print_table(title, _ENTRY_COLUMNS, _entry_rows(entries))


def _show_one(item: Any, as_json: bool, title: str) -> None:
    if as_json:
        print_json(item)
        return
    if isinstance(item, TimeEntry):
        _show_entries([item], False, title)
        return
    data = to_jsonable(item)
    print_table(title, ["Field", "Value"], [[key, value] for key, value in data.items()])


# --- login, me, workspaces, quota -----------------------------------------------------------------


@toggl_app.command()
def login(
    ctx: typer.Context,
    token: str | None = typer.Option(
        None, "--token", help="API token (asked for, hidden, if not given)."
    ),
    workspace: int | None = typer.Option(None, "--workspace", "-w", help="Default workspace id."),
) -> None:
    """Check an API token against Toggl and save it in the config file."""
    settings: _Settings = ctx.find_object(_Settings)  # type: ignore[assignment]
    token = token or typer.prompt("Toggl API token (Profile settings → API Token)", hide_input=True)
    settings.token = token
    me = _call(ctx, lambda client: client.me())
    path = save_section(
        "toggl",
        {
            "api_token": token,
            "base_url": settings.base_url if settings.base_url != DEFAULT_BASE_URL else None,
            "workspace_id": workspace or me.default_workspace_id,
        },
    )
    console.print(f"Logged in as {me.fullname} <{me.email}>; token saved to {path} (mode 0600).")


@toggl_app.command()
def me(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Show your Toggl profile (never your token)."""
    _show_one(_call(ctx, lambda client: client.me()), as_json, "Me")


@toggl_app.command()
def workspaces(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """List the workspaces you belong to."""
    items = _call(ctx, lambda client: client.workspaces())
    if as_json:
        print_json(items)
        return
    rows = [[w.id, w.name, w.organization_id, "yes" if w.premium else "no", w.admin] for w in items]
    print_table("Workspaces", ["ID", "Name", "Organization", "Premium", "Admin"], rows)


@toggl_app.command()
def users(
    ctx: typer.Context, workspace: int | None = WORKSPACE_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """List the members of a workspace."""
    items = _call(ctx, lambda c: c.workspace_users(_workspace(ctx, c, workspace)))
    if as_json:
        print_json(items)
        return
    rows = [[u.id, u.fullname, u.email, u.timezone, u.admin] for u in items]
    print_table("Workspace users", ["ID", "Name", "Email", "Time zone", "Admin"], rows)


@toggl_app.command()
def quota(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Show how many requests this hour's quotas have left."""
    items = _call(ctx, lambda client: client.quotas())
    if as_json:
        print_json(items)
        return
    rows = [
        [
            "user-scoped (/me…)"
            if q.organization_id is None
            else f"organization {q.organization_id}",
            f"{q.remaining} / {q.total}",
            _human(q.resets_in_secs),
        ]
        for q in items
    ]
    print_table("API quotas", ["Quota", "Remaining", "Resets in"], rows)


# --- time entries ---------------------------------------------------------------------------------


@entries_app.command("list")
def entries_list(
    ctx: typer.Context,
    days: int | None = typer.Option(None, help="Entries started in the last N days."),
    since: str | None = typer.Option(None, help="Entries changed since (incl. deleted ones)."),
    before: str | None = typer.Option(None, help="Entries started before this instant."),
    start: str | None = typer.Option(None, help="Range start (with --end)."),
    end: str | None = typer.Option(None, help="Range end (with --start)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """List your time entries (the latest ones without filters)."""
    if days is not None:
        if days < 1 or start or end:
            fail(
                "--days must be positive and cannot be combined with --start/--end", ExitCode.USAGE
            )
        now = CLOCK.now()
        items = _call(ctx, lambda c: c.time_entries_between(now - timedelta(days=days), now))
    else:
        items = _call(
            ctx,
            lambda c: c.time_entries(
                since=_parse_instant(since) if since else None,
                before=_parse_instant(before) if before else None,
                start_date=_parse_instant(start) if start else None,
                end_date=_parse_instant(end) if end else None,
            ),
        )
    _show_entries(items, as_json, "Time entries")


@entries_app.command("current")
def entries_current(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Show the running entry, if any."""
    entry = _call(ctx, lambda client: client.current_time_entry())
    if entry is None:
        if as_json:
            print_json(None)
        else:
            console.print("No time entry is running.")
        return
    _show_one(entry, as_json, "Running entry")


@entries_app.command("get")
def entries_get(ctx: typer.Context, entry_id: int, as_json: bool = JSON_OPTION) -> None:
    """Show one time entry."""
    _show_one(_call(ctx, lambda client: client.time_entry(entry_id)), as_json, "Time entry")


def _create(
    ctx: typer.Context,
    workspace: int | None,
    build: Callable[[int], TimeEntryCreate],
    describe: Callable[[TimeEntryCreate], str],
    yes: bool,
    as_json: bool,
) -> None:
    with _client(ctx) as client:
        payload = build(_workspace(ctx, client, workspace))
        confirm_or_abort(describe(payload), assume_yes=yes)
        entry = client.create_time_entry(payload)
    _show_one(entry, as_json, "Created")


@entries_app.command("start")
def entries_start(
    ctx: typer.Context,
    description: str | None = typer.Argument(None, help="What you are doing."),
    project: int | None = typer.Option(None, "--project", "-p", help="Project id."),
    tag: list[str] = typer.Option([], "--tag", "-t", help="Tag name (repeatable)."),
    billable: bool = typer.Option(False, help="Mark billable."),
    workspace: int | None = WORKSPACE_OPTION,
    yes: bool = YES_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Start a timer now (this stops any running one, as Toggl does)."""
    _create(
        ctx,
        workspace,
        lambda wid: TimeEntryCreate(
            workspace_id=wid,
            start=CLOCK.now(),
            duration=-1,
            description=description,
            project_id=project,
            tags=tag or None,
            billable=billable or None,
        ),
        lambda p: f"start a timer {p.description or ''!r} in workspace {p.workspace_id}",
        yes,
        as_json,
    )


@entries_app.command("add")
def entries_add(
    ctx: typer.Context,
    start: str = typer.Option(..., help="Start (ISO 8601; local time if no offset)."),
    stop: str | None = typer.Option(None, help="Stop (or give --duration)."),
    duration: str | None = typer.Option(None, help="Duration like 1h30m, 45m or seconds."),
    description: str | None = typer.Option(None, "--description", "-d"),
    project: int | None = typer.Option(None, "--project", "-p", help="Project id."),
    tag: list[str] = typer.Option([], "--tag", "-t", help="Tag name (repeatable)."),
    workspace: int | None = WORKSPACE_OPTION,
    yes: bool = YES_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Add a finished time entry."""
    if (stop is None) == (duration is None):
        fail("give exactly one of --stop and --duration", ExitCode.USAGE)
    begin = _parse_instant(start)
    seconds = _parse_duration(duration) if duration else None
    end = _parse_instant(stop) if stop else None
    _create(
        ctx,
        workspace,
        lambda wid: TimeEntryCreate(
            workspace_id=wid,
            start=begin,
            duration=seconds if seconds is not None else -1,
            stop=end,
            description=description,
            project_id=project,
            tags=tag or None,
        ),
        lambda p: (
            f"add an entry {p.description or ''!r} from {_local(p.start)} "
            f"({_clock(p.duration) if p.stop is None else 'to ' + _local(p.stop)})"
        ),
        yes,
        as_json,
    )


@entries_app.command("update")
def entries_update(
    ctx: typer.Context,
    entry_id: int,
    description: str | None = typer.Option(None, "--description", "-d"),
    project: int | None = typer.Option(None, "--project", "-p", help="Project id."),
    start: str | None = typer.Option(None, help="New start."),
    stop: str | None = typer.Option(None, help="New stop."),
    duration: str | None = typer.Option(None, help="New duration."),
    tag: list[str] = typer.Option([], "--tag", "-t", help="Replace tags (repeatable)."),
    yes: bool = YES_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Change fields of an entry; fields not given stay as they are."""
    fields: dict[str, Any] = {
        "description": description,
        "project_id": project,
        "start": _parse_instant(start) if start else None,
        "stop": _parse_instant(stop) if stop else None,
        "duration": _parse_duration(duration) if duration else None,
        "tags": tag or None,
    }
    changes = {key: value for key, value in fields.items() if value is not None}
    if not changes:
        fail("nothing to change: give at least one option", ExitCode.USAGE)
    with _client(ctx) as client:
        current = client.time_entry(entry_id)
        confirm_or_abort(f"change {', '.join(sorted(changes))} of entry {entry_id}", assume_yes=yes)
        entry = client.update_time_entry(current.workspace_id, entry_id, TimeEntryUpdate(**changes))
    _show_one(entry, as_json, "Updated")


@entries_app.command("stop")
def entries_stop(
    ctx: typer.Context,
    entry_id: int | None = typer.Argument(None, help="Entry id (default: the running one)."),
    yes: bool = YES_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Stop the running entry."""
    with _client(ctx) as client:
        entry = client.time_entry(entry_id) if entry_id else client.current_time_entry()
        if entry is None:
            fail("no time entry is running", ExitCode.NOT_FOUND)
        confirm_or_abort(f"stop entry {entry.id} {entry.description or ''!r}", assume_yes=yes)
        stopped = client.stop_time_entry(entry.workspace_id, entry.id)
    _show_one(stopped, as_json, "Stopped")


@entries_app.command("delete")
def entries_delete(ctx: typer.Context, entry_id: int, yes: bool = YES_OPTION) -> None:
    """Delete a time entry."""
    with _client(ctx) as client:
        entry = client.time_entry(entry_id)
        confirm_or_abort(
            f"delete entry {entry.id} {entry.description or ''!r} of {_local(entry.start)}",
            assume_yes=yes,
        )
        client.delete_time_entry(entry.workspace_id, entry.id)
    console.print(f"Deleted time entry {entry_id}.")


# --- projects -------------------------------------------------------------------------------------


@projects_app.command("list")
def projects_list(
    ctx: typer.Context,
    active: str = typer.Option("true", help="true, false or both."),
    name: str | None = typer.Option(None, help="Case-insensitive part of the name."),
    workspace: int | None = WORKSPACE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """List every project (all pages)."""
    if active not in ("true", "false", "both"):
        fail("--active must be true, false or both", ExitCode.USAGE)
    activity: ProjectActivity = active  # type: ignore[assignment]
    items = _call(
        ctx,
        lambda c: list(c.iter_projects(_workspace(ctx, c, workspace), active=activity, name=name)),
    )
    if as_json:
        print_json(items)
        return
    rows = [[p.id, p.name, p.client_id, p.active, p.color] for p in items]
    print_table("Projects", ["ID", "Name", "Client", "Active", "Color"], rows)


@projects_app.command("get")
def projects_get(
    ctx: typer.Context,
    project_id: int,
    workspace: int | None = WORKSPACE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Show one project."""
    item = _call(ctx, lambda c: c.project(_workspace(ctx, c, workspace), project_id))
    _show_one(item, as_json, "Project")


@projects_app.command("create")
def projects_create(
    ctx: typer.Context,
    name: str,
    client_id: int | None = typer.Option(None, "--client", help="Client id."),
    color: str | None = typer.Option(None, help="Hex color like #0b83d9."),
    private: bool | None = typer.Option(None, "--private/--public"),
    billable: bool | None = typer.Option(None, "--billable/--not-billable"),
    workspace: int | None = WORKSPACE_OPTION,
    yes: bool = YES_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a project."""
    payload = ProjectCreate(
        name=name, client_id=client_id, color=color, is_private=private, billable=billable
    )
    with _client(ctx) as client:
        wid = _workspace(ctx, client, workspace)
        confirm_or_abort(f"create project {name!r} in workspace {wid}", assume_yes=yes)
        item = client.create_project(wid, payload)
    _show_one(item, as_json, "Created project")


@projects_app.command("update")
def projects_update(
    ctx: typer.Context,
    project_id: int,
    name: str | None = typer.Option(None),
    client_id: int | None = typer.Option(None, "--client", help="Client id."),
    color: str | None = typer.Option(None),
    active: bool | None = typer.Option(None, "--active/--archived"),
    private: bool | None = typer.Option(None, "--private/--public"),
    workspace: int | None = WORKSPACE_OPTION,
    yes: bool = YES_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Change fields of a project."""
    fields = {
        "name": name,
        "client_id": client_id,
        "color": color,
        "active": active,
        "is_private": private,
    }
    changes = {key: value for key, value in fields.items() if value is not None}
    if not changes:
        fail("nothing to change: give at least one option", ExitCode.USAGE)
    with _client(ctx) as client:
        wid = _workspace(ctx, client, workspace)
        confirm_or_abort(
            f"change {', '.join(sorted(changes))} of project {project_id}", assume_yes=yes
        )
        item = client.update_project(wid, project_id, ProjectUpdate(**changes))
    _show_one(item, as_json, "Updated project")


@projects_app.command("delete")
def projects_delete(
    ctx: typer.Context,
    project_id: int,
    workspace: int | None = WORKSPACE_OPTION,
    yes: bool = YES_OPTION,
) -> None:
    """Delete a project."""
    with _client(ctx) as client:
        wid = _workspace(ctx, client, workspace)
        project = client.project(wid, project_id)
        confirm_or_abort(f"delete project {project.name!r} ({project_id})", assume_yes=yes)
        client.delete_project(wid, project_id)
    console.print(f"Deleted project {project_id}.")


# --- clients --------------------------------------------------------------------------------------


@clients_app.command("list")
def clients_list(
    ctx: typer.Context,
    status: str = typer.Option("active", help="active, archived or both."),
    name: str | None = typer.Option(None, help="Case-insensitive part of the name."),
    workspace: int | None = WORKSPACE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """List clients."""
    if status not in ("active", "archived", "both"):
        fail("--status must be active, archived or both", ExitCode.USAGE)
    wanted: ClientStatus = status  # type: ignore[assignment]
    items = _call(ctx, lambda c: c.clients(_workspace(ctx, c, workspace), status=wanted, name=name))
    if as_json:
        print_json(items)
        return
    rows = [[c.id, c.name, c.archived, c.notes] for c in items]
    print_table("Clients", ["ID", "Name", "Archived", "Notes"], rows)


@clients_app.command("get")
def clients_get(
    ctx: typer.Context,
    client_id: int,
    workspace: int | None = WORKSPACE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Show one client."""
    item = _call(ctx, lambda c: c.client(_workspace(ctx, c, workspace), client_id))
    _show_one(item, as_json, "Client")


@clients_app.command("create")
def clients_create(
    ctx: typer.Context,
    name: str,
    notes: str | None = typer.Option(None),
    workspace: int | None = WORKSPACE_OPTION,
    yes: bool = YES_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a client."""
    payload = ClientCreate(name=name, notes=notes)
    with _client(ctx) as client:
        wid = _workspace(ctx, client, workspace)
        confirm_or_abort(f"create client {name!r} in workspace {wid}", assume_yes=yes)
        item = client.create_client(wid, payload)
    _show_one(item, as_json, "Created client")


@clients_app.command("update")
def clients_update(
    ctx: typer.Context,
    client_id: int,
    name: str | None = typer.Option(None),
    notes: str | None = typer.Option(None),
    workspace: int | None = WORKSPACE_OPTION,
    yes: bool = YES_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Rename a client or change its notes."""
    changes = {key: value for key, value in {"name": name, "notes": notes}.items() if value}
    if not changes:
        fail("nothing to change: give --name or --notes", ExitCode.USAGE)
    with _client(ctx) as client:
        wid = _workspace(ctx, client, workspace)
        confirm_or_abort(
            f"change {', '.join(sorted(changes))} of client {client_id}", assume_yes=yes
        )
        item = client.update_client(wid, client_id, ClientUpdate(**changes))
    _show_one(item, as_json, "Updated client")


def _client_write(
    ctx: typer.Context,
    client_id: int,
    workspace: int | None,
    verb: str,
    yes: bool,
    action: Callable[[TogglClient, int], Any],
) -> Any:
    with _client(ctx) as client:
        wid = _workspace(ctx, client, workspace)
        found = client.client(wid, client_id)
        confirm_or_abort(f"{verb} client {found.name!r} ({client_id})", assume_yes=yes)
        return action(client, wid)


@clients_app.command("delete")
def clients_delete(
    ctx: typer.Context,
    client_id: int,
    workspace: int | None = WORKSPACE_OPTION,
    yes: bool = YES_OPTION,
) -> None:
    """Delete a client (its projects stay, without a client)."""
    _client_write(
        ctx, client_id, workspace, "delete", yes, lambda c, wid: c.delete_client(wid, client_id)
    )
    console.print(f"Deleted client {client_id}.")


@clients_app.command("archive")
def clients_archive(
    ctx: typer.Context,
    client_id: int,
    workspace: int | None = WORKSPACE_OPTION,
    yes: bool = YES_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Archive a client and its projects."""
    archived = _client_write(
        ctx,
        client_id,
        workspace,
        "archive (with its projects)",
        yes,
        lambda c, wid: c.archive_client(wid, client_id),
    )
    if as_json:
        print_json({"archived_project_ids": archived})
    else:
        console.print(f"Archived client {client_id} and {len(archived)} project(s).")


@clients_app.command("restore")
def clients_restore(
    ctx: typer.Context,
    client_id: int,
    all_projects: bool = typer.Option(False, "--all-projects", help="Restore its projects too."),
    workspace: int | None = WORKSPACE_OPTION,
    yes: bool = YES_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Restore an archived client."""
    item = _client_write(
        ctx,
        client_id,
        workspace,
        "restore" + (" (with all its projects)" if all_projects else ""),
        yes,
        lambda c, wid: c.restore_client(wid, client_id, restore_all_projects=all_projects),
    )
    _show_one(item, as_json, "Restored client")


# --- tags -----------------------------------------------------------------------------------------


@tags_app.command("list")
def tags_list(
    ctx: typer.Context, workspace: int | None = WORKSPACE_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """List tags."""
    items = _call(ctx, lambda c: c.tags(_workspace(ctx, c, workspace)))
    if as_json:
        print_json(items)
        return
    print_table("Tags", ["ID", "Name"], [[t.id, t.name] for t in items])


@tags_app.command("create")
def tags_create(
    ctx: typer.Context,
    name: str,
    workspace: int | None = WORKSPACE_OPTION,
    yes: bool = YES_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a tag."""
    with _client(ctx) as client:
        wid = _workspace(ctx, client, workspace)
        confirm_or_abort(f"create tag {name!r} in workspace {wid}", assume_yes=yes)
        item = client.create_tag(wid, name)
    _show_one(item, as_json, "Created tag")


@tags_app.command("update")
def tags_update(
    ctx: typer.Context,
    tag_id: int,
    name: str,
    workspace: int | None = WORKSPACE_OPTION,
    yes: bool = YES_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Rename a tag."""
    with _client(ctx) as client:
        wid = _workspace(ctx, client, workspace)
        confirm_or_abort(f"rename tag {tag_id} to {name!r}", assume_yes=yes)
        item = client.update_tag(wid, tag_id, name)
    _show_one(item, as_json, "Renamed tag")


@tags_app.command("delete")
def tags_delete(
    ctx: typer.Context,
    tag_id: int,
    workspace: int | None = WORKSPACE_OPTION,
    yes: bool = YES_OPTION,
) -> None:
    """Delete a tag."""
    with _client(ctx) as client:
        wid = _workspace(ctx, client, workspace)
        confirm_or_abort(f"delete tag {tag_id}", assume_yes=yes)
        client.delete_tag(wid, tag_id)
    console.print(f"Deleted tag {tag_id}.")
