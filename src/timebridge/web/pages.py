"""The pages people use: home, connections, mapping, status, the actions, settings.

Server-rendered and complete without JavaScript. Every page acts on the signed-in account only
(`SignedIn` for reads, `Changing` — which also checks the form's CSRF token — for changes), and
only through the application layer (`Bridge`); reads go through `bridge.views` and
`bridge.store`. A change answers with a redirect back to a page, which shows what happened
(`?done=…`, one of `FLASHES`: never text taken from the URL).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import SecretStr
from starlette.datastructures import FormData

from timebridge.bridge import (
    Bridge,
    DayNotFound,
    DayView,
    MappingSaved,
    Overview,
    Skipped,
    SkipReason,
    SyncNotPossible,
    WebhooksUnavailable,
)
from timebridge.exist import ExistTokens
from timebridge.exist import errors as exist_errors
from timebridge.jobs import next_fire_time
from timebridge.origins import exist_origin, toggl_origin
from timebridge.store import (
    AttributeClaimed,
    ConnectionNotFound,
    ConnectionStatus,
    Integration,
    ProjectMapping,
    SyncRun,
    TogglConnection,
    WebhookState,
)
from timebridge.sync.runner import RunReport
from timebridge.toggl import Me
from timebridge.toggl import errors as toggl_errors
from timebridge.web.auth import SESSION_COOKIE, Changing, SignedIn, Viewer
from timebridge.web.charts import ChartDay, day_chart, day_label, minutes_text
from timebridge.web.state import bridge_of, service_state, settings_of
from timebridge.web.state import sync_now as sync_now_of
from timebridge.web.templating import render, templates

router = APIRouter(include_in_schema=False)

#: The Exist attributes a project can feed, in the order the mapping page offers them.
ATTRIBUTES: dict[str, str] = {
    "tv_min": "Watching TV",
    "movies_min": "Watching movies",
    "gaming_min": "Gaming",
    "productive_min": "Productive time",
    "neutral_min": "Neutral time",
    "distracting_min": "Distracting time",
}

#: How each run outcome reads on the pages.
OUTCOMES: dict[str, str] = {
    "succeeded": "Succeeded",
    "partial": "Partly done: Exist refused some values; they are tried again next run",
    "failed": "Failed: a service kept failing; the next run tries again",
    "quota_exceeded": "Waiting: Toggl Track's hourly request quota is used up",
    "disconnected": "Toggl Track refused the token, so Toggl Track was disconnected",
    "exist_broken": "Exist refused the token even after a refresh: reconnect Exist",
}
KINDS: dict[str, str] = {"sync": "Sync", "zero_out": "Zero Out", "repair": "Repair"}

#: What a page says after a change sent the browser back to it (`?done=<key>`).
FLASHES: dict[str, str] = {
    "skipped-toggl": "Nothing was synced: connect Toggl Track first.",
    "skipped-exist": "Nothing was synced: connect Exist first (or connect it again).",
    "toggl-disconnected": (
        "Toggl Track is disconnected: its token, your mapping, what Timebridge remembered "
        "writing and the kept entries are deleted, and the attributes are given back to Exist."
    ),
    "exist-disconnected": (
        "Exist is disconnected: the attributes are given back to Exist and what Timebridge "
        "remembered writing is forgotten. Your mapping is kept for when you connect again."
    ),
    "time-zone-saved": "Your time zone is saved.",
    "webhooks-on": (
        "Webhooks are on: a change in Toggl Track reaches Exist within seconds. The scheduled "
        "syncs go on as before."
    ),
    "webhooks-off": "Webhooks are off: Toggl Track no longer calls Timebridge; the schedule syncs.",
    "webhooks-checked": "The webhooks were checked with Toggl Track just now.",
}
#: How each webhook state reads on the settings page.
WEBHOOK_STATES = {
    WebhookState.ACTIVE: "Working",
    WebhookState.UNVALIDATED: "Waiting for Toggl Track to confirm",
    WebhookState.DISABLED: "Disabled at Toggl Track",
    WebhookState.LIMITED: "Not possible: the plan's webhooks are in use",
    WebhookState.FAILING: "Failing",
}
#: Flashes that report the account's newest run, by the run kind they follow.
RUN_FLASHES = {"sync": "sync", "zero-out": "zero_out", "repair": "repair"}

#: The window's length in days (DESIGN.md, "Window").
WINDOW_DAYS = 14
#: How many runs the status page lists.
RUN_HISTORY = 50
#: The longest project name the store keeps.
PROJECT_NAME_LENGTH = 255
#: What the delete form asks to be typed.
DELETE_WORD = "DELETE"
_COLOUR = re.compile(r"#[0-9a-fA-F]{3,8}")
_DEFAULT_COLOUR = "#0b83d9"


# --- formatting, for the templates ------------------------------------------------------------


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_time(instant: datetime | None, zone: str | None) -> str:
    """ "Tue 10 Mar 2026, 13:00" in `zone`; "—" for None."""
    if instant is None:
        return "—"
    shown = instant.astimezone(_zone(zone))
    return f"{shown:%a} {shown.day} {shown:%b %Y, %H:%M}"


def clock_time(instant: datetime | None, zone: str | None) -> str:
    """ "13:05" in `zone`."""
    return "—" if instant is None else f"{instant.astimezone(_zone(zone)):%H:%M}"


def attribute_label(name: str) -> str:
    """ "Watching TV"; a custom attribute (the movies fallback) by its name."""
    return ATTRIBUTES.get(name, name.replace("_", " ").capitalize())


templates.env.filters["local_time"] = local_time
templates.env.filters["clock_time"] = clock_time
templates.env.filters["attribute_label"] = attribute_label
templates.env.filters["minutes"] = minutes_text
templates.env.filters["day_label"] = day_label
templates.env.globals["outcome_words"] = OUTCOMES
templates.env.globals["kind_words"] = KINDS


# --- home and Sync now ------------------------------------------------------------------------


@dataclass(frozen=True)
class NextRun:
    """When the account's next sync runs, or why none will."""

    at: datetime | None
    #: Why no sync is planned, or what holds it back; None when it simply runs at `at`.
    note: str | None
    #: The schedule in words ("every hour at :40").
    schedule: str
    running: bool = False


