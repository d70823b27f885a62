"""How the simulated Toggl puts its answers on the wire.

Sources, as `shared/reference/toggl.md` §3 records them (real traffic, go-api-libs/toggl VCR
files, December 2024):
- every answer with a body, errors included, is `application/json; charset=utf-8`; an error's
  body is a JSON string, not an object and not plain text;
- a time entry in a list (`/me/time_entries`, `/me/time_entries/current`) writes its instants
  with a `+00:00` offset, leaves `pid` out when it has no project and never sends `tid`;
  `project_id` and `task_id` are always there (null when unset); `at` is written with `Z`;
- the answer to a create, update or stop writes `start` and `stop` with `Z`; a create's answer
  has `tags`/`tag_ids` null when the entry has none (the stop answer has `[]`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse, Response

from timebridge.toggl.models import TimeEntry

MEDIA_TYPE = "application/json; charset=utf-8"


class TogglJSON(JSONResponse):
    """A JSON answer with the content type Toggl sends."""

    media_type = MEDIA_TYPE


def error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """An error answer: Toggl's message as a JSON string."""
    return TogglJSON(message, status_code=status, headers=headers)


def _offset(instant: datetime | None) -> str | None:
    return None if instant is None else instant.astimezone(UTC).isoformat()


def _zulu(instant: datetime | None) -> str | None:
    if instant is None:
        return None
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _entry(entry: TimeEntry, write: Callable[[datetime | None], str | None]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": entry.id,
        "workspace_id": entry.workspace_id,
        "project_id": entry.project_id,
        "task_id": entry.task_id,
        "billable": entry.billable,
        "start": write(entry.start),
        "stop": write(entry.stop),
        "duration": entry.duration,
        "description": entry.description,
        "tags": list(entry.tags or []),
        "tag_ids": list(entry.tag_ids or []),
        "duronly": entry.duronly,
        "at": _zulu(entry.at),
        "server_deleted_at": _offset(entry.server_deleted_at),
        "user_id": entry.user_id,
        "uid": entry.user_id,
        "wid": entry.workspace_id,
    }
    if entry.project_id is not None:
        data["pid"] = entry.project_id
    return data


def listed_entry(entry: TimeEntry) -> dict[str, Any]:
    """A time entry as the lists and `/me/time_entries/current` show it."""
    return _entry(entry, _offset)


def written_entry(entry: TimeEntry) -> dict[str, Any]:
    """A time entry as the answer to an update or a stop shows it."""
    return _entry(entry, _zulu)


def created_entry(entry: TimeEntry, *, sent: dict[str, Any]) -> dict[str, Any]:
    """A time entry as the answer to its create shows it, given the body that created it.

    A running entry echoes the duration it was sent (`-1`; lists show minus the start's Unix
    time); a create with neither `duration` nor `stop` answers `duration: 0, stop: null` (the
    lists then show `stop` equal to `start`); no tags are null, not `[]`.
    """
    data = written_entry(entry)
    if sent.get("duration") is None and sent.get("stop") is None:
        data.update(duration=0, stop=None)
    elif entry.is_running and isinstance(sent.get("duration"), int):
        data["duration"] = sent["duration"]
    if not entry.tags:
        data.update(tags=None, tag_ids=None)
    return data
