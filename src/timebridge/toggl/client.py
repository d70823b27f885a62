"""`AsyncTogglClient` and its synchronous twin `TogglClient`.

Both run the same operations from `_api` (one place builds every request) through a driver that
retries according to a `RetryPolicy` and raises the exceptions of `timebridge.toggl.errors`.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from types import TracebackType
from typing import Self, TypedDict, TypeVar
from urllib.parse import urlsplit

import httpx

from timebridge import __version__
from timebridge._http import AsyncDriver, Operation, SyncDriver, tls_for
from timebridge.clock import Clock, SystemClock
from timebridge.retry import RetryPolicy
from timebridge.toggl import _api
from timebridge.toggl.errors import QUOTA_REMAINING_HEADER, QUOTA_RESETS_IN_HEADER, TogglErrors
from timebridge.toggl.models import (
    Client,
    ClientCreate,
    ClientStatus,
    ClientUpdate,
    Me,
    Project,
    ProjectActivity,
    ProjectCreate,
    ProjectUpdate,
    Quota,
    Tag,
    TagChange,
    TimeEntry,
    TimeEntryCreate,
    TimeEntryUpdate,
    WebhookDelivery,
    WebhookSubscription,
    WebhookSubscriptionCreate,
    Workspace,
    WorkspaceUser,
)

T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.track.toggl.com/api/v9/"
USER_AGENT = f"timebridge/{__version__}"
#: Where a Timebridge gateway serves the Toggl Track API, below its own URL.
GATEWAY_TOGGL_PATH = "/toggl-track/api/v9"
#: The header naming which of the key owner's Toggl connections a request uses.
CONNECTION_HEADER = "Timebridge-Connection"


class TogglTokenAuth(httpx.BasicAuth):
    """Toggl's API-token auth: HTTP Basic with the token as user and `api_token` as password."""

    def __init__(self, api_token: str) -> None:
        if not api_token or not api_token.strip():
            raise ValueError("the Toggl API token is empty")
        super().__init__(api_token.strip(), "api_token")

    def __repr__(self) -> str:
        return "TogglTokenAuth(<hidden>)"


def _printable(value: str) -> bool:
    return all(" " < char < "\x7f" or char > "\xa0" for char in value)


class GatewayKeyAuth(httpx.Auth):
    """A Timebridge gateway's API key, sent as `Authorization: Bearer <key>`; never shown."""

    def __init__(self, key: str) -> None:
        key = key.strip() if key else ""
        if not key:
            raise ValueError("the gateway key is empty")
        if not _printable(key):
            raise ValueError("the gateway key contains spaces or control characters")
        self._header = f"Bearer {key}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return "GatewayKeyAuth(<hidden>)"


def gateway_base_url(url: str) -> str:
    """The Toggl Track v9 base URL of the Timebridge gateway at `url`.

    `url` is where the gateway is served (`https://timebridge.example`, with a path prefix if a
    proxy adds one); its `/toggl-track` or `/toggl-track/api/v9` URL names the same gateway.
    """
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"the gateway URL {text!r} is not an http(s) URL (e.g. https://timebridge.example)"
        )
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(
            f"the gateway URL {text!r} must not carry a query, a fragment or credentials"
        )
    path = parts.path.rstrip("/")
    for suffix in (GATEWAY_TOGGL_PATH, "/toggl-track"):
        if path.endswith(suffix):
            path = path.removesuffix(suffix)
            break
    return f"{parts.scheme}://{parts.netloc}{path}{GATEWAY_TOGGL_PATH}/"


def _connection_header(connection: str | None) -> dict[str, str]:
    if connection is None:
        return {}
    connection = connection.strip()
    if not connection or not _printable(connection):
        raise ValueError(f"{connection!r} is not a connection id")
    return {CONNECTION_HEADER: connection}


@dataclass(frozen=True)
class QuotaSnapshot:
    """The quota headers of the last Toggl response that carried them."""

    remaining: int | None
    resets_in: int | None
    observed_at: datetime