def schedule_words(cron: str) -> str:
    """The cron expression in words where it is a simple one."""
    fields = cron.split()
    if len(fields) == 5 and fields[0].isdigit() and fields[1:] == ["*", "*", "*", "*"]:
        return f"every hour at :{int(fields[0]):02d} (UTC cron “{cron}”)"
    return f"on the cron schedule “{cron}” (UTC)"


def _next_run(request: Request, account_id: int, overview: Overview) -> NextRun:
    state = service_state(request.app)
    now = state.clock.now()
    scheduler = state.scheduler
    cron = scheduler.cron if scheduler is not None else state.settings.sync_cron
    schedule = schedule_words(cron)
    missing = _missing(overview)
    if missing is not None:
        return NextRun(None, missing, schedule)
    if scheduler is not None and scheduler.is_running(account_id):
        return NextRun(now, "A sync is running now.", schedule, running=True)
    held = scheduler.not_before(account_id) if scheduler is not None else None
    last = overview.last_run
    if held is None and last is not None and last.next_sync_after is not None:
        held = last.next_sync_after
    note = None
    start = now
    if held is not None and held > now:
        start = held
        note = "Toggl Track asked to wait (its hourly quota), so the next sync waits too."
    if scheduler is None and not state.scheduler_enabled:
        note = "Syncs are run by the worker processes of this service." + (
            f" {note}" if note else ""
        )
    return NextRun(next_fire_time(cron, start), note, schedule)


def _missing(overview: Overview) -> str | None:
    """What keeps the account from syncing at all, in words."""
    toggl, exist = overview.toggl, overview.exist
    if toggl is None or toggl.status is not ConnectionStatus.ACTIVE or not toggl.has_token:
        return "No sync is planned: connect Toggl Track first."
    if exist is None or exist.status is not ConnectionStatus.ACTIVE:
        return "No sync is planned: connect Exist first."
    if not overview.mapping:
        return "No sync is planned: map a Toggl Track project to an Exist attribute first."
    return None


def _flash(done: str | None, last_run: SyncRun | None) -> str | None:
    if done is None:
        return None
    kind = RUN_FLASHES.get(done)
    if kind is None:
        return FLASHES.get(done)
    if last_run is None or last_run.kind != kind:
        return None
    words = OUTCOMES.get(last_run.outcome, last_run.outcome)
    written = f"{last_run.values_written} value{'' if last_run.values_written == 1 else 's'}"
    requests = last_run.toggl_requests + last_run.exist_requests
    return (
        f"{KINDS.get(kind, kind)} finished: {words}. {written} written to Exist, "
        f"{requests} request{'' if requests == 1 else 's'} made."
    )


