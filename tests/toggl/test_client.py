"""The Toggl client against the simulator, over real HTTP: every call of seed 003."""

from __future__ import annotations

import inspect
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from timebridge.clock import FakeClock
from timebridge.fakes.toggl import SimUser, TogglSimulator
from timebridge.retry import RetryPolicy
from timebridge.toggl import (
    AsyncTogglClient,
    AuthenticationError,
    ClientCreate,
    ClientUpdate,
    InvalidRequest,
    NotFound,
    ProjectCreate,
    ProjectUpdate,
    TimeEntryCreate,
    TimeEntryUpdate,
    TogglClient,
    TogglError,
)

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def requests_to(sim: TogglSimulator, path_part: str) -> int:
    return sum(1 for request in sim.requests if path_part in request.path)


# --- me and workspaces ----------------------------------------------------------------------------


def test_me_returns_the_profile_and_hides_the_token(
    toggl: TogglClient, toggl_user: SimUser
) -> None:
    me = toggl.me()
    assert me.id == toggl_user.id
    assert me.fullname == "Alice"
    assert me.timezone == "Europe/Berlin"
    assert me.default_workspace_id == toggl_user.default_workspace_id
    assert me.api_token is not None
    assert me.api_token.get_secret_value() == toggl_user.api_token
    assert toggl_user.api_token not in repr(me)
    assert toggl_user.api_token not in me.model_dump_json()


def test_workspaces_lists_every_workspace_the_user_belongs_to(
    toggl: TogglClient, toggl_sim: TogglSimulator, toggl_user: SimUser
) -> None:
    other = toggl_sim.world.add_workspace(owner_id=toggl_user.id, name="Side", plan="free")
    workspaces = {ws.id: ws for ws in toggl.workspaces()}
    assert set(workspaces) == {toggl_user.default_workspace_id, other.id}
    assert workspaces[toggl_user.default_workspace_id].premium is True
    assert workspaces[other.id].premium is False
    assert toggl.workspace(other.id).name == "Side"


def test_workspace_users_lists_members(
    toggl: TogglClient, toggl_sim: TogglSimulator, toggl_user: SimUser
) -> None:
    bob = toggl_sim.add_user(fullname="Bob")
    toggl_sim.world.add_member(toggl_user.default_workspace_id, bob.id)
    users = toggl.workspace_users(toggl_user.default_workspace_id)
    assert {user.fullname for user in users} == {"Alice", "Bob"}
    assert {user.id: user.admin for user in users} == {toggl_user.id: True, bob.id: False}


def test_workspace_of_someone_else_is_refused(
    toggl: TogglClient, toggl_sim: TogglSimulator
) -> None:
    stranger = toggl_sim.add_user(fullname="Stranger")
    with pytest.raises(AuthenticationError, match="does not have access"):
        toggl.workspace(stranger.default_workspace_id)


# --- time entries ---------------------------------------------------------------------------------


def test_time_entry_lifecycle_create_get_update_stop_delete(
    toggl: TogglClient, toggl_sim: TogglSimulator, toggl_user: SimUser, clock: FakeClock
) -> None:
    wid = toggl_user.default_workspace_id
    project = toggl_sim.add_project(wid, "Deep work")
    assert toggl.current_time_entry() is None

    started = toggl.create_time_entry(
        TimeEntryCreate(workspace_id=wid, start=NOW - timedelta(minutes=30), project_id=project.id)
    )
    assert started.is_running
    assert started.stop is None
    # The create answer echoes duration -1, reads show minus the start's Unix time: both run.
    current = toggl.current_time_entry()
    assert current is not None and current.id == started.id and current.is_running
    assert current.elapsed_seconds(clock.now()) == started.elapsed_seconds(clock.now()) == 1800
    assert toggl.time_entry(started.id).project_id == project.id

    clock.advance(60)
    renamed = toggl.update_time_entry(wid, started.id, TimeEntryUpdate(description="Writing"))
    assert renamed.description == "Writing"
    assert renamed.project_id == project.id, "fields not sent must not change"
    assert renamed.at is not None and started.at is not None and renamed.at > started.at

    stopped = toggl.stop_time_entry(wid, started.id)
    assert not stopped.is_running
    assert stopped.duration == 31 * 60
    assert toggl.current_time_entry() is None

    toggl.delete_time_entry(wid, started.id)
    with pytest.raises(NotFound):
        toggl.time_entry(started.id)


