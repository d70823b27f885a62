"""`TogglSimulator`: the Toggl Track v9 API as a real ASGI application.

What it reproduces, and where each behaviour comes from (sections of
`shared/reference/toggl.md`; "recorded" means the real traffic §3 records, "swagger" Toggl's
published v9 swagger):
- Auth (§1, recorded): HTTP Basic with `<token>:api_token` (or email:password). A request with
  no `Authorization` header gets 401 with an empty body and `X-Authorization-Missing: true`;
  wrong credentials get 403.
- Answers (recorded): `application/json; charset=utf-8`, errors included, whose body is a JSON
  string. Bare JSON arrays, legacy field names beside current ones, `api_token` in `/me` and
  workspaces. Time entries are shaped as `wire.py` describes (list answers with `+00:00`, `pid`
  only with a project, no `tid`; a running entry's create answer echoes `duration: -1`).
- `/me/time_entries` (§2, §3): `since` returns entries modified since then *including deleted
  ones* (with `server_deleted_at`) and refuses a `since` older than 90 days; `since` together
  with `before` is a 400 "'since' and 'before' can not be present simultaneously" (recorded);
  `start_date`/`end_date` filter on start, must come together, need seconds in RFC3339, and
  `start_date` may not reach back past the account's floor: 400 "start_date must not be earlier
  than YYYY-MM-DD" (two public clients parse that message; the floor is per account,
  `SimUser.history_days`, 90 days by default); every answer is capped at ~1000 entries, newest
  first, with no paging; running entries carry minus their start's Unix time as duration.
- Create (§4, recorded) requires `created_with` and a `workspace_id` matching the path; without
  `duration` (and `stop`) it makes an entry of no length and answers `duration: 0, stop: null`.
  Update changes only the fields sent and bumps `at`; stop; delete (afterwards visible to
  `since` as deleted).
- Projects paging (`per_page` default 151, max 200) and `active=true|false|both`; clients'
  `status` filter, archive and restore; tags, whose create and update answer an array of tags
  (swagger).
- Quotas (§3): per user, user-scoped requests 30/h on every plan and workspace-scoped requests
  30/240/600 per hour by the workspace's plan, counted per organization. A budget's hour starts
  with its first request and the whole budget is back 60 minutes later (Toggl's help: "The count
  begins when the initial request is made … After 60 minutes, the count resets"), not a rolling
  window. Over it: 402 with `QUOTA_MESSAGE`, a neutral text: Toggl's real 402 body is not known.
  `X-Toggl-Quota-Remaining` and `X-Toggl-Quota-Resets-In` (seconds to the window's end) on every
  authenticated answer.
- An optional leaky bucket (about 1 request/second) answering 429 with `Retry-After`.
- Toggl's Webhooks API v1 under `/webhooks/api/v1`, with signed deliveries to the callbacks on
  every time-entry change (HTTP API and Python seeding alike): `webhooks.py` describes it, its
  sources, and the helpers tests use (`sim.webhooks`).

The admin API under `/_admin` (no auth, no quota, no faults) seeds and inspects it from another
process: `POST /users` (fields of `TogglWorld.add_user`, `history_days` included),
`POST /users/{id}/revoke`, `POST /projects`, `POST|GET /time_entries`, `POST|DELETE /faults`,
`POST /clock` (`{"advance": seconds}` or `{"now": iso}`, fake clock only), `GET|DELETE /requests`
and `DELETE /quotas`, which closes every quota window so every budget is whole again; and for
webhooks `POST|DELETE /webhooks/faults`, `POST /webhooks/drain`, `GET /webhooks/subscriptions`.

Where the reference is a guess, the choice made here is marked "[guess]" below.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from timebridge.clock import Clock, FakeClock, SystemClock
from timebridge.fakes.faults import Fault, FaultInjector, FaultPlan
from timebridge.fakes.quota import FixedWindowQuota, LeakyBucket, QuotaState
from timebridge.fakes.toggl import wire
from timebridge.fakes.toggl.state import (
    USER_QUOTA,
    Plan,
    SimulatorError,
    SimUser,
    TogglWorld,
)
from timebridge.fakes.toggl.webhooks import (
    BASE as WEBHOOKS_BASE,
)
from timebridge.fakes.toggl.webhooks import (
    DeliveryFault,
    Origin,
    WebhookService,
    WebhookSettings,
    current_origin,
)
from timebridge.toggl.models import Quota, TimeEntry

#: The text of the simulator's 402 (sent as a JSON string). [guess] Toggl's own 402 body is not
#: known (the "Premium functionality" sentence quoted about it is another client's message), so
#: this one says nothing a client could come to rely on.
QUOTA_MESSAGE = "hourly API request quota exceeded"
#: Toggl's 400 when a time-entries query carries both (recorded, reference/toggl.md §3).
SINCE_WITH_BEFORE = "'since' and 'before' can not be present simultaneously"
DEFAULT_CAP = 1000
SINCE_MAX_AGE = timedelta(days=90)
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$", re.IGNORECASE
)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the simulator answered, for tests that count requests."""

    method: str
    path: str
    query: str
    status: int
    user_id: int | None
    at: datetime


