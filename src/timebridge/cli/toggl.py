"""`timebridge toggl …`: one sub-command per Toggl Track client call.

Tables by default, `--json` for scripts; every write says what it will do and asks first unless
`--yes`, before any request (a declined write spends nothing); errors are one line and a
distinct exit code. The API token comes from `--token`, `TOGGL_API_TOKEN` or the config file
(`timebridge toggl login`), and is never printed. Through a Timebridge gateway
(`--gateway URL --key KEY [--connection ID]`, or `TIMEBRIDGE_GATEWAY_URL`, `…_KEY`,
`…_CONNECTION`, or saved by `login` through one) no Toggl token is needed; the key is never
printed either.

Toggl allows 30 user-scoped requests an hour, so the default workspace, the time zone and
project names are remembered between commands (see `_toggl_memory`). Instants are shown, and
read when typed without an offset, in the Toggl user's time zone. This module imports the
Toggl client only when a command runs, so `timebridge --help` stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import typer

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
from timebridge.cli._toggl_format import (
    DELIVERY_COLUMNS,
    ENTRY_COLUMNS,
    WEBHOOK_COLUMNS,
    as_typed,
    clock_text,
    delivery_rows,
    entry_rows,
    human,
    in_zone,
    parse_duration,
    parse_event_filter,
    parse_instant,
    webhook_fields,
    webhook_rows,
)
from timebridge.cli._toggl_memory import TogglMemory, gateway_memory_key
from timebridge.clock import Clock, SystemClock

if TYPE_CHECKING:
    from timebridge.cli._toggl_session import Gateway, TogglSession
    from timebridge.toggl import TimeEntry, WebhookSubscription

#: The CLI's notion of "now"; tests replace it to agree with a simulator's fake clock.
CLOCK: Clock = SystemClock()

toggl_app = typer.Typer(
    help="Use the Toggl Track API: entries, projects, clients, tags, webhooks…",
    no_args_is_help=True,
)
entries_app = typer.Typer(help="Time entries.", no_args_is_help=True)
projects_app = typer.Typer(help="Projects of a workspace.", no_args_is_help=True)
clients_app = typer.Typer(help="Clients of a workspace.", no_args_is_help=True)
tags_app = typer.Typer(help="Tags of a workspace.", no_args_is_help=True)
webhooks_app = typer.Typer(
    help="Webhook subscriptions of a workspace (Toggl's Webhooks API v1); secrets never shown.",
    no_args_is_help=True,
)
toggl_app.add_typer(entries_app, name="entries")
toggl_app.add_typer(projects_app, name="projects")
toggl_app.add_typer(clients_app, name="clients")
toggl_app.add_typer(tags_app, name="tags")
toggl_app.add_typer(webhooks_app, name="webhooks")

JSON_OPTION = typer.Option(False, "--json", help="Print JSON instead of a table.")
YES_OPTION = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")
WORKSPACE_OPTION = typer.Option(
    None,
    "--workspace",
    "-w",
    envvar="TOGGL_WORKSPACE_ID",
    help="Workspace id (default: the config file's, else your default workspace, remembered).",
)


@dataclass
class _Settings:
    token: str | None
    #: None: Toggl Track itself.
    base_url: str | None
    #: The config file's `workspace_id`, if any.
    workspace: int | None
    #: Through a Timebridge gateway: its URL, API key and connection (no gateway: None).
    gateway: str | None = None
    key: str | None = None
    connection: str | None = None

    def __repr__(self) -> str:
        return f"_Settings(base_url={self.base_url!r}, gateway={self.gateway!r}, <secrets hidden>)"

    def through(self) -> Gateway | None:
        from timebridge.cli._toggl_session import Gateway

        if self.gateway is None or self.key is None:
            return None
        return Gateway(self.gateway, self.key, self.connection)

    def memory(self) -> TogglMemory | None:
        if self.gateway is not None:
            if not self.key:
                return None
            return TogglMemory(self.key, gateway_memory_key(self.gateway, self.connection))
        return TogglMemory(self.token, self.base_url or "") if self.token else None


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
        help="API base URL (default: Toggl Track's own; or a simulator).",
    ),
    gateway: str | None = typer.Option(
        None,
        "--gateway",
        envvar="TIMEBRIDGE_GATEWAY_URL",
        help="Go through this Timebridge gateway (its URL) instead of using a Toggl token.",
        show_default=False,
    ),
    key: str | None = typer.Option(
        None,
        "--key",
        envvar="TIMEBRIDGE_GATEWAY_KEY",
        help="The gateway's API key (tb_…); never printed.",
        show_default=False,
    ),
    connection: str | None = typer.Option(
        None,
        "--connection",
        envvar="TIMEBRIDGE_GATEWAY_CONNECTION",
        help="The gateway connection to use (default: the key owner's default one).",
        show_default=False,
    ),
) -> None:
    token, gateway, key, connection = (
        token or None,
        gateway or None,
        key or None,
        connection or None,
    )
    try:
        if gateway is None and token is None:
            # A gateway saved by `login` (it wins over a token saved beside it).
            gateway = config_value("toggl", "gateway_url")
            if gateway is not None:
                key = key or config_value("toggl", "gateway_key")
                connection = connection or config_value("toggl", "gateway_connection")
        configured = config_value("toggl", "workspace_id")
        settings = _Settings(
            token=token or config_value("toggl", "api_token"),
            base_url=base_url or config_value("toggl", "base_url"),
            workspace=int(configured) if configured else None,
            gateway=gateway,
            key=key,
            connection=connection,
        )
    except ConfigError as exc:
        fail(str(exc), ExitCode.USAGE)
    except ValueError:
        fail(f"the config file's toggl.workspace_id {configured!r} is not a number", ExitCode.USAGE)
    if gateway is None and (key is not None or connection is not None):
        fail(
            "--key and --connection are a gateway's: give its URL too "
            "(--gateway or TIMEBRIDGE_GATEWAY_URL)",
            ExitCode.USAGE,
        )
    if gateway is not None and key is None:
        fail(
            "no gateway key: pass --key or set TIMEBRIDGE_GATEWAY_KEY "
            "(`timebridge keys create` makes one)",
            ExitCode.USAGE,
        )
    ctx.obj = settings


def _settings(ctx: typer.Context) -> _Settings:
    settings: _Settings = ctx.find_object(_Settings)  # type: ignore[assignment]
    return settings


@contextmanager
def _session(ctx: typer.Context) -> Iterator[TogglSession]:
    from timebridge.cli._toggl_session import open_session
    from timebridge.toggl import DEFAULT_BASE_URL

    settings = _settings(ctx)
    with open_session(
        settings.token,
        settings.base_url or DEFAULT_BASE_URL,
        settings.workspace,
        CLOCK,
        memory_key=settings.base_url or "",
        gateway=settings.through(),
    ) as session:
        yield session


def _memory(ctx: typer.Context) -> TogglMemory | None:
    return _settings(ctx).memory()


def _planned_workspace(ctx: typer.Context, explicit: int | None) -> tuple[int | None, str]:
    """The workspace a write will use as far as known without a request, and how to say it."""
    chosen = explicit or _settings(ctx).workspace
    if chosen is not None:
        return chosen, f"workspace {chosen}"
    memory = _memory(ctx)
    profile = memory.profile if memory is not None else None
    if profile is not None and profile.default_workspace_id is not None:
        return profile.default_workspace_id, (
            f"your default workspace ({profile.default_workspace_id})"
        )
    return None, "your default workspace"


def _project_label(ctx: typer.Context, workspace: int | None, project_id: int) -> str:
    memory = _memory(ctx)
    if workspace is None or memory is None:
        return str(project_id)
    name = memory.project_names(workspace).get(project_id)
    return f"{name!r} ({project_id})" if name else str(project_id)


# --- output ---------------------------------------------------------------------------------------


def _show_entries(
    session: TogglSession, entries: Sequence[TimeEntry], as_json: bool, title: str
) -> None:
    if as_json:
        print_json(list(entries))
        return
    zone = session.zone()
    rows = entry_rows(
        entries, zone=zone, project_names=session.project_names(entries), now=CLOCK.now()
    )
    print_table(f"{title} ({zone.key})", ENTRY_COLUMNS, rows)


def _show_entry(session: TogglSession, entry: TimeEntry, as_json: bool, title: str) -> None:
    if as_json:
        print_json(entry)
    else:
        _show_entries(session, [entry], False, title)


def _show_fields(item: Any, as_json: bool, title: str) -> None:
    if as_json:
        print_json(item)
        return
    data = to_jsonable(item)
    print_table(title, ["Field", "Value"], [[key, value] for key, value in data.items()])


def _changes(fields: dict[str, Any]) -> dict[str, Any]:
    changes = {key: value for key, value in fields.items() if value is not None}
    if not changes:
        fail("nothing to change: give at least one option", ExitCode.USAGE)
    return changes


# --- login, me, workspaces, quota -----------------------------------------------------------------


@toggl_app.command()
def login(
    ctx: typer.Context,
    token: str | None = typer.Option(
        None, "--token", help="API token (asked for, hidden, if not given)."
    ),
    workspace: int | None = typer.Option(
        None, "--workspace", "-w", help="Always use this workspace (default: your default one)."
    ),
) -> None:
    """Check an API token against Toggl and save it in the config file.

    Through a gateway (`--gateway URL --key KEY [--connection ID]` before `login`), check the key
    instead and save the gateway, key and connection: later commands go through it.
    """
    settings = _settings(ctx)
    if settings.gateway is not None and token is None:
        with _session(ctx) as session:
            me = session.me()
        path = save_section(
            "toggl",
            {
                "gateway_url": settings.gateway,
                "gateway_key": settings.key,
                "gateway_connection": settings.connection or "",
                "workspace_id": workspace,
            },
        )
        console.print(
            f"Logged in as {me.fullname} <{me.email}> through the gateway {settings.gateway}; "
            f"gateway and key saved to {path} (mode 0600).",
            markup=False,
        )
        return
    settings.gateway = settings.key = settings.connection = None
    token = token or typer.prompt("Toggl API token (Profile settings → API Token)", hide_input=True)
    settings.token = token
    with _session(ctx) as session:
        me = session.me()
    # Straight to Toggl from now on, not through a gateway saved before.
    forget = {
        name: ""
        for name in ("gateway_url", "gateway_key", "gateway_connection")
        if config_value("toggl", name) is not None
    }
    path = save_section(
        "toggl",
        {"api_token": token, "base_url": settings.base_url, "workspace_id": workspace, **forget},
    )
    console.print(
        f"Logged in as {me.fullname} <{me.email}>; token saved to {path} (mode 0600).",
        markup=False,
    )


@toggl_app.command()
def me(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Show your Toggl profile (never your token); remembers your workspace and time zone."""
    with _session(ctx) as session:
        _show_fields(session.me(), as_json, "Me")


