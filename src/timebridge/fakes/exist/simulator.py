"""`ExistSimulator`: Exist's API v2 and OAuth2 endpoints as a real ASGI application.

What it reproduces, with the file of Exist's developer docs (github.com/hellocodeco/
exist-api-docs, `docs/…`) each behaviour comes from; `shared/reference/exist.md` summarises them:
- OAuth2 authorization-code flow (reference/authentication/oauth2.md): `GET /oauth2/authorize`
  shows an Approve/Deny page and redirects with `?code=…&state=…` or `?error=access_denied`;
  `POST /oauth2/access_token` (form-encoded) exchanges codes and refreshes. A refresh issues a
  new pair and invalidates the old access AND refresh token. Tokens expire after `expires_in`
  (a year), judged by the clock. `redirect_uri` may be left out of both the authorize request
  and the code exchange (a production client, existintegrations2's ExistApiService, sends
  neither): the client's registered redirect URI is used.
- Bearer auth on `/api/2/…`; a missing, unknown, replaced or expired token is a 401 with a
  DRF-style `{"detail": "…"}` body ([guess] on the exact body; guide/write_client.md says only
  "a HTTP 401 response containing an error message").
- `accounts/profile/`, `attributes/` (+ `owned/`, `templates/`, `with-values/`, `values/`) with
  DRF paging `{count, next, previous, results}` (reference/attributes.md,
  reference/attribute_ownership.md). Reads are silently limited to the token's read scopes
  (reference/authentication/oauth2.md). `values/` and `with-values/` list every day
  (reference/object_types.md), newest first; a day without data is `null` by default, or the
  type's default 0 when `empty_days = "zero"` (guide/read_client.md: "Zero is the default value
  for other types like quantities") — the docs disagree, so tests can choose.
- Attributes and templates with `priority` >= 10 are hidden unless `include_low_priority` is
  true (reference/attributes.md, reference/attribute_ownership.md). `manual=true` lists only
  manual attributes, `manual=false` leaves them out (same files).
- `acquire/` (reference/attribute_ownership.md): by template creates the attribute if missing;
  by name takes any existing attribute, custom ones included (`allow_user_defined` left the docs
  in 2022 and is ignored); `manual` sets the flag, and acquiring what the client already owns
  succeeds again (guide/write_client.md: "We could run this again and get the same result").
  `release/`: ownership passes on or the attribute goes inactive. `create/`
  (reference/creating_attributes.md): `manual` defaults to true; `exists` when it already is
  ([code] existintegrations2); custom names are slugs of the label. `update/` (absolute) and
  `increment/` (adds; success items carry `current`) (reference/writing_data.md). Only the
  owner may write (`unauthorised` per item); at most 35 objects per request (else 400); any
  failed item makes the answer 202.
- 300 requests per hour per user and client (guide/index.md), sliding window on the injected
  clock, then 429.

Choices where the docs are silent, and the switches that let a test pick another answer:
- The 429 carries DRF's throttle message and, by default, `Retry-After` (seconds until the
  window frees a request), as Django REST framework's throttling does; the docs document no
  headers (guide/read_client.md: "a `status_code` of `429` and no data"), so
  `retry_after_on_429 = False` answers without it.
- Per-item write failures with any `error_code` a test chooses, for one attribute:
  `fail_items` (the docs name only `missing_field`, `validation` and `unauthorised`).
- Negative increments fail per item with `validation` (the product seed reports Exist rejects
  them; the docs say nothing).
- Unknown attributes or templates fail per item with `not_found`; writing outside the token's
  write scopes fails with `unauthorised`.
- A refused template (see `refuse_template`) fails with `not_found`, like a server that does
  not know it.
- Default page size 20 (`limit` is capped at 100); a page past the end is a 404 "Invalid page."
- OAuth errors use RFC 6749 bodies: 401 `invalid_client`, 400 `invalid_grant`. A redirect URI
  must be registered on the client (any is accepted when none is registered) and be HTTPS unless
  it points at the local machine (reference/authentication/oauth2.md says HTTPS; the guide
  itself uses http://localhost).
- The personal token has every scope and expires like any other token.
"""

from __future__ import annotations

import html
import json
import math
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from timebridge.clock import Clock, FakeClock, SystemClock
from timebridge.exist.models import Attribute, AttributeValue, ValueType
from timebridge.fakes.exist.catalogue import (
    GROUPS,
    LOW_PRIORITY,
    SCOPES,
    TEMPLATES,
    VALUE_TYPE_DESCRIPTIONS,
)
from timebridge.fakes.exist.state import (
    MAX_ITEMS,
    ApiError,
    EmptyDays,
    ExistWorld,
    ForcedFailure,
    ItemFailure,
    JsonObject,
    OAuthError,
    SimAttribute,
    SimClient,
    SimService,
    SimToken,
    SimUser,
)
from timebridge.fakes.faults import Fault, FaultInjector, FaultPlan
from timebridge.fakes.quota import SlidingWindowQuota

#: [docs] requests per hour per user token.
RATE_LIMIT = 300
#: [docs] tokens live a year (`expires_in` 31535999 in the docs' example).
TOKEN_LIFETIME = timedelta(seconds=31535999)
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_DAYS = 31
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class RecordedRequest:
    """One request the simulator answered (API and OAuth), for tests that count requests."""

    method: str
    path: str
    query: str
    status: int
    username: str | None
    client_id: str | None
    #: How many objects a write body held.
    items: int | None
    at: datetime


