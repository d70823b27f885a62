"""The JSON API under `/api/v1`, documented by the app's OpenAPI: what the pages do.

Authenticated by the session cookie (`tb_session`, set by signing in); every state-changing
request also carries the session's CSRF token in the `X-CSRF-Token` header (`GET /api/v1/me`
says what it is). Every read and write is scoped to the signed-in account: another account's
ids are not found (404). Errors are `{"error": {"code", "message"}}`:

- 400 a token Toggl Track or Exist refused (nothing stored), 401 signed out, 403 no CSRF token,
  404 no such object of yours, 409 a state that forbids it (not connected, an attribute another
  integration of yours holds), 422 a request that breaks its schema;
- 502 Toggl Track or Exist failed or refused a stored token, 503 their quota or rate limit
  (with `Retry-After` when they said how long); the code and message name the service.

Every action goes through the application layer (`timebridge.bridge.Bridge`); reads of the
store use `bridge.store` and the read models `bridge.views`. Only `GET /projects`,
`GET /takeovers`, `PUT /mapping`, `POST /plan`, the runs, connecting, `PUT /webhooks` and
`POST /webhooks/check` ask Toggl or Exist.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from datetime import date, datetime
from functools import cache
from typing import Annotated, Any, Literal, cast, get_args
from zoneinfo import available_timezones

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, Security
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import APIKeyCookie
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, field_validator

from timebridge.bridge import (
    Bridge,
    DayNotFound,
    DayView,
    MappingSaved,
    Skipped,
    SkipReason,
    SyncNotPossible,
    SyncPreview,
    WebhookStatus,
    WebhooksUnavailable,
)
from timebridge.errors import UpstreamError
from timebridge.exist import ExistTokens
from timebridge.exist import errors as exist_errors
from timebridge.jobs import next_fire_time
from timebridge.origins import exist_origin, toggl_origin
from timebridge.store import (
    AttributeClaimed,
    ConnectionPending,
    ConnectionStatus,
    ExistConnection,
    InvalidMapping,
    NotFound,
    ProjectMapping,
    SyncRun,
    TogglConnection,
)
from timebridge.sync.attributes import BRIDGE_TEMPLATES, MOVIES_TEMPLATE
from timebridge.sync.runner import RunKind, RunOutcome, RunReport
from timebridge.toggl import errors as toggl_errors
from timebridge.web.auth import CSRF_HEADER, SESSION_COOKIE, Changing, SignedIn
from timebridge.web.errors import api_error
from timebridge.web.state import bridge_of, service_state, settings_of
from timebridge.web.state import sync_now as sync_now_of

#: The Exist attributes a Toggl project can be mapped to.
Attribute = Literal[
    "tv_min", "movies_min", "gaming_min", "productive_min", "neutral_min", "distracting_min"
]
assert get_args(Attribute) == BRIDGE_TEMPLATES, "the API's attributes are the bridge's"

#: Most run records `GET /runs` answers with.
RUNS_SHOWN = 50
#: Toggl's ids are 64-bit.
MAX_ID = 2**63 - 1

# --- errors -----------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str = Field(examples=["toggl_unavailable"])
    message: str


class ErrorBody(BaseModel):
    """Every error of the API."""

    error: ErrorDetail


class ApiProblem(Exception):
    """An answer other than the route's own: a status, a code, a message (and headers)."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        answer = api_error(self.status, self.code, self.message)
        answer.headers.update(self.headers)
        return answer


def _service(error: UpstreamError) -> tuple[str, str]:
    if isinstance(error, toggl_errors.TogglError):
        return "toggl", "Toggl Track"
    return "exist", "Exist"


def upstream_problem(error: UpstreamError) -> ApiProblem:
    """What an upstream failure is to an API caller: 503 for a quota or rate limit (come back
    later), 502 for anything else (the service failed, or refused the stored token)."""
    slug, name = _service(error)
    if isinstance(error, toggl_errors.QuotaExceeded):
        headers = _retry_after(error.resets_in)
        return ApiProblem(
            503, "toggl_quota_exceeded", f"{name}: {error.message}. Try again then.", headers
        )
    if isinstance(error, toggl_errors.RateLimited | exist_errors.RateLimited):
        return ApiProblem(
            503,
            f"{slug}_rate_limited",
            f"{name} asks for fewer requests for now; try again shortly.",
            _retry_after(error.retry_after),
        )
    if isinstance(error, toggl_errors.AuthenticationError | exist_errors.AuthenticationError):
        return ApiProblem(
            502,
            f"{slug}_token_refused",
            f"{name} refused the stored token ({error.message}); connect {name} again.",
        )
    return ApiProblem(502, f"{slug}_unavailable", f"{name} did not answer as expected: {error}")


def _retry_after(seconds: float | None) -> dict[str, str]:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return {}
    return {"Retry-After": str(math.ceil(seconds))}