@toggl_app.command()
def workspaces(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """List the workspaces you belong to."""
    with _session(ctx) as session:
        items = session.client.workspaces()
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
    with _session(ctx) as session:
        items = session.in_workspace(workspace, session.client.workspace_users)
    if as_json:
        print_json(items)
        return
    rows = [[u.id, u.fullname, u.email, u.timezone, u.admin] for u in items]
    print_table("Workspace users", ["ID", "Name", "Email", "Time zone", "Admin"], rows)


@toggl_app.command()
def quota(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Show how many requests this hour's quotas have left."""
    with _session(ctx) as session:
        items = session.client.quotas()
    if as_json:
        print_json(items)
        return
    rows = [
        [
            "user-scoped (/me…)"
            if q.organization_id is None
            else f"organization {q.organization_id}",
            f"{q.remaining} / {q.total}",
            human(q.resets_in_secs),
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
    if days is not None and (days < 1 or start or end):
        fail("--days must be positive and cannot be combined with --start/--end", ExitCode.USAGE)
    now = CLOCK.now()
    typed = {
        name: parse_instant(value, now)
        for name, value in {"since": since, "before": before, "start": start, "end": end}.items()
        if value
    }
    with _session(ctx) as session:
        if days is not None:
            items = session.client.time_entries_between(now - timedelta(days=days), now)
        else:
            naive = any(instant.tzinfo is None for instant in typed.values())
            zone = session.zone() if naive else UTC
            at = {name: in_zone(instant, zone) for name, instant in typed.items()}
            items = session.client.time_entries(
                since=at.get("since"),
                before=at.get("before"),
                start_date=at.get("start"),
                end_date=at.get("end"),
            )
        _show_entries(session, items, as_json, "Time entries")


@entries_app.command("current")
def entries_current(ctx: typer.Context, as_json: bool = JSON_OPTION) -> None:
    """Show the running entry, if any."""
    with _session(ctx) as session:
        entry = session.client.current_time_entry()
        if entry is not None:
            _show_entry(session, entry, as_json, "Running entry")
        elif as_json:
            print_json(None)
        else:
            console.print("No time entry is running.")


@entries_app.command("get")
def entries_get(ctx: typer.Context, entry_id: int, as_json: bool = JSON_OPTION) -> None:
    """Show one time entry."""
    with _session(ctx) as session:
        _show_entry(session, session.client.time_entry(entry_id), as_json, "Time entry")


def _create_entry(
    ctx: typer.Context,
    workspace: int | None,
    fields: dict[str, Any],
    question: str,
    yes: bool,
    as_json: bool,
) -> None:
    """Ask first, then create the entry in the chosen workspace; naive instants in the zone."""
    planned, where = _planned_workspace(ctx, workspace)
    project = fields.get("project_id")
    on_project = f" on project {_project_label(ctx, planned, project)}" if project else ""
    confirm_or_abort(f"{question}{on_project} in {where}", assume_yes=yes)
    from timebridge.toggl import TimeEntryCreate

    with _session(ctx) as session:

        def create(workspace_id: int) -> TimeEntry:
            instants = {k: v for k, v in fields.items() if isinstance(v, datetime)}
            if any(instant.tzinfo is None for instant in instants.values()):
                zone = session.zone()
                instants = {k: in_zone(v, zone) for k, v in instants.items()}
            payload = TimeEntryCreate(workspace_id=workspace_id, **{**fields, **instants})
            return session.client.create_time_entry(payload)

        entry = session.in_workspace(workspace, create)
        _show_entry(session, entry, as_json, "Created")


@entries_app.command("start")
def entries_start(
    ctx: typer.Context,
    description: str | None = typer.Argument(None, help="What you are doing."),
    project: int | None = typer.Option(None, "--project", "-p", help="Project id."),
    tag: list[str] = typer.Option([], "--tag", "-t", help="Tag name (repeatable)."),
    billable: bool = typer.Option(False, "--billable", help="Mark billable."),
    workspace: int | None = WORKSPACE_OPTION,
    yes: bool = YES_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Start a timer now (this stops any running one, as Toggl does)."""
    fields = {
        "start": CLOCK.now(),
        "duration": -1,
        "description": description,
        "project_id": project,
        "tags": tag or None,
        "billable": billable or None,
    }
    _create_entry(ctx, workspace, fields, f"start a timer {description or ''!r}", yes, as_json)


@entries_app.command("add")
def entries_add(
    ctx: typer.Context,
    start: str = typer.Option(..., help="Start (ISO 8601; your Toggl time zone if no offset)."),
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
    now = CLOCK.now()
    begin = parse_instant(start, now)
    seconds = parse_duration(duration) if duration else None
    end = parse_instant(stop, now) if stop else None
    length = f"to {as_typed(end)}" if end is not None else f"for {clock_text(seconds or 0)}"
    fields = {
        "start": begin,
        "duration": seconds if seconds is not None else -1,
        "stop": end,
        "description": description,
        "project_id": project,
        "tags": tag or None,
    }
    question = f"add an entry {description or ''!r} from {as_typed(begin)} {length}"
    _create_entry(ctx, workspace, fields, question, yes, as_json)


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
    now = CLOCK.now()
    changes = _changes(
        {
            "description": description,
            "project_id": project,
            "start": parse_instant(start, now) if start else None,
            "stop": parse_instant(stop, now) if stop else None,
            "duration": parse_duration(duration) if duration else None,
            "tags": tag or None,
        }
    )
    confirm_or_abort(f"change {', '.join(sorted(changes))} of entry {entry_id}", assume_yes=yes)
    from timebridge.toggl import TimeEntryUpdate

    with _session(ctx) as session:
        if any(isinstance(v, datetime) and v.tzinfo is None for v in changes.values()):
            zone = session.zone()
            changes = {
                k: in_zone(v, zone) if isinstance(v, datetime) else v for k, v in changes.items()
            }
        current = session.client.time_entry(entry_id)
        entry = session.client.update_time_entry(
            current.workspace_id, entry_id, TimeEntryUpdate(**changes)
        )
        _show_entry(session, entry, as_json, "Updated")


@entries_app.command("stop")
def entries_stop(
    ctx: typer.Context,
    entry_id: int | None = typer.Argument(None, help="Entry id (default: the running one)."),
    yes: bool = YES_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Stop the running entry."""
    which = f"entry {entry_id}" if entry_id else "the running time entry"
    confirm_or_abort(f"stop {which}", assume_yes=yes)
    with _session(ctx) as session:
        client = session.client
        entry = client.time_entry(entry_id) if entry_id else client.current_time_entry()
        if entry is None:
            fail("no time entry is running", ExitCode.NOT_FOUND)
        stopped = client.stop_time_entry(entry.workspace_id, entry.id)
        _show_entry(session, stopped, as_json, "Stopped")


@entries_app.command("delete")
def entries_delete(ctx: typer.Context, entry_id: int, yes: bool = YES_OPTION) -> None:
    """Delete a time entry."""
    confirm_or_abort(f"delete time entry {entry_id}", assume_yes=yes)
    with _session(ctx) as session:
        entry = session.client.time_entry(entry_id)
        session.client.delete_time_entry(entry.workspace_id, entry.id)
    console.print(f"Deleted time entry {entry_id} ({entry.description or ''!r}).", markup=False)


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
    from timebridge.toggl import Project

    with _session(ctx) as session:

        def listing(workspace_id: int) -> list[Project]:
            found = list(
                session.client.iter_projects(workspace_id, active=active, name=name)  # type: ignore[arg-type]
            )
            session.memory.remember_projects(workspace_id, {p.id: p.name for p in found})
            return found

        items = session.in_workspace(workspace, listing)
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
    with _session(ctx) as session:
        item = session.in_workspace(workspace, lambda wid: session.client.project(wid, project_id))
        session.memory.remember_projects(item.workspace_id, {item.id: item.name})
    _show_fields(item, as_json, "Project")


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
    from timebridge.toggl import ProjectCreate

    with _session(ctx) as session:
        payload = ProjectCreate(
            name=name, client_id=client_id, color=color, is_private=private, billable=billable
        )
        confirm_or_abort(
            f"create project {name!r} in {_planned_workspace(ctx, workspace)[1]}", assume_yes=yes
        )
        item = session.in_workspace(
            workspace, lambda wid: session.client.create_project(wid, payload)
        )
        session.memory.remember_projects(item.workspace_id, {item.id: item.name})
    _show_fields(item, as_json, "Created project")


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
    changes = _changes(
        {
            "name": name,
            "client_id": client_id,
            "color": color,
            "active": active,
            "is_private": private,
        }
    )
    planned, where = _planned_workspace(ctx, workspace)
    label = _project_label(ctx, planned, project_id)
    confirm_or_abort(
        f"change {', '.join(sorted(changes))} of project {label} in {where}", assume_yes=yes
    )
    from timebridge.toggl import ProjectUpdate

    with _session(ctx) as session:
        update = ProjectUpdate(**changes)
        item = session.in_workspace(
            workspace, lambda wid: session.client.update_project(wid, project_id, update)
        )
        session.memory.remember_projects(item.workspace_id, {item.id: item.name})
    _show_fields(item, as_json, "Updated project")


@projects_app.command("delete")
def projects_delete(
    ctx: typer.Context,
    project_id: int,
    workspace: int | None = WORKSPACE_OPTION,
    yes: bool = YES_OPTION,
) -> None:
    """Delete a project."""
    planned, where = _planned_workspace(ctx, workspace)
    label = _project_label(ctx, planned, project_id)
    confirm_or_abort(f"delete project {label} in {where}", assume_yes=yes)
    with _session(ctx) as session:

        def delete(workspace_id: int) -> int:
            session.client.delete_project(workspace_id, project_id)
            return workspace_id

        deleted_from = session.in_workspace(workspace, delete)
        session.memory.remember_projects(deleted_from, {}, missing=[project_id])
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
    with _session(ctx) as session:
        items = session.in_workspace(
            workspace,
            lambda wid: session.client.clients(wid, status=status, name=name),  # type: ignore[arg-type]
        )
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
    with _session(ctx) as session:
        item = session.in_workspace(workspace, lambda wid: session.client.client(wid, client_id))
    _show_fields(item, as_json, "Client")


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
    confirm_or_abort(
        f"create client {name!r} in {_planned_workspace(ctx, workspace)[1]}", assume_yes=yes
    )
    from timebridge.toggl import ClientCreate

    with _session(ctx) as session:
        payload = ClientCreate(name=name, notes=notes)
        item = session.in_workspace(
            workspace, lambda wid: session.client.create_client(wid, payload)
        )
    _show_fields(item, as_json, "Created client")


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
    changes = _changes({"name": name or None, "notes": notes or None})
    confirm_or_abort(f"change {', '.join(sorted(changes))} of client {client_id}", assume_yes=yes)
    from timebridge.toggl import ClientUpdate

    with _session(ctx) as session:
        update = ClientUpdate(**changes)
        item = session.in_workspace(
            workspace, lambda wid: session.client.update_client(wid, client_id, update)
        )
    _show_fields(item, as_json, "Updated client")


@clients_app.command("delete")
def clients_delete(
    ctx: typer.Context,
    client_id: int,
    workspace: int | None = WORKSPACE_OPTION,
    yes: bool = YES_OPTION,
) -> None:
    """Delete a client (its projects stay, without a client)."""
    where = _planned_workspace(ctx, workspace)[1]
    confirm_or_abort(f"delete client {client_id} in {where}", assume_yes=yes)
    with _session(ctx) as session:
        session.in_workspace(workspace, lambda wid: session.client.delete_client(wid, client_id))
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
    where = _planned_workspace(ctx, workspace)[1]
    confirm_or_abort(f"archive client {client_id} (with its projects) in {where}", assume_yes=yes)
    with _session(ctx) as session:
        archived = session.in_workspace(
            workspace, lambda wid: session.client.archive_client(wid, client_id)
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
    where = _planned_workspace(ctx, workspace)[1]
    extra = " (with all its projects)" if all_projects else ""
    confirm_or_abort(f"restore client {client_id}{extra} in {where}", assume_yes=yes)
    with _session(ctx) as session:
        item = session.in_workspace(
            workspace,
            lambda wid: session.client.restore_client(
                wid, client_id, restore_all_projects=all_projects
            ),
        )
    _show_fields(item, as_json, "Restored client")


# --- tags -----------------------------------------------------------------------------------------


@tags_app.command("list")
def tags_list(
    ctx: typer.Context, workspace: int | None = WORKSPACE_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """List tags."""
    with _session(ctx) as session:
        items = session.in_workspace(workspace, session.client.tags)
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
    where = _planned_workspace(ctx, workspace)[1]
    confirm_or_abort(f"create tag {name!r} in {where}", assume_yes=yes)
    with _session(ctx) as session:
        item = session.in_workspace(workspace, lambda wid: session.client.create_tag(wid, name))
    _show_fields(item, as_json, "Created tag")


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
    confirm_or_abort(f"rename tag {tag_id} to {name!r}", assume_yes=yes)
    with _session(ctx) as session:
        item = session.in_workspace(
            workspace, lambda wid: session.client.update_tag(wid, tag_id, name)
        )
    _show_fields(item, as_json, "Renamed tag")


@tags_app.command("delete")
def tags_delete(
    ctx: typer.Context,
    tag_id: int,
    workspace: int | None = WORKSPACE_OPTION,
    yes: bool = YES_OPTION,
) -> None:
    """Delete a tag."""
    confirm_or_abort(f"delete tag {tag_id}", assume_yes=yes)
    with _session(ctx) as session:
        session.in_workspace(workspace, lambda wid: session.client.delete_tag(wid, tag_id))
    console.print(f"Deleted tag {tag_id}.")


# --- webhooks -------------------------------------------------------------------------------------


def _show_subscription(item: WebhookSubscription, as_json: bool, title: str) -> None:
    """One subscription, never its secret (JSON output drops secrets too)."""
    if as_json:
        print_json(item)
        return
    print_table(title, ["Field", "Value"], webhook_fields(item))


@webhooks_app.command("list")
def webhooks_list(
    ctx: typer.Context, workspace: int | None = WORKSPACE_OPTION, as_json: bool = JSON_OPTION
) -> None:
    """List the workspace's webhook subscriptions (never their secrets)."""
    with _session(ctx) as session:
        items = session.in_workspace(workspace, session.client.webhook_subscriptions)
    if as_json:
        print_json(items)
        return
    print_table("Webhook subscriptions", WEBHOOK_COLUMNS, webhook_rows(items))


@webhooks_app.command("create")
def webhooks_create(
    ctx: typer.Context,
    url: str = typer.Argument(..., help="The callback URL; it must answer Toggl's PING with 200."),
    description: str = typer.Option(..., "--description", "-d", help="Unique in the workspace."),
    event: list[str] = typer.Option(
        [],
        "--event",
        "-e",
        help="entity:action, action one of created, updated, deleted, * (repeatable; "
        "default time_entry:*).",
    ),
    secret: str | None = typer.Option(
        None,
        "--secret",
        envvar="TOGGL_WEBHOOK_SECRET",
        help="Sign deliveries with this secret (default: Toggl generates one, printed once).",
        show_default=False,
    ),
    disabled: bool = typer.Option(False, "--disabled", help="Create it disabled (no probe)."),
    workspace: int | None = WORKSPACE_OPTION,
    yes: bool = YES_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a webhook subscription; Toggl first POSTs a PING to the URL, which must answer 200.

    Without --secret, Toggl generates the secret that signs each delivery
    (X-Webhook-Signature-256): it is printed this once, and never by any other command, so keep
    it. A secret you give is never printed.
    """
    filters = [parse_event_filter(text) for text in event or ["time_entry:*"]]
    events = ", ".join(f"{entity}:{action}" for entity, action in filters)
    state = "disabled" if disabled else "enabled"
    confirm_or_abort(
        f"create the {state} webhook subscription {description!r} sending {events} to {url} "
        f"in {_planned_workspace(ctx, workspace)[1]}",
        assume_yes=yes,
    )
    from timebridge.toggl import WebhookEventFilter, WebhookSubscriptionCreate

    with _session(ctx) as session:
        payload = WebhookSubscriptionCreate(
            url_callback=url,
            description=description,
            event_filters=[WebhookEventFilter(entity=e, action=a) for e, a in filters],
            enabled=not disabled,
            secret=secret or None,
        )
        item = session.in_workspace(
            workspace, lambda wid: session.client.create_webhook_subscription(wid, payload)
        )
    # The only secret ever printed: the one Toggl generated, this once.
    generated = None if secret or item.secret is None else item.secret.get_secret_value()
    if as_json:
        data = to_jsonable(item)
        if generated is not None:
            data["secret"] = generated
        print_json(data)
        return
    _show_subscription(item, False, "Created webhook subscription")
    if generated is not None:
        console.print(
            "Secret (generated by Toggl; shown only now, keep it to verify "
            f"X-Webhook-Signature-256): {generated}",
            markup=False,
            highlight=False,
        )


def _set_enabled(
    ctx: typer.Context,
    subscription_id: int,
    enabled: bool,
    workspace: int | None,
    yes: bool,
    as_json: bool,
) -> None:
    verb = "enable" if enabled else "disable"
    probe = " (Toggl probes its callback first)" if enabled else ""
    where = _planned_workspace(ctx, workspace)[1]
    confirm_or_abort(
        f"{verb} webhook subscription {subscription_id} in {where}{probe}", assume_yes=yes
    )
    with _session(ctx) as session:
        item = session.in_workspace(
            workspace,
            lambda wid: session.client.set_webhook_subscription_enabled(
                wid, subscription_id, enabled
            ),
        )
    _show_subscription(item, as_json, f"{verb.capitalize()}d webhook subscription")


@webhooks_app.command("enable")
def webhooks_enable(
    ctx: typer.Context,
    subscription_id: int,
    workspace: int | None = WORKSPACE_OPTION,
    yes: bool = YES_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Enable a subscription; Toggl first POSTs a PING to its URL, which must answer 200."""
    _set_enabled(ctx, subscription_id, True, workspace, yes, as_json)


@webhooks_app.command("disable")
def webhooks_disable(
    ctx: typer.Context,
    subscription_id: int,
    workspace: int | None = WORKSPACE_OPTION,
    yes: bool = YES_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Disable a subscription: no events are sent until it is enabled again."""
    _set_enabled(ctx, subscription_id, False, workspace, yes, as_json)


@webhooks_app.command("delete")
def webhooks_delete(
    ctx: typer.Context,
    subscription_id: int,
    workspace: int | None = WORKSPACE_OPTION,
    yes: bool = YES_OPTION,
) -> None:
    """Delete a webhook subscription."""
    where = _planned_workspace(ctx, workspace)[1]
    confirm_or_abort(f"delete webhook subscription {subscription_id} in {where}", assume_yes=yes)
    with _session(ctx) as session:
        session.in_workspace(
            workspace,
            lambda wid: session.client.delete_webhook_subscription(wid, subscription_id),
        )
    console.print(f"Deleted webhook subscription {subscription_id}.")


@webhooks_app.command("ping")
def webhooks_ping(
    ctx: typer.Context,
    subscription_id: int,
    workspace: int | None = WORKSPACE_OPTION,
    yes: bool = YES_OPTION,
) -> None:
    """Have Toggl send a PING event to the subscription's URL (see `deliveries`)."""
    where = _planned_workspace(ctx, workspace)[1]
    confirm_or_abort(
        f"have Toggl send a PING to webhook subscription {subscription_id} in {where}",
        assume_yes=yes,
    )
    with _session(ctx) as session:
        session.in_workspace(
            workspace, lambda wid: session.client.ping_webhook_subscription(wid, subscription_id)
        )
    console.print(
        f"Toggl is sending a PING to webhook subscription {subscription_id}; "
        "`timebridge toggl webhooks deliveries` shows how it went."
    )


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    ctx: typer.Context,
    subscription_id: int,
    offset: int = typer.Option(0, min=0, help="Skip this many of the newest deliveries."),
    workspace: int | None = WORKSPACE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """List a subscription's recent deliveries, newest first."""
    with _session(ctx) as session:
        items = session.in_workspace(
            workspace,
            lambda wid: session.client.webhook_deliveries(wid, subscription_id, offset),
        )
        if as_json:
            print_json(items)
            return
        zone = session.zone()
        print_table(
            f"Deliveries of webhook subscription {subscription_id} ({zone.key})",
            DELIVERY_COLUMNS,
            delivery_rows(items, zone),
        )