@router.get("/")
async def home(request: Request, viewer: SignedIn, done: str | None = None) -> Response:
    """Both connections, the last and next run, Sync now."""
    bridge = bridge_of(request)
    overview = await bridge.views.overview(viewer.account_id)
    return render(
        request,
        "home.html",
        viewer,
        overview=overview,
        webhooks=await bridge.webhooks.status(viewer.account_id),
        zone=overview.zone,
        toggl=overview.toggl,
        exist=overview.exist,
        next_run=_next_run(request, viewer.account_id, overview),
        flash=_flash(done, overview.last_run),
        exist_sign_in=settings_of(request).exist_sign_in,
    )


async def _run(request: Request, account_id: int, kind: str) -> RunReport | Skipped:
    """A run of `kind` for the account; a sync goes through the scheduler when one runs, so
    Sync now never runs beside a scheduled sync of the same account."""
    bridge = bridge_of(request)
    if kind == "zero_out":
        return await bridge.zero_out(account_id)
    if kind == "repair":
        return await bridge.repair(account_id)
    return await sync_now_of(request, account_id)


def _after_run(result: RunReport | Skipped, done: str) -> RedirectResponse:
    if isinstance(result, Skipped):
        done = "skipped-toggl" if result.reason is SkipReason.NO_TOGGL else "skipped-exist"
    return RedirectResponse(f"/?done={done}", status_code=303)


@router.post("/sync")
async def sync_now(request: Request, viewer: Changing) -> Response:
    """Sync now: one run for the signed-in account, then back home with its outcome."""
    return _after_run(await _run(request, viewer.account_id, "sync"), "sync")


# --- connecting Toggl Track -------------------------------------------------------------------


@router.get("/connect/toggl")
async def connect_toggl_page(
    request: Request, viewer: SignedIn, connection: str | None = None
) -> Response:
    """Paste a Toggl Track API token; with `?connection=<id>` (the `url` the gateway's
    `POST /connections` returns), for that connection of the signed-in owner."""
    return await _toggl_form(request, viewer, pending=connection)


async def _toggl_form(
    request: Request,
    viewer: Viewer,
    *,
    error: str | None = None,
    status_code: int = 200,
    pending: str | None = None,
) -> Response:
    connections = bridge_of(request).store.toggl_connections
    connection: TogglConnection | None
    if pending:
        try:
            connection = await connections.get(viewer.account_id, pending[:64])
        except ConnectionNotFound:
            raise HTTPException(404, "There is no such connection.") from None
    else:
        connection = await connections.default(viewer.account_id)
    return render(
        request,
        "connect_toggl.html",
        viewer,
        status_code=status_code,
        connection=connection,
        pending=connection.id if pending and connection is not None else None,
        error=error,
    )


async def _complete_connection(
    bridge: Bridge, account_id: int, connection_id: str, token: SecretStr, origin: str
) -> tuple[TogglConnection, Me]:
    """Give a connection made through the gateway (PENDING, or FAILED) its token, checked
    with `/me` first; it stays where it is among the owner's connections."""
    await bridge.store.toggl_connections.get(account_id, connection_id)  # the owner's, or 404
    async with bridge.upstreams.toggl(token, origin) as toggl:
        me = await toggl.me()
    connection = await bridge.store.toggl_connections.set_token(
        account_id,
        connection_id,
        token,
        toggl_user_id=me.id,
        label=me.fullname or me.email,
        origin=origin,
    )
    default = await bridge.store.toggl_connections.default(account_id)
    if default is None or default.status is not ConnectionStatus.ACTIVE:
        # The bridge syncs the default: a PENDING or FAILED one gives way to a working one.
        connection = await bridge.store.toggl_connections.set_default(account_id, connection_id)
    return connection, me


