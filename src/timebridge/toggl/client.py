"""`AsyncTogglClient` and its synchronous twin `TogglClient`.

Both run the same operations from `_api` (one place builds every request) through a driver that
retries according to a `RetryPolicy` and raises the exceptions of `timebridge.toggl.errors`.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from types import TracebackType
from typing import Self, TypedDict, TypeVar

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
    Workspace,
    WorkspaceUser,
)

T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.track.toggl.com/api/v9/"
USER_AGENT = f"timebridge/{__version__}"


class TogglTokenAuth(httpx.BasicAuth):
    """Toggl's API-token auth: HTTP Basic with the token as user and `api_token` as password."""

    def __init__(self, api_token: str) -> None:
        if not api_token or not api_token.strip():
            raise ValueError("the Toggl API token is empty")
        super().__init__(api_token.strip(), "api_token")

    def __repr__(self) -> str:
        return "TogglTokenAuth(<hidden>)"


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
        "headers": {"User-Agent": USER_AGENT, "Accept": "application/json"},
        "verify": tls_for(base_url),
    }


class AsyncTogglClient:
    """Async client for the Toggl Track v9 API.

    Authenticates with an API token (or any `httpx.Auth`, such as a gateway's bearer key); the
    base URL points at Toggl, the simulator, or a Timebridge gateway. Use it as an async context
    manager, or call `aclose()`.
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
    ) -> None:
        self._clock = clock or SystemClock()
        self._quota = _QuotaTracker(self._clock)
        options = _client_options(api_token, auth, base_url, timeout)
        self._base_url = options["base_url"]
        self._driver = AsyncDriver(
            functools.partial(httpx.AsyncClient, transport=transport, **options),
            TogglErrors(self._clock),
            retry or RetryPolicy(),
            self._quota.observe,
        )

    def __repr__(self) -> str:
        return f"AsyncTogglClient(base_url={self._base_url!r})"

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


class TogglClient:
    """Synchronous client for the Toggl Track v9 API, with the same methods as the async one."""

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
    ) -> None:
        self._clock = clock or SystemClock()
        self._quota = _QuotaTracker(self._clock)
        options = _client_options(api_token, auth, base_url, timeout)
        self._base_url = options["base_url"]
        self._driver = SyncDriver(
            functools.partial(httpx.Client, transport=transport, **options),
            TogglErrors(self._clock),
            retry or RetryPolicy(),
            self._quota.observe,
        )

    def __repr__(self) -> str:
        return f"TogglClient(base_url={self._base_url!r})"

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