ApiHandler = Callable[[Request, SimToken], Awaitable[Response]]
WriteItem = Callable[[SimToken, int, Mapping[str, Any]], JsonObject]


def _truthy(raw: str | None) -> bool:
    return raw is not None and raw.strip().lower() in {"1", "true", "yes", "on"}


def _flag(raw: str | None) -> bool | None:
    """A boolean query flag that means something when false too; None when absent."""
    if raw is None or not raw.strip():
        return None
    return _truthy(raw)


def _detail(status: int, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=dict(headers or {}))


def _names(raw: str | None) -> set[str] | None:
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _query_date(raw: str | None, name: str) -> date | None:
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, f"{name} must be a date in YYYY-MM-DD format") from None


def _with_query(uri: str, params: Mapping[str, str]) -> str:
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


class ExistSimulator:
    """A simulated Exist: seed it from Python or the admin API, serve `asgi_app`."""

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        rate_limit: int = RATE_LIMIT,
        rate_window: timedelta = timedelta(hours=1),
        token_lifetime: timedelta = TOKEN_LIFETIME,
        enforce_rate_limit: bool = True,
    ) -> None:
        self.clock = clock or SystemClock()
        self.world = ExistWorld(self.clock, token_lifetime=token_lifetime)
        self.faults = FaultPlan()
        self.rate_limit = rate_limit
        self.enforce_rate_limit = enforce_rate_limit
        #: Whether a 429 carries `Retry-After`; the docs document no headers, so a test can
        #: switch it off to see the client fall back to its own backoff.
        self.retry_after_on_429 = True
        self.quota = SlidingWindowQuota(self.clock, rate_window)
        self._requests: list[RecordedRequest] = []
        self._requests_lock = threading.Lock()
        app = Starlette(
            routes=[
                Mount("/api/2", routes=self._api_routes()),
                Mount("/oauth2", routes=self._oauth_routes()),
                Mount("/_admin", routes=self._admin_routes()),
            ]
        )
        self.asgi_app = FaultInjector(app, self.faults)

    # --- Python seeding and inspection API ------------------------------------------------------

    def add_user(
        self,
        username: str,
        *,
        timezone: str = "UTC",
        first_name: str = "",
        last_name: str = "",
    ) -> SimUser:
        return self.world.add_user(
            username, timezone=timezone, first_name=first_name, last_name=last_name
        )

    def add_service(self, name: str, label: str | None = None) -> SimService:
        """Another service that can own attributes, such as `rescuetime`."""
        return self.world.add_service(name, label)

    def add_client(
        self,
        name: str = "Timebridge",
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        service: str | None = None,
        redirect_uris: Iterable[str] = (),
    ) -> SimClient:
        """An OAuth2 client; its service (a slug of `name` unless given) owns what it writes."""
        return self.world.add_client(
            name,
            client_id=client_id,
            client_secret=client_secret,
            service=service,
            redirect_uris=redirect_uris,
        )

    def allow_redirect(self, client_id: str, redirect_uri: str) -> None:
        """Register one more redirect URI for a client (the demo's, once its port is known)."""
        with self.world.lock:
            client = self.world.clients[client_id]
            if redirect_uri not in client.redirect_uris:
                client.redirect_uris.append(redirect_uri)

    def issue_personal_token(
        self, username: str, client_id: str, *, access_token: str | None = None
    ) -> str:
        """The token Exist gives a developer client's owner: read+write on everything."""
        token = self.world.issue_personal_token(username, client_id)
        if access_token is not None:
            with self.world.lock:
                del self.world.tokens[token.access_token]
                token.access_token = access_token
                self.world.tokens[access_token] = token
        return token.access_token

    def mint_code(
        self,
        username: str,
        client_id: str,
        redirect_uri: str,
        scopes: Iterable[str] = ("productivity_read", "productivity_write"),
    ) -> str:
        """An authorization code as if `username` had clicked Allow."""
        return self.world.mint_code(username, client_id, redirect_uri, scopes)

    def revoke_token(self, access_token: str) -> None:
        self.world.revoke(access_token)

    def add_attribute(
        self,
        username: str,
        *,
        template: str | None = None,
        label: str | None = None,
        group: str | None = None,
        value_type: ValueType | int | None = None,
        owner: str | None = None,
        manual: bool = False,
        active: bool = True,
        priority: int | None = None,
    ) -> Attribute:
        """Give a user an attribute; `priority` >= 10 makes it low priority (hidden from reads
        without `include_low_priority`)."""
        attribute = self.world.add_attribute(
            username,
            template=template,
            label=label,
            group=group,
            value_type=value_type,
            owner=owner,
            manual=manual,
            active=active,
            priority=priority,
        )
        return self.attribute(username, attribute.name)

    def refuse_template(self, username: str, template: str = "movies_min") -> None:
        """Make Exist refuse to acquire or create `template` for this user (per-item failure)."""
        self.world.refuse_template(username, template)

    def fail_items(
        self,
        username: str,
        attribute: str,
        error_code: str,
        error: str | None = None,
        *,
        endpoints: Iterable[str] = ("update", "increment"),
        times: int | None = None,
    ) -> ForcedFailure:
        """Make write items naming `attribute` fail with `error_code` (any string, documented
        or not, e.g. "not_found", "unauthorised", "forbidden", "no_such_code").

        Each such item comes back in `failed` with that `error_code` and `error` (a default
        message when None), has no effect, and makes the answer a 202; the rest of the batch
        is applied. `endpoints`: any of "acquire", "release", "create", "update", "increment"
        (default the two value writes). `times`: only the next N matching items (default: until
        `clear_item_failures`). Also over HTTP: `POST /_admin/item-failures`.
        """
        return self.world.fail_items(
            username, attribute, error_code, error, endpoints=endpoints, times=times
        )

    def clear_item_failures(self, username: str | None = None) -> None:
        """Undo `fail_items` for one user, or for everyone."""
        self.world.clear_item_failures(username)

    @property
    def empty_days(self) -> EmptyDays:
        """How a day without data reads: "null" (the default) or "zero" (0 for numeric types
        that default to it; time of day, scale and string stay null)."""
        return self.world.empty_days

    @empty_days.setter
    def empty_days(self, value: EmptyDays) -> None:
        if value not in ("null", "zero"):
            raise ValueError(f'empty_days must be "null" or "zero" (got {value!r})')
        self.world.empty_days = value

    def set_owner(self, username: str, attribute: str, service: str | None) -> None:
        self.world.set_owner(username, attribute, service)

    def set_value(
        self, username: str, attribute: str, day: date, value: AttributeValue | None
    ) -> None:
        self.world.set_value(username, attribute, day, value)

    def stored_values(self, username: str, attribute: str) -> dict[date, AttributeValue]:
        """Every value stored for the attribute, oldest first."""
        return self.world.stored_values(username, attribute)

    def attribute(self, username: str, name: str) -> Attribute:
        """The attribute as Exist would describe it (owner included), whatever the scopes."""
        with self.world.lock:
            found = self.world.user(username).attributes.get(name)
            if found is None:
                raise ValueError(f"{username} has no attribute {name!r}")
            return Attribute.model_validate(self.world.attribute_json(found))

    def attributes(self, username: str) -> list[Attribute]:
        with self.world.lock:
            return [
                Attribute.model_validate(self.world.attribute_json(attribute))
                for attribute in self.world.user(username).attributes.values()
            ]

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._requests_lock:
            return list(self._requests)

    def requests_to(self, path_suffix: str, method: str | None = None) -> list[RecordedRequest]:
        """The recorded requests whose path ends with `path_suffix` (e.g. "attributes/update/")."""
        return [
            r
            for r in self.requests
            if r.path.endswith(path_suffix) and (method is None or r.method == method)
        ]

    def clear_requests(self) -> None:
        with self._requests_lock:
            self._requests.clear()

    def seed_demo(self) -> list[str]:
        """A demo user with an OAuth client, a personal token and a RescueTime neighbour."""
        user = self.add_user("demo", timezone="Europe/Berlin", first_name="Demo", last_name="User")
        client = self.add_client(
            "Timebridge demo", client_id="timebridge-demo", client_secret="timebridge-demo-secret"
        )
        token = self.issue_personal_token(
            user.username, client.client_id, access_token="demo-exist-token"
        )
        self.add_service("rescuetime", "RescueTime")
        self.add_service("apple_health", "Apple Health")
        self.add_attribute(user.username, template="productive_min", owner="rescuetime")
        self.add_attribute(user.username, template="steps", owner="apple_health")
        self.add_attribute(user.username, template="mood", manual=True)
        today = self.world.today(user)
        for offset in range(14):
            day = today - timedelta(days=offset)
            self.set_value(user.username, "productive_min", day, 180 + (offset * 37) % 120)
            self.set_value(user.username, "steps", day, 4000 + (offset * 1543) % 9000)
        return [
            "Exist simulator with a demo user:",
            f"  user:                demo ({user.timezone})",
            f"  personal token:      {token}",
            f"  OAuth client id:     {client.client_id}",
            f"  OAuth client secret: {client.client_secret}",
            "  API under /api/2/, OAuth under /oauth2/, admin under /_admin/",
        ]

    # --- request plumbing -----------------------------------------------------------------------

    def _record(
        self,
        request: Request,
        status: int,
        *,
        username: str | None = None,
        client_id: str | None = None,
        items: int | None = None,
    ) -> None:
        with self._requests_lock:
            self._requests.append(
                RecordedRequest(
                    request.method,
                    request.url.path,
                    request.url.query,
                    status,
                    username,
                    client_id,
                    items,
                    self.clock.now(),
                )
            )

    def _api(self, handler: ApiHandler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                token = self.world.authenticate(request.headers.get("authorization", ""))
            except ApiError as exc:
                self._record(request, exc.status)
                return _detail(exc.status, exc.detail, {"WWW-Authenticate": 'Bearer realm="api"'})
            if self.enforce_rate_limit:
                state = self.quota.take((token.username, token.client_id), self.rate_limit)
                if not state.admitted:
                    self._record(request, 429, username=token.username, client_id=token.client_id)
                    wait = max(1, state.resets_in)
                    return _detail(
                        429,
                        f"Request was throttled. Expected available in {wait} seconds.",
                        {"Retry-After": str(wait)} if self.retry_after_on_429 else None,
                    )
            try:
                response = await handler(request, token)
            except ApiError as exc:
                response = _detail(exc.status, exc.detail)
            self._record(
                request,
                response.status_code,
                username=token.username,
                client_id=token.client_id,
                items=getattr(request.state, "items", None),
            )
            return response

        return endpoint

    def _api_routes(self) -> list[BaseRoute]:
        def get(path: str, handler: ApiHandler) -> Route:
            return Route(path, self._api(handler), methods=["GET"])

        def post(path: str, writer: Callable[[Request], WriteItem]) -> Route:
            async def handler(request: Request, token: SimToken) -> Response:
                return await self._write(request, token, writer)

            return Route(path, self._api(handler), methods=["POST"])

        def always(write: WriteItem) -> Callable[[Request], WriteItem]:
            return lambda request: write

        return [
            get("/accounts/profile/", self._profile),
            get("/attributes/", self._attributes),
            get("/attributes/owned/", self._owned),
            get("/attributes/templates/", self._templates),
            get("/attributes/with-values/", self._with_values),
            get("/attributes/values/", self._values),
            post("/attributes/acquire/", self._acquirer),
            post("/attributes/release/", always(self._release_item)),
            post("/attributes/create/", self._creator),
            post("/attributes/update/", always(self.world.update)),
            post("/attributes/increment/", always(self.world.increment)),
        ]

    # --- reading --------------------------------------------------------------------------------

    def _paged(
        self, request: Request, results: list[JsonObject], *, default_limit: int = DEFAULT_PAGE_SIZE
    ) -> Response:
        params = request.query_params
        try:
            page = int(params.get("page", "1"))
            limit = int(params.get("limit", str(default_limit)))
        except ValueError:
            raise ApiError(404, "Invalid page.") from None
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        pages = max(1, math.ceil(len(results) / limit))
        if not 1 <= page <= pages:
            raise ApiError(404, "Invalid page.")
        following = str(request.url.include_query_params(page=page + 1)) if page < pages else None
        if page == 1:
            preceding = None
        elif page == 2:
            preceding = str(request.url.remove_query_params("page"))
        else:
            preceding = str(request.url.include_query_params(page=page - 1))
        return JSONResponse(
            {
                "count": len(results),
                "next": following,
                "previous": preceding,
                "results": results[(page - 1) * limit : page * limit],
            }
        )

    async def _profile(self, request: Request, token: SimToken) -> Response:
        with self.world.lock:
            user = self.world.users[token.username]
            return JSONResponse(
                {
                    "username": user.username,
                    "first_name": user.first_name,
                    "last_name": user.last_name,
                    "avatar": f"https://exist.io/media/avatars/{user.username}.png",
                    "timezone": user.timezone,
                    "local_time": self.clock.now().astimezone(user.zone).isoformat(),
                    "imperial_distance": False,
                    "imperial_weight": False,
                    "imperial_energy": False,
                    "imperial_liquid": False,
                    "imperial_temperature": False,
                    "trial": False,
                    "delinquent": False,
                }
            )

    async def _templates(self, request: Request, token: SimToken) -> Response:
        groups = _names(request.query_params.get("groups"))
        low = _truthy(request.query_params.get("include_low_priority"))
        found = [
            spec
            for spec in TEMPLATES.values()
            if (groups is None or spec.group in groups) and (low or spec.priority < LOW_PRIORITY)
        ]
        found.sort(key=lambda spec: (GROUPS[spec.group].priority, spec.priority))
        results = []
        for spec in found:
            group = GROUPS[spec.group]
            results.append(
                {
                    "name": spec.name,
                    "label": spec.label,
                    "group": {"name": group.name, "label": group.label, "priority": group.priority},
                    "priority": spec.priority,
                    "value_type": int(spec.value_type),
                    "value_type_description": VALUE_TYPE_DESCRIPTIONS[spec.value_type],
                }
            )
        return self._paged(request, results)

    def _filtered(
        self, request: Request, attributes: list[SimAttribute], *, owned_by: str | None = None
    ) -> list[SimAttribute]:
        params = request.query_params
        groups = _names(params.get("groups"))
        names = _names(params.get("attributes"))
        templates = _names(params.get("templates"))
        manual = _flag(params.get("manual"))
        exclude_custom = _truthy(params.get("exclude_custom"))
        include_inactive = _truthy(params.get("include_inactive"))
        include_low = _truthy(params.get("include_low_priority"))
        return [
            a
            for a in attributes
            if (groups is None or a.group in groups)
            and (names is None or a.name in names)
            and (templates is None or a.template in templates)
            and (manual is None or a.manual == manual)
            and (not exclude_custom or a.template is not None)
            and (include_inactive or a.active)
            and (include_low or a.priority < LOW_PRIORITY)
            and (owned_by is None or a.owner == owned_by)
        ]

    async def _attributes(self, request: Request, token: SimToken) -> Response:
        owned_by = (
            self.world.service_of(token) if _truthy(request.query_params.get("owned")) else None
        )
        with self.world.lock:
            found = self._filtered(request, self.world.visible_attributes(token), owned_by=owned_by)
            results = [self.world.attribute_json(a) for a in found]
        return self._paged(request, results)

    async def _owned(self, request: Request, token: SimToken) -> Response:
        with self.world.lock:
            found = self._filtered(request, self.world.owned_attributes(token))
            results = [self.world.attribute_json(a) for a in found]
        return self._paged(request, results)

    async def _with_values(self, request: Request, token: SimToken) -> Response:
        params = request.query_params
        try:
            days = int(params.get("days", "1"))
        except ValueError:
            raise ApiError(400, "days must be an integer") from None
        if not 1 <= days <= MAX_DAYS:
            raise ApiError(400, f"days must be between 1 and {MAX_DAYS}")
        with self.world.lock:
            user = self.world.users[token.username]
            newest = _query_date(params.get("date_max"), "date_max") or self.world.today(user)
            found = self._filtered(request, self.world.visible_attributes(token))
            results = [
                {
                    **self.world.attribute_json(a),
                    "values": self.world.day_values(a, newest, days),
                }
                for a in found
            ]
        return self._paged(request, results)

    async def _values(self, request: Request, token: SimToken) -> Response:
        params = request.query_params
        name = params.get("attribute")
        if not name:
            raise ApiError(400, "The 'attribute' parameter is required")
        with self.world.lock:
            user = self.world.users[token.username]
            attribute = user.attributes.get(name)
            if attribute is None:
                raise ApiError(404, "Not found.")
            newest = _query_date(params.get("date_max"), "date_max") or self.world.today(user)
            if not self.world.can_read(token, attribute):
                results: list[JsonObject] = []  # [docs] out of scope reads are silently empty
            else:
                days = max(0, (newest - attribute.first_day()).days + 1)
                results = self.world.day_values(attribute, newest, days)
        return self._paged(request, results)

    # --- writing --------------------------------------------------------------------------------

    def _release_item(self, token: SimToken, index: int, item: Mapping[str, Any]) -> JsonObject:
        self.world.release(token, index, item)
        return dict(item)

    async def _write(
        self, request: Request, token: SimToken, writer: Callable[[Request], WriteItem]
    ) -> Response:
        """Apply each object on its own: failures are reported per item, never abort the rest."""
        raw = await request.body()
        try:
            body = json.loads(raw or b"null")
        except ValueError as exc:
            raise ApiError(400, f"JSON parse error - {exc}") from None
        if not isinstance(body, list):
            raise ApiError(400, "Expected a JSON array of objects")
        request.state.items = len(body)
        if len(body) > MAX_ITEMS:
            raise ApiError(400, f"Too many objects: at most {MAX_ITEMS} per request")
        write = writer(request)
        success: list[object] = []
        failed: list[object] = []
        for index, item in enumerate(body):
            if not isinstance(item, dict):
                failed.append(
                    {
                        "error_code": "validation",
                        "error": f"Object at index {index} is not an object",
                    }
                )
                continue
            try:
                success.append(write(token, index, item))
            except ItemFailure as failure:
                failed.append({**item, "error_code": failure.error_code, "error": failure.error})
        status = 202 if failed else 200
        return JSONResponse({"success": success, "failed": failed}, status_code=status)

    def _acquirer(self, request: Request) -> WriteItem:
        full_objects = _truthy(request.query_params.get("success_objects"))

        def acquire(token: SimToken, index: int, item: Mapping[str, Any]) -> JsonObject:
            attribute = self.world.acquire(token, index, item)
            if full_objects:
                return self.world.attribute_json(attribute)
            return {**item, "active": True}

        return acquire

    def _creator(self, request: Request) -> WriteItem:
        full_objects = _truthy(request.query_params.get("success_objects"))

        def create(token: SimToken, index: int, item: Mapping[str, Any]) -> JsonObject:
            attribute = self.world.create(token, index, item)
            if full_objects:
                return self.world.attribute_json(attribute)
            return {**item, "name": attribute.name, "priority": attribute.priority}

        return create

    # --- OAuth2 ---------------------------------------------------------------------------------

    def _oauth_routes(self) -> list[BaseRoute]:
        return [
            Route("/authorize", self._authorize_page, methods=["GET"]),
            Route("/authorize", self._authorize_decision, methods=["POST"]),
            Route("/access_token", self._access_token, methods=["POST"]),
        ]

    def _authorization_request(
        self, params: Mapping[str, str]
    ) -> tuple[SimClient, str, list[str], str | None]:
        """Validate an authorization request: raises ApiError for a request that must not be
        redirected (bad client or redirect URI), OAuthError for one that is redirected."""
        client = self.world.clients.get(params.get("client_id", ""))
        if client is None:
            raise ApiError(400, "Invalid client_id")
        redirect_uri = params.get("redirect_uri") or client.default_redirect_uri
        if redirect_uri is None:
            raise ApiError(400, "Missing redirect URI (none given and none registered)")
        parts = urlsplit(redirect_uri)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ApiError(400, "Invalid redirect_uri")
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
            raise ApiError(400, "redirect_uri must use HTTPS")
        if client.redirect_uris and redirect_uri not in client.redirect_uris:
            raise ApiError(400, "Mismatching redirect URI")
        state = params.get("state")
        if params.get("response_type") != "code":
            raise OAuthError(400, "unsupported_response_type", "response_type must be code")
        scopes = params.get("scope", "").split()
        if not scopes or any(scope not in SCOPES for scope in scopes):
            raise OAuthError(400, "invalid_scope", "Unknown or missing scope")
        return client, redirect_uri, scopes, state

    def _redirect_target(self, params: Mapping[str, str]) -> str:
        """The (already validated) redirect URI of an authorization request."""
        client = self.world.clients[params.get("client_id", "")]
        return params.get("redirect_uri") or client.default_redirect_uri or ""

    def _oauth_redirect(
        self, redirect_uri: str, params: dict[str, str], state: str | None
    ) -> Response:
        if state is not None:
            params["state"] = state
        return RedirectResponse(_with_query(redirect_uri, params), status_code=302)

    async def _authorize_page(self, request: Request) -> Response:
        params = dict(request.query_params)
        try:
            client, _, scopes, state = self._authorization_request(params)
        except ApiError as exc:
            self._record(request, exc.status)
            return HTMLResponse(_error_page(exc.detail), status_code=exc.status)
        except OAuthError as exc:
            self._record(request, 302, client_id=params.get("client_id"))
            return self._oauth_redirect(
                self._redirect_target(params), {"error": exc.error}, params.get("state")
            )
        with self.world.lock:
            usernames = list(self.world.users)
            label = self.world.services[client.service].label
        self._record(request, 200, client_id=client.client_id)
        return HTMLResponse(
            _approve_page(
                label, params, scopes, usernames, selected=params.get("user"), state=state
            )
        )

    async def _authorize_decision(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        try:
            client, redirect_uri, scopes, state = self._authorization_request(form)
        except ApiError as exc:
            self._record(request, exc.status)
            return HTMLResponse(_error_page(exc.detail), status_code=exc.status)
        except OAuthError as exc:
            self._record(request, 302, client_id=form.get("client_id"))
            return self._oauth_redirect(
                self._redirect_target(form), {"error": exc.error}, form.get("state")
            )
        username = form.get("username", "")
        self._record(request, 302, username=username or None, client_id=client.client_id)
        if form.get("decision") != "allow":
            return self._oauth_redirect(redirect_uri, {"error": "access_denied"}, state)
        if username not in self.world.users:
            return HTMLResponse(_error_page(f"No user {username!r}"), status_code=400)
        code = self.world.mint_code(username, client.client_id, redirect_uri, scopes)
        return self._oauth_redirect(redirect_uri, {"code": code}, state)

    async def _access_token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        client_id = form.get("client_id")
        secret = form.get("client_secret")
        try:
            grant = form.get("grant_type")
            if grant == "authorization_code":
                token = self.world.exchange_code(
                    client_id, secret, form.get("code"), form.get("redirect_uri") or None
                )
            elif grant == "refresh_token":
                token = self.world.refresh(client_id, secret, form.get("refresh_token"))
            else:
                raise OAuthError(400, "unsupported_grant_type", "Unsupported grant type")
        except OAuthError as exc:
            self._record(request, exc.status, client_id=client_id)
            return JSONResponse(
                {"error": exc.error, "error_description": exc.description},
                status_code=exc.status,
                headers={"Cache-Control": "no-store"},
            )
        self._record(request, 200, username=token.username, client_id=client_id)
        expires_in = (
            int((token.expires_at - self.clock.now()).total_seconds()) if token.expires_at else None
        )
        return JSONResponse(
            {
                "access_token": token.access_token,
                "token_type": "Bearer",
                "expires_in": expires_in,
                "refresh_token": token.refresh_token,
                "scope": " ".join(sorted(token.scopes)),
            },
            headers={"Cache-Control": "no-store"},
        )

    # --- admin API (no auth, no rate limit, no faults) ------------------------------------------

    def _admin_routes(self) -> list[BaseRoute]:
        return [
            Route("/state", self._admin_state, methods=["GET"]),
            Route("/users", self._admin_add_user, methods=["POST"]),
            Route("/services", self._admin_add_service, methods=["POST"]),
            Route("/clients", self._admin_add_client, methods=["POST"]),
            Route("/tokens", self._admin_personal_token, methods=["POST"]),
            Route("/tokens/revoke", self._admin_revoke, methods=["POST"]),
            Route("/codes", self._admin_code, methods=["POST"]),
            Route("/attributes", self._admin_add_attribute, methods=["POST"]),
            Route("/attributes", self._admin_attributes, methods=["GET"]),
            Route("/owners", self._admin_set_owner, methods=["POST"]),
            Route("/refusals", self._admin_refuse, methods=["POST"]),
            Route("/item-failures", self._admin_fail_items, methods=["POST"]),
            Route("/item-failures", self._admin_clear_item_failures, methods=["DELETE"]),
            Route("/settings", self._admin_settings, methods=["GET", "POST"]),
            Route("/values", self._admin_set_value, methods=["PUT"]),
            Route("/values", self._admin_values, methods=["GET"]),
            Route("/faults", self._admin_faults, methods=["GET"]),
            Route("/faults", self._admin_add_fault, methods=["POST"]),
            Route("/faults", self._admin_clear_faults, methods=["DELETE"]),
            Route("/clock", self._admin_clock, methods=["GET", "POST"]),
            Route("/requests", self._admin_requests, methods=["GET"]),
            Route("/requests", self._admin_clear_requests, methods=["DELETE"]),
            Route("/rate-limits", self._admin_reset_rate_limits, methods=["DELETE"]),
        ]

    async def _admin(self, action: Callable[[], object]) -> Response:
        """Run an admin action; its result is the JSON answer (`{"ok": true}` for None)."""
        try:
            result = action()
            return JSONResponse({"ok": True} if result is None else result)
        except ApiError as exc:
            return JSONResponse({"error": exc.detail}, status_code=exc.status)
        except (ValidationError, ValueError, TypeError, KeyError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)

    async def _admin_state(self, request: Request) -> Response:
        def dump() -> JsonObject:
            with self.world.lock:
                return {
                    "now": self.clock.now().isoformat(),
                    "empty_days": self.empty_days,
                    "retry_after_on_429": self.retry_after_on_429,
                    "users": {
                        user.username: {
                            "timezone": user.timezone,
                            "refused_templates": sorted(user.refused_templates),
                            "item_failures": [
                                {
                                    "attribute": f.attribute,
                                    "error_code": f.error_code,
                                    "endpoints": sorted(f.endpoints),
                                    "times": f.remaining,
                                }
                                for f in user.forced_failures
                            ],
                            "attributes": {
                                a.name: {
                                    **self.world.attribute_json(a),
                                    "values": _values_json(a.values),
                                }
                                for a in user.attributes.values()
                            },
                        }
                        for user in self.world.users.values()
                    },
                    "services": {s.name: s.label for s in self.world.services.values()},
                    "clients": {
                        c.client_id: {"service": c.service, "redirect_uris": c.redirect_uris}
                        for c in self.world.clients.values()
                    },
                }

        return await self._admin(dump)

    async def _admin_add_user(self, request: Request) -> Response:
        body = await _json_object(request)

        def add() -> JsonObject:
            user = self.add_user(
                str(body["username"]),
                timezone=str(body.get("timezone", "UTC")),
                first_name=str(body.get("first_name", "")),
                last_name=str(body.get("last_name", "")),
            )
            return {"username": user.username, "timezone": user.timezone}

        return await self._admin(add)

    async def _admin_add_service(self, request: Request) -> Response:
        body = await _json_object(request)

        def add() -> JsonObject:
            service = self.add_service(str(body["name"]), body.get("label"))
            return service.wire()

        return await self._admin(add)

    async def _admin_add_client(self, request: Request) -> Response:
        body = await _json_object(request)

        def add() -> JsonObject:
            client = self.add_client(
                str(body.get("name", "Timebridge")),
                client_id=body.get("client_id"),
                client_secret=body.get("client_secret"),
                service=body.get("service"),
                redirect_uris=list(body.get("redirect_uris", [])),
            )
            return {
                "client_id": client.client_id,
                "client_secret": client.client_secret,
                "service": client.service,
            }

        return await self._admin(add)

    async def _admin_personal_token(self, request: Request) -> Response:
        body = await _json_object(request)
        return await self._admin(
            lambda: {
                "access_token": self.issue_personal_token(
                    str(body["username"]),
                    str(body["client_id"]),
                    access_token=body.get("access_token"),
                )
            }
        )

    async def _admin_revoke(self, request: Request) -> Response:
        body = await _json_object(request)
        return await self._admin(lambda: self.revoke_token(str(body["access_token"])))

    async def _admin_code(self, request: Request) -> Response:
        body = await _json_object(request)
        return await self._admin(
            lambda: {
                "code": self.mint_code(
                    str(body["username"]),
                    str(body["client_id"]),
                    str(body["redirect_uri"]),
                    str(body.get("scope", "")).split(),
                )
            }
        )

    async def _admin_add_attribute(self, request: Request) -> Response:
        body = await _json_object(request)
        return await self._admin(
            lambda: self.add_attribute(
                str(body["username"]),
                template=body.get("template"),
                label=body.get("label"),
                group=body.get("group"),
                value_type=body.get("value_type"),
                owner=body.get("owner"),
                manual=bool(body.get("manual", False)),
                active=bool(body.get("active", True)),
                priority=body.get("priority"),
            ).model_dump(mode="json")
        )

    async def _admin_attributes(self, request: Request) -> Response:
        username = request.query_params.get("username", "")
        return await self._admin(
            lambda: [a.model_dump(mode="json") for a in self.attributes(username)]
        )

    async def _admin_set_owner(self, request: Request) -> Response:
        body = await _json_object(request)
        return await self._admin(
            lambda: self.set_owner(
                str(body["username"]), str(body["attribute"]), body.get("service")
            )
        )

    async def _admin_refuse(self, request: Request) -> Response:
        body = await _json_object(request)
        return await self._admin(
            lambda: self.refuse_template(str(body["username"]), str(body["template"]))
        )

    async def _admin_fail_items(self, request: Request) -> Response:
        """`{"username", "attribute", "error_code", "error"?, "endpoints"?, "times"?}`: see
        `fail_items`."""
        body = await _json_object(request)

        def add() -> JsonObject:
            forced = self.fail_items(
                str(body["username"]),
                str(body["attribute"]),
                str(body["error_code"]),
                body.get("error"),
                endpoints=list(body.get("endpoints", ["update", "increment"])),
                times=body.get("times"),
            )
            return {
                "attribute": forced.attribute,
                "error_code": forced.error_code,
                "error": forced.error,
                "endpoints": sorted(forced.endpoints),
                "times": forced.remaining,
            }

        return await self._admin(add)

    async def _admin_clear_item_failures(self, request: Request) -> Response:
        username = request.query_params.get("username")
        return await self._admin(lambda: self.clear_item_failures(username))

    async def _admin_settings(self, request: Request) -> Response:
        """The per-test switches: `empty_days` ("null" or "zero") and `retry_after_on_429`."""
        body = await _json_object(request) if request.method == "POST" else {}

        def settle() -> JsonObject:
            if "empty_days" in body:
                self.empty_days = body["empty_days"]
            if "retry_after_on_429" in body:
                self.retry_after_on_429 = bool(body["retry_after_on_429"])
            return {"empty_days": self.empty_days, "retry_after_on_429": self.retry_after_on_429}

        return await self._admin(settle)

    async def _admin_set_value(self, request: Request) -> Response:
        body = await _json_object(request)
        return await self._admin(
            lambda: self.set_value(
                str(body["username"]),
                str(body["attribute"]),
                date.fromisoformat(str(body["date"])),
                body.get("value"),
            )
        )

    async def _admin_values(self, request: Request) -> Response:
        params = request.query_params
        return await self._admin(
            lambda: _values_json(
                self.stored_values(params.get("username", ""), params.get("attribute", ""))
            )
        )

    async def _admin_faults(self, request: Request) -> Response:
        return JSONResponse([fault.model_dump() for fault in self.faults.rules()])

    async def _admin_add_fault(self, request: Request) -> Response:
        body = await _json_object(request)
        return await self._admin(lambda: self.faults.add(Fault.model_validate(body)).model_dump())

    async def _admin_clear_faults(self, request: Request) -> Response:
        self.faults.clear()
        return JSONResponse({"cleared": True})

    async def _admin_clock(self, request: Request) -> Response:
        clock = self.clock
        if request.method == "GET":
            return JSONResponse({"now": clock.now().isoformat()})
        if not isinstance(clock, FakeClock):
            return JSONResponse({"error": "this simulator runs on the real clock"}, 409)
        body = await _json_object(request)

        def move() -> JsonObject:
            if "advance" in body:
                clock.advance(float(body["advance"]))
            if "now" in body:
                clock.set(datetime.fromisoformat(str(body["now"])))
            return {"now": clock.now().isoformat()}

        return await self._admin(move)

    async def _admin_requests(self, request: Request) -> Response:
        return JSONResponse(
            [
                {
                    "method": r.method,
                    "path": r.path,
                    "query": r.query,
                    "status": r.status,
                    "username": r.username,
                    "client_id": r.client_id,
                    "items": r.items,
                    "at": r.at.isoformat(),
                }
                for r in self.requests
            ]
        )

    async def _admin_clear_requests(self, request: Request) -> Response:
        self.clear_requests()
        return JSONResponse({"cleared": True})

    async def _admin_reset_rate_limits(self, request: Request) -> Response:
        self.quota.reset()
        return JSONResponse({"reset": True})


# --- helpers --------------------------------------------------------------------------------------


def _values_json(values: Mapping[date, AttributeValue]) -> list[JsonObject]:
    return [{"date": day.isoformat(), "value": value} for day, value in sorted(values.items())]


async def _json_object(request: Request) -> JsonObject:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise ApiError(400, "Invalid JSON") from None
    if not isinstance(parsed, dict):
        raise ApiError(400, "JSON object expected")
    return parsed


_PAGE_STYLE = "font-family: sans-serif; max-width: 32em; margin: 3em auto;"


def _error_page(message: str) -> str:
    return (
        f"<!doctype html><html><head><title>Exist - error</title></head>"
        f'<body style="{_PAGE_STYLE}"><h1>Authorisation error</h1>'
        f"<p>{html.escape(message)}</p></body></html>"
    )


def _approve_page(
    client_label: str,
    params: Mapping[str, str],
    scopes: list[str],
    usernames: list[str],
    *,
    selected: str | None,
    state: str | None,
) -> str:
    hidden = "".join(
        f'<input type="hidden" name="{html.escape(key)}" value="{html.escape(params[key])}">'
        for key in ("client_id", "redirect_uri", "response_type", "scope")
        if key in params
    )
    if state is not None:
        hidden += f'<input type="hidden" name="state" value="{html.escape(state)}">'
    options = "".join(
        f'<option value="{html.escape(name)}"{" selected" if name == selected else ""}>'
        f"{html.escape(name)}</option>"
        for name in usernames
    )
    scope_items = "".join(f"<li>{html.escape(scope)}</li>" for scope in scopes)
    return (
        "<!doctype html><html><head><title>Exist - authorise</title></head>"
        f'<body style="{_PAGE_STYLE}">'
        f"<h1>Authorise {html.escape(client_label)}</h1>"
        f"<p>{html.escape(client_label)} would like to:</p>"
        f"<ul><li>Read your profile details</li>{scope_items}</ul>"
        '<form method="post" action="/oauth2/authorize">'
        f"{hidden}"
        f'<label>Signed in as <select name="username">{options}</select></label>'
        '<p><button type="submit" name="decision" value="allow">Allow</button> '
        '<button type="submit" name="decision" value="deny">Deny</button></p>'
        "</form></body></html>"
    )
