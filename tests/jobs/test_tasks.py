"""`Bridge.sync` from the store, against both simulators, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from pydantic import SecretStr

from tests.sync.oracle import truth
from timebridge.bridge import Bridge, Skipped, SkipReason
from timebridge.clock import FakeClock
from timebridge.config import Settings
from timebridge.exist import ExistTokens
from timebridge.fakes.exist import ExistSimulator, SimClient
from timebridge.fakes.toggl import SimUser, TogglSimulator
from timebridge.jobs import EmbeddedScheduler
from timebridge.retry import RetryPolicy
from timebridge.store import ConnectionStatus, ProjectMapping, Store
from timebridge.sync.runner import RunOutcome, RunReport


class World:
    """Users connected in the store and on both simulators."""

    def __init__(
        self,
        store: Store,
        clock: FakeClock,
        toggl_sim: TogglSimulator,
        exist_sim: ExistSimulator,
        exist_client: SimClient,
        settings: Settings,
    ) -> None:
        self.store = store
        self.clock = clock
        self.toggl_sim = toggl_sim
        self.exist_sim = exist_sim
        self.exist_client = exist_client
        self.settings = settings
        self.bridge = Bridge.from_settings(
            store, settings, clock=clock, retry=RetryPolicy.testing()
        )
        self.toggl_users: dict[int, SimUser] = {}
        self.exist_tokens: dict[int, str] = {}
        #: The Exist username of each account.
        self.names: dict[int, str] = {}

    async def connect(self, name: str, *, plan: str = "premium") -> int:
        """An account with both connections, two projects mapped and three entries."""
        account = await self.store.accounts.create(f"{name}@example.com")
        toggl_user = self.toggl_sim.add_user(
            api_token=f"toggl-{name}-0123456789", timezone="Europe/Berlin", plan=plan
        )
        series = self.toggl_sim.add_project(toggl_user.default_workspace_id, "Series")
        work = self.toggl_sim.add_project(toggl_user.default_workspace_id, "Work")
        for hours_ago, project in [(30, series), (26, work), (3, series)]:
            self.toggl_sim.add_time_entry(
                toggl_user,
                start=self.clock.now() - timedelta(hours=hours_ago),
                duration=3000 + hours_ago,
                project_id=project.id,
            )
        await self.store.toggl_connections.create(
            account.id,
            toggl_user.api_token,
            toggl_user_id=toggl_user.id,
            origin=self.settings.toggl_base_url,
        )
        self.exist_sim.add_user(name, timezone="Europe/Berlin")
        token = self.exist_sim.issue_personal_token(name, self.exist_client.client_id)
        await self.store.exist_connections.save(
            account.id,
            ExistTokens(access_token=SecretStr(token), scope=""),
            origin=self.settings.exist_base_url,
        )
        await self.store.mappings.replace(
            account.id,
            [
                ProjectMapping(toggl_user.default_workspace_id, series.id, "Series", "tv_min"),
                ProjectMapping(toggl_user.default_workspace_id, work.id, "Work", "productive_min"),
            ],
        )
        self.toggl_users[account.id] = toggl_user
        self.exist_tokens[account.id] = token
        self.names[account.id] = name
        return account.id

    async def assert_exist_matches_toggl(self, account_id: int, name: str) -> None:
        mapping = await self.store.mappings.project_map(account_id)
        from zoneinfo import ZoneInfo

        expected = truth(
            self.toggl_sim.world.entries_of(self.toggl_users[account_id].id, include_deleted=True),
            mapping,
            ZoneInfo("Europe/Berlin"),
            self.clock.now(),
        )
        for (attribute, day), minutes in expected.items():
            stored = self.exist_sim.stored_values(name, attribute).get(day)
            assert (stored or 0) == minutes, (attribute, day)


def make_world(
    store: Store,
    clock: FakeClock,
    toggl_sim: TogglSimulator,
    toggl_url: str,
    exist_sim: ExistSimulator,
    exist_api_url: str,
    exist_oauth_url: str,
    exist_oauth_client: SimClient,
) -> World:
    settings = Settings(
        toggl_base_url=toggl_url,
        exist_base_url=exist_api_url,
        exist_oauth_base_url=exist_oauth_url,
    )
    return World(store, clock, toggl_sim, exist_sim, exist_oauth_client, settings)


async def test_sync_user_brings_exist_to_toggls_truth_and_records_the_run(
    store: Store,
    clock: FakeClock,
    toggl_sim: TogglSimulator,
    toggl_url: str,
    exist_sim: ExistSimulator,
    exist_api_url: str,
    exist_oauth_url: str,
    exist_oauth_client: SimClient,
) -> None:
    world = make_world(
        store, clock, toggl_sim, toggl_url, exist_sim, exist_api_url, exist_oauth_url,
        exist_oauth_client,
    )  # fmt: skip
    alice = await world.connect("alice")
    assert await world.bridge.users_to_sync() == [alice]
    report = await world.bridge.sync(alice)
    assert isinstance(report, RunReport)
    assert report.outcome is RunOutcome.SUCCEEDED
    await world.assert_exist_matches_toggl(alice, "alice")
    runs = await store.sync_runs.recent(alice)
    assert [run.outcome for run in runs] == ["succeeded"]
    assert runs[0].values_written == report.values_written > 0
    connection = await store.exist_connections.get(alice)
    assert connection is not None
    assert connection.time_zone == "Europe/Berlin", "the zone read from Exist is kept"

    again = await world.bridge.sync(alice)
    assert isinstance(again, RunReport)
    assert again.values_written == 0
    assert again.toggl_requests == 1
    assert again.exist_requests == 0, "the zone is not read again within a day"


async def test_revoked_toggl_token_disconnects_and_leaves_nothing(
    store: Store,
    clock: FakeClock,
    toggl_sim: TogglSimulator,
    toggl_url: str,
    exist_sim: ExistSimulator,
    exist_api_url: str,
    exist_oauth_url: str,
    exist_oauth_client: SimClient,
) -> None:
    world = make_world(
        store, clock, toggl_sim, toggl_url, exist_sim, exist_api_url, exist_oauth_url,
        exist_oauth_client,
    )  # fmt: skip
    alice = await world.connect("alice")
    bob = await world.connect("bob")
    await world.bridge.sync(alice)
    toggl_sim.world.revoke_token(world.toggl_users[alice].id)
    report = await world.bridge.sync(alice)
    assert isinstance(report, RunReport)
    assert report.outcome is RunOutcome.DISCONNECTED
    assert await store.toggl_connections.default(alice) is None
    assert await store.mappings.for_account(alice) == []
    assert await store.ledger.load(alice) == {}
    assert await world.bridge.users_to_sync() == [bob]
    skipped = await world.bridge.sync(alice)
    assert skipped == Skipped(alice, SkipReason.NO_TOGGL)
    bob_report = await world.bridge.sync(bob)
    assert isinstance(bob_report, RunReport)
    assert bob_report.outcome is RunOutcome.SUCCEEDED


async def test_refused_exist_token_marks_the_connection_broken(
    store: Store,
    clock: FakeClock,
    toggl_sim: TogglSimulator,
    toggl_url: str,
    exist_sim: ExistSimulator,
    exist_api_url: str,
    exist_oauth_url: str,
    exist_oauth_client: SimClient,
) -> None:
    world = make_world(
        store, clock, toggl_sim, toggl_url, exist_sim, exist_api_url, exist_oauth_url,
        exist_oauth_client,
    )  # fmt: skip
    alice = await world.connect("alice")
    exist_sim.revoke_token(world.exist_tokens[alice])
    report = await world.bridge.sync(alice)
    assert isinstance(report, RunReport)
    assert report.outcome is RunOutcome.EXIST_BROKEN
    connection = await store.exist_connections.get(alice)
    assert connection is not None
    assert connection.status is ConnectionStatus.FAILED
    assert await world.bridge.users_to_sync() == []
    assert await world.bridge.sync(alice) == Skipped(alice, SkipReason.NO_EXIST)


async def test_embedded_scheduler_syncs_every_connected_user_once(
    store: Store,
    clock: FakeClock,
    toggl_sim: TogglSimulator,
    toggl_url: str,
    exist_sim: ExistSimulator,
    exist_api_url: str,
    exist_oauth_url: str,
    exist_oauth_client: SimClient,
) -> None:
    world = make_world(
        store, clock, toggl_sim, toggl_url, exist_sim, exist_api_url, exist_oauth_url,
        exist_oauth_client,
    )  # fmt: skip
    names = ["ann", "ben", "cai", "dee", "eve"]
    users = [await world.connect(name) for name in names]
    scheduler = EmbeddedScheduler(
        cron="40 * * * *",
        list_users=world.bridge.users_to_sync,
        sync_user=world.bridge.sync,
        max_concurrency=3,
        clock=clock,
    )
    report = await scheduler.run_cycle()
    assert sorted(report.synced) == users
    for user, name in zip(users, names, strict=True):
        assert await store.sync_runs.count(user) == 1
        await world.assert_exist_matches_toggl(user, name)