def _problem_of(error: Exception) -> ApiProblem | None:
    """The API's answer to what the application layer raised; None for a bug."""
    if isinstance(error, ApiProblem):
        return error
    if isinstance(error, UpstreamError):
        return upstream_problem(error)
    if isinstance(error, AttributeClaimed):
        return ApiProblem(409, "attribute_claimed", str(error))
    if isinstance(error, WebhooksUnavailable):
        return ApiProblem(409, "webhooks_unavailable", str(error))
    if isinstance(error, SyncNotPossible):
        return _not_ready(error.reason)
    if isinstance(error, DayNotFound):
        return ApiProblem(404, "not_found", str(error))
    if isinstance(error, NotFound):
        return ApiProblem(404, "not_found", "There is no such object in your account.")
    if isinstance(error, InvalidMapping):
        return ApiProblem(422, "invalid_request", str(error))
    return None


def _not_ready(reason: SkipReason) -> ApiProblem:
    if reason is SkipReason.NO_TOGGL:
        return ApiProblem(
            409, "toggl_not_connected", "Connect Toggl Track first (no active connection)."
        )
    return ApiProblem(409, "exist_not_connected", "Connect Exist first (no active connection).")


class _ApiRoute(APIRoute):
    """Answers what the application layer raised as the API's JSON errors."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handle(request)
            except Exception as exc:
                problem = _problem_of(exc)
                if problem is None:
                    raise
                return problem.response()

        return answer


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI's description of the error answers an operation may give."""
    words = {
        400: "The token was refused; nothing was stored",
        403: "No CSRF token (`X-CSRF-Token`), or not this session's",
        404: "Not found in your account",
        409: "Not possible in the account's state (see the code)",
        422: "The request does not follow its schema",
        502: "Toggl Track or Exist failed, or refused the stored token (the code names which)",
        503: "Toggl Track's or Exist's quota or rate limit; `Retry-After` says when to retry",
    }
    return {status: {"model": ErrorBody, "description": words[status]} for status in statuses}


#: What every state-changing operation may answer besides its own errors.
_WRITE_ERRORS = (403, 422)

# --- authentication, as OpenAPI shows it ---------------------------------------------------------

_session_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    scheme_name="session",
    description=(
        "The session cookie set by signing in (`/signin`). State-changing operations also "
        f"need the session's CSRF token in the `{CSRF_HEADER}` header."
    ),
    auto_error=False,
)


async def _csrf_header(
    token: Annotated[
        str,
        Header(
            alias=CSRF_HEADER,
            description=(
                "The session's CSRF token (`csrf_token` of `GET /api/v1/me`); without it, or "
                "with another, a state-changing request is a 403."
            ),
        ),
    ],
) -> None:
    """Documents the CSRF header of a state-changing operation; `Changing` checks it (and
    answers 403 before a missing header could be a 422)."""


#: On every state-changing operation.
_CSRF = [Depends(_csrf_header)]

router = APIRouter(
    prefix="/api/v1",
    tags=["api"],
    route_class=_ApiRoute,
    dependencies=[Security(_session_cookie)],
    responses={401: {"model": ErrorBody, "description": "Not signed in"}},
)

# --- models -------------------------------------------------------------------------------------

Token = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=512, pattern=r"^[!-~]+$"),
]


class MeOut(BaseModel):
    """The signed-in account."""

    id: int
    email: str
    display_name: str | None
    exist_username: str | None
    #: The account's own zone, overriding Exist's (None: Exist's profile zone is used).
    time_zone: str | None = Field(description="Your own zone; null: the one Exist uses.")
    effective_time_zone: str = Field(description="The zone your days are counted in.")
    csrf_token: str = Field(
        description=f"Send it as `{CSRF_HEADER}` on every state-changing request of this session."
    )


class MePatch(BaseModel):
    """Settings of the account; a field left out is left as it is."""

    model_config = ConfigDict(extra="forbid")

    time_zone: str | None = Field(
        default=None,
        max_length=64,
        description="An IANA zone such as Europe/Berlin; null: use the zone Exist uses.",
        examples=["Europe/Berlin"],
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None and value not in _zones():
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. Europe/Berlin)")
        return value


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


Status = Literal["PENDING", "ACTIVE", "FAILED"]


class TogglConnectionOut(BaseModel):
    """A Toggl Track connection (its token is never shown)."""

    id: str
    status: Status
    is_default: bool = Field(description="The connection the bridge syncs from.")
    label: str | None
    toggl_user_id: int | None
    failure_reason: str | None
    origin: str = Field(description="Where the token was checked; the only place it is sent.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, connection: TogglConnection) -> TogglConnectionOut:
        return cls(
            id=connection.id,
            status=_status(connection.status),
            is_default=connection.is_default,
            label=connection.label,
            toggl_user_id=connection.toggl_user_id,
            failure_reason=connection.failure_reason,
            origin=connection.origin,
            created_at=connection.created_at,
            updated_at=connection.updated_at,
        )


class ExistConnectionOut(BaseModel):
    """The Exist connection (its tokens are never shown)."""

    status: Status = Field(description="FAILED: Exist refused even a refreshed token.")
    time_zone: str | None = Field(description="The zone Exist uses for your days.")
    origin: str
    scopes: list[str]
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, connection: ExistConnection) -> ExistConnectionOut:
        return cls(
            status=_status(connection.status),
            time_zone=connection.time_zone,
            origin=connection.origin,
            scopes=connection.scopes.split(),
            expires_at=connection.expires_at,
            created_at=connection.created_at,
            updated_at=connection.updated_at,
        )