@router.post("/connect/toggl")
async def connect_toggl(
    request: Request,
    viewer: Changing,
    api_token: Annotated[str, Form()] = "",
    connection_id: Annotated[str, Form(alias="connection", max_length=64)] = "",
) -> Response:
    """Check the token with Toggl Track's `/me` and keep it (encrypted); inline errors. With
    `connection`, the token completes that connection (one made through the gateway)."""
    token = api_token.strip()
    pending = connection_id.strip() or None
    if not token:
        return await _toggl_form(
            request,
            viewer,
            error="Paste your Toggl Track API token (Profile settings → API Token).",
            status_code=400,
            pending=pending,
        )
    bridge = bridge_of(request)
    origin = toggl_origin(settings_of(request).toggl_base_url)
    try:
        if pending is not None:
            connection, me = await _complete_connection(
                bridge, viewer.account_id, pending, SecretStr(token), origin
            )
        else:
            connection, me = await bridge.connect_toggl(viewer.account_id, SecretStr(token), origin)
    except ConnectionNotFound:
        raise HTTPException(404, "There is no such connection.") from None
    except toggl_errors.AuthenticationError:
        return await _toggl_form(
            request,
            viewer,
            error="Toggl Track did not accept this token. Copy it again from your profile "
            "settings (API Token) and paste it whole. Nothing was stored.",
            status_code=400,
            pending=pending,
        )
    except toggl_errors.TogglError as exc:
        return await _toggl_form(
            request,
            viewer,
            error=f"Toggl Track could not be asked right now ({exc.message}). Nothing was "
            "stored; try again in a moment.",
            status_code=502,
            pending=pending,
        )
    workspaces: list[str] = []
    try:
        async with bridge.upstreams.toggl(SecretStr(token), connection.origin) as toggl:
            workspaces = [
                workspace.name
                for workspace in sorted(
                    await toggl.workspaces(),
                    key=lambda w: (w.id != me.default_workspace_id, w.name.casefold()),
                )
            ]
    except toggl_errors.TogglError:
        pass  # the connection is made; the names are a courtesy
    return render(
        request,
        "toggl_connected.html",
        viewer,
        me_name=me.fullname or me.email,
        me_email=me.email,
        workspaces=workspaces,
    )


# --- connecting Exist -------------------------------------------------------------------------


@router.get("/connect/exist")
async def connect_exist_page(request: Request, viewer: SignedIn) -> Response:
    """Connect Exist: with Exist's own sign-in where configured, or a personal token."""
    return await _exist_form(request, viewer)


async def _exist_form(
    request: Request, viewer: Viewer, *, error: str | None = None, status_code: int = 200
) -> Response:
    connection = await bridge_of(request).store.exist_connections.get(viewer.account_id)
    return render(
        request,
        "connect_exist.html",
        viewer,
        status_code=status_code,
        connection=connection,
        exist_sign_in=settings_of(request).exist_sign_in,
        error=error,
    )


@router.post("/connect/exist")
async def connect_exist(
    request: Request, viewer: Changing, access_token: Annotated[str, Form()] = ""
) -> Response:
    """Check a personal Exist token with the profile and keep it (encrypted)."""
    token = access_token.strip()
    if not token:
        return await _exist_form(
            request, viewer, error="Paste your Exist personal token.", status_code=400
        )
    try:
        _, profile = await bridge_of(request).connect_exist(
            viewer.account_id,
            ExistTokens(access_token=SecretStr(token)),
            exist_origin(settings_of(request).exist_base_url),
        )
    except exist_errors.AuthenticationError:
        return await _exist_form(
            request,
            viewer,
            error="Exist did not accept this token. Copy it again from your developer "
            "client's page and paste it whole. Nothing was stored.",
            status_code=400,
        )
    except exist_errors.ExistError as exc:
        return await _exist_form(
            request,
            viewer,
            error=f"Exist could not be asked right now ({exc.message}). Nothing was stored; "
            "try again in a moment.",
            status_code=502,
        )
    return render(request, "exist_connected.html", viewer, profile=profile)


# --- mapping ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectRow:
    """One Toggl project on the mapping page, with what it maps to now."""

    workspace_id: int
    workspace: str
    project_id: int
    name: str
    client: str | None
    colour: str
    archived: bool
    attribute: str | None
    #: Mapped, but Toggl Track no longer lists it (deleted there).
    gone: bool = False


@dataclass(frozen=True)
class MappingPage:
    """What the mapping page shows, or why it cannot."""

    projects: tuple[ProjectRow, ...] = ()
    #: Attribute -> the service feeding it in Exist now (saving takes it over).
    fed_by_others: Mapping[str, str] | None = None
    #: Attribute -> the other integration of this account that holds it (cannot be mapped).
    claimed: Mapping[str, str] | None = None
    problem: str | None = None
    toggl_requests: int = 0