def test_created_entries_say_they_were_created_by_timebridge(
    toggl_url: str, toggl_user: SimUser, clock: FakeClock
) -> None:
    import httpx

    seen: list[bytes] = []

    def capture(request: httpx.Request) -> None:
        seen.append(request.content)

    with TogglClient(toggl_user.api_token, base_url=toggl_url, clock=clock) as client:
        client._driver.http.event_hooks["request"].append(capture)
        client.create_time_entry(
            TimeEntryCreate(workspace_id=toggl_user.default_workspace_id, start=NOW, duration=60)
        )
    assert b'"created_with":"timebridge"' in seen[-1].replace(b" ", b"")


def test_finished_entry_from_start_and_duration(toggl: TogglClient, toggl_user: SimUser) -> None:
    entry = toggl.create_time_entry(
        TimeEntryCreate(
            workspace_id=toggl_user.default_workspace_id,
            start=NOW - timedelta(hours=2),
            duration=3600,
            tags=["focus"],
        )
    )
    assert entry.stop == NOW - timedelta(hours=1)
    assert entry.tags == ["focus"]
    assert entry.tag_ids and len(entry.tag_ids) == 1


def test_time_entries_filters_by_start_range_and_before(
    toggl: TogglClient, toggl_sim: TogglSimulator, toggl_user: SimUser
) -> None:
    for hours_ago in (50, 30, 10):
        toggl_sim.add_time_entry(toggl_user, start=NOW - timedelta(hours=hours_ago), duration=600)
    ranged = toggl.time_entries(
        start_date=NOW - timedelta(hours=40), end_date=NOW - timedelta(hours=5)
    )
    assert sorted(NOW - e.start for e in ranged) == [timedelta(hours=10), timedelta(hours=30)]
    before = toggl.time_entries(before=NOW - timedelta(hours=20))
    assert [NOW - e.start for e in before] == [timedelta(hours=30), timedelta(hours=50)]
    by_date = toggl.time_entries(start_date=date(2026, 3, 8), end_date=date(2026, 3, 11))
    assert len(by_date) == 3


def test_since_reports_deleted_entries_with_their_deletion_time(
    toggl: TogglClient, toggl_sim: TogglSimulator, toggl_user: SimUser, clock: FakeClock
) -> None:
    keep = toggl_sim.add_time_entry(toggl_user, start=NOW - timedelta(hours=3), duration=600)
    gone = toggl_sim.add_time_entry(toggl_user, start=NOW - timedelta(hours=2), duration=600)
    clock.advance(120)
    checkpoint = clock.now()
    clock.advance(60)
    toggl.delete_time_entry(toggl_user.default_workspace_id, gone.id)

    changed = toggl.time_entries(since=checkpoint)
    assert [entry.id for entry in changed] == [gone.id]
    assert changed[0].is_deleted
    assert changed[0].server_deleted_at == clock.now()
    assert [entry.id for entry in toggl.time_entries(since=NOW - timedelta(days=1))] == [
        gone.id,
        keep.id,
    ]
    listed = toggl.time_entries(start_date=NOW - timedelta(days=1), end_date=NOW)
    assert [entry.id for entry in listed] == [keep.id], "range queries omit deleted entries"


def test_window_fetch_splits_at_the_cap_and_returns_every_entry(
    toggl: TogglClient, toggl_sim: TogglSimulator, toggl_user: SimUser
) -> None:
    start = NOW - timedelta(days=14)
    for index in range(2500):
        toggl_sim.add_time_entry(
            toggl_user, start=start + timedelta(minutes=7 * index), duration=300
        )
    entries = toggl.time_entries_between(start, NOW)
    assert len(entries) == 2500
    assert len({entry.id for entry in entries}) == 2500
    assert entries == sorted(entries, key=lambda entry: entry.start)
    capped = [r for r in toggl_sim.requests if r.path.endswith("/me/time_entries")]
    assert 3 <= len(capped) <= 9, "splits only as much as the cap requires"


