"""Time entries as the real Toggl answers them: the queries it refuses and the shapes it sends.

Sources: reference/toggl.md §3 (recorded traffic, and the start_date floor two public clients
parse) and Toggl's swagger for tags.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from timebridge.fakes import RunningServer
from timebridge.fakes.toggl import SimUser, TogglSimulator

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
JSON = "application/json; charset=utf-8"


@pytest.fixture
def http(toggl_url: str, toggl_user: SimUser) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=toggl_url + "/", auth=(toggl_user.api_token, "api_token"), timeout=10
    ) as client:
        yield client


def entries(http: httpx.Client, **params: str | int) -> httpx.Response:
    return http.get("me/time_entries", params=params)


# --- refused queries ----------------------------------------------------------------------------


def test_since_with_before_is_refused_as_toggl_words_it(http: httpx.Client) -> None:
    since = int((NOW - timedelta(days=1)).timestamp())
    refused = entries(http, since=since, before="2026-03-10")
    assert refused.status_code == 400
    assert refused.headers["content-type"] == JSON
    assert refused.json() == "'since' and 'before' can not be present simultaneously"
    assert entries(http, since=since).status_code == 200
    assert entries(http, before="2026-03-10").status_code == 200


def test_start_date_before_the_accounts_floor_is_refused_naming_the_floor(
    http: httpx.Client,
) -> None:
    # Alice is in Berlin: on 2026-03-10 her floor is 90 days back, 2025-12-10 (local midnight).
    at_floor = entries(http, start_date="2025-12-10", end_date="2026-03-11")
    assert at_floor.status_code == 200
    exact = entries(http, start_date="2025-12-09T23:00:00Z", end_date="2026-03-11T00:00:00Z")
    assert exact.status_code == 200, "Berlin's midnight is 23:00 UTC"

    for start in ["2025-12-09", "2025-12-09T22:59:59Z", "2024-01-01T00:00:00+01:00"]:
        refused = entries(http, start_date=start, end_date="2026-03-11")
        assert refused.status_code == 400
        assert refused.json() == "start_date must not be earlier than 2025-12-10"


def test_the_floor_is_set_per_account_and_moves_with_the_days(
    toggl_sim: TogglSimulator, toggl_url: str, toggl_server: RunningServer
) -> None:
    short = toggl_sim.add_user(timezone="UTC", history_days=30)
    seeded = httpx.post(
        f"{toggl_server.url}/_admin/users", json={"api_token": "tok-long", "history_days": 400}
    )
    assert seeded.status_code == 200
    params = {"start_date": "2025-06-01", "end_date": "2026-03-11"}

    refused = httpx.get(
        f"{toggl_url}/me/time_entries", params=params, auth=(short.api_token, "api_token")
    )
    assert refused.json() == "start_date must not be earlier than 2026-02-08"
    allowed = httpx.get(
        f"{toggl_url}/me/time_entries", params=params, auth=("tok-long", "api_token")
    )
    assert allowed.status_code == 200


# --- shapes -------------------------------------------------------------------------------------


def test_list_answers_use_offsets_and_leave_out_pid_without_a_project_and_tid_always(
    http: httpx.Client, toggl_sim: TogglSimulator, toggl_user: SimUser
) -> None:
    project = toggl_sim.add_project(toggl_user.default_workspace_id, "Series")
    bare = toggl_sim.add_time_entry(toggl_user, start=NOW - timedelta(hours=3), duration=600)
    filed = toggl_sim.add_time_entry(
        toggl_user, start=NOW - timedelta(hours=2), duration=600, project_id=project.id
    )
    listed = {entry["id"]: entry for entry in entries(http).json()}

    assert listed[bare.id]["start"] == "2026-03-10T09:00:00+00:00"
    assert listed[bare.id]["stop"] == "2026-03-10T09:10:00+00:00"
    assert listed[bare.id]["project_id"] is None
    assert "pid" not in listed[bare.id]
    assert (listed[filed.id]["project_id"], listed[filed.id]["pid"]) == (project.id, project.id)
    assert not any("tid" in entry for entry in listed.values())
    assert all(entry["task_id"] is None for entry in listed.values())


def test_a_deleted_entry_carries_its_deletion_time_with_an_offset(
    http: httpx.Client, toggl_sim: TogglSimulator, toggl_user: SimUser
) -> None:
    entry = toggl_sim.add_time_entry(toggl_user, start=NOW - timedelta(hours=3), duration=600)
    toggl_sim.world.delete_time_entry(toggl_user.id, None, entry.id)
    [gone] = entries(http, since=int((NOW - timedelta(hours=1)).timestamp())).json()
    assert gone["server_deleted_at"] == "2026-03-10T12:00:00+00:00"


def test_a_create_without_duration_answers_zero_and_no_stop_then_lists_stop_at_start(
    http: httpx.Client, toggl_user: SimUser
) -> None:
    wid = toggl_user.default_workspace_id
    body = {"created_with": "test", "workspace_id": wid, "start": "2026-03-10T10:00:00+01:00"}
    created = http.post(f"workspaces/{wid}/time_entries", json=body)
    assert created.status_code == 200
    answer = created.json()
    assert (answer["duration"], answer["stop"]) == (0, None)
    assert answer["start"] == "2026-03-10T09:00:00Z", "a write's answer uses Z"
    assert (answer["tags"], answer["tag_ids"]) == (None, None)
    assert "pid" not in answer and "tid" not in answer

    [listed] = entries(http).json()
    assert (listed["duration"], listed["stop"]) == (0, "2026-03-10T09:00:00+00:00")


def test_a_timed_create_answers_its_stop_and_the_stop_answer_lists_empty_tags(
    http: httpx.Client, toggl_user: SimUser
) -> None:
    wid = toggl_user.default_workspace_id
    body = {"created_with": "test", "workspace_id": wid, "start": "2026-03-10T09:00:00Z"}
    timed = http.post(f"workspaces/{wid}/time_entries", json={**body, "duration": 3600}).json()
    assert (timed["stop"], timed["duration"]) == ("2026-03-10T10:00:00Z", 3600)

    running = http.post(f"workspaces/{wid}/time_entries", json={**body, "duration": -1}).json()
    stopped = http.patch(f"workspaces/{wid}/time_entries/{running['id']}/stop").json()
    assert (stopped["stop"], stopped["duration"]) == ("2026-03-10T12:00:00Z", 3 * 3600)
    assert (stopped["tags"], stopped["tag_ids"]) == ([], [])


def test_tag_create_and_rename_answer_an_array_of_tags(
    http: httpx.Client, toggl_user: SimUser
) -> None:
    wid = toggl_user.default_workspace_id
    created = http.post(f"workspaces/{wid}/tags", json={"name": "tv", "workspace_id": wid})
    assert created.status_code == 200
    [tag] = created.json()
    assert (tag["name"], tag["workspace_id"]) == ("tv", wid)

    renamed = http.put(f"workspaces/{wid}/tags/{tag['id']}", json={"name": "series"}).json()
    assert [(t["id"], t["name"]) for t in renamed] == [(tag["id"], "series")]

    taken = http.post(f"workspaces/{wid}/tags", json={"name": "SERIES", "workspace_id": wid})
    assert (taken.status_code, taken.json()) == (
        400,
        "a tag with the name 'SERIES' already exists",
    )
    blank = http.post(f"workspaces/{wid}/tags", json={"name": " ", "workspace_id": wid})
    assert (blank.status_code, blank.json()) == (400, "tag name can't be blank")