async def _mapping_page(bridge: Bridge, account_id: int) -> MappingPage:
    store = bridge.store
    connection = await store.toggl_connections.default(account_id)
    exist = await store.exist_connections.get(account_id)
    if connection is None or not connection.has_token:
        return MappingPage(problem="toggl-missing")
    if connection.status is not ConnectionStatus.ACTIVE:
        return MappingPage(problem="toggl-failed")
    if exist is None or exist.status is not ConnectionStatus.ACTIVE:
        return MappingPage(problem="exist-missing")
    mapping = {m.project_id: m for m in await store.mappings.for_account(account_id)}
    try:
        listing = await bridge.projects(account_id)
    except toggl_errors.AuthenticationError:
        return MappingPage(problem="toggl-refused")
    except toggl_errors.TogglError as exc:
        return MappingPage(problem=f"Toggl Track could not list your projects: {exc.message}.")
    requests = listing.toggl_requests
    rows = [
        ProjectRow(
            workspace_id=project.workspace_id,
            workspace=project.workspace_name,
            project_id=project.project_id,
            name=project.name,
            client=project.client_name,
            colour=project.color if _COLOUR.fullmatch(project.color) else _DEFAULT_COLOUR,
            archived=not project.active,
            attribute=project.attribute,
        )
        for project in sorted(
            listing.projects,
            key=lambda p: (p.workspace_name.casefold(), not p.active, p.name.casefold()),
        )
    ]
    listed = {row.project_id for row in rows}
    rows.extend(
        ProjectRow(
            m.workspace_id,
            "",
            m.project_id,
            m.project_name,
            None,
            _DEFAULT_COLOUR,
            archived=False,
            attribute=m.attribute,
            gone=True,
        )
        for m in mapping.values()
        if m.project_id not in listed
    )
    holders = await store.claims.holders(account_id)
    claimed = {
        attribute: holder
        for attribute, holder in holders.items()
        if holder != Integration.TOGGL.value
    }
    try:
        fed = await bridge.takeovers(account_id, ATTRIBUTES)
    except (exist_errors.ExistError, SyncNotPossible):
        fed = None
    return MappingPage(tuple(rows), fed, claimed, None, requests)


@router.get("/mapping")
async def mapping_page(request: Request, viewer: SignedIn) -> Response:
    """Every project of the user's workspaces, each with none or one attribute (this asks
    Toggl Track for the projects: only when the page is opened)."""
    page = await _mapping_page(bridge_of(request), viewer.account_id)
    return render(
        request,
        "mapping.html",
        viewer,
        status_code=200,
        page=page,
        attributes=ATTRIBUTES,
        choices=_choices(page.projects),
    )


def _choices(rows: Iterable[ProjectRow]) -> dict[str, str]:
    """The six attributes, and any custom one a project maps to now (the movies fallback)."""
    choices = dict(ATTRIBUTES)
    for row in rows:
        if row.attribute is not None and row.attribute not in choices:
            choices[row.attribute] = f"{attribute_label(row.attribute)} (your own attribute)"
    return choices


def _posted_mapping(
    form: FormData, allowed: Iterable[str]
) -> tuple[list[ProjectMapping], list[tuple[str, str]]] | None:
    """The mapping a form asks for, and the form's fields to post again; None if the form is
    not one the mapping page made (ids that are not Toggl ids, an attribute not offered)."""
    allowed = set(allowed)
    chosen: list[ProjectMapping] = []
    fields: list[tuple[str, str]] = []
    seen: set[int] = set()
    for value in form.getlist("project"):
        if not isinstance(value, str):
            return None
        workspace, _, project = value.partition(":")
        if not (_toggl_id(workspace) and _toggl_id(project)):
            return None
        attribute = form.get(f"attribute-{project}", "")
        name = form.get(f"name-{project}", "")
        if not isinstance(attribute, str) or not isinstance(name, str):
            return None
        if int(project) in seen:
            continue
        seen.add(int(project))
        fields += [("project", value), (f"name-{project}", name)]
        if not attribute:
            continue
        if attribute not in allowed:
            return None
        fields.append((f"attribute-{project}", attribute))
        shown = name.strip()[:PROJECT_NAME_LENGTH] or f"project {project}"
        chosen.append(ProjectMapping(int(workspace), int(project), shown, attribute))
    return chosen, fields