def _status(status: ConnectionStatus) -> Status:
    if status is ConnectionStatus.PENDING:
        return "PENDING"
    return "ACTIVE" if status is ConnectionStatus.ACTIVE else "FAILED"


class ConnectionsOut(BaseModel):
    toggl: list[TogglConnectionOut]
    exist: ExistConnectionOut | None = Field(description="null: Exist is not connected.")


class TogglTokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_token: Token = Field(description="Toggl Track → Profile settings → API Token.")


class TogglUserOut(BaseModel):
    id: int
    email: str
    fullname: str
    default_workspace_id: int | None
    timezone: str


class TogglConnectedOut(BaseModel):
    connection: TogglConnectionOut
    toggl_user: TogglUserOut


class ExistTokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: Token = Field(description="A personal access token from Exist's developer page.")


class ExistConnectedOut(BaseModel):
    connection: ExistConnectionOut
    username: str = Field(description="The Exist user the token belongs to.")


class ProjectOut(BaseModel):
    """A Toggl project, and the attribute it feeds."""

    id: int
    workspace_id: int
    workspace_name: str
    name: str
    client_id: int | None
    client_name: str | None
    color: str
    active: bool
    attribute: Attribute | None = Field(description="null: not mapped.")
    exist_attribute: str | None = Field(
        description="The attribute's name in Exist (movies may go to a custom one)."
    )


class ProjectsOut(BaseModel):
    connection_id: str
    projects: list[ProjectOut]
    toggl_requests: int = Field(description="Toggl requests this listing cost.")


class MappingItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project_id: int = Field(gt=0, le=MAX_ID)
    workspace_id: int = Field(gt=0, le=MAX_ID)
    project_name: str = Field(max_length=255)
    attribute: Attribute | None = Field(description="null: the project is not mapped.")

    @field_validator("project_name")
    @classmethod
    def _printable(cls, value: str) -> str:
        if "\x00" in value:
            raise ValueError("a project name cannot hold NUL characters")
        return value


class MappingItemOut(BaseModel):
    project_id: int
    workspace_id: int
    project_name: str
    attribute: Attribute
    exist_attribute: str = Field(description="The attribute's name in Exist.")

    @classmethod
    def of(cls, mapping: ProjectMapping) -> MappingItemOut:
        return cls(
            project_id=mapping.project_id,
            workspace_id=mapping.workspace_id,
            project_name=mapping.project_name,
            attribute=_template(mapping.attribute),
            exist_attribute=mapping.attribute,
        )


def _template(name: str) -> Attribute:
    """The template an Exist attribute name stands for: itself, or (the one custom attribute
    the bridge writes) movies' fallback."""
    return cast(Attribute, name if name in BRIDGE_TEMPLATES else MOVIES_TEMPLATE)


class AttributeReason(BaseModel):
    attribute: str
    reason: str


class AttributeService(BaseModel):
    attribute: str
    service: str = Field(description="The service that feeds it in Exist now.")


class MappingSavedOut(BaseModel):
    mapping: list[MappingItemOut] = Field(description="The mapping stored now.")
    refused: list[AttributeReason] = Field(
        description="Attributes Exist would not let Timebridge own: their projects are not mapped."
    )
    taken_over: list[AttributeService] = Field(
        description="Attributes another service fed until now."
    )
    released: list[str] = Field(description="Attributes given back to Exist.")


class TakeoversOut(BaseModel):
    takeovers: list[AttributeService] = Field(
        description="Which of the attributes asked about another service feeds in Exist now."
    )


class DayOut(BaseModel):
    date: date
    toggl_seconds: int
    toggl_minutes: int = Field(description="What Toggl says, in whole minutes.")
    exist: int | None = Field(description="What Exist holds as far as Timebridge knows.")
    in_sync: bool


class AttributeDaysOut(BaseModel):
    attribute: str
    days: list[DayOut] = Field(description="The window's days, oldest first.")


class DaysOut(BaseModel):
    zone: str
    window: list[date]
    fetched_at: datetime | None = Field(description="When Toggl was last read (null: never).")
    attributes: list[AttributeDaysOut]


