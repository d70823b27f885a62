"""The Toggl models read both of Toggl's names for a field and write both back on the wire."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from timebridge.toggl.models import Project, TimeEntry

ENTRIES = TypeAdapter(list[TimeEntry])
ENTRY: dict[str, Any] = {
    "id": 1555410329,
    "start": "2022-07-01T17:39:19+00:00",
    "stop": "2022-07-01T18:49:46Z",
    "duration": 4227,
    "description": "implementation tests",
    "tags": None,
    "server_deleted_at": None,
}


def entry(**names: Any) -> dict[str, Any]:
    return ENTRY | names


def both_ways(data: dict[str, Any]) -> TimeEntry:
    """Validated from a dict and from JSON (as the client does): both give the same entry."""
    from_dict = TimeEntry.model_validate(data)
    assert ENTRIES.validate_json(json.dumps([data])) == [from_dict]
    return from_dict


def test_current_names_are_read() -> None:
    parsed = both_ways(entry(workspace_id=2, project_id=3, task_id=4, user_id=5))
    assert (parsed.workspace_id, parsed.project_id, parsed.task_id, parsed.user_id) == (2, 3, 4, 5)


def test_legacy_names_alone_are_read() -> None:
    parsed = both_ways(entry(wid=2, pid=3, tid=4, uid=5))
    assert (parsed.workspace_id, parsed.project_id, parsed.task_id, parsed.user_id) == (2, 3, 4, 5)
    assert {"workspace_id", "project_id", "task_id", "user_id"} <= parsed.model_fields_set


def test_the_current_name_wins_when_toggl_sends_both_and_they_differ() -> None:
    # Toggl does send disagreeing pairs (a user_id beside another uid).
    parsed = both_ways(entry(workspace_id=2, wid=2, project_id=3, pid=30, user_id=4232226, uid=6))
    assert (parsed.project_id, parsed.user_id) == (3, 4232226)


def test_the_current_name_wins_even_when_it_is_null() -> None:
    parsed = both_ways(entry(workspace_id=2, project_id=None, pid=30, task_id=None, tid=40))
    assert (parsed.project_id, parsed.task_id) == (None, None)
    with pytest.raises(ValidationError, match="workspace_id"):
        TimeEntry.model_validate(entry(workspace_id=None, wid=2))


def test_absent_names_take_the_default_and_stay_unset() -> None:
    parsed = both_ways(entry(wid=2))
    assert (parsed.project_id, parsed.task_id, parsed.user_id) == (None, None, None)
    assert "project_id" not in parsed.model_fields_set
    with pytest.raises(ValidationError, match="workspace_id"):
        TimeEntry.model_validate(entry(pid=3))


def test_entries_are_built_by_field_name_in_python() -> None:
    start = datetime(2022, 7, 1, 17, 39, 19, tzinfo=UTC)
    parsed = TimeEntry(id=1, workspace_id=2, project_id=3, start=start, duration=5)
    assert (parsed.workspace_id, parsed.project_id) == (2, 3)


def test_wire_writes_both_names_and_dumps_write_only_the_current_ones() -> None:
    parsed = TimeEntry.model_validate(entry(wid=2, pid=3, uid=5))
    assert "pid" not in parsed.model_dump()
    wire = parsed.wire()
    assert list(wire)[-4:] == ["wid", "pid", "tid", "uid"]
    assert (wire["wid"], wire["pid"], wire["tid"], wire["uid"]) == (2, 3, None, 5)
    assert TimeEntry.model_validate(wire) == parsed


def test_projects_read_and_write_their_legacy_names_too() -> None:
    project = Project.model_validate({"id": 9, "name": "Series", "wid": 2, "cid": 7})
    assert (project.workspace_id, project.client_id) == (2, 7)
    assert Project.model_validate({"id": 9, "name": "Series", "workspace_id": 2}).client_id is None
    wire = project.wire()
    assert (wire["wid"], wire["cid"], wire["workspace_id"], wire["client_id"]) == (2, 7, 2, 7)
    assert Project.legacy_names == {"workspace_id": "wid", "client_id": "cid"}


# Each shape Toggl has been recorded sending for one entry (reference/toggl.md §3); the values
# here are made up.
LISTED: dict[str, object] = {
    "id": 11, "workspace_id": 2, "project_id": None, "task_id": None, "billable": False,
    "start": "2026-03-09T08:00:00+00:00", "stop": "2026-03-09T08:30:00+00:00", "duration": 1800,
    "description": None, "tags": [], "tag_ids": [], "duronly": True,
    "at": "2026-03-09T08:30:02.123456Z", "server_deleted_at": None, "user_id": 5, "uid": 5,
    "wid": 2,
}  # fmt: skip
CREATED_RUNNING = LISTED | {
    "start": "2026-03-09T08:00:00Z", "stop": None, "duration": -1, "tags": None, "tag_ids": None,
}  # fmt: skip
LISTED_RUNNING = LISTED | {"stop": None, "duration": -1773043200}
CREATED_WITHOUT_DURATION = CREATED_RUNNING | {"duration": 0}
LISTED_WITHOUT_DURATION = LISTED | {"stop": "2026-03-09T08:00:00+00:00", "duration": 0}
WITH_PROJECT = LISTED | {"project_id": 9, "pid": 9}
START = datetime(2026, 3, 9, 8, 0, tzinfo=UTC)
LATER = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)


def test_a_listed_entry_without_pid_or_tid_has_no_project_or_task() -> None:
    parsed = both_ways(LISTED)
    assert (parsed.project_id, parsed.task_id, parsed.workspace_id) == (None, None, 2)
    assert parsed.start == START and parsed.start.utcoffset() == timedelta(0)
    assert parsed.elapsed_seconds(LATER) == 1800
    assert both_ways(WITH_PROJECT).project_id == 9
    assert both_ways({k: v for k, v in LISTED.items() if k != "project_id"}).project_id is None


def test_a_running_entry_counts_to_now_whether_it_says_minus_one_or_minus_its_start() -> None:
    created, listed = both_ways(CREATED_RUNNING), both_ways(LISTED_RUNNING)
    assert created.is_running and listed.is_running
    assert created.tags is None
    for entry in (created, listed):
        assert entry.elapsed_seconds(LATER) == 3600
        assert entry.end(LATER) == LATER


def test_an_entry_created_without_a_duration_lasts_nothing_stop_or_not() -> None:
    for shape in (CREATED_WITHOUT_DURATION, LISTED_WITHOUT_DURATION):
        entry = both_ways(shape)
        assert not entry.is_running
        assert entry.elapsed_seconds(LATER) == 0
        assert entry.end(LATER) == START
