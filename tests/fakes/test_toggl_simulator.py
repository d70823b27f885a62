"""The Toggl simulator behaves as reference/toggl.md says Toggl does (raw HTTP, no client)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from timebridge.clock import FakeClock
from timebridge.fakes import Fault
from timebridge.fakes.toggl import QUOTA_MESSAGE, SimUser, TogglSimulator

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
JSON = "application/json; charset=utf-8"


@pytest.fixture
def http(toggl_url: str, toggl_user: SimUser) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=toggl_url + "/", auth=(toggl_user.api_token, "api_token"), timeout=10
    ) as client:
        yield client


@pytest.fixture
def admin(toggl_server: object) -> Iterator[httpx.Client]:
    url = toggl_server.url  # type: ignore[attr-defined]
    with httpx.Client(base_url=f"{url}/_admin/", timeout=10) as client:
        yield client


# Field lists from reference/toggl.md, section 2 and 4; a time entry's as recorded (section 3).
TIME_ENTRY_FIELDS = {
    "id", "workspace_id", "wid", "project_id", "task_id", "user_id", "uid", "start", "stop",
    "duration", "description", "tags", "tag_ids", "billable", "at", "duronly",
    "server_deleted_at",
}  # fmt: skip
ME_FIELDS = {
    "id", "email", "fullname", "default_workspace_id", "timezone", "beginning_of_week",
    "api_token", "at", "created_at", "updated_at", "image_url",
}  # fmt: skip
WORKSPACE_FIELDS = {
    "id", "name", "organization_id", "at", "business_ws", "premium", "default_currency",
    "default_hourly_rate", "rounding", "rounding_minutes", "only_admins_may_create_projects",
    "only_admins_may_create_tags", "api_token", "max_data_retention_days",
}  # fmt: skip
PROJECT_FIELDS = {
    "active", "actual_hours", "actual_seconds", "at", "billable", "client_id", "cid", "color",
    "created_at", "id", "name", "workspace_id", "wid", "estimated_hours", "rate",
    "server_deleted_at", "start_date", "end_date", "template", "is_private",
}  # fmt: skip
CLIENT_FIELDS = {"id", "wid", "name", "archived", "at", "creator_id", "notes"}
TAG_FIELDS = {"id", "workspace_id", "name", "at", "creator_id"}


def test_shapes_match_the_reference_field_by_field(
    http: httpx.Client, toggl_sim: TogglSimulator, toggl_user: SimUser
) -> None:
    wid = toggl_user.default_workspace_id
    client = toggl_sim.add_client(wid, "Acme")
    project = toggl_sim.add_project(wid, "Series", client_id=client.id)
    toggl_sim.add_tag(wid, "tv")
    toggl_sim.add_time_entry(
        toggl_user, start=NOW - timedelta(hours=1), duration=600, project_id=project.id
    )

    me = http.get("me").json()
    assert set(me) >= ME_FIELDS
    assert me["api_token"] == toggl_user.api_token, "Toggl echoes the token in clear"

    workspaces = http.get("me/workspaces").json()
    assert isinstance(workspaces, list), "bare arrays, no envelope"
    assert set(workspaces[0]) >= WORKSPACE_FIELDS

    entries = http.get("me/time_entries").json()
    assert isinstance(entries, list)
    entry = entries[0]
    assert set(entry) == TIME_ENTRY_FIELDS | {"pid"}
    assert (entry["wid"], entry["pid"], entry["uid"]) == (
        entry["workspace_id"],
        entry["project_id"],
        entry["user_id"],
    )

    projects = http.get(f"workspaces/{wid}/projects").json()
    assert set(projects[0]) >= PROJECT_FIELDS
    assert projects[0]["cid"] == client.id

    clients = http.get(f"workspaces/{wid}/clients").json()
    assert set(clients[0]) >= CLIENT_FIELDS
    assert "workspace_id" not in clients[0], "Toggl names a client's workspace `wid` only"

    tags = http.get(f"workspaces/{wid}/tags").json()
    assert set(tags[0]) >= TAG_FIELDS


def test_no_credentials_get_an_empty_401_and_bad_ones_a_403(toggl_url: str) -> None:
    missing = httpx.get(f"{toggl_url}/me")
    assert missing.status_code == 401
    assert missing.content == b""
    assert missing.headers["X-Authorization-Missing"] == "true"
    assert "X-Toggl-Quota-Remaining" not in missing.headers

    for wrong in [
        {"Authorization": "Basic " + base64.b64encode(b"wrong:api_token").decode()},
        {"Authorization": "Bearer tok-alice-1234567890"},
        {"Authorization": "Basic %%%"},
    ]:
        refused = httpx.get(f"{toggl_url}/me", headers=wrong)
        assert refused.status_code == 403
        assert refused.headers["content-type"] == JSON
        assert isinstance(refused.json(), str)


def test_answers_and_errors_are_json_with_a_charset_and_errors_are_json_strings(
    http: httpx.Client, toggl_user: SimUser
) -> None:
    ok = http.get("me")
    assert ok.headers["content-type"] == JSON
    refused = http.get(f"workspaces/{toggl_user.default_workspace_id}/projects/1")
    assert refused.status_code == 404
    assert refused.headers["content-type"] == JSON
    assert refused.content == b'"Project not found"'


def test_running_entries_have_a_negative_duration_and_no_stop(
    http: httpx.Client, toggl_user: SimUser
) -> None:
    wid = toggl_user.default_workspace_id
    body = {"created_with": "test", "workspace_id": wid, "start": "2026-03-10T11:00:00Z"}
    first = http.post(f"workspaces/{wid}/time_entries", json={**body, "duration": -1}).json()
    assert first["duration"] == -1, "the create answer echoes the duration sent"
    assert first["stop"] is None
    listed = http.get("me/time_entries/current").json()
    assert listed["duration"] == -int(datetime(2026, 3, 10, 11, tzinfo=UTC).timestamp())
    second = http.post(
        f"workspaces/{wid}/time_entries",
        json={**body, "start": "2026-03-10T11:30:00Z", "duration": -1},
    ).json()
    current = http.get("me/time_entries/current").json()
    assert current["id"] == second["id"]
    earlier = http.get(f"me/time_entries/{first['id']}").json()
    assert earlier["stop"] is not None, "starting a timer stops the running one"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"start": "2026-03-10T11:00:00Z", "duration": 60}, "created_with"),
        ({"created_with": "x", "start": "2026-03-10T11:00:00Z", "duration": 60}, "Workspace"),
    ],
)
def test_create_requires_created_with_and_a_matching_workspace(
    http: httpx.Client, toggl_user: SimUser, body: dict[str, object], message: str
) -> None:
    wid = toggl_user.default_workspace_id
    if "created_with" in body:
        body = {**body, "workspace_id": wid + 1}
    else:
        body = {**body, "workspace_id": wid}
    response = http.post(f"workspaces/{wid}/time_entries", json=body)
    assert response.status_code == 400
    assert message in response.text


def test_update_changes_only_the_fields_sent(
    http: httpx.Client, toggl_sim: TogglSimulator, toggl_user: SimUser, clock: FakeClock
) -> None:
    entry = toggl_sim.add_time_entry(
        toggl_user, start=NOW - timedelta(hours=2), duration=1800, description="a", billable=True
    )
    clock.advance(30)
    changed = http.put(
        f"workspaces/{toggl_user.default_workspace_id}/time_entries/{entry.id}",
        json={"description": "b"},
    ).json()
    assert changed["description"] == "b"
    assert changed["billable"] is True
    assert changed["duration"] == 1800
    assert changed["at"] == "2026-03-10T12:00:30Z"


def test_range_queries_need_both_ends_and_seconds(http: httpx.Client) -> None:
    only_start = http.get("me/time_entries", params={"start_date": "2026-03-01"})
    assert only_start.status_code == 400
    no_seconds = http.get(
        "me/time_entries",
        params={"start_date": "2026-03-01T00:00Z", "end_date": "2026-03-02T00:00Z"},
    )
    assert no_seconds.status_code == 400
    too_old = http.get(
        "me/time_entries", params={"since": int((NOW - timedelta(days=95)).timestamp())}
    )
    assert too_old.status_code == 400


def test_range_answers_are_capped_newest_first(
    toggl_sim: TogglSimulator, http: httpx.Client, toggl_user: SimUser
) -> None:
    for index in range(1005):
        toggl_sim.add_time_entry(toggl_user, start=NOW - timedelta(minutes=index + 1), duration=30)
    entries = http.get(
        "me/time_entries",
        params={"start_date": "2026-03-01T00:00:00Z", "end_date": "2026-03-11T00:00:00Z"},
    ).json()
    assert len(entries) == 1000
    assert entries[0]["start"] > entries[-1]["start"]


def test_projects_page_size_is_capped_at_200(http: httpx.Client, toggl_user: SimUser) -> None:
    response = http.get(
        f"workspaces/{toggl_user.default_workspace_id}/projects", params={"per_page": 201}
    )
    assert response.status_code == 400


def test_quota_402_is_a_neutral_json_string_with_the_quota_headers(
    http: httpx.Client, toggl_sim: TogglSimulator
) -> None:
    for _ in range(30):
        assert http.get("me").status_code == 200
    response = http.get("me")
    assert response.status_code == 402
    assert response.headers["content-type"] == JSON
    assert response.json() == QUOTA_MESSAGE
    assert "Premium" not in response.text
    assert response.headers["X-Toggl-Quota-Remaining"] == "0"
    assert int(response.headers["X-Toggl-Quota-Resets-In"]) == 3600


def test_admin_api_seeds_and_reads_back_out_of_process(admin: httpx.Client, toggl_url: str) -> None:
    user = admin.post("users", json={"api_token": "tok-admin-seeded", "plan": "starter"}).json()
    project = admin.post(
        "projects", json={"workspace_id": user["default_workspace_id"], "name": "Games"}
    ).json()
    entry = admin.post(
        "time_entries",
        json={
            "user_id": user["id"],
            "start": "2026-03-10T10:00:00Z",
            "duration": 900,
            "project_id": project["id"],
        },
    ).json()
    seen = httpx.get(f"{toggl_url}/me/time_entries", auth=("tok-admin-seeded", "api_token"))
    assert [e["id"] for e in seen.json()] == [entry["id"]]
    listed = admin.get("time_entries", params={"user_id": user["id"]}).json()
    assert [e["project_id"] for e in listed] == [project["id"]]
    assert admin.get("requests").json()[-1]["path"] == "/api/v9/me/time_entries"

    admin.post("faults", json={"path": "/api/v9/me", "status": 503, "times": 1})
    assert httpx.get(f"{toggl_url}/me", auth=("tok-admin-seeded", "api_token")).status_code == 503
    assert httpx.get(f"{toggl_url}/me", auth=("tok-admin-seeded", "api_token")).status_code == 200

    moved = admin.post("clock", json={"advance": 3600}).json()
    assert moved["now"].startswith("2026-03-10T13:00")

    revoked = admin.post(f"users/{user['id']}/revoke").json()
    assert revoked["api_token"] != "tok-admin-seeded"
    assert httpx.get(f"{toggl_url}/me", auth=("tok-admin-seeded", "api_token")).status_code == 403


def test_faults_by_probability_route_and_count(
    toggl_sim: TogglSimulator, http: httpx.Client
) -> None:
    import random

    toggl_sim.faults.rng = random.Random(7)
    toggl_sim.faults.add(Fault(path="/api/v9/me", status=500, probability=0.5))
    statuses = [http.get("me").status_code for _ in range(20)]
    assert 3 <= statuses.count(500) <= 17
    assert set(statuses) == {200, 500}
    toggl_sim.faults.clear()
    toggl_sim.faults.add(method="POST", path="*/tags", status=418, times=2)
    assert http.get("me/workspaces").status_code == 200, "other routes are untouched"
    wid = http.get("me").json()["default_workspace_id"]
    codes = [
        http.post(f"workspaces/{wid}/tags", json={"name": f"t{i}"}).status_code for i in range(3)
    ]
    assert codes == [418, 418, 200]


def test_latency_fault_delays_the_answer(toggl_sim: TogglSimulator, http: httpx.Client) -> None:
    import time

    toggl_sim.faults.add(path="/api/v9/me", latency=0.3, times=1)
    started = time.monotonic()
    assert http.get("me").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_since_returns_entries_saved_since_and_a_seeded_history_was_saved_long_ago(
    toggl_sim: TogglSimulator, http: httpx.Client, toggl_user: SimUser, clock: FakeClock
) -> None:
    start = NOW - timedelta(days=3)
    tracked = toggl_sim.add_time_entry(
        toggl_user, start=start, duration=600, saved_at=start + timedelta(minutes=10)
    )
    edited = toggl_sim.add_time_entry(toggl_user, start=start, duration=900)
    with pytest.raises(ValueError, match="future"):
        toggl_sim.add_time_entry(
            toggl_user, start=start, duration=60, saved_at=NOW + timedelta(seconds=1)
        )
    since = int((NOW - timedelta(hours=1)).timestamp())

    assert tracked.at == start + timedelta(minutes=10)
    assert [e["id"] for e in http.get("me/time_entries", params={"since": since}).json()] == [
        edited.id
    ]
    clock.advance(60)
    toggl_sim.world.delete_time_entry(toggl_user.id, None, tracked.id)
    changed = http.get("me/time_entries", params={"since": since}).json()
    assert {entry["id"]: entry["server_deleted_at"] is not None for entry in changed} == {
        tracked.id: True,
        edited.id: False,
    }