def _toggl_id(text: str) -> bool:
    """Whether `text` is a Toggl id: a positive decimal that fits a 64-bit column."""
    return text.isascii() and text.isdigit() and 0 < int(text) < 2**63


@router.post("/mapping")
async def save_mapping(request: Request, viewer: Changing) -> Response:
    """Save the whole mapping: attributes another service feeds ask for a confirmation
    first; then acquire and release in Exist, and say what happened."""
    bridge = bridge_of(request)
    account_id = viewer.account_id
    form = await request.form()
    current = await bridge.store.mappings.for_account(account_id)
    allowed = set(ATTRIBUTES) | {m.attribute for m in current}
    posted = _posted_mapping(form, allowed)
    if posted is None:
        raise HTTPException(400, "This form did not come from the mapping page. Reload it.")
    chosen, fields = posted
    try:
        if form.get("confirm_takeover") != "yes":
            fed = await bridge.takeovers(account_id, {m.attribute for m in chosen})
            if fed:
                return render(
                    request,
                    "mapping_confirm.html",
                    viewer,
                    fed=fed,
                    fields=fields,
                    chosen=_by_attribute(chosen),
                )
        saved = await bridge.save_mapping(account_id, chosen)
    except AttributeClaimed as exc:
        return _mapping_refused(
            request,
            viewer,
            f"{attribute_label(exc.attribute)} is fed by your {exc.holder.capitalize()} "
            "integration, and an attribute has one source: remove it there before mapping it "
            "here. Nothing was saved.",
            409,
        )
    except SyncNotPossible:
        return _mapping_refused(
            request, viewer, "Connect Exist before saving a mapping. Nothing was saved.", 409
        )
    except exist_errors.ExistError as exc:
        return _mapping_refused(
            request,
            viewer,
            f"Exist could not be asked right now ({exc.message}). Nothing was saved; try "
            "again in a moment.",
            502,
        )
    return _mapping_saved(request, viewer, saved, chosen)


def _by_attribute(chosen: Sequence[ProjectMapping]) -> dict[str, list[str]]:
    projects: dict[str, list[str]] = {}
    for mapping in chosen:
        projects.setdefault(mapping.attribute, []).append(mapping.project_name)
    return projects


def _mapping_refused(request: Request, viewer: Viewer, error: str, status: int) -> Response:
    return render(
        request, "mapping_saved.html", viewer, status_code=status, error=error, saved=None
    )


def _mapping_saved(
    request: Request, viewer: Viewer, saved: MappingSaved, chosen: Sequence[ProjectMapping]
) -> Response:
    names = {m.project_id: m.project_name for m in chosen}
    mapped: dict[str, list[str]] = {}
    for project_id, attribute in saved.mapping.items():
        mapped.setdefault(attribute, []).append(names.get(project_id, f"project {project_id}"))
    refused_projects = {
        attribute: [m.project_name for m in chosen if m.attribute == attribute]
        for attribute in saved.refused
    }
    return render(
        request,
        "mapping_saved.html",
        viewer,
        error=None,
        saved=saved,
        mapped=mapped,
        refused_projects=refused_projects,
    )


# --- status ---------------------------------------------------------------------------------------


@router.get("/status")
async def status_page(request: Request, viewer: SignedIn) -> Response:
    """Per attribute the window's days (chart and table), then the run history."""
    views = bridge_of(request).views
    status = await views.status(viewer.account_id)
    runs = await views.runs(viewer.account_id, limit=RUN_HISTORY)
    charts = [
        (
            attribute,
            day_chart(
                f"chart-{attribute.attribute}",
                f"{attribute_label(attribute.attribute)}: minutes per day, Toggl Track and Exist",
                [
                    ChartDay(
                        day.date, day.minutes, day.exist, _day_href(attribute.attribute, day.date)
                    )
                    for day in attribute.days
                ],
            ),
        )
        for attribute in sorted(status.attributes, key=lambda a: _attribute_order(a.attribute))
    ]
    return render(
        request, "status.html", viewer, status=status, charts=charts, runs=runs, zone=status.zone
    )