class EntryPartOut(BaseModel):
    entry_id: int
    project_id: int
    project_name: str
    start: datetime = Field(description="In the account's zone.")
    stop: datetime | None = Field(description="null: still running.")
    seconds: int = Field(description="Seconds of the entry counted on this date.")
    cut_before: bool = Field(description="Began on an earlier date (cut at midnight).")
    cut_after: bool = Field(description="Goes on past this date (cut at midnight).")


class DayDetailOut(DayOut):
    attribute: str
    entries: list[EntryPartOut]


class RunOut(BaseModel):
    """A recorded run."""

    id: int
    kind: RunKind
    outcome: RunOutcome
    started_at: datetime
    finished_at: datetime
    duration_seconds: float
    toggl_requests: int
    exist_requests: int
    values_written: int
    error: str | None
    next_sync_after: datetime | None

    @classmethod
    def of(cls, run: SyncRun) -> RunOut:
        return cls(
            id=run.id,
            kind=RunKind(run.kind),
            outcome=RunOutcome(run.outcome),
            started_at=run.started_at,
            finished_at=run.finished_at,
            duration_seconds=run.duration.total_seconds(),
            toggl_requests=run.toggl_requests,
            exist_requests=run.exist_requests,
            values_written=run.values_written,
            error=run.error,
            next_sync_after=run.next_sync_after,
        )


class ValueOut(BaseModel):
    attribute: str
    date: date
    value: int = Field(description="Minutes.")


class RunReportOut(BaseModel):
    """What a run did (it is recorded in `GET /runs` too)."""

    kind: RunKind
    outcome: RunOutcome
    started_at: datetime
    finished_at: datetime
    duration_seconds: float
    values_written: int
    toggl_requests: int
    exist_requests: int
    error: str | None = Field(description="The first failure, in words.")
    written: list[ValueOut]
    repaired: list[ValueOut] = Field(description="Repair: the values Exist held differently.")
    released: list[str]
    next_sync_after: datetime | None = Field(description="Not before then (Toggl's quota).")
    unchanged: bool = Field(description="Nothing had changed, so nothing was planned.")

    @classmethod
    def of(cls, report: RunReport) -> RunReportOut:
        return cls(
            kind=report.kind,
            outcome=report.outcome,
            started_at=report.started_at,
            finished_at=report.finished_at,
            duration_seconds=report.duration.total_seconds(),
            values_written=report.values_written,
            toggl_requests=report.toggl_requests,
            exist_requests=report.exist_requests,
            error=report.error,
            written=[
                ValueOut(attribute=w.attribute, date=w.date, value=w.value) for w in report.written
            ],
            repaired=[
                ValueOut(attribute=w.attribute, date=w.date, value=w.value) for w in report.repaired
            ],
            released=sorted(report.released),
            next_sync_after=report.next_sync_after,
            unchanged=report.unchanged,
        )


class PlannedWriteOut(BaseModel):
    attribute: str
    date: date
    current: int | None = Field(description="What Exist holds as far as Timebridge knows.")
    value: int


class PlanOut(BaseModel):
    """A dry run: what a sync would write now; nothing was written."""

    window: list[date]
    writes: list[PlannedWriteOut]
    to_acquire: list[str]
    toggl_requests: int
    exist_requests: int

    @classmethod
    def of(cls, preview: SyncPreview) -> PlanOut:
        return cls(
            window=list(preview.window),
            writes=[
                PlannedWriteOut(
                    attribute=w.attribute, date=w.date, current=w.current, value=w.value
                )
                for w in preview.writes
            ],
            to_acquire=list(preview.to_acquire),
            toggl_requests=preview.toggl_requests,
            exist_requests=preview.exist_requests,
        )


class OverviewOut(BaseModel):
    """The home page: both connections, the mapping's size, the last and next run."""

    toggl: TogglConnectionOut | None = Field(description="The default Toggl connection.")
    exist: ExistConnectionOut | None
    mapped_projects: int
    zone: str
    last_run: RunOut | None
    next_run_at: datetime | None = Field(
        description="When the next scheduled sync runs (null: the account cannot sync yet)."
    )


# --- me -----------------------------------------------------------------------------------------


async def _me(request: Request, viewer_id: int, csrf_token: str) -> MeOut:
    overview = await bridge_of(request).views.overview(viewer_id)
    account = overview.account
    return MeOut(
        id=account.id,
        email=account.email,
        display_name=account.display_name,
        exist_username=account.exist_username,
        time_zone=account.time_zone,
        effective_time_zone=overview.zone,
        csrf_token=csrf_token,
    )


@router.get("/me", response_model=MeOut, summary="The signed-in account")
async def me(request: Request, viewer: SignedIn) -> MeOut:
    """The signed-in account, with the session's CSRF token."""
    return await _me(request, viewer.account_id, viewer.session.csrf_token)


