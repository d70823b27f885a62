"""Every Toggl Track call (API v9, and Webhooks API v1), built in one place as an I/O-free
operation.

Each function validates its arguments (raising `ValueError` before any request), yields the
request(s) it needs and parses the answers into models. `AsyncTogglClient` and `TogglClient` run
these operations; nothing else builds Toggl requests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

from timebridge._http import ApiRequest, Operation, ParamValue
from timebridge.toggl.errors import TogglError
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

M = TypeVar("M", bound=BaseModel)

#: Toggl returns at most about this many entries from /me/time_entries, without paging.
TIME_ENTRIES_CAP = 1000
#: How far back `since` may reach before Toggl refuses it.
SINCE_MAX_AGE = timedelta(days=90)
PROJECTS_MAX_PER_PAGE = 200
#: The Webhooks API v1, beside v9 under the same root: from a base URL `<root>/api/v9/` (Toggl's,
#: a simulator's, or a gateway's `…/toggl-track/api/v9/`) it is `<root>/webhooks/api/v1/`.
WEBHOOKS = "../../webhooks/api/v1"

# Toggl answers `null` rather than `[]` for some empty lists.
_TIME_ENTRIES = TypeAdapter(list[TimeEntry] | None)
_MAYBE_TIME_ENTRY = TypeAdapter(TimeEntry | None)


def _one(model: type[M], response: httpx.Response) -> M:
    return model.model_validate_json(response.content)


def _many(model: type[M], response: httpx.Response) -> list[M]:
    payload = response.json()
    return [model.model_validate(item) for item in payload or []]


def _entries(response: httpx.Response) -> list[TimeEntry]:
    return _TIME_ENTRIES.validate_json(response.content or b"null") or []


def _tag(response: httpx.Response, name: str, tag_id: int | None = None) -> Tag:
    """The tag a create or rename answered with.

    Toggl's swagger says both answer an array of tags; a single tag object is read too. From an
    array, the tag with `tag_id` (a rename) or named `name` is taken, or its only tag.
    """
    payload = response.json()
    if isinstance(payload, dict):
        return Tag.model_validate(payload)
    tags = [Tag.model_validate(item) for item in payload or []]
    chosen = [tag for tag in tags if tag.id == tag_id] or [
        tag for tag in tags if tag.name.casefold() == name.casefold()
    ]
    if len(chosen) == 1 or (not chosen and len(tags) == 1):
        return (chosen or tags)[0]
    raise TogglError(f"Toggl answered {len(tags)} tags for the tag {name!r}; cannot tell which")


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (got naive {value.isoformat()})")


def rfc3339(instant: datetime) -> str:
    """An aware instant as Toggl wants it: UTC, with seconds (Toggl rejects times without)."""
    _require_aware("instant", instant)
    return instant.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _date_param(name: str, value: date | datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        _require_aware(name, value)
        return rfc3339(value)
    return value.isoformat()


def _positive_id(name: str, value: int) -> int:
    if value <= 0:
        raise ValueError(f"{name} must be a positive id (got {value})")
    return value


def _ws(workspace_id: int) -> str:
    return f"workspaces/{_positive_id('workspace_id', workspace_id)}"


# --- me and workspaces --------------------------------------------------------------------------


def me() -> Operation[Me]:
    response = yield ApiRequest("GET", "me")
    return _one(Me, response)


def quotas() -> Operation[list[Quota]]:
    response = yield ApiRequest("GET", "me/quota")
    return _many(Quota, response)


def workspaces() -> Operation[list[Workspace]]:
    response = yield ApiRequest("GET", "me/workspaces")
    return _many(Workspace, response)


def workspace(workspace_id: int) -> Operation[Workspace]:
    response = yield ApiRequest("GET", _ws(workspace_id))
    return _one(Workspace, response)


def workspace_users(workspace_id: int) -> Operation[list[WorkspaceUser]]:
    response = yield ApiRequest("GET", f"{_ws(workspace_id)}/users")
    return _many(WorkspaceUser, response)


# --- time entries -------------------------------------------------------------------------------


def time_entries(
    *,
    now: datetime,
    since: datetime | int | None = None,
    before: date | datetime | None = None,
    start_date: date | datetime | None = None,
    end_date: date | datetime | None = None,
) -> Operation[list[TimeEntry]]:
    """`GET /me/time_entries`. With `since`, entries deleted since then come back too.

    `since` and `before` cannot be combined (Toggl answers 400 to that).
    """
    if (start_date is None) != (end_date is None):
        raise ValueError("start_date and end_date must be given together")
    if since is not None and before is not None:
        raise ValueError("since and before cannot be given together (Toggl refuses both)")
    params: dict[str, ParamValue] = {
        "before": _date_param("before", before),
        "start_date": _date_param("start_date", start_date),
        "end_date": _date_param("end_date", end_date),
    }
    if since is not None:
        if isinstance(since, datetime):
            _require_aware("since", since)
            since_instant = since
        else:
            since_instant = datetime.fromtimestamp(since, UTC)
        if since_instant < now - SINCE_MAX_AGE:
            raise ValueError(
                f"since may reach back at most {SINCE_MAX_AGE.days} days "
                f"(got {since_instant.isoformat()})"
            )
        params["since"] = int(since_instant.timestamp())
    response = yield ApiRequest("GET", "me/time_entries", params)
    return _entries(response)


def time_entries_between(
    start: datetime, end: datetime, *, cap: int = TIME_ENTRIES_CAP
) -> Operation[list[TimeEntry]]:
    """Every entry of the user that starts in [start, end), however many there are.

    Toggl silently truncates a range answer at about `cap` entries, so an answer that reaches the
    cap is not trusted: its range is halved and both halves are fetched again. The result is
    sorted by start and free of duplicates.
    """
    _require_aware("start", start)
    _require_aware("end", end)
    if end <= start:
        raise ValueError("end must be after start")
    lo = start.astimezone(UTC).replace(microsecond=0)
    hi = end.astimezone(UTC)
    if hi.microsecond:
        hi = hi.replace(microsecond=0) + timedelta(seconds=1)
    pending = [(lo, hi)]
    found: dict[int, TimeEntry] = {}
    while pending:
        range_start, range_end = pending.pop()
        response = yield ApiRequest(
            "GET",
            "me/time_entries",
            {"start_date": rfc3339(range_start), "end_date": rfc3339(range_end)},
        )
        entries = _entries(response)
        if len(entries) >= cap:
            seconds = (range_end - range_start).total_seconds()
            if seconds <= 1:
                raise TogglError(
                    f"Toggl returned {len(entries)} entries starting within one second "
                    f"at {rfc3339(range_start)}; cannot split the range further"
                )
            middle = range_start + timedelta(seconds=math.floor(seconds / 2))
            pending.extend([(middle, range_end), (range_start, middle)])
            continue
        for entry in entries:
            if start <= entry.start < end:
                found[entry.id] = entry
    return sorted(found.values(), key=lambda entry: (entry.start, entry.id))


def current_time_entry() -> Operation[TimeEntry | None]:
    response = yield ApiRequest("GET", "me/time_entries/current")
    return _MAYBE_TIME_ENTRY.validate_json(response.content or b"null")


def time_entry(entry_id: int) -> Operation[TimeEntry]:
    response = yield ApiRequest("GET", f"me/time_entries/{_positive_id('entry_id', entry_id)}")
    return _one(TimeEntry, response)


def create_time_entry(entry: TimeEntryCreate) -> Operation[TimeEntry]:
    response = yield ApiRequest(
        "POST", f"{_ws(entry.workspace_id)}/time_entries", json=entry.body()
    )
    return _one(TimeEntry, response)


def update_time_entry(
    workspace_id: int, entry_id: int, changes: TimeEntryUpdate
) -> Operation[TimeEntry]:
    body = changes.body()
    if not body:
        raise ValueError("an update needs at least one field to change")
    response = yield ApiRequest(
        "PUT", f"{_ws(workspace_id)}/time_entries/{_positive_id('entry_id', entry_id)}", json=body
    )
    return _one(TimeEntry, response)


def stop_time_entry(workspace_id: int, entry_id: int) -> Operation[TimeEntry]:
    response = yield ApiRequest(
        "PATCH",
        f"{_ws(workspace_id)}/time_entries/{_positive_id('entry_id', entry_id)}/stop",
        # Stopping twice fails the second time rather than changing anything: safe to repeat.
        idempotent=True,
    )
    return _one(TimeEntry, response)


def delete_time_entry(workspace_id: int, entry_id: int) -> Operation[None]:
    yield ApiRequest(
        "DELETE", f"{_ws(workspace_id)}/time_entries/{_positive_id('entry_id', entry_id)}"
    )
    return None


# --- projects -----------------------------------------------------------------------------------


def projects(
    workspace_id: int,
    *,
    active: bool | ProjectActivity | None = None,
    since: datetime | int | None = None,
    name: str | None = None,
    page: int | None = None,
    per_page: int | None = None,
) -> Operation[list[Project]]:
    """One page of `GET /workspaces/{wid}/projects` (Toggl's default page size is 151)."""
    if per_page is not None and not 1 <= per_page <= PROJECTS_MAX_PER_PAGE:
        raise ValueError(f"per_page must be between 1 and {PROJECTS_MAX_PER_PAGE}")
    if page is not None and page < 1:
        raise ValueError("page numbers start at 1")
    if isinstance(since, datetime):
        _require_aware("since", since)
        since = int(since.timestamp())
    params: Mapping[str, ParamValue] = {
        "active": active,
        "since": since,
        "name": name,
        "page": page,
        "per_page": per_page,
    }
    response = yield ApiRequest("GET", f"{_ws(workspace_id)}/projects", params)
    return _many(Project, response)


def project(workspace_id: int, project_id: int) -> Operation[Project]:
    response = yield ApiRequest(
        "GET", f"{_ws(workspace_id)}/projects/{_positive_id('project_id', project_id)}"
    )
    return _one(Project, response)


def create_project(workspace_id: int, project: ProjectCreate) -> Operation[Project]:
    response = yield ApiRequest("POST", f"{_ws(workspace_id)}/projects", json=project.body())
    return _one(Project, response)


def update_project(
    workspace_id: int, project_id: int, changes: ProjectUpdate
) -> Operation[Project]:
    body = changes.body()
    if not body:
        raise ValueError("an update needs at least one field to change")
    response = yield ApiRequest(
        "PUT", f"{_ws(workspace_id)}/projects/{_positive_id('project_id', project_id)}", json=body
    )
    return _one(Project, response)


def delete_project(workspace_id: int, project_id: int) -> Operation[None]:
    yield ApiRequest(
        "DELETE", f"{_ws(workspace_id)}/projects/{_positive_id('project_id', project_id)}"
    )
    return None


# --- clients ------------------------------------------------------------------------------------


def clients(
    workspace_id: int, *, status: ClientStatus | None = None, name: str | None = None
) -> Operation[list[Client]]:
    response = yield ApiRequest(
        "GET", f"{_ws(workspace_id)}/clients", {"status": status, "name": name}
    )
    return _many(Client, response)


def client(workspace_id: int, client_id: int) -> Operation[Client]:
    response = yield ApiRequest(
        "GET", f"{_ws(workspace_id)}/clients/{_positive_id('client_id', client_id)}"
    )
    return _one(Client, response)


def create_client(workspace_id: int, client: ClientCreate) -> Operation[Client]:
    body = {"wid": workspace_id, **client.body()}
    response = yield ApiRequest("POST", f"{_ws(workspace_id)}/clients", json=body)
    return _one(Client, response)


def update_client(workspace_id: int, client_id: int, changes: ClientUpdate) -> Operation[Client]:
    body = changes.body()
    if not body:
        raise ValueError("an update needs at least one field to change")
    response = yield ApiRequest(
        "PUT", f"{_ws(workspace_id)}/clients/{_positive_id('client_id', client_id)}", json=body
    )
    return _one(Client, response)


def delete_client(workspace_id: int, client_id: int) -> Operation[None]:
    yield ApiRequest(
        "DELETE", f"{_ws(workspace_id)}/clients/{_positive_id('client_id', client_id)}"
    )
    return None


def archive_client(workspace_id: int, client_id: int) -> Operation[list[int]]:
    """Archive a client and its projects; returns the ids of the projects archived with it."""
    response = yield ApiRequest(
        "POST",
        f"{_ws(workspace_id)}/clients/{_positive_id('client_id', client_id)}/archive",
        idempotent=True,
    )
    return [int(project_id) for project_id in response.json() or []]


def restore_client(
    workspace_id: int,
    client_id: int,
    *,
    restore_all_projects: bool = False,
    project_ids: list[int] | None = None,
) -> Operation[Client]:
    body: dict[str, object] = {"restore_all_projects": restore_all_projects}
    if project_ids:
        body["projects"] = project_ids
    response = yield ApiRequest(
        "POST",
        f"{_ws(workspace_id)}/clients/{_positive_id('client_id', client_id)}/restore",
        json=body,
        idempotent=True,
    )
    return _one(Client, response)


# --- tags ---------------------------------------------------------------------------------------


def tags(workspace_id: int) -> Operation[list[Tag]]:
    response = yield ApiRequest("GET", f"{_ws(workspace_id)}/tags")
    return _many(Tag, response)


def create_tag(workspace_id: int, tag: TagChange) -> Operation[Tag]:
    body = {"workspace_id": workspace_id, **tag.body()}
    response = yield ApiRequest("POST", f"{_ws(workspace_id)}/tags", json=body)
    return _tag(response, tag.name)


def update_tag(workspace_id: int, tag_id: int, tag: TagChange) -> Operation[Tag]:
    response = yield ApiRequest(
        "PUT", f"{_ws(workspace_id)}/tags/{_positive_id('tag_id', tag_id)}", json=tag.body()
    )
    return _tag(response, tag.name, tag_id)


def delete_tag(workspace_id: int, tag_id: int) -> Operation[None]:
    yield ApiRequest("DELETE", f"{_ws(workspace_id)}/tags/{_positive_id('tag_id', tag_id)}")
    return None


# --- webhooks (Webhooks API v1) -----------------------------------------------------------------


def _subs(workspace_id: int) -> str:
    return f"{WEBHOOKS}/subscriptions/{_positive_id('workspace_id', workspace_id)}"


def _sub(workspace_id: int, subscription_id: int) -> str:
    return f"{_subs(workspace_id)}/{_positive_id('subscription_id', subscription_id)}"


def webhook_event_filters() -> Operation[dict[str, list[str]]]:
    """`GET /event_filters`: each entity and the actions a subscription may filter on."""
    response = yield ApiRequest("GET", f"{WEBHOOKS}/event_filters")
    payload = response.json() or {}
    return {
        str(entity): [str(action) for action in actions or []]
        for entity, actions in payload.items()
    }


def webhook_subscriptions(workspace_id: int) -> Operation[list[WebhookSubscription]]:
    response = yield ApiRequest("GET", _subs(workspace_id))
    return _many(WebhookSubscription, response)


def create_webhook_subscription(
    workspace_id: int, subscription: WebhookSubscriptionCreate
) -> Operation[WebhookSubscription]:
    """`POST /subscriptions/{wid}`; Toggl probes the callback before answering. Never repeated:
    a retry after a lost answer would create a second subscription."""
    response = yield ApiRequest(
        "POST", _subs(workspace_id), json=subscription.body(), idempotent=False
    )
    return _one(WebhookSubscription, response)


def set_webhook_subscription_enabled(
    workspace_id: int, subscription_id: int, enabled: bool
) -> Operation[WebhookSubscription]:
    """`PATCH /subscriptions/{wid}/{sid}` with `{"enabled": …}`; enabling probes the callback.
    Never repeated (each enabling probes the callback again and counts against the limit)."""
    response = yield ApiRequest(
        "PATCH",
        _sub(workspace_id, subscription_id),
        json={"enabled": bool(enabled)},
        idempotent=False,
    )
    return _one(WebhookSubscription, response)


def delete_webhook_subscription(workspace_id: int, subscription_id: int) -> Operation[None]:
    yield ApiRequest("DELETE", _sub(workspace_id, subscription_id))
    return None


def ping_webhook_subscription(workspace_id: int, subscription_id: int) -> Operation[None]:
    """`POST /ping/{wid}/{sid}`: Toggl sends the callback a PING event (not repeated)."""
    path = (
        f"{WEBHOOKS}/ping/{_positive_id('workspace_id', workspace_id)}"
        f"/{_positive_id('subscription_id', subscription_id)}"
    )
    yield ApiRequest("POST", path, idempotent=False)
    return None


def webhook_deliveries(
    workspace_id: int, subscription_id: int, offset: int = 0
) -> Operation[list[WebhookDelivery]]:
    """`GET /subscriptions/{wid}/{sid}/events`: the recent deliveries, newest first."""
    if offset < 0:
        raise ValueError(f"offset must not be negative (got {offset})")
    response = yield ApiRequest(
        "GET",
        f"{_sub(workspace_id, subscription_id)}/events",
        {"offset": offset or None},
    )
    return _many(WebhookDelivery, response)


def validate_webhook_subscription(
    workspace_id: int, subscription_id: int, validation_code: str
) -> Operation[None]:
    """`GET /validate/{wid}/{sid}/{code}`: validate with the code a PING carried."""
    code = validation_code.strip()
    if not code:
        raise ValueError("the validation code is empty")
    path = (
        f"{WEBHOOKS}/validate/{_positive_id('workspace_id', workspace_id)}"
        f"/{_positive_id('subscription_id', subscription_id)}/{quote(code, safe='')}"
    )
    yield ApiRequest("GET", path)
    return None