def _attribute_order(name: str) -> tuple[int, str]:
    """The mapping page's order (TV, movies, gaming, productive, neutral, distracting);
    a custom attribute after them."""
    order = list(ATTRIBUTES)
    return (order.index(name) if name in order else len(order), name)


def _day_href(attribute: str, day: date) -> str:
    return f"/status/{attribute}/{day.isoformat()}"


@router.get("/status/{attribute}/{day}")
async def day_page(request: Request, viewer: SignedIn, attribute: str, day: str) -> Response:
    """The entries that make one attribute's total on one date."""
    try:
        when = date.fromisoformat(day)
        view = await bridge_of(request).views.day(viewer.account_id, attribute, when)
    except (ValueError, DayNotFound):
        raise HTTPException(404, "No such day") from None
    return render(
        request,
        "day.html",
        viewer,
        day=view,
        zone=_zone_name(view),
        attribute=attribute,
    )


def _zone_name(view: DayView) -> str | None:
    """The zone the day's entries are shown in (the views give them in the account's zone)."""
    if view.entries:
        return getattr(view.entries[0].start.tzinfo, "key", None)
    return None


# --- the actions behind confirmation ------------------------------------------------------------


@router.get("/zero-out")
async def zero_out_page(request: Request, viewer: SignedIn) -> Response:
    """What Zero Out does, and its button."""
    overview = await bridge_of(request).views.overview(viewer.account_id)
    return render(request, "zero_out.html", viewer, overview=overview, **_window(request, overview))


@router.post("/zero-out")
async def zero_out(request: Request, viewer: Changing) -> Response:
    """Write 0 everywhere in the window, forget what was written, then sync."""
    return _after_run(await _run(request, viewer.account_id, "zero_out"), "zero-out")


@router.get("/repair")
async def repair_page(request: Request, viewer: SignedIn) -> Response:
    """What Repair does, and its button."""
    overview = await bridge_of(request).views.overview(viewer.account_id)
    return render(request, "repair.html", viewer, overview=overview, **_window(request, overview))


@router.post("/repair")
async def repair(request: Request, viewer: Changing) -> Response:
    """Read Exist's values for the window and rewrite the ones that differ."""
    return _after_run(await _run(request, viewer.account_id, "repair"), "repair")


def _window(request: Request, overview: Overview) -> dict[str, Any]:
    """The window's first and last dates (today and the 13 days before, in the user's zone)."""
    today = service_state(request.app).clock.now().astimezone(_zone(overview.zone)).date()
    return {"first_day": today - timedelta(days=WINDOW_DAYS - 1), "last_day": today}


@router.get("/disconnect/toggl")
async def disconnect_toggl_page(request: Request, viewer: SignedIn) -> Response:
    """What disconnecting Toggl Track deletes, and its button."""
    store = bridge_of(request).store
    account_id = viewer.account_id
    connections = await store.toggl_connections.list(account_id)
    mapping = await store.mappings.for_account(account_id)
    ledger = await store.ledger.load(account_id)
    entries = await store.ledger.entries(account_id)
    return render(
        request,
        "disconnect_toggl.html",
        viewer,
        connections=connections,
        mapping=mapping,
        attributes=sorted({m.attribute for m in mapping} | {a for a, _ in ledger}),
        ledger_rows=len(ledger),
        entries=len(entries),
    )


@router.post("/disconnect/toggl")
async def disconnect_toggl(request: Request, viewer: Changing) -> Response:
    await bridge_of(request).disconnect_toggl(viewer.account_id)
    return RedirectResponse("/?done=toggl-disconnected", status_code=303)


@router.get("/disconnect/exist")
async def disconnect_exist_page(request: Request, viewer: SignedIn) -> Response:
    """What disconnecting Exist does, and its button."""
    store = bridge_of(request).store
    connection = await store.exist_connections.get(viewer.account_id)
    mapping = await store.mappings.for_account(viewer.account_id)
    return render(
        request,
        "disconnect_exist.html",
        viewer,
        connection=connection,
        attributes=sorted({m.attribute for m in mapping}),
    )


@router.post("/disconnect/exist")
async def disconnect_exist(request: Request, viewer: Changing) -> Response:
    await bridge_of(request).disconnect_exist(viewer.account_id)
    return RedirectResponse("/?done=exist-disconnected", status_code=303)