class _QuotaTracker:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.last: QuotaSnapshot | None = None

    def observe(self, response: httpx.Response) -> None:
        remaining = response.headers.get(QUOTA_REMAINING_HEADER)
        resets_in = response.headers.get(QUOTA_RESETS_IN_HEADER)
        if remaining is None and resets_in is None:
            return
        self.last = QuotaSnapshot(
            remaining=_int_or_none(remaining),
            resets_in=_int_or_none(resets_in),
            observed_at=self._clock.now(),
        )


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class _ClientOptions(TypedDict):
    auth: httpx.Auth
    base_url: str
    timeout: httpx.Timeout
    headers: dict[str, str]
    verify: ssl.SSLContext | bool


def _client_options(
    api_token: str | None,
    auth: httpx.Auth | None,
    base_url: str,
    timeout: float,
    headers: dict[str, str] | None = None,
) -> _ClientOptions:
    if auth is None:
        if api_token is None:
            raise ValueError("give either api_token or auth")
        auth = TogglTokenAuth(api_token)
    if not base_url.endswith("/"):
        base_url += "/"
    return {
        "auth": auth,
        "base_url": base_url,
        "timeout": httpx.Timeout(timeout),
        "headers": {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})},
        "verify": tls_for(base_url),
    }


@dataclass(frozen=True)
class _Gateway:
    """How a client reaches Toggl through a Timebridge gateway."""

    base_url: str
    auth: GatewayKeyAuth
    headers: dict[str, str]
    connection: str | None

    @classmethod
    def at(cls, url: str, key: str, connection: str | None) -> _Gateway:
        headers = _connection_header(connection)
        return cls(
            gateway_base_url(url), GatewayKeyAuth(key), headers, headers.get(CONNECTION_HEADER)
        )

    def options(self, timeout: float) -> _ClientOptions:
        return _client_options(None, self.auth, self.base_url, timeout, self.headers)

    @property
    def peer(self) -> str:
        return f"the Timebridge gateway at {self.base_url.removesuffix(GATEWAY_TOGGL_PATH + '/')}"


def _through(
    gateway: str | None,
    key: str | None,
    connection: str | None,
    api_token: str | None,
    auth: httpx.Auth | None,
) -> _Gateway | None:
    if gateway is None:
        if key is not None or connection is not None:
            raise ValueError("a gateway key or connection needs the gateway's URL (gateway=...)")
        return None
    if key is None:
        raise ValueError("a gateway needs its API key (key=...)")
    if api_token is not None or auth is not None:
        raise ValueError("through a gateway, give its key, not a Toggl token or auth")
    return _Gateway.at(gateway, key, connection)


def _repr(kind: str, base_url: str, gateway: _Gateway | None) -> str:
    if gateway is None or gateway.connection is None:
        return f"{kind}(base_url={base_url!r})"
    return f"{kind}(base_url={base_url!r}, connection={gateway.connection!r})"


