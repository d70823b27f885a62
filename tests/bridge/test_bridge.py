"""`Bridge`: what every caller gets for an account, over real HTTP against both simulators, on
SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest

from tests.jobs.test_tasks import World
from tests.test_personal import Person, config_data, seed_person
from timebridge.bridge import Bridge, PersonalSync, SkipReason, SyncNotPossible
from timebridge.clock import FakeClock
from timebridge.config import Settings
from timebridge.fakes.exist import ExistSimulator, SimClient
from timebridge.fakes.toggl import TogglSimulator
from timebridge.personal import parse_personal_config
from timebridge.records import ValueWrite
from timebridge.retry import RetryPolicy
from timebridge.store import ProjectMapping, Store
from timebridge.sync.runner import RunOutcome, RunReport

#: Settings as a freshly started `serve` has them: the real services, nothing configured.
REAL = Settings()


def bridge_for(store: Store, clock: FakeClock, settings: Settings = REAL) -> Bridge:
    return Bridge.from_settings(store, settings, clock=clock, retry=RetryPolicy.testing())


async def test_each_run_goes_to_the_origins_its_connections_were_checked_against(
    world: World, store: Store, clock: FakeClock, toggl_sim: TogglSimulator
) -> None:
    alice = await world.connect("alice")
    # The service itself points at the real Toggl and Exist: the connections say otherwise.
    report = await bridge_for(store, clock).sync(alice)

    assert isinstance(report, RunReport)
    assert report.outcome is RunOutcome.SUCCEEDED, report.failures
    await world.assert_exist_matches_toggl(alice, "alice")
    assert toggl_sim.requests, "the simulator got the token"


async def test_a_personal_config_keeps_syncing_from_the_service_with_its_own_urls(
    store: Store,
    clock: FakeClock,
    toggl_sim: TogglSimulator,
    exist_sim: ExistSimulator,
    exist_oauth_client: SimClient,
    toggl_url: str,
    exist_api_url: str,
    tmp_path: Path,
) -> None:
    person: Person = seed_person(toggl_sim, exist_sim, exist_oauth_client, clock)
    config = parse_personal_config(config_data(person, toggl_url, exist_api_url), {})
    settings = Settings(data_dir=tmp_path)
    first = await PersonalSync(config, settings, bridge_for(store, clock, settings)).run()
    assert isinstance(first.result, RunReport)
    toggl_sim.add_time_entry(
        person.toggl_user,
        start=clock.now() - timedelta(hours=2),
        duration=1800,
        project_id=person.projects["Series"],
    )
    clock.advance(timedelta(hours=1))

    # `timebridge serve` / `sync --user` on the same store: no base URLs configured at all.
    report = await bridge_for(store, clock).sync(first.account_id)

    assert isinstance(report, RunReport)
    assert report.outcome is RunOutcome.SUCCEEDED, report.failures
    assert report.values_written > 0, "the new entry reached Exist"


async def test_plan_shows_what_a_sync_would_write_and_writes_nothing(
    world: World, store: Store, clock: FakeClock, exist_sim: ExistSimulator
) -> None:
    alice = await world.connect("alice")
    bridge = bridge_for(store, clock)

    preview = await bridge.plan(alice)

    assert preview.account_id == alice
    assert preview.writes, "three entries to bring to Exist"
    assert all(write.current == 0 for write in preview.writes)
    assert [r for r in exist_sim.requests if r.method != "GET"] == []
    assert await store.ledger.load(alice) == {}
    assert await store.sync_runs.count(alice) == 0
    report = await bridge.sync(alice)
    assert isinstance(report, RunReport)
    assert {(w.attribute, w.date, w.value) for w in preview.writes} == {
        (w.attribute, w.date, w.value) for w in report.written
    }


async def test_plan_without_an_exist_connection_says_so(
    world: World, store: Store, clock: FakeClock
) -> None:
    alice = await world.connect("alice")
    await store.exist_connections.delete(alice)
    with pytest.raises(SyncNotPossible) as raised:
        await bridge_for(store, clock).plan(alice)
    assert raised.value.reason is SkipReason.NO_EXIST


async def test_saving_a_mapping_acquires_names_takeovers_and_stores_it(
    world: World, store: Store, clock: FakeClock, exist_sim: ExistSimulator
) -> None:
    alice = await world.connect("alice")
    exist_sim.add_service("rescuetime", "RescueTime")
    exist_sim.add_attribute("alice", template="distracting_min", owner="rescuetime")
    bridge = bridge_for(store, clock)
    toggl_user = world.toggl_users[alice]
    social = world.toggl_sim.add_project(toggl_user.default_workspace_id, "Social media")
    workspace = toggl_user.default_workspace_id
    projects = [
        *await store.mappings.for_account(alice),
        ProjectMapping(workspace, social.id, "Social media", "distracting_min"),
    ]

    assert await bridge.takeovers(alice, ["distracting_min", "tv_min"]) == {
        "distracting_min": "RescueTime"
    }
    saved = await bridge.save_mapping(alice, projects)

    assert saved.taken_over == {"distracting_min": "RescueTime"}
    assert saved.refused == {}
    assert (await store.mappings.project_map(alice))[social.id] == "distracting_min"
    assert exist_sim.attribute("alice", "distracting_min").service is not None
    assert await bridge.takeovers(alice, ["distracting_min"]) == {}


async def test_disconnecting_toggl_leaves_nothing_behind_and_gives_the_attributes_back(
    world: World, store: Store, clock: FakeClock, exist_sim: ExistSimulator
) -> None:
    alice = await world.connect("alice")
    bridge = bridge_for(store, clock)
    await bridge.save_mapping(alice, await store.mappings.for_account(alice))
    await bridge.sync(alice)
    assert await store.ledger.load(alice)

    report = await bridge.disconnect_toggl(alice)

    assert report.mappings == 2
    assert await store.toggl_connections.list(alice) == []
    assert await store.mappings.for_account(alice) == []
    assert await store.ledger.load(alice) == {}
    assert await store.ledger.entries(alice) == []
    owned = {a.name for a in exist_sim.attributes("alice") if a.service is not None}
    assert not owned & {"tv_min", "productive_min"}, "released in Exist"


async def test_the_daily_purge_covers_every_account_and_keeps_recent_history(
    world: World, store: Store, clock: FakeClock
) -> None:
    alice, bob = await world.connect("alice"), await world.connect("bob")
    bridge = Bridge.from_settings(
        store, Settings(run_history_days=30), clock=clock, retry=RetryPolicy.testing()
    )
    await bridge.sync(alice)
    await bridge.sync(bob)
    old_day = clock.now().date() - timedelta(days=40)
    await store.ledger.record_accepted(bob, [ValueWrite("tv_min", old_day, 12)])
    # Bob stops syncing (Toggl disconnected elsewhere); a month and more passes.
    await store.exist_connections.mark_broken(bob)
    clock.advance(timedelta(days=31))
    await bridge.sync(alice)

    await bridge.purge()

    assert [run.started_at for run in await store.sync_runs.recent(alice)] == [clock.now()]
    assert await store.sync_runs.recent(bob) == []
    assert ("tv_min", old_day) not in await store.ledger.load(bob)


async def test_a_failed_run_says_why_in_its_log_line_and_never_the_token(
    world: World,
    store: Store,
    clock: FakeClock,
    toggl_sim: TogglSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    alice = await world.connect("alice")
    toggl_sim.faults.add(path="/api/v9/me/time_entries", status=404)
    caplog.set_level(logging.INFO, logger="timebridge.sync.runner")

    report = await bridge_for(store, clock).sync(alice)

    assert isinstance(report, RunReport)
    assert report.outcome is RunOutcome.FAILED
    [record] = [r for r in caplog.records if r.getMessage() == "sync run finished"]
    assert record.__dict__["outcome"] == "failed"
    assert record.__dict__["error_service"] == "toggl"
    assert record.__dict__["error_status"] == 404
    token = world.toggl_users[alice].api_token
    assert token not in caplog.text


async def test_runs_of_one_account_never_overlap(
    world: World,
    store: Store,
    clock: FakeClock,
    exist_sim: ExistSimulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    alice = await world.connect("alice")
    bridge = bridge_for(store, clock)
    exist_sim.faults.add(path="/api/2/attributes/update/", latency=0.2)
    # Each run reads its context first and records itself last: watch the order they come in.
    events: list[str] = []
    read, record = store.sync_context, store.sync_runs.record

    async def reading(account_id: int) -> object:
        events.append("start")
        return await read(account_id)

    async def recording(report: RunReport, **kwargs: object) -> object:
        events.append("end")
        return await record(report, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "sync_context", reading)
    monkeypatch.setattr(store.sync_runs, "record", recording)

    reports = await asyncio.gather(bridge.sync(alice), bridge.zero_out(alice), bridge.sync(alice))

    assert all(isinstance(r, RunReport) for r in reports)
    assert events == ["start", "end"] * 3, "one run at a time"
    await world.assert_exist_matches_toggl(alice, "alice")


async def test_an_attribute_another_integration_holds_is_refused_before_exist_is_asked(
    world: World, store: Store, clock: FakeClock, exist_sim: ExistSimulator
) -> None:
    from timebridge.store import AttributeClaimed, Integration

    alice = await world.connect("alice")
    await store.claims.claim(alice, "movies_min", Integration.TRAKT)
    toggl_user = world.toggl_users[alice]
    films = world.toggl_sim.add_project(toggl_user.default_workspace_id, "Films")
    projects = [
        *await store.mappings.for_account(alice),
        ProjectMapping(toggl_user.default_workspace_id, films.id, "Films", "movies_min"),
    ]
    exist_sim.clear_requests()

    with pytest.raises(AttributeClaimed):
        await bridge_for(store, clock).save_mapping(alice, projects)

    assert exist_sim.requests_to("attributes/acquire/") == [], "nothing taken in Exist"
    assert films.id not in await store.mappings.project_map(alice)