@router.get("/account/delete")
async def delete_account_page(request: Request, viewer: SignedIn) -> Response:
    """Delete my account: everything goes; confirmed by typing DELETE."""
    return render(request, "delete_account.html", viewer, word=DELETE_WORD, error=None)


@router.post("/account/delete")
async def delete_account(
    request: Request, viewer: Changing, confirm: Annotated[str, Form()] = ""
) -> Response:
    if confirm.strip() != DELETE_WORD:
        return render(
            request,
            "delete_account.html",
            viewer,
            status_code=400,
            word=DELETE_WORD,
            error=f"Type {DELETE_WORD} in capitals to delete your account. Nothing was deleted.",
        )
    await bridge_of(request).delete_account(viewer.account_id)
    response = RedirectResponse("/signin?deleted=1", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- settings -----------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def time_zones() -> tuple[str, ...]:
    """Every IANA zone name this machine knows, sorted."""
    return tuple(sorted(available_timezones()))


def _schedule(request: Request) -> str:
    state = service_state(request.app)
    cron = state.scheduler.cron if state.scheduler is not None else state.settings.sync_cron
    return schedule_words(cron)


async def _settings_page(
    request: Request,
    viewer: Viewer,
    *,
    value: str | None = None,
    error: str | None = None,
    webhook_error: str | None = None,
    done: str | None = None,
    status_code: int = 200,
) -> Response:
    bridge = bridge_of(request)
    exist = await bridge.store.exist_connections.get(viewer.account_id)
    return render(
        request,
        "settings.html",
        viewer,
        status_code=status_code,
        time_zone=viewer.account.time_zone if value is None else value,
        exist_zone=exist.time_zone if exist is not None else None,
        zones=time_zones(),
        schedule=_schedule(request),
        error=error,
        webhooks=await bridge.webhooks.status(viewer.account_id),
        webhook_states=WEBHOOK_STATES,
        webhook_error=webhook_error,
        flash=FLASHES.get(done) if done else None,
    )


@router.get("/settings")
async def settings_page(request: Request, viewer: SignedIn, done: str | None = None) -> Response:
    """Time zone, the sync schedule, sign out everywhere."""
    return await _settings_page(request, viewer, done=done)


@router.post("/settings")
async def save_settings(
    request: Request, viewer: Changing, time_zone: Annotated[str, Form()] = ""
) -> Response:
    """Keep the time zone override (empty: use Exist's)."""
    name = time_zone.strip()
    if name and name not in time_zones():
        return await _settings_page(
            request,
            viewer,
            value=name,
            error=f"“{name}” is not a time zone name. Use one such as Europe/Berlin or "
            "America/New_York, or leave it empty to use Exist's.",
            status_code=400,
        )
    await bridge_of(request).set_time_zone(viewer.account_id, name or None)
    return RedirectResponse("/settings?done=time-zone-saved", status_code=303)


@router.post("/settings/webhooks")
async def change_webhooks(
    request: Request, viewer: Changing, action: Annotated[str, Form()] = ""
) -> Response:
    """Turn Toggl webhooks on or off, or check them with Toggl now."""
    webhooks = bridge_of(request).webhooks
    try:
        if action == "on":
            await webhooks.turn_on(viewer.account_id)
        elif action == "off":
            await webhooks.turn_off(viewer.account_id)
        elif action == "check":
            await webhooks.check_account(viewer.account_id)
        else:
            return await _settings_page(
                request,
                viewer,
                webhook_error="Choose to turn webhooks on or off, or to check them.",
                status_code=400,
            )
    except WebhooksUnavailable as exc:
        return await _settings_page(request, viewer, webhook_error=str(exc), status_code=409)
    except toggl_errors.AuthenticationError:
        return await _settings_page(
            request,
            viewer,
            webhook_error="Toggl Track refused the stored API token: connect Toggl Track again.",
            status_code=409,
        )
    except toggl_errors.TogglError as exc:
        return await _settings_page(
            request,
            viewer,
            webhook_error=f"Toggl Track could not be asked: {exc.message}. Nothing changed; "
            "try again later.",
            status_code=502,
        )
    done = {"on": "webhooks-on", "off": "webhooks-off"}.get(action, "webhooks-checked")
    return RedirectResponse(f"/settings?done={done}#webhooks-heading", status_code=303)


__all__ = [
    "ATTRIBUTES",
    "local_time",
    "router",
    "schedule_words",
]