def test_window_fetch_of_a_light_user_is_one_request(
    toggl: TogglClient, toggl_sim: TogglSimulator, toggl_user: SimUser
) -> None:
    toggl_sim.add_time_entry(toggl_user, start=NOW - timedelta(days=3), duration=300)
    toggl_sim.add_time_entry(toggl_user, start=NOW - timedelta(days=30), duration=300)
    entries = toggl.time_entries_between(NOW - timedelta(days=15), NOW)
    assert len(entries) == 1
    assert requests_to(toggl_sim, "/me/time_entries") == 1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.time_entries(start_date=date(2026, 3, 1)), "together"),
        (lambda c: c.time_entries(since=NOW, before=NOW), "since and before"),
        (lambda c: c.time_entries(since=NOW - timedelta(days=91)), "90 days"),
        (lambda c: c.time_entries(before=datetime(2026, 3, 1)), "timezone-aware"),
        (lambda c: c.time_entries_between(datetime(2026, 3, 1), NOW), "timezone-aware"),
        (lambda c: c.time_entries_between(NOW, NOW - timedelta(days=1)), "after start"),
        (lambda c: c.update_time_entry(1, 2, TimeEntryUpdate()), "at least one field"),
        (lambda c: c.projects(1, per_page=500), "per_page"),
        (lambda c: c.time_entry(0), "positive id"),
    ],
)
def test_bad_arguments_fail_before_any_request(
    toggl: TogglClient, toggl_sim: TogglSimulator, call: object, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        call(toggl)  # type: ignore[operator]
    assert toggl_sim.requests == []


def test_naive_start_is_refused_by_the_payload_model() -> None:
    with pytest.raises(ValueError, match="timezone"):
        TimeEntryCreate(workspace_id=1, start=datetime(2026, 3, 1, 9), duration=60)


# --- projects -------------------------------------------------------------------------------------


def test_project_crud(toggl: TogglClient, toggl_user: SimUser) -> None:
    wid = toggl_user.default_workspace_id
    created = toggl.create_project(wid, ProjectCreate(name="Movies", color="#ff0000"))
    assert created.active and created.color == "#ff0000"
    assert toggl.project(wid, created.id) == created
    updated = toggl.update_project(wid, created.id, ProjectUpdate(name="Films"))
    assert updated.name == "Films" and updated.color == "#ff0000"
    with pytest.raises(InvalidRequest, match="already been taken"):
        toggl.create_project(wid, ProjectCreate(name="films"))
    toggl.delete_project(wid, created.id)
    with pytest.raises(NotFound):
        toggl.project(wid, created.id)


def test_projects_filters_and_pages(
    toggl: TogglClient, toggl_sim: TogglSimulator, toggl_user: SimUser
) -> None:
    wid = toggl_user.default_workspace_id
    for index in range(450):
        toggl_sim.add_project(wid, f"Project {index:03d}", active=index % 10 != 0)
    assert len(toggl.projects(wid)) == 151, "Toggl's default page size"
    assert len(toggl.projects(wid, per_page=200, page=3)) == 5
    assert len(toggl.projects(wid, active=False, per_page=200)) == 45
    assert len(toggl.projects(wid, active="both", per_page=200, page=3)) == 50
    assert [p.name for p in toggl.projects(wid, name="PROJECT 44")] == [
        f"Project {i}" for i in range(440, 450) if i % 10 != 0
    ]
    toggl_sim.clear_requests()
    everything = list(toggl.iter_projects(wid, active="both"))
    assert len(everything) == 450
    assert len({p.id for p in everything}) == 450
    assert requests_to(toggl_sim, "/projects") == 3


# --- clients --------------------------------------------------------------------------------------


def test_client_crud_archive_and_restore(
    toggl: TogglClient, toggl_sim: TogglSimulator, toggl_user: SimUser
) -> None:
    wid = toggl_user.default_workspace_id
    acme = toggl.create_client(wid, ClientCreate(name="Acme", notes="big one"))
    assert acme.workspace_id == wid and acme.notes == "big one"
    projects = [toggl_sim.add_project(wid, f"Acme {i}", client_id=acme.id) for i in range(2)]
    assert toggl.client(wid, acme.id).name == "Acme"
    assert toggl.update_client(wid, acme.id, ClientUpdate(name="Acme Inc")).name == "Acme Inc"

    archived_projects = toggl.archive_client(wid, acme.id)
    assert sorted(archived_projects) == sorted(p.id for p in projects)
    assert toggl.clients(wid) == []
    assert [c.id for c in toggl.clients(wid, status="archived")] == [acme.id]
    assert not any(p.active for p in toggl.projects(wid, active="both"))

    restored = toggl.restore_client(wid, acme.id, restore_all_projects=True)
    assert not restored.archived
    assert all(p.active for p in toggl.projects(wid, active="both"))
    assert [c.name for c in toggl.clients(wid, name="inc")] == ["Acme Inc"]

    toggl.delete_client(wid, acme.id)
    with pytest.raises(NotFound):
        toggl.client(wid, acme.id)


# --- tags -----------------------------------------------------------------------------------------


def test_tag_crud(toggl: TogglClient, toggl_user: SimUser) -> None:
    wid = toggl_user.default_workspace_id
    tag = toggl.create_tag(wid, "billable-later")
    assert tag.name == "billable-later"
    assert [t.name for t in toggl.tags(wid)] == ["billable-later"]
    renamed = toggl.update_tag(wid, tag.id, "later")
    assert (renamed.id, renamed.name) == (tag.id, "later")
    with pytest.raises(InvalidRequest, match="already exists"):
        toggl.create_tag(wid, "LATER")
    toggl.delete_tag(wid, tag.id)
    assert toggl.tags(wid) == []


def tag_json(tag_id: int, name: str, wid: int) -> dict[str, object]:
    return {"id": tag_id, "workspace_id": wid, "name": name, "at": "2026-03-10T12:00:00Z"}


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(lambda wid: tag_json(7, "focus", wid), id="a tag object"),
        pytest.param(lambda wid: [tag_json(7, "focus", wid)], id="an array of that tag"),
        pytest.param(
            lambda wid: [tag_json(3, "admin", wid), tag_json(7, "Focus", wid)],
            id="an array of every tag",
        ),
    ],
)
def test_a_created_tag_is_read_from_any_answer_toggl_gives(
    toggl: TogglClient, toggl_sim: TogglSimulator, toggl_user: SimUser, answer: Any
) -> None:
    wid = toggl_user.default_workspace_id
    body = json.dumps(answer(wid))
    toggl_sim.faults.add(method="POST", path="*/tags", status=200, body=body, times=1)
    tag = toggl.create_tag(wid, "focus")
    assert (tag.id, tag.name.lower()) == (7, "focus")