@router.patch(
    "/me",
    response_model=MeOut,
    summary="Change the account's settings",
    dependencies=_CSRF,
    responses=_errors(*_WRITE_ERRORS),
)
async def patch_me(request: Request, viewer: Changing, changes: MePatch) -> MeOut:
    """Set (or, with null, stop setting) the zone the account's days are counted in."""
    if "time_zone" in changes.model_fields_set:
        await bridge_of(request).set_time_zone(viewer.account_id, changes.time_zone)
    return await _me(request, viewer.account_id, viewer.session.csrf_token)


@router.get("/overview", response_model=OverviewOut, summary="Connections, last and next run")
async def overview(request: Request, viewer: SignedIn) -> OverviewOut:
    """What the home page shows: both connections' state, the last run, the next run."""
    seen = await bridge_of(request).views.overview(viewer.account_id)
    toggl, exist = seen.toggl, seen.exist
    ready = (
        toggl is not None
        and toggl.status is ConnectionStatus.ACTIVE
        and toggl.has_token
        and exist is not None
        and exist.status is ConnectionStatus.ACTIVE
    )
    return OverviewOut(
        toggl=TogglConnectionOut.of(toggl) if toggl is not None else None,
        exist=ExistConnectionOut.of(exist) if exist is not None else None,
        mapped_projects=len(seen.mapping),
        zone=seen.zone,
        last_run=RunOut.of(seen.last_run) if seen.last_run is not None else None,
        next_run_at=_next_run(request, viewer.account_id) if ready else None,
    )


def _next_run(request: Request, account_id: int) -> datetime:
    state = service_state(request.app)
    now = state.clock.now()
    scheduler = state.scheduler
    cron = scheduler.cron if scheduler is not None else state.settings.sync_cron
    not_before = scheduler.not_before(account_id) if scheduler is not None else None
    return next_fire_time(cron, max(now, not_before) if not_before is not None else now)


# --- connections ----------------------------------------------------------------------------------


@router.get("/connections", response_model=ConnectionsOut, summary="Toggl and Exist connections")
async def connections(request: Request, viewer: SignedIn) -> ConnectionsOut:
    """The account's Toggl Track connections and its Exist connection (never a token)."""
    store = bridge_of(request).store
    toggl = await store.toggl_connections.list(viewer.account_id)
    exist = await store.exist_connections.get(viewer.account_id)
    return ConnectionsOut(
        toggl=[TogglConnectionOut.of(connection) for connection in toggl],
        exist=ExistConnectionOut.of(exist) if exist is not None else None,
    )


@router.get(
    "/connections/toggl/{connection_id}",
    response_model=TogglConnectionOut,
    summary="One Toggl connection",
    responses=_errors(404, 422),
)
async def toggl_connection(
    request: Request, viewer: SignedIn, connection_id: Annotated[str, Path(max_length=64)]
) -> TogglConnectionOut:
    """A Toggl Track connection of the account (another account's is not found)."""
    store = bridge_of(request).store
    return TogglConnectionOut.of(
        await store.toggl_connections.get(viewer.account_id, connection_id)
    )


@router.post(
    "/connections/toggl",
    response_model=TogglConnectedOut,
    status_code=201,
    summary="Connect Toggl Track",
    dependencies=_CSRF,
    responses=_errors(400, *_WRITE_ERRORS, 502, 503),
)
async def connect_toggl(
    request: Request, viewer: Changing, body: TogglTokenIn
) -> TogglConnectedOut:
    """Check a Toggl Track API token with Toggl's `/me` and store it (encrypted) as the default
    connection. A token Toggl refuses is a 400 and nothing is stored."""
    origin = toggl_origin(settings_of(request).toggl_base_url)
    try:
        connection, toggl_user = await bridge_of(request).connect_toggl(
            viewer.account_id, SecretStr(body.api_token), origin
        )
    except toggl_errors.AuthenticationError:
        raise ApiProblem(
            400,
            "toggl_token_refused",
            "Toggl Track did not accept this API token (Profile settings → API Token).",
        ) from None
    return TogglConnectedOut(
        connection=TogglConnectionOut.of(connection),
        toggl_user=TogglUserOut(
            id=toggl_user.id,
            email=toggl_user.email,
            fullname=toggl_user.fullname,
            default_workspace_id=toggl_user.default_workspace_id,
            timezone=toggl_user.timezone,
        ),
    )


@router.delete(
    "/connections/toggl",
    status_code=204,
    response_class=Response,
    summary="Disconnect Toggl Track",
    dependencies=_CSRF,
    responses=_errors(*_WRITE_ERRORS, 404),
)
async def disconnect_toggl(request: Request, viewer: Changing) -> Response:
    """Delete the Toggl tokens, the mapping, the values written and the entries kept, and give
    the attributes back to Exist."""
    bridge = bridge_of(request)
    if not await bridge.store.toggl_connections.list(viewer.account_id):
        raise ApiProblem(404, "not_found", "Toggl Track is not connected.")
    await bridge.disconnect_toggl(viewer.account_id)
    return Response(status_code=204)