class AsyncTogglClient:
    """Async client for the Toggl Track v9 API.

    Authenticates with an API token (or any `httpx.Auth`); the base URL points at Toggl or the
    simulator. Through a Timebridge gateway, give its URL and API key instead
    (`AsyncTogglClient.through_gateway(url, key, connection=...)`, or `gateway=`/`key=`): the
    gateway holds the Toggl token. Use it as an async context manager, or call `aclose()`.
    """

    def __init__(
        self,
        api_token: str | None = None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        auth: httpx.Auth | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        gateway: str | None = None,
        key: str | None = None,
        connection: str | None = None,
    ) -> None:
        self._clock = clock or SystemClock()
        self._quota = _QuotaTracker(self._clock)
        through = _through(gateway, key, connection, api_token, auth)
        options = (
            _client_options(api_token, auth, base_url, timeout)
            if through is None
            else through.options(timeout)
        )
        self._base_url = options["base_url"]
        self._gateway = through
        self._driver = AsyncDriver(
            functools.partial(httpx.AsyncClient, transport=transport, **options),
            TogglErrors(self._clock, peer="Toggl Track" if through is None else through.peer),
            retry or RetryPolicy(),
            self._quota.observe,
        )

    @classmethod
    def through_gateway(
        cls,
        url: str,
        key: str,
        *,
        connection: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> Self:
        """A client that reaches Toggl through the Timebridge gateway at `url` with its API
        `key` (`Authorization: Bearer`), using the key owner's Toggl `connection` (sent as
        `Timebridge-Connection`), or their default connection when None."""
        return cls(
            gateway=url,
            key=key,
            connection=connection,
            retry=retry,
            timeout=timeout,
            clock=clock,
            transport=transport,
        )

    def __repr__(self) -> str:
        return _repr("AsyncTogglClient", self._base_url, self._gateway)

    @property
    def base_url(self) -> str:
        """The Toggl Track v9 base URL requests go to (Toggl's, a simulator's, a gateway's)."""
        return self._base_url

    @property
    def connection(self) -> str | None:
        """The gateway connection this client names, if it goes through a gateway with one."""
        return None if self._gateway is None else self._gateway.connection

    @property
    def quota(self) -> QuotaSnapshot | None:
        """The last seen X-Toggl-Quota-Remaining / X-Toggl-Quota-Resets-In, if any."""
        return self._quota.last

    @property
    def requests_sent(self) -> int:
        """HTTP requests sent so far, retries included (each one spends Toggl quota)."""
        return self._driver.requests_sent

    async def aclose(self) -> None:
        await self._driver.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _run(self, operation: Operation[T]) -> T:
        return await self._driver.run(operation)

    # me and workspaces
    async def me(self) -> Me:
        return await self._run(_api.me())

    async def quotas(self) -> list[Quota]:
        return await self._run(_api.quotas())

    async def workspaces(self) -> list[Workspace]:
        return await self._run(_api.workspaces())

    async def workspace(self, workspace_id: int) -> Workspace:
        return await self._run(_api.workspace(workspace_id))

    async def workspace_users(self, workspace_id: int) -> list[WorkspaceUser]:
        return await self._run(_api.workspace_users(workspace_id))

    # time entries
    async def time_entries(
        self,
        *,
        since: datetime | int | None = None,
        before: date | datetime | None = None,
        start_date: date | datetime | None = None,
        end_date: date | datetime | None = None,
    ) -> list[TimeEntry]:
        return await self._run(
            _api.time_entries(
                now=self._clock.now(),
                since=since,
                before=before,
                start_date=start_date,
                end_date=end_date,
            )
        )

    async def time_entries_between(self, start: datetime, end: datetime) -> list[TimeEntry]:
        return await self._run(_api.time_entries_between(start, end))

    async def current_time_entry(self) -> TimeEntry | None:
        return await self._run(_api.current_time_entry())

    async def time_entry(self, entry_id: int) -> TimeEntry:
        return await self._run(_api.time_entry(entry_id))

    async def create_time_entry(self, entry: TimeEntryCreate) -> TimeEntry:
        return await self._run(_api.create_time_entry(entry))

    async def update_time_entry(
        self, workspace_id: int, entry_id: int, changes: TimeEntryUpdate
    ) -> TimeEntry:
        return await self._run(_api.update_time_entry(workspace_id, entry_id, changes))

    async def stop_time_entry(self, workspace_id: int, entry_id: int) -> TimeEntry:
        return await self._run(_api.stop_time_entry(workspace_id, entry_id))

    async def delete_time_entry(self, workspace_id: int, entry_id: int) -> None:
        await self._run(_api.delete_time_entry(workspace_id, entry_id))

    # projects
    async def projects(
        self,
        workspace_id: int,
        *,
        active: bool | ProjectActivity | None = None,
        since: datetime | int | None = None,
        name: str | None = None,
        page: int | None = None,
        per_page: int | None = None,
    ) -> list[Project]:
        return await self._run(
            _api.projects(
                workspace_id, active=active, since=since, name=name, page=page, per_page=per_page
            )
        )

    async def iter_projects(
        self,
        workspace_id: int,
        *,
        active: bool | ProjectActivity | None = None,
        since: datetime | int | None = None,
        name: str | None = None,
        per_page: int = _api.PROJECTS_MAX_PER_PAGE,
    ) -> AsyncIterator[Project]:
        """Every matching project, fetching page after page until a short page."""
        page = 1
        while True:
            batch = await self.projects(
                workspace_id, active=active, since=since, name=name, page=page, per_page=per_page
            )
            for item in batch:
                yield item
            if len(batch) < per_page:
                return
            page += 1

    async def project(self, workspace_id: int, project_id: int) -> Project:
        return await self._run(_api.project(workspace_id, project_id))

    async def create_project(self, workspace_id: int, project: ProjectCreate) -> Project:
        return await self._run(_api.create_project(workspace_id, project))

    async def update_project(
        self, workspace_id: int, project_id: int, changes: ProjectUpdate
    ) -> Project:
        return await self._run(_api.update_project(workspace_id, project_id, changes))

    async def delete_project(self, workspace_id: int, project_id: int) -> None:
        await self._run(_api.delete_project(workspace_id, project_id))

    # clients
    async def clients(
        self, workspace_id: int, *, status: ClientStatus | None = None, name: str | None = None
    ) -> list[Client]:
        return await self._run(_api.clients(workspace_id, status=status, name=name))

    async def client(self, workspace_id: int, client_id: int) -> Client:
        return await self._run(_api.client(workspace_id, client_id))

    async def create_client(self, workspace_id: int, client: ClientCreate) -> Client:
        return await self._run(_api.create_client(workspace_id, client))

    async def update_client(
        self, workspace_id: int, client_id: int, changes: ClientUpdate
    ) -> Client:
        return await self._run(_api.update_client(workspace_id, client_id, changes))

    async def delete_client(self, workspace_id: int, client_id: int) -> None:
        await self._run(_api.delete_client(workspace_id, client_id))

    async def archive_client(self, workspace_id: int, client_id: int) -> list[int]:
        return await self._run(_api.archive_client(workspace_id, client_id))

    async def restore_client(
        self,
        workspace_id: int,
        client_id: int,
        *,
        restore_all_projects: bool = False,
        project_ids: list[int] | None = None,
    ) -> Client:
        return await self._run(
            _api.restore_client(
                workspace_id,
                client_id,
                restore_all_projects=restore_all_projects,
                project_ids=project_ids,
            )
        )

    # tags
    async def tags(self, workspace_id: int) -> list[Tag]:
        return await self._run(_api.tags(workspace_id))

    async def create_tag(self, workspace_id: int, name: str) -> Tag:
        return await self._run(_api.create_tag(workspace_id, TagChange(name=name)))

    async def update_tag(self, workspace_id: int, tag_id: int, name: str) -> Tag:
        return await self._run(_api.update_tag(workspace_id, tag_id, TagChange(name=name)))

    async def delete_tag(self, workspace_id: int, tag_id: int) -> None:
        await self._run(_api.delete_tag(workspace_id, tag_id))

    # webhooks (Webhooks API v1, beside v9: `<root>/webhooks/api/v1/`)
    async def webhook_event_filters(self) -> dict[str, list[str]]:
        """Each entity a subscription may filter on, with its actions."""
        return await self._run(_api.webhook_event_filters())

    async def webhook_subscriptions(self, workspace_id: int) -> list[WebhookSubscription]:
        return await self._run(_api.webhook_subscriptions(workspace_id))

    async def create_webhook_subscription(
        self, workspace_id: int, subscription: WebhookSubscriptionCreate
    ) -> WebhookSubscription:
        """Create a subscription. Toggl first POSTs a PING to its callback, which must answer
        200 (`CallbackUnreachable` otherwise); over the plan's allowance it is
        `WebhookLimitReached`. Never retried."""
        return await self._run(_api.create_webhook_subscription(workspace_id, subscription))

    async def set_webhook_subscription_enabled(
        self, workspace_id: int, subscription_id: int, enabled: bool
    ) -> WebhookSubscription:
        """Enable (probing the callback, as on create) or disable a subscription. Never
        retried."""
        return await self._run(
            _api.set_webhook_subscription_enabled(workspace_id, subscription_id, enabled)
        )

    async def delete_webhook_subscription(self, workspace_id: int, subscription_id: int) -> None:
        await self._run(_api.delete_webhook_subscription(workspace_id, subscription_id))

    async def ping_webhook_subscription(self, workspace_id: int, subscription_id: int) -> None:
        """Have Toggl send the callback a PING event (asynchronously; see the deliveries)."""
        await self._run(_api.ping_webhook_subscription(workspace_id, subscription_id))

    async def webhook_deliveries(
        self, workspace_id: int, subscription_id: int, offset: int = 0
    ) -> list[WebhookDelivery]:
        """A page of the subscription's recent deliveries, newest first (from `offset`)."""
        return await self._run(_api.webhook_deliveries(workspace_id, subscription_id, offset))

    async def validate_webhook_subscription(
        self, workspace_id: int, subscription_id: int, validation_code: str
    ) -> None:
        """Validate a subscription with the `validation_code` its PING carried."""
        await self._run(
            _api.validate_webhook_subscription(workspace_id, subscription_id, validation_code)
        )


class TogglClient:
    """Synchronous client for the Toggl Track v9 API, with the same methods as the async one
    (and the same ways in: a Toggl token, or `TogglClient.through_gateway(url, key, ...)`)."""

    def __init__(
        self,
        api_token: str | None = None,
        *,
        base_url: str = DEFAULT_BASE_URL,
        auth: httpx.Auth | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        clock: Clock | None = None,
        transport: httpx.BaseTransport | None = None,
        gateway: str | None = None,
        key: str | None = None,
        connection: str | None = None,
    ) -> None:
        self._clock = clock or SystemClock()
        self._quota = _QuotaTracker(self._clock)
        through = _through(gateway, key, connection, api_token, auth)
        options = (
            _client_options(api_token, auth, base_url, timeout)
            if through is None
            else through.options(timeout)
        )
        self._base_url = options["base_url"]
        self._gateway = through
        self._driver = SyncDriver(
            functools.partial(httpx.Client, transport=transport, **options),
            TogglErrors(self._clock, peer="Toggl Track" if through is None else through.peer),
            retry or RetryPolicy(),
            self._quota.observe,
        )

    @classmethod
    def through_gateway(
        cls,
        url: str,
        key: str,
        *,
        connection: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        clock: Clock | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> Self:
        """A client that reaches Toggl through the Timebridge gateway at `url` with its API
        `key` (`Authorization: Bearer`), using the key owner's Toggl `connection` (sent as
        `Timebridge-Connection`), or their default connection when None."""
        return cls(
            gateway=url,
            key=key,
            connection=connection,
            retry=retry,
            timeout=timeout,
            clock=clock,
            transport=transport,
        )

    def __repr__(self) -> str:
        return _repr("TogglClient", self._base_url, self._gateway)

    @property
    def base_url(self) -> str:
        """The Toggl Track v9 base URL requests go to (Toggl's, a simulator's, a gateway's)."""
        return self._base_url

    @property
    def connection(self) -> str | None:
        """The gateway connection this client names, if it goes through a gateway with one."""
        return None if self._gateway is None else self._gateway.connection

    @property
    def quota(self) -> QuotaSnapshot | None:
        """The last seen X-Toggl-Quota-Remaining / X-Toggl-Quota-Resets-In, if any."""
        return self._quota.last

    @property
    def requests_sent(self) -> int:
        """HTTP requests sent so far, retries included (each one spends Toggl quota)."""
        return self._driver.requests_sent

    def close(self) -> None:
        self._driver.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self, operation: Operation[T]) -> T:
        return self._driver.run(operation)

    # me and workspaces
    def me(self) -> Me:
        return self._run(_api.me())

    def quotas(self) -> list[Quota]:
        return self._run(_api.quotas())

    def workspaces(self) -> list[Workspace]:
        return self._run(_api.workspaces())

    def workspace(self, workspace_id: int) -> Workspace:
        return self._run(_api.workspace(workspace_id))

    def workspace_users(self, workspace_id: int) -> list[WorkspaceUser]:
        return self._run(_api.workspace_users(workspace_id))

    # time entries
    def time_entries(
        self,
        *,
        since: datetime | int | None = None,
        before: date | datetime | None = None,
        start_date: date | datetime | None = None,
        end_date: date | datetime | None = None,
    ) -> list[TimeEntry]:
        return self._run(
            _api.time_entries(
                now=self._clock.now(),
                since=since,
                before=before,
                start_date=start_date,
                end_date=end_date,
            )
        )

    def time_entries_between(self, start: datetime, end: datetime) -> list[TimeEntry]:
        return self._run(_api.time_entries_between(start, end))

    def current_time_entry(self) -> TimeEntry | None:
        return self._run(_api.current_time_entry())

    def time_entry(self, entry_id: int) -> TimeEntry:
        return self._run(_api.time_entry(entry_id))

    def create_time_entry(self, entry: TimeEntryCreate) -> TimeEntry:
        return self._run(_api.create_time_entry(entry))

    def update_time_entry(
        self, workspace_id: int, entry_id: int, changes: TimeEntryUpdate
    ) -> TimeEntry:
        return self._run(_api.update_time_entry(workspace_id, entry_id, changes))

    def stop_time_entry(self, workspace_id: int, entry_id: int) -> TimeEntry:
        return self._run(_api.stop_time_entry(workspace_id, entry_id))

    def delete_time_entry(self, workspace_id: int, entry_id: int) -> None:
        self._run(_api.delete_time_entry(workspace_id, entry_id))

    # projects
    def projects(
        self,
        workspace_id: int,
        *,
        active: bool | ProjectActivity | None = None,
        since: datetime | int | None = None,
        name: str | None = None,
        page: int | None = None,
        per_page: int | None = None,
    ) -> list[Project]:
        return self._run(
            _api.projects(
                workspace_id, active=active, since=since, name=name, page=page, per_page=per_page
            )
        )

    def iter_projects(
        self,
        workspace_id: int,
        *,
        active: bool | ProjectActivity | None = None,
        since: datetime | int | None = None,
        name: str | None = None,
        per_page: int = _api.PROJECTS_MAX_PER_PAGE,
    ) -> Iterator[Project]:
        """Every matching project, fetching page after page until a short page."""
        page = 1
        while True:
            batch = self.projects(
                workspace_id, active=active, since=since, name=name, page=page, per_page=per_page
            )
            yield from batch
            if len(batch) < per_page:
                return
            page += 1

    def project(self, workspace_id: int, project_id: int) -> Project:
        return self._run(_api.project(workspace_id, project_id))

    def create_project(self, workspace_id: int, project: ProjectCreate) -> Project:
        return self._run(_api.create_project(workspace_id, project))

    def update_project(self, workspace_id: int, project_id: int, changes: ProjectUpdate) -> Project:
        return self._run(_api.update_project(workspace_id, project_id, changes))

    def delete_project(self, workspace_id: int, project_id: int) -> None:
        self._run(_api.delete_project(workspace_id, project_id))

    # clients
    def clients(
        self, workspace_id: int, *, status: ClientStatus | None = None, name: str | None = None
    ) -> list[Client]:
        return self._run(_api.clients(workspace_id, status=status, name=name))

    def client(self, workspace_id: int, client_id: int) -> Client:
        return self._run(_api.client(workspace_id, client_id))

    def create_client(self, workspace_id: int, client: ClientCreate) -> Client:
        return self._run(_api.create_client(workspace_id, client))

    def update_client(self, workspace_id: int, client_id: int, changes: ClientUpdate) -> Client:
        return self._run(_api.update_client(workspace_id, client_id, changes))

    def delete_client(self, workspace_id: int, client_id: int) -> None:
        self._run(_api.delete_client(workspace_id, client_id))

    def archive_client(self, workspace_id: int, client_id: int) -> list[int]:
        return self._run(_api.archive_client(workspace_id, client_id))

    def restore_client(
        self,
        workspace_id: int,
        client_id: int,
        *,
        restore_all_projects: bool = False,
        project_ids: list[int] | None = None,
    ) -> Client:
        return self._run(
            _api.restore_client(
                workspace_id,
                client_id,
                restore_all_projects=restore_all_projects,
                project_ids=project_ids,
            )
        )

    # tags
    def tags(self, workspace_id: int) -> list[Tag]:
        return self._run(_api.tags(workspace_id))

    def create_tag(self, workspace_id: int, name: str) -> Tag:
        return self._run(_api.create_tag(workspace_id, TagChange(name=name)))

    def update_tag(self, workspace_id: int, tag_id: int, name: str) -> Tag:
        return self._run(_api.update_tag(workspace_id, tag_id, TagChange(name=name)))

    def delete_tag(self, workspace_id: int, tag_id: int) -> None:
        self._run(_api.delete_tag(workspace_id, tag_id))

    # webhooks (Webhooks API v1, beside v9: `<root>/webhooks/api/v1/`)
    def webhook_event_filters(self) -> dict[str, list[str]]:
        """Each entity a subscription may filter on, with its actions."""
        return self._run(_api.webhook_event_filters())

    def webhook_subscriptions(self, workspace_id: int) -> list[WebhookSubscription]:
        return self._run(_api.webhook_subscriptions(workspace_id))

    def create_webhook_subscription(
        self, workspace_id: int, subscription: WebhookSubscriptionCreate
    ) -> WebhookSubscription:
        """Create a subscription. Toggl first POSTs a PING to its callback, which must answer
        200 (`CallbackUnreachable` otherwise); over the plan's allowance it is
        `WebhookLimitReached`. Never retried."""
        return self._run(_api.create_webhook_subscription(workspace_id, subscription))

    def set_webhook_subscription_enabled(
        self, workspace_id: int, subscription_id: int, enabled: bool
    ) -> WebhookSubscription:
        """Enable (probing the callback, as on create) or disable a subscription. Never
        retried."""
        return self._run(
            _api.set_webhook_subscription_enabled(workspace_id, subscription_id, enabled)
        )

    def delete_webhook_subscription(self, workspace_id: int, subscription_id: int) -> None:
        self._run(_api.delete_webhook_subscription(workspace_id, subscription_id))

    def ping_webhook_subscription(self, workspace_id: int, subscription_id: int) -> None:
        """Have Toggl send the callback a PING event (asynchronously; see the deliveries)."""
        self._run(_api.ping_webhook_subscription(workspace_id, subscription_id))

    def webhook_deliveries(
        self, workspace_id: int, subscription_id: int, offset: int = 0
    ) -> list[WebhookDelivery]:
        """A page of the subscription's recent deliveries, newest first (from `offset`)."""
        return self._run(_api.webhook_deliveries(workspace_id, subscription_id, offset))

    def validate_webhook_subscription(
        self, workspace_id: int, subscription_id: int, validation_code: str
    ) -> None:
        """Validate a subscription with the `validation_code` its PING carried."""
        self._run(
            _api.validate_webhook_subscription(workspace_id, subscription_id, validation_code)
        )