def test_a_renamed_tag_is_found_by_its_id_in_an_array(
    toggl: TogglClient, toggl_sim: TogglSimulator, toggl_user: SimUser
) -> None:
    # Even if Toggl answers every tag and spells the new name its own way.
    wid = toggl_user.default_workspace_id
    body = json.dumps([tag_json(3, "admin", wid), tag_json(7, "deep  work", wid)])
    toggl_sim.faults.add(method="PUT", path="*/tags/7", status=200, body=body, times=1)
    assert toggl.update_tag(wid, 7, "deep work").id == 7


def test_an_ambiguous_tag_answer_is_an_error_not_a_guess(
    toggl: TogglClient, toggl_sim: TogglSimulator, toggl_user: SimUser
) -> None:
    wid = toggl_user.default_workspace_id
    body = json.dumps([tag_json(3, "admin", wid), tag_json(4, "home", wid)])
    toggl_sim.faults.add(method="POST", path="*/tags", status=200, body=body, times=1)
    with pytest.raises(TogglError, match="cannot tell which"):
        toggl.create_tag(wid, "focus")


def test_a_null_list_of_entries_is_an_empty_list(
    toggl: TogglClient, toggl_sim: TogglSimulator
) -> None:
    toggl_sim.faults.add(path="/api/v9/me/time_entries", status=200, body="null", times=2)
    assert toggl.time_entries() == []
    assert toggl.time_entries_between(NOW - timedelta(days=1), NOW) == []


# --- the async client -----------------------------------------------------------------------------


def test_async_and_sync_clients_offer_the_same_calls() -> None:
    def public(cls: type) -> dict[str, list[str]]:
        return {
            name: list(inspect.signature(member).parameters)
            for name, member in vars(cls).items()
            if not name.startswith("_") and callable(member)
        }

    sync_calls = public(TogglClient)
    async_calls = public(AsyncTogglClient)
    sync_calls.pop("close")
    async_calls.pop("aclose")
    assert sync_calls == async_calls


async def test_async_client_runs_the_same_operations(
    atoggl: AsyncTogglClient, toggl_sim: TogglSimulator, toggl_user: SimUser
) -> None:
    wid = toggl_user.default_workspace_id
    for index in range(3):
        toggl_sim.add_project(wid, f"P{index}")
    assert (await atoggl.me()).id == toggl_user.id
    assert [p.name async for p in atoggl.iter_projects(wid, per_page=2)] == ["P0", "P1", "P2"]
    entry = await atoggl.create_time_entry(
        TimeEntryCreate(workspace_id=wid, start=NOW - timedelta(hours=1), duration=1800)
    )
    assert [e.id for e in await atoggl.time_entries_between(NOW - timedelta(days=1), NOW)] == [
        entry.id
    ]
    await atoggl.delete_time_entry(wid, entry.id)
    assert await atoggl.time_entries_between(NOW - timedelta(days=1), NOW) == []


def test_gateway_style_auth_is_pluggable(toggl_url: str, toggl_user: SimUser) -> None:
    import httpx

    basic = httpx.BasicAuth(toggl_user.api_token, "api_token")
    with TogglClient(auth=basic, base_url=toggl_url, retry=RetryPolicy.never()) as client:
        assert client.me().id == toggl_user.id
    assert toggl_user.api_token not in repr(client)