@router.post(
    "/connections/exist",
    response_model=ExistConnectedOut,
    status_code=201,
    summary="Connect Exist",
    dependencies=_CSRF,
    responses=_errors(400, *_WRITE_ERRORS, 502, 503),
)
async def connect_exist(
    request: Request, viewer: Changing, body: ExistTokenIn
) -> ExistConnectedOut:
    """Check a personal Exist token with Exist's profile and store it (encrypted), with the
    zone Exist uses for the user's days. A token Exist refuses is a 400, nothing stored."""
    origin = exist_origin(settings_of(request).exist_base_url)
    tokens = ExistTokens(access_token=SecretStr(body.token))
    try:
        connection, profile = await bridge_of(request).connect_exist(
            viewer.account_id, tokens, origin
        )
    except exist_errors.AuthenticationError:
        raise ApiProblem(400, "exist_token_refused", "Exist did not accept this token.") from None
    return ExistConnectedOut(
        connection=ExistConnectionOut.of(connection), username=profile.username
    )


@router.delete(
    "/connections/exist",
    status_code=204,
    response_class=Response,
    summary="Disconnect Exist",
    dependencies=_CSRF,
    responses=_errors(*_WRITE_ERRORS, 404),
)
async def disconnect_exist(request: Request, viewer: Changing) -> Response:
    """Give the attributes back to Exist and forget the Exist connection and the values
    written; the mapping stays for a reconnect."""
    bridge = bridge_of(request)
    if await bridge.store.exist_connections.get(viewer.account_id) is None:
        raise ApiProblem(404, "not_found", "Exist is not connected.")
    await bridge.disconnect_exist(viewer.account_id)
    return Response(status_code=204)


# --- projects and the mapping ---------------------------------------------------------------------


@router.get(
    "/projects",
    response_model=ProjectsOut,
    summary="Toggl projects and their attributes",
    responses=_errors(409, 502, 503),
)
async def projects(request: Request, viewer: SignedIn) -> ProjectsOut:
    """Every project of the default Toggl connection's workspaces (archived ones too: their
    entries count), with the attribute each feeds. Asks Toggl: one request for the
    workspaces, then a few per workspace (projects, clients)."""
    try:
        listing = await bridge_of(request).projects(viewer.account_id)
    except (SyncNotPossible, ConnectionPending):
        raise _not_ready(SkipReason.NO_TOGGL) from None
    found = [
        ProjectOut(
            id=project.project_id,
            workspace_id=project.workspace_id,
            workspace_name=project.workspace_name,
            name=project.name,
            client_id=project.client_id,
            client_name=project.client_name,
            color=project.color,
            active=project.active,
            attribute=_template(project.attribute) if project.attribute is not None else None,
            exist_attribute=project.attribute,
        )
        for project in listing.projects
    ]
    return ProjectsOut(
        connection_id=listing.connection_id, projects=found, toggl_requests=listing.toggl_requests
    )


@router.get("/mapping", response_model=list[MappingItemOut], summary="The mapping")
async def mapping(request: Request, viewer: SignedIn) -> list[MappingItemOut]:
    """Which Toggl projects feed which Exist attributes."""
    mappings = await bridge_of(request).store.mappings.for_account(viewer.account_id)
    return [MappingItemOut.of(item) for item in mappings]


@router.put(
    "/mapping",
    response_model=MappingSavedOut,
    summary="Replace the mapping",
    dependencies=_CSRF,
    responses=_errors(*_WRITE_ERRORS, 409, 502, 503),
)
async def put_mapping(
    request: Request,
    viewer: Changing,
    items: Annotated[list[MappingItemIn], Field(max_length=10_000)],
) -> MappingSavedOut:
    """Make this the whole mapping: acquire its attributes in Exist, release those no longer
    mapped, store it. A project's attribute Exist refuses is left out (`refused`); an
    attribute another integration of yours holds is a 409 and nothing changes."""
    chosen: dict[int, MappingItemIn] = {}
    for item in items:
        earlier = chosen.get(item.project_id)
        if earlier is not None and earlier.attribute != item.attribute:
            raise ApiProblem(
                422, "invalid_request", f"project {item.project_id} is listed twice, differently"
            )
        chosen[item.project_id] = item
    projects = [
        ProjectMapping(item.workspace_id, item.project_id, item.project_name, item.attribute)
        for item in chosen.values()
        if item.attribute is not None
    ]
    bridge = bridge_of(request)
    saved = await bridge.save_mapping(viewer.account_id, projects)
    return await _saved(bridge, viewer.account_id, saved)


async def _saved(bridge: Bridge, account_id: int, saved: MappingSaved) -> MappingSavedOut:
    stored = await bridge.store.mappings.for_account(account_id)
    return MappingSavedOut(
        mapping=[MappingItemOut.of(item) for item in stored],
        refused=[
            AttributeReason(attribute=name, reason=reason)
            for name, reason in sorted(saved.refused.items())
        ],
        taken_over=[
            AttributeService(attribute=name, service=service)
            for name, service in sorted(saved.taken_over.items())
        ],
        released=sorted(saved.released),
    )