Handler = Callable[[Request, SimUser], Awaitable[Response]]


class TogglSimulator:
    """A simulated Toggl Track: seed it from Python or the admin API, serve `asgi_app`."""

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        entries_cap: int = DEFAULT_CAP,
        requests_per_second: float | None = None,
        enforce_quotas: bool = True,
        webhook_settings: WebhookSettings | None = None,
    ) -> None:
        self.clock = clock or SystemClock()
        self.world = TogglWorld(self.clock)
        self.faults = FaultPlan()
        self.entries_cap = entries_cap
        self.enforce_quotas = enforce_quotas
        self.quota = FixedWindowQuota(self.clock)
        self.throttle = (
            LeakyBucket(self.clock, requests_per_second) if requests_per_second else None
        )
        self._requests: list[RecordedRequest] = []
        self._requests_lock = threading.Lock()
        #: Toggl's Webhooks API v1 and the deliveries (see `webhooks.py` for the test helpers).
        self.webhooks = WebhookService(self.world, self.clock, webhook_settings)
        api = Mount("/api/v9", routes=self._api_routes())
        hooks = Mount(WEBHOOKS_BASE, routes=self._webhook_routes())
        admin = Mount("/_admin", routes=self._admin_routes())
        self.asgi_app = FaultInjector(Starlette(routes=[api, hooks, admin]), self.faults)

    # --- Python seeding API (thin wrappers over the world) --------------------------------------

    def add_user(self, **fields: Any) -> SimUser:
        return self.world.add_user(**fields)

    def add_project(self, workspace_id: int, name: str, **fields: Any) -> Any:
        return self.world.add_project(workspace_id, {"name": name, **fields})

    def add_client(self, workspace_id: int, name: str, *, notes: str | None = None) -> Any:
        owner = next(iter(self.world._workspace(workspace_id).members))
        return self.world.add_client(workspace_id, name, notes, owner)

    def add_tag(self, workspace_id: int, name: str) -> Any:
        owner = next(iter(self.world._workspace(workspace_id).members))
        return self.world.add_tag(workspace_id, name, owner)

    def add_time_entry(self, user: SimUser, **fields: Any) -> TimeEntry:
        fields.setdefault("workspace_id", user.default_workspace_id)
        return self.world.add_time_entry(user_id=user.id, **fields)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._requests_lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._requests_lock:
            self._requests.clear()

    def seed_demo(self) -> list[str]:
        """A demo account with projects for every Exist attribute and two weeks of entries."""
        user = self.add_user(
            api_token="demo-toggl-token",
            email="demo@example.com",
            fullname="Demo User",
            timezone="Europe/Berlin",
            plan="premium",
            workspace_name="Demo workspace",
        )
        workspace_id = user.default_workspace_id
        client = self.add_client(workspace_id, "Home")
        names = ["Series", "Movies", "Games", "Deep work", "Email", "Social media", "Chores"]
        projects = [self.add_project(workspace_id, name, client_id=client.id) for name in names]
        today = self.clock.now().astimezone(ZoneInfo(user.timezone)).date()
        for day_offset in range(14):
            day = today - timedelta(days=day_offset)
            for slot, project in enumerate(projects):
                start = datetime.combine(day, time(8 + 2 * slot), ZoneInfo(user.timezone))
                minutes = 20 + (day_offset * 7 + slot * 11) % 70
                if start + timedelta(minutes=minutes) > self.clock.now():
                    continue
                self.add_time_entry(
                    user,
                    start=start,
                    duration=minutes * 60,
                    project_id=project.id,
                    description=f"{project.name} session",
                )
        return [
            "Toggl Track simulator with a demo account:",
            f"  API token:    {user.api_token}",
            f"  workspace id: {workspace_id}",
            f"  projects:     {', '.join(f'{p.name} ({p.id})' for p in projects)}",
        ]

    # --- request plumbing -----------------------------------------------------------------------

    def _record(self, request: Request, status: int, user: SimUser | None) -> None:
        with self._requests_lock:
            self._requests.append(
                RecordedRequest(
                    request.method,
                    request.url.path,
                    request.url.query,
                    status,
                    user.id if user else None,
                    self.clock.now(),
                )
            )

    def _authenticate(self, request: Request) -> SimUser | None:
        header = request.headers["authorization"]
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not encoded:
            return None
        try:
            username, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        with self.world.lock:
            if password == "api_token":
                return self.world.users_by_token.get(username)
            for user in self.world.users.values():
                if user.email == username and user.password is not None:
                    return user if user.password == password else None
        return None

    def _quota_key(self, request: Request, user: SimUser) -> tuple[tuple[int, int | None], int]:
        """Which budget a request counts against, and that budget's hourly limit."""
        workspace_id = request.path_params.get("workspace_id")
        if workspace_id is None:
            return (user.id, None), USER_QUOTA
        workspace = self.world.workspace_for(user, int(workspace_id))
        return (user.id, workspace.model.organization_id), workspace.hourly_quota

    def _endpoint(self, handler: Handler, *, counted: bool = True) -> Callable[..., Any]:
        async def endpoint(request: Request) -> Response:
            if "authorization" not in request.headers:
                self._record(request, 401, None)
                # Recorded: no credentials at all is a 401 with nothing in the body.
                return Response(status_code=401, headers={"X-Authorization-Missing": "true"})
            user = self._authenticate(request)
            if user is None:
                self._record(request, 403, None)
                # [docs] wrong credentials are a 403. [guess] the text of its body.
                return wire.error(403, "Incorrect username and/or password")
            if self.throttle is not None:
                wait = self.throttle.take(user.id)
                if wait is not None:
                    self._record(request, 429, user)
                    # [guess] the 429's text; the leaky bucket is Toggl's pre-2025 throttle.
                    return wire.error(
                        429,
                        "Too Many Requests",
                        headers={"Retry-After": str(max(1, round(wait + 0.4999)))},
                    )
            try:
                state: QuotaState | None = None
                if counted and self.enforce_quotas:
                    key, limit = self._quota_key(request, user)
                    state = self.quota.take(key, limit)
                    if not state.admitted:
                        self._record(request, 402, user)
                        return wire.error(402, QUOTA_MESSAGE, headers=_quota_headers(state))
                origin = Origin(
                    request.method,
                    request.url.path,
                    (await request.body()).decode(errors="replace"),
                )
                token = current_origin.set(origin)
                try:
                    response = await handler(request, user)
                finally:
                    current_origin.reset(token)
            except SimulatorError as exc:
                response = wire.error(exc.status, exc.message)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(part) for part in first["loc"])
                response = wire.error(400, f"{where}: {first['msg']}")
            if state is not None:
                response.headers.update(_quota_headers(state))
            self._record(request, response.status_code, user)
            return response

        return endpoint

    def _api_routes(self) -> list[BaseRoute]:
        def route(
            path: str, handler: Handler, methods: list[str], *, counted: bool = True
        ) -> Route:
            return Route(path, self._endpoint(handler, counted=counted), methods=methods)

        ws = "/workspaces/{workspace_id:int}"
        return [
            route("/me", self._me, ["GET"]),
            # [guess] reading the quota does not spend it.
            route("/me/quota", self._my_quota, ["GET"], counted=False),
            route("/me/workspaces", self._my_workspaces, ["GET"]),
            route("/me/time_entries", self._list_entries, ["GET"]),
            route("/me/time_entries/current", self._current_entry, ["GET"]),
            route("/me/time_entries/{entry_id:int}", self._get_entry, ["GET"]),
            route(ws, self._workspace, ["GET"]),
            route(f"{ws}/users", self._workspace_users, ["GET"]),
            route(f"{ws}/time_entries", self._create_entry, ["POST"]),
            route(f"{ws}/time_entries/{{entry_id:int}}", self._update_entry, ["PUT"]),
            route(f"{ws}/time_entries/{{entry_id:int}}", self._delete_entry, ["DELETE"]),
            route(f"{ws}/time_entries/{{entry_id:int}}/stop", self._stop_entry, ["PATCH"]),
            route(f"{ws}/projects", self._list_projects, ["GET"]),
            route(f"{ws}/projects", self._create_project, ["POST"]),
            route(f"{ws}/projects/{{project_id:int}}", self._get_project, ["GET"]),
            route(f"{ws}/projects/{{project_id:int}}", self._update_project, ["PUT"]),
            route(f"{ws}/projects/{{project_id:int}}", self._delete_project, ["DELETE"]),
            route(f"{ws}/clients", self._list_clients, ["GET"]),
            route(f"{ws}/clients", self._create_client, ["POST"]),
            route(f"{ws}/clients/{{client_id:int}}", self._get_client, ["GET"]),
            route(f"{ws}/clients/{{client_id:int}}", self._update_client, ["PUT"]),
            route(f"{ws}/clients/{{client_id:int}}", self._delete_client, ["DELETE"]),
            route(f"{ws}/clients/{{client_id:int}}/archive", self._archive_client, ["POST"]),
            route(f"{ws}/clients/{{client_id:int}}/restore", self._restore_client, ["POST"]),
            route(f"{ws}/tags", self._list_tags, ["GET"]),
            route(f"{ws}/tags", self._create_tag, ["POST"]),
            route(f"{ws}/tags/{{tag_id:int}}", self._update_tag, ["PUT"]),
            route(f"{ws}/tags/{{tag_id:int}}", self._delete_tag, ["DELETE"]),
        ]

    # --- me and workspaces ----------------------------------------------------------------------

    async def _me(self, request: Request, user: SimUser) -> Response:
        return wire.TogglJSON(user.me().wire())

    async def _my_quota(self, request: Request, user: SimUser) -> Response:
        quotas = [_quota_model(None, self.quota.peek((user.id, None), USER_QUOTA))]
        seen: set[int | None] = set()
        for workspace in self.world.workspaces.values():
            organization = workspace.model.organization_id
            if user.id in workspace.members and organization not in seen:
                seen.add(organization)
                state = self.quota.peek((user.id, organization), workspace.hourly_quota)
                quotas.append(_quota_model(organization, state))
        return wire.TogglJSON([quota.wire() for quota in quotas])

    async def _my_workspaces(self, request: Request, user: SimUser) -> Response:
        return wire.TogglJSON([workspace.wire() for workspace in self.world.workspaces_of(user)])

    async def _workspace(self, request: Request, user: SimUser) -> Response:
        workspace = self.world.workspace_for(user, request.path_params["workspace_id"])
        return wire.TogglJSON(workspace.model.wire())

    async def _workspace_users(self, request: Request, user: SimUser) -> Response:
        workspace_id = request.path_params["workspace_id"]
        self.world.workspace_for(user, workspace_id)
        return wire.TogglJSON(
            [member.wire() for member in self.world.workspace_users(workspace_id)]
        )

    # --- time entries ---------------------------------------------------------------------------

    def _instant(self, name: str, raw: str, user: SimUser, *, end_of_day: bool = False) -> datetime:
        """A query date: YYYY-MM-DD (in the user's time zone [guess]) or RFC3339 with seconds."""
        if len(raw) == 10:
            try:
                day = date.fromisoformat(raw)
            except ValueError:
                raise SimulatorError(400, f"Invalid {name}") from None
            return datetime.combine(day, time(0), ZoneInfo(user.timezone))
        # [code] Toggl rejects RFC3339 times without seconds with 400.
        if not _RFC3339.match(raw):
            raise SimulatorError(400, f"Invalid {name}")
        return datetime.fromisoformat(raw.replace("z", "Z").replace("Z", "+00:00"))

    async def _list_entries(self, request: Request, user: SimUser) -> Response:
        query = request.query_params
        if "since" in query and "before" in query:
            raise SimulatorError(400, SINCE_WITH_BEFORE)
        start_raw, end_raw = query.get("start_date"), query.get("end_date")
        if (start_raw is None) != (end_raw is None):
            raise SimulatorError(400, "start_date and end_date must be used together")
        now = self.clock.now()
        since_raw = query.get("since")
        entries = self.world.entries_of(user.id, include_deleted=since_raw is not None)
        if since_raw is not None:
            try:
                since = datetime.fromtimestamp(int(since_raw), UTC)
            except (ValueError, OverflowError, OSError):
                raise SimulatorError(400, "Invalid since") from None
            # [guess, strong] `since` reaches back at most about three months.
            if since < now - SINCE_MAX_AGE:
                raise SimulatorError(400, "since must not be older than 3 months")
            entries = [entry for entry in entries if entry.at is not None and entry.at >= since]
        if start_raw is not None and end_raw is not None:
            start = self._instant("start_date", start_raw, user)
            end = self._instant("end_date", end_raw, user)
            if end <= start:
                raise SimulatorError(400, "end_date must be after start_date")
            floor = user.start_date_floor(now)
            if start < datetime.combine(floor, time(0), ZoneInfo(user.timezone)):
                raise SimulatorError(
                    400, f"start_date must not be earlier than {floor.isoformat()}"
                )
            # [guess] start inclusive, end exclusive.
            entries = [entry for entry in entries if start <= entry.start < end]
        before_raw = query.get("before")
        if before_raw is not None:
            before = self._instant("before", before_raw, user)
            entries = [entry for entry in entries if entry.start < before]
        entries.sort(key=lambda entry: (entry.start, entry.id), reverse=True)
        # [code] ~1000 entries at most, newest first, with no way to page.
        return wire.TogglJSON([wire.listed_entry(entry) for entry in entries[: self.entries_cap]])

    async def _current_entry(self, request: Request, user: SimUser) -> Response:
        running = [entry for entry in self.world.entries_of(user.id) if entry.is_running]
        return wire.TogglJSON(wire.listed_entry(running[0]) if running else None)

    async def _get_entry(self, request: Request, user: SimUser) -> Response:
        entry = self.world.entry_of(user.id, request.path_params["entry_id"])
        # [guess] shaped as in the lists.
        return wire.TogglJSON(wire.listed_entry(entry))

    async def _create_entry(self, request: Request, user: SimUser) -> Response:
        workspace_id = request.path_params["workspace_id"]
        self.world.workspace_for(user, workspace_id)
        body = await _json_object(request)
        if not body.get("created_with"):
            raise SimulatorError(400, "created_with needs to be provided a valid value")
        body_workspace = body.get("workspace_id", body.get("wid"))
        if body_workspace != workspace_id:
            raise SimulatorError(400, "Workspace ID must be provided and match the URL")
        payload = _EntryFields.model_validate(body)
        if payload.start is None:
            raise SimulatorError(400, "start must be provided")
        entry = self.world.add_time_entry(
            user_id=user.id,
            workspace_id=workspace_id,
            start=payload.start,
            duration=payload.duration,
            stop=payload.stop,
            description=payload.description,
            project_id=payload.project_id if payload.project_id else body.get("pid"),
            task_id=payload.task_id,
            tags=payload.tags,
            tag_ids=payload.tag_ids,
            billable=bool(payload.billable),
        )
        return wire.TogglJSON(wire.created_entry(entry, sent=body))

    async def _update_entry(self, request: Request, user: SimUser) -> Response:
        body = await _json_object(request)
        payload = _EntryFields.model_validate(body)
        changes = payload.model_dump(exclude_unset=True)
        entry = self.world.update_time_entry(
            user.id, request.path_params["workspace_id"], request.path_params["entry_id"], changes
        )
        # [guess] shaped as the stop's answer, which was recorded.
        return wire.TogglJSON(wire.written_entry(entry))

    async def _stop_entry(self, request: Request, user: SimUser) -> Response:
        entry = self.world.stop_time_entry(
            user.id, request.path_params["workspace_id"], request.path_params["entry_id"]
        )
        return wire.TogglJSON(wire.written_entry(entry))

    async def _delete_entry(self, request: Request, user: SimUser) -> Response:
        self.world.delete_time_entry(
            user.id, request.path_params["workspace_id"], request.path_params["entry_id"]
        )
        return Response(status_code=200)

    # --- projects -------------------------------------------------------------------------------

    async def _list_projects(self, request: Request, user: SimUser) -> Response:
        workspace_id = request.path_params["workspace_id"]
        self.world.workspace_for(user, workspace_id)
        query = request.query_params
        active = query.get("active", "true").lower()
        if active not in ("true", "false", "both"):
            raise SimulatorError(400, "active must be true, false or both")
        page = _int_param(query.get("page"), "page", default=1, minimum=1)
        per_page = _int_param(query.get("per_page"), "per_page", default=151, minimum=1)
        if per_page > 200:
            raise SimulatorError(400, "per_page must not be more than 200")
        name = (query.get("name") or "").lower()
        since_raw = query.get("since")
        since = datetime.fromtimestamp(int(since_raw), UTC) if since_raw else None
        with self.world.lock:
            projects = [p for p in self.world.projects.values() if p.workspace_id == workspace_id]
        if active != "both":
            projects = [p for p in projects if p.active == (active == "true")]
        if name:
            projects = [p for p in projects if name in p.name.lower()]
        if since is not None:
            projects = [p for p in projects if p.at is not None and p.at >= since]
        projects.sort(key=lambda project: (project.name.lower(), project.id))
        chunk = projects[(page - 1) * per_page : page * per_page]
        return wire.TogglJSON([project.wire() for project in chunk])

    async def _create_project(self, request: Request, user: SimUser) -> Response:
        workspace_id = request.path_params["workspace_id"]
        self.world.workspace_for(user, workspace_id)
        body = _ProjectFields.model_validate(await _json_object(request))
        project = self.world.add_project(workspace_id, body.model_dump(exclude_unset=True))
        return wire.TogglJSON(project.wire())

    async def _get_project(self, request: Request, user: SimUser) -> Response:
        workspace_id = request.path_params["workspace_id"]
        self.world.workspace_for(user, workspace_id)
        return wire.TogglJSON(
            self.world.project_in(workspace_id, request.path_params["project_id"]).wire()
        )

    async def _update_project(self, request: Request, user: SimUser) -> Response:
        workspace_id = request.path_params["workspace_id"]
        self.world.workspace_for(user, workspace_id)
        body = _ProjectFields.model_validate(await _json_object(request))
        project = self.world.update_project(
            workspace_id, request.path_params["project_id"], body.model_dump(exclude_unset=True)
        )
        return wire.TogglJSON(project.wire())

    async def _delete_project(self, request: Request, user: SimUser) -> Response:
        workspace_id = request.path_params["workspace_id"]
        self.world.workspace_for(user, workspace_id)
        self.world.delete_project(workspace_id, request.path_params["project_id"])
        return Response(status_code=200)

    # --- clients --------------------------------------------------------------------------------

    async def _list_clients(self, request: Request, user: SimUser) -> Response:
        workspace_id = request.path_params["workspace_id"]
        self.world.workspace_for(user, workspace_id)
        status = request.query_params.get("status", "active")
        if status not in ("active", "archived", "both"):
            raise SimulatorError(400, "status must be active, archived or both")
        name = (request.query_params.get("name") or "").lower()
        with self.world.lock:
            clients = [c for c in self.world.clients.values() if c.workspace_id == workspace_id]
        if status != "both":
            clients = [c for c in clients if c.archived == (status == "archived")]
        if name:
            clients = [c for c in clients if name in c.name.lower()]
        clients.sort(key=lambda client: (client.name.lower(), client.id))
        return wire.TogglJSON([client.wire() for client in clients])

    async def _create_client(self, request: Request, user: SimUser) -> Response:
        workspace_id = request.path_params["workspace_id"]
        self.world.workspace_for(user, workspace_id)
        body = _ClientFields.model_validate(await _json_object(request))
        client = self.world.add_client(workspace_id, body.name or "", body.notes, user.id)
        return wire.TogglJSON(client.wire())

    async def _get_client(self, request: Request, user: SimUser) -> Response:
        workspace_id = request.path_params["workspace_id"]
        self.world.workspace_for(user, workspace_id)
        return wire.TogglJSON(
            self.world.client_in(workspace_id, request.path_params["client_id"]).wire()
        )

    async def _update_client(self, request: Request, user: SimUser) -> Response:
        workspace_id = request.path_params["workspace_id"]
        self.world.workspace_for(user, workspace_id)
        body = _ClientFields.model_validate(await _json_object(request))
        client = self.world.update_client(
            workspace_id, request.path_params["client_id"], body.model_dump(exclude_unset=True)
        )
        return wire.TogglJSON(client.wire())

    async def _delete_client(self, request: Request, user: SimUser) -> Response:
        workspace_id = request.path_params["workspace_id"]
        self.world.workspace_for(user, workspace_id)
        self.world.delete_client(workspace_id, request.path_params["client_id"])
        return Response(status_code=200)

    async def _archive_client(self, request: Request, user: SimUser) -> Response:
        workspace_id = request.path_params["workspace_id"]
        self.world.workspace_for(user, workspace_id)
        archived = self.world.archive_client(workspace_id, request.path_params["client_id"])
        return wire.TogglJSON(archived)

    async def _restore_client(self, request: Request, user: SimUser) -> Response:
        workspace_id = request.path_params["workspace_id"]
        self.world.workspace_for(user, workspace_id)
        body = await _json_object(request, allow_empty=True)
        client = self.world.restore_client(
            workspace_id,
            request.path_params["client_id"],
            all_projects=bool(body.get("restore_all_projects")),
            project_ids=[int(pid) for pid in body.get("projects") or []],
        )
        return wire.TogglJSON(client.wire())

    # --- tags -----------------------------------------------------------------------------------

    async def _list_tags(self, request: Request, user: SimUser) -> Response:
        workspace_id = request.path_params["workspace_id"]
        self.world.workspace_for(user, workspace_id)
        with self.world.lock:
            tags = [t for t in self.world.tags.values() if t.workspace_id == workspace_id]
        tags.sort(key=lambda tag: (tag.name.lower(), tag.id))
        return wire.TogglJSON([tag.wire() for tag in tags])

    async def _create_tag(self, request: Request, user: SimUser) -> Response:
        workspace_id = request.path_params["workspace_id"]
        self.world.workspace_for(user, workspace_id)
        body = await _json_object(request)
        tag = self.world.add_tag(workspace_id, str(body.get("name") or ""), user.id)
        # Swagger: an array of tags. [guess] just the one created.
        return wire.TogglJSON([tag.wire()])

    async def _update_tag(self, request: Request, user: SimUser) -> Response:
        workspace_id = request.path_params["workspace_id"]
        self.world.workspace_for(user, workspace_id)
        body = await _json_object(request)
        tag = self.world.rename_tag(
            workspace_id, request.path_params["tag_id"], str(body.get("name") or "")
        )
        # Swagger: an array of tags. [guess] just the one renamed.
        return wire.TogglJSON([tag.wire()])

    async def _delete_tag(self, request: Request, user: SimUser) -> Response:
        workspace_id = request.path_params["workspace_id"]
        self.world.workspace_for(user, workspace_id)
        self.world.delete_tag(workspace_id, request.path_params["tag_id"])
        return Response(status_code=200)

    # --- Webhooks API v1 (the behaviour and its sources: webhooks.py) --------------------------

    def _webhook_routes(self) -> list[BaseRoute]:
        def route(path: str, handler: Handler, methods: list[str]) -> Route:
            return Route(path, self._endpoint(handler), methods=methods)

        sub = "/subscriptions/{workspace_id:int}/{subscription_id:int}"
        return [
            route("/event_filters", self._hook_filters, ["GET"]),
            route("/subscriptions/{workspace_id:int}", self._hook_list, ["GET"]),
            route("/subscriptions/{workspace_id:int}", self._hook_create, ["POST"]),
            route(sub, self._hook_update, ["PUT"]),
            route(sub, self._hook_enable, ["PATCH"]),
            route(sub, self._hook_delete, ["DELETE"]),
            route(f"{sub}/events", self._hook_events, ["GET"]),
            route("/ping/{workspace_id:int}/{subscription_id:int}", self._hook_ping, ["POST"]),
            Route(
                "/validate/{workspace_id:int}/{subscription_id:int}/{code}",
                self._hook_validate,
                methods=["GET"],
            ),
        ]

    async def _hook_filters(self, request: Request, user: SimUser) -> Response:
        return wire.TogglJSON(self.webhooks.event_filters())

    async def _hook_list(self, request: Request, user: SimUser) -> Response:
        return wire.TogglJSON(self.webhooks.list_for(user, request.path_params["workspace_id"]))

    async def _hook_create(self, request: Request, user: SimUser) -> Response:
        body = await _json_object(request)
        created = await self.webhooks.create_via_api(
            user, request.path_params["workspace_id"], body, str(request.base_url)
        )
        return wire.TogglJSON(created)

    async def _hook_update(self, request: Request, user: SimUser) -> Response:
        body = await _json_object(request)
        params = request.path_params
        updated = await self.webhooks.update(
            user, params["workspace_id"], params["subscription_id"], body
        )
        return wire.TogglJSON(updated)

    async def _hook_enable(self, request: Request, user: SimUser) -> Response:
        body = await _json_object(request)
        params = request.path_params
        updated = await self.webhooks.set_enabled(
            user, params["workspace_id"], params["subscription_id"], body
        )
        return wire.TogglJSON(updated)

    async def _hook_delete(self, request: Request, user: SimUser) -> Response:
        params = request.path_params
        deleted = self.webhooks.delete(user, params["workspace_id"], params["subscription_id"])
        return wire.TogglJSON(deleted)

    async def _hook_events(self, request: Request, user: SimUser) -> Response:
        params = request.path_params
        offset = _int_param(request.query_params.get("offset"), "offset", default=0, minimum=0)
        events = self.webhooks.events(
            user, params["workspace_id"], params["subscription_id"], offset
        )
        return wire.TogglJSON(events)

    async def _hook_ping(self, request: Request, user: SimUser) -> Response:
        params = request.path_params
        self.webhooks.ping(user, params["workspace_id"], params["subscription_id"])
        return wire.TogglJSON("OK")

    async def _hook_validate(self, request: Request) -> Response:
        params = request.path_params
        try:
            self.webhooks.validate(
                params["workspace_id"], params["subscription_id"], params["code"]
            )
        except SimulatorError as exc:
            self._record(request, exc.status, None)
            return wire.error(exc.status, exc.message)
        self._record(request, 200, None)
        return wire.TogglJSON("OK")

    # --- admin API (no auth, no quota, no faults) -----------------------------------------------

    def _admin_routes(self) -> list[BaseRoute]:
        return [
            Route("/users", self._admin_add_user, methods=["POST"]),
            Route("/users/{user_id:int}/revoke", self._admin_revoke, methods=["POST"]),
            Route("/projects", self._admin_add_project, methods=["POST"]),
            Route("/time_entries", self._admin_add_entry, methods=["POST"]),
            Route("/time_entries", self._admin_list_entries, methods=["GET"]),
            Route("/faults", self._admin_add_fault, methods=["POST"]),
            Route("/faults", self._admin_clear_faults, methods=["DELETE"]),
            Route("/clock", self._admin_clock, methods=["POST"]),
            Route("/requests", self._admin_requests, methods=["GET"]),
            Route("/requests", self._admin_clear_requests, methods=["DELETE"]),
            Route("/quotas", self._admin_reset_quotas, methods=["DELETE"]),
            Route("/webhooks/faults", self._admin_add_hook_fault, methods=["POST"]),
            Route("/webhooks/faults", self._admin_clear_hook_faults, methods=["DELETE"]),
            Route("/webhooks/drain", self._admin_drain_hooks, methods=["POST"]),
            Route("/webhooks/subscriptions", self._admin_hook_subs, methods=["GET"]),
        ]

    async def _admin_add_hook_fault(self, request: Request) -> Response:
        body = await _json_object(request)
        return await self._admin(
            lambda: self.webhooks.faults.add(DeliveryFault.model_validate(body)).model_dump()
        )

    async def _admin_clear_hook_faults(self, request: Request) -> Response:
        self.webhooks.faults.clear()
        return JSONResponse({"cleared": True})

    async def _admin_drain_hooks(self, request: Request) -> Response:
        body = await _json_object(request, allow_empty=True)
        timeout = float(body.get("timeout", 5.0))
        try:
            await asyncio.to_thread(self.webhooks.drain, timeout)
        except TimeoutError as exc:
            return JSONResponse({"error": str(exc)}, status_code=504)
        return JSONResponse({"drained": True})

    async def _admin_hook_subs(self, request: Request) -> Response:
        return JSONResponse([self.webhooks.wire(s) for s in self.webhooks.subscriptions()])

    async def _admin(self, action: Callable[[], Any]) -> Response:
        try:
            return JSONResponse(action())
        except SimulatorError as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        except (ValidationError, ValueError, TypeError, KeyError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    async def _admin_add_user(self, request: Request) -> Response:
        body = await _json_object(request, allow_empty=True)

        def add() -> dict[str, Any]:
            plan: Plan = body.pop("plan", "free")
            user = self.add_user(plan=plan, **body)
            return {
                "id": user.id,
                "api_token": user.api_token,
                "default_workspace_id": user.default_workspace_id,
            }

        return await self._admin(add)

    async def _admin_revoke(self, request: Request) -> Response:
        user_id = request.path_params["user_id"]
        return await self._admin(lambda: {"api_token": self.world.revoke_token(user_id)})

    async def _admin_add_project(self, request: Request) -> Response:
        body = await _json_object(request)
        workspace_id = int(body.pop("workspace_id"))
        return await self._admin(lambda: self.world.add_project(workspace_id, body).wire())

    async def _admin_add_entry(self, request: Request) -> Response:
        body = await _json_object(request)

        def add() -> dict[str, Any]:
            user = self.world._user(int(body.pop("user_id")))
            fields = _EntryFields.model_validate(body).model_dump(exclude_unset=True)
            workspace_id = int(body.get("workspace_id") or user.default_workspace_id)
            entry = self.add_time_entry(user, workspace_id=workspace_id, **fields)
            return wire.listed_entry(entry)

        return await self._admin(add)

    async def _admin_list_entries(self, request: Request) -> Response:
        user_id = int(request.query_params["user_id"])
        entries = self.world.entries_of(user_id, include_deleted=True)
        return JSONResponse([wire.listed_entry(entry) for entry in entries])

    async def _admin_add_fault(self, request: Request) -> Response:
        body = await _json_object(request)
        return await self._admin(lambda: self.faults.add(Fault.model_validate(body)).model_dump())

    async def _admin_clear_faults(self, request: Request) -> Response:
        self.faults.clear()
        return JSONResponse({"cleared": True})

    async def _admin_clock(self, request: Request) -> Response:
        body = await _json_object(request)
        clock = self.clock
        if not isinstance(clock, FakeClock):
            return JSONResponse({"error": "this simulator runs on the real clock"}, 409)

        def move() -> dict[str, str]:
            if "advance" in body:
                clock.advance(float(body["advance"]))
            if "now" in body:
                clock.set(datetime.fromisoformat(str(body["now"])))
            return {"now": clock.now().isoformat()}

        return await self._admin(move)

    async def _admin_requests(self, request: Request) -> Response:
        return JSONResponse(
            [
                {"method": r.method, "path": r.path, "status": r.status, "user_id": r.user_id}
                for r in self.requests
            ]
        )

    async def _admin_clear_requests(self, request: Request) -> Response:
        self.clear_requests()
        return JSONResponse({"cleared": True})

    async def _admin_reset_quotas(self, request: Request) -> Response:
        self.quota.reset()
        return JSONResponse({"reset": True})


# --- request bodies -----------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = {"extra": "ignore"}


class _EntryFields(_Body):
    start: datetime | None = None
    stop: datetime | None = None
    duration: int | None = None
    description: str | None = None
    project_id: int | None = None
    task_id: int | None = None
    tags: list[str] | None = None
    tag_ids: list[int] | None = None
    billable: bool | None = None


class _ProjectFields(_Body):
    name: str | None = None
    active: bool | None = None
    is_private: bool | None = None
    client_id: int | None = None
    color: str | None = None
    billable: bool | None = None
    estimated_hours: int | None = None
    rate: float | None = None


class _ClientFields(_Body):
    name: str | None = None
    notes: str | None = None


async def _json_object(request: Request, *, allow_empty: bool = False) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        if allow_empty:
            return {}
        raise SimulatorError(400, "JSON body expected")
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise SimulatorError(400, "Invalid JSON input") from None
    if not isinstance(parsed, dict):
        raise SimulatorError(400, "JSON object expected")
    return parsed


def _int_param(raw: str | None, name: str, *, default: int, minimum: int) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SimulatorError(400, f"Invalid {name}") from None
    if value < minimum:
        raise SimulatorError(400, f"{name} must be at least {minimum}")
    return value


def _quota_headers(state: QuotaState) -> dict[str, str]:
    return {
        "X-Toggl-Quota-Remaining": str(state.remaining),
        "X-Toggl-Quota-Resets-In": str(state.resets_in),
    }


def _quota_model(organization_id: int | None, state: QuotaState) -> Quota:
    return Quota(
        organization_id=organization_id,
        remaining=state.remaining,
        resets_in_secs=state.resets_in,
        total=state.limit,
    )