@router.get(
    "/takeovers",
    response_model=TakeoversOut,
    summary="Attributes another service feeds",
    responses=_errors(409, 422, 502, 503),
)
async def takeovers(
    request: Request,
    viewer: SignedIn,
    attributes: Annotated[
        list[Attribute] | None,
        Query(description="The attributes to ask about (repeat it); none: all six."),
    ] = None,
) -> TakeoversOut:
    """Which attributes another service (say RescueTime) feeds in Exist now: mapping them
    takes them over. Asks Exist."""
    asked = attributes or list(get_args(Attribute))
    owners = await bridge_of(request).takeovers(viewer.account_id, asked)
    return TakeoversOut(
        takeovers=[
            AttributeService(attribute=name, service=service)
            for name, service in sorted(owners.items())
        ]
    )


# --- days and runs ------------------------------------------------------------------------------


def _day(view: DayView) -> DayOut:
    return DayOut(
        date=view.date,
        toggl_seconds=view.seconds,
        toggl_minutes=view.minutes,
        exist=view.exist,
        in_sync=view.in_sync,
    )


@router.get("/days", response_model=DaysOut, summary="14 days per attribute")
async def days(request: Request, viewer: SignedIn) -> DaysOut:
    """For every mapped attribute, the window's days: what Toggl says (from the entries the
    last sync read) and what Exist holds as far as Timebridge knows. Asks no one."""
    status = await bridge_of(request).views.status(viewer.account_id)
    return DaysOut(
        zone=status.zone,
        window=list(status.window),
        fetched_at=status.fetched_at,
        attributes=[
            AttributeDaysOut(attribute=item.attribute, days=[_day(day) for day in item.days])
            for item in status.attributes
        ],
    )


@router.get(
    "/days/{attribute}/{day}",
    response_model=DayDetailOut,
    summary="One day of one attribute, with its entries",
    responses=_errors(404, 422),
)
async def day_detail(
    request: Request,
    viewer: SignedIn,
    attribute: Annotated[str, Path(max_length=64)],
    day: date,
) -> DayDetailOut:
    """The entries behind one total: each entry's part of that local date, cut at midnight.
    An attribute not mapped, or a date outside the window, is not found."""
    view = await bridge_of(request).views.day(viewer.account_id, attribute, day)
    return DayDetailOut(
        **_day(view).model_dump(),
        attribute=view.attribute,
        entries=[
            EntryPartOut(
                entry_id=part.entry_id,
                project_id=part.project_id,
                project_name=part.project_name,
                start=part.start,
                stop=part.stop,
                seconds=part.seconds,
                cut_before=part.cut_before,
                cut_after=part.cut_after,
            )
            for part in view.entries
        ],
    )


@router.get("/runs", response_model=list[RunOut], summary="Run history", responses=_errors(422))
async def runs(
    request: Request,
    viewer: SignedIn,
    limit: Annotated[int, Query(ge=1, le=RUNS_SHOWN)] = RUNS_SHOWN,
) -> list[RunOut]:
    """The account's last runs (at most 50), newest first."""
    recorded = await bridge_of(request).views.runs(viewer.account_id, limit=limit)
    return [RunOut.of(run) for run in recorded]


# --- actions ------------------------------------------------------------------------------------


def _report(result: RunReport | Skipped) -> RunReportOut:
    if isinstance(result, Skipped):
        raise _not_ready(result.reason)
    return RunReportOut.of(result)


_RUN_ERRORS = _errors(*_WRITE_ERRORS, 409)


@router.post(
    "/sync",
    response_model=RunReportOut,
    summary="Sync now",
    dependencies=_CSRF,
    responses=_RUN_ERRORS,
)
async def sync_now(request: Request, viewer: Changing) -> RunReportOut:
    """Bring Exist to Toggl's truth now. A run that failed upstream is still a run: its
    `outcome` and `error` say what happened (and it is recorded)."""
    return _report(await sync_now_of(request, viewer.account_id))


@router.post(
    "/zero-out",
    response_model=RunReportOut,
    summary="Zero Out",
    dependencies=_CSRF,
    responses=_RUN_ERRORS,
)
async def zero_out(request: Request, viewer: Changing) -> RunReportOut:
    """Write 0 to every mapped attribute for every day of the window, forget what was
    written, then sync."""
    return _report(await bridge_of(request).zero_out(viewer.account_id))


@router.post(
    "/repair",
    response_model=RunReportOut,
    summary="Repair",
    dependencies=_CSRF,
    responses=_RUN_ERRORS,
)
async def repair(request: Request, viewer: Changing) -> RunReportOut:
    """Read Exist's values for the window and rewrite those that differ from Toggl's truth
    (edits made in Exist by hand, say)."""
    return _report(await bridge_of(request).repair(viewer.account_id))


@router.post(
    "/plan",
    response_model=PlanOut,
    summary="Dry run",
    dependencies=_CSRF,
    responses=_errors(*_WRITE_ERRORS, 409, 502, 503),
)
async def plan(request: Request, viewer: Changing) -> PlanOut:
    """The values a sync would write now, without writing any (reads Toggl and Exist)."""
    return PlanOut.of(await bridge_of(request).plan(viewer.account_id))


# --- webhooks ------------------------------------------------------------------------------------


class WebhookWorkspaceOut(BaseModel):
    """Where the webhook of one of the user's Toggl workspaces stands."""

    workspace_id: int
    workspace_name: str | None
    state: Literal["active", "unvalidated", "disabled", "limited", "failing"] = Field(
        description="`active`: Toggl delivers changes; `unvalidated`: waiting for Toggl to "
        "confirm; `disabled`: disabled at Toggl (the daily check enables it); `limited`: the "
        "workspace's plan allows no more webhooks; `failing`: Toggl cannot deliver."
    )
    problem: str | None = Field(description="What is wrong, in words for the user.")
    failed_deliveries: int


class WebhooksOut(BaseModel):
    """The account's Toggl webhooks."""

    enabled: bool
    available: bool = Field(description="Whether they can be turned on on this service.")
    unavailable_reason: str | None
    last_event_at: datetime | None = Field(description="When a change last arrived.")
    checked_at: datetime | None = Field(description="When they were last checked with Toggl.")
    workspaces: list[WebhookWorkspaceOut]

    @classmethod
    def of(cls, status: WebhookStatus) -> WebhooksOut:
        endpoint = status.endpoint
        return cls(
            enabled=endpoint is not None,
            available=status.unavailable is None,
            unavailable_reason=status.unavailable,
            last_event_at=endpoint.last_event_at if endpoint else None,
            checked_at=endpoint.checked_at if endpoint else None,
            workspaces=[
                WebhookWorkspaceOut(
                    workspace_id=item.workspace_id,
                    workspace_name=item.workspace_name,
                    state=item.state.value,
                    problem=item.problem,
                    failed_deliveries=item.failed_deliveries,
                )
                for item in (endpoint.subscriptions if endpoint else ())
            ],
        )


class WebhooksIn(BaseModel):
    """Turn the account's Toggl webhooks on or off."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool


@router.get("/webhooks", response_model=WebhooksOut, summary="Toggl webhooks")
async def get_webhooks(request: Request, viewer: SignedIn) -> WebhooksOut:
    """Whether Toggl tells Timebridge of each change (Exist updated within seconds), and how
    each workspace's webhook stands. No request to Toggl."""
    return WebhooksOut.of(await bridge_of(request).webhooks.status(viewer.account_id))


@router.put(
    "/webhooks",
    response_model=WebhooksOut,
    summary="Turn Toggl webhooks on or off",
    dependencies=_CSRF,
    responses=_errors(*_WRITE_ERRORS, 409, 502, 503),
)
async def put_webhooks(request: Request, viewer: Changing, body: WebhooksIn) -> WebhooksOut:
    """On: one Toggl subscription per workspace (or the existing ones put back in order); a
    workspace Toggl refuses (its plan's limit, an unreachable address) says so in its `problem`
    and keeps being synced on the schedule. Off: the subscriptions are deleted at Toggl."""
    webhooks = bridge_of(request).webhooks
    if body.enabled:
        await webhooks.turn_on(viewer.account_id)
    else:
        await webhooks.turn_off(viewer.account_id)
    return WebhooksOut.of(await webhooks.status(viewer.account_id))


@router.post(
    "/webhooks/check",
    response_model=WebhooksOut,
    summary="Check Toggl webhooks now",
    dependencies=_CSRF,
    responses=_errors(*_WRITE_ERRORS, 409, 502, 503),
)
async def check_webhooks(request: Request, viewer: Changing) -> WebhooksOut:
    """What the daily check does, now: lost subscriptions made again, disabled ones enabled,
    unvalidated ones pinged, failed deliveries counted."""
    webhooks = bridge_of(request).webhooks
    if not await webhooks.check_account(viewer.account_id):
        raise ApiProblem(409, "webhooks_off", "Webhooks are off: turn them on first.")
    return WebhooksOut.of(await webhooks.status(viewer.account_id))


@router.delete(
    "/account",
    status_code=204,
    response_class=Response,
    summary="Delete the account",
    dependencies=_CSRF,
    responses=_errors(*_WRITE_ERRORS),
)
async def delete_account(request: Request, viewer: Changing) -> Response:
    """Delete everything of the account: attributes given back to Exist, then every row
    (connections, mapping, values, runs, sessions). This session ends too."""
    await bridge_of(request).delete_account(viewer.account_id)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


__all__ = ["ErrorBody", "router", "upstream_problem"]
