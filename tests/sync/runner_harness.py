"""A user connected on both simulators, for the runner's tests.

An `Account` seeds Toggl entries through the Toggl simulator's Python API, maps its projects
through `attributes.save_mapping` (so acquiring is exercised for real), runs the runner over real
HTTP, and compares what Exist stores with the independent oracle (`tests.sync.oracle`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from tests.sync.oracle import truth
from timebridge.clock import FakeClock
from timebridge.exist import BRIDGE_SCOPES, AsyncExistClient, AttributeValue, OAuthApp
from timebridge.fakes.exist import ExistSimulator, SimClient
from timebridge.fakes.toggl import SimUser, TogglSimulator
from timebridge.retry import RetryPolicy
from timebridge.sync.attributes import MappingChange, save_mapping
from timebridge.sync.ledger import InMemoryLedgerStore, LedgerStore
from timebridge.sync.planner import window_dates
from timebridge.sync.runner import RunReport, SyncRunner, UserSyncSettings
from timebridge.toggl import AsyncTogglClient, TimeEntry

#: The projects every account has, and the attribute each one is mapped to by `map_projects`.
PROJECT_ATTRIBUTES: Mapping[str, str] = {
    "Series": "tv_min",
    "Movies": "movies_min",
    "Games": "gaming_min",
    "Deep work": "productive_min",
    "Email": "neutral_min",
    "Social media": "distracting_min",
}
#: A project nobody maps: its time must never reach Exist.
UNMAPPED_PROJECT = "Chores"
REDIRECT_URI = "http://127.0.0.1:8765/callback"

AttributeDate = tuple[str, date]


@dataclass
class Account:
    """One Timebridge user: a Toggl account, an Exist account, clients, a ledger, a mapping."""

    user_id: int
    clock: FakeClock
    toggl_sim: TogglSimulator
    exist_sim: ExistSimulator
    toggl_user: SimUser
    exist_username: str
    projects: dict[str, int]
    toggl: AsyncTogglClient
    exist: AsyncExistClient
    ledger: LedgerStore
    mapping: dict[int, str] = field(default_factory=dict)
    zone_override: ZoneInfo | None = None
    #: What a caller persists from each report so the next run skips the profile read.
    exist_zone: ZoneInfo | None = None
    exist_zone_checked_at: datetime | None = None
    reports: list[RunReport] = field(default_factory=list)

    # --- setup ----------------------------------------------------------------------------------

    async def map_projects(self, *names: str) -> MappingChange:
        """Map the named projects (all of `PROJECT_ATTRIBUTES` when none) as the mapping page
        would on save: acquire, then store the resolved mapping."""
        chosen = names or tuple(PROJECT_ATTRIBUTES)
        requested = {self.projects[name]: PROJECT_ATTRIBUTES[name] for name in chosen}
        change = await save_mapping(
            self.exist, self.ledger, self.user_id, previous=self.mapping, requested=requested
        )
        self.mapping = dict(change.mapping)
        return change

    async def unmap(self, *names: str) -> MappingChange:
        kept = {
            project_id: attribute
            for project_id, attribute in self.mapping.items()
            if project_id not in {self.projects[name] for name in names}
        }
        change = await save_mapping(
            self.exist, self.ledger, self.user_id, previous=self.mapping, requested=kept
        )
        self.mapping = dict(change.mapping)
        return change

    # --- Toggl ----------------------------------------------------------------------------------

    @property
    def workspace_id(self) -> int:
        return self.toggl_user.default_workspace_id

    def track(
        self, project: str, start: datetime, *, minutes: float | None = None, seconds: int = 0
    ) -> TimeEntry:
        """An entry of `minutes` (plus `seconds`), or a running one when both are absent."""
        duration = None if minutes is None and not seconds else int((minutes or 0) * 60) + seconds
        return self.toggl_sim.add_time_entry(
            self.toggl_user,
            start=start,
            duration=-1 if duration is None else duration,
            project_id=self.projects[project],
        )

    def move(self, entry: TimeEntry, start: datetime) -> TimeEntry:
        return self.toggl_sim.world.update_time_entry(
            self.toggl_user.id, self.workspace_id, entry.id, {"start": start}
        )

    def reassign(self, entry: TimeEntry, project: str) -> TimeEntry:
        return self.toggl_sim.world.update_time_entry(
            self.toggl_user.id, self.workspace_id, entry.id, {"project_id": self.projects[project]}
        )

    def delete(self, entry: TimeEntry) -> None:
        self.toggl_sim.world.delete_time_entry(self.toggl_user.id, self.workspace_id, entry.id)

    # --- running --------------------------------------------------------------------------------

    def settings(self) -> UserSyncSettings:
        return UserSyncSettings(
            user_id=self.user_id,
            toggl=self.toggl,
            exist=self.exist,
            mapping=dict(self.mapping),
            clock=self.clock,
            zone_override=self.zone_override,
            exist_zone=self.exist_zone,
            exist_zone_checked_at=self.exist_zone_checked_at,
        )

    def runner(self) -> SyncRunner:
        return SyncRunner(self.settings(), self.ledger)

    def _remember(self, report: RunReport) -> RunReport:
        if report.zone_checked_at is not None and report.zone is not None:
            self.exist_zone = ZoneInfo(report.zone)
            self.exist_zone_checked_at = report.zone_checked_at
        self.reports.append(report)
        return report

    async def run(self) -> RunReport:
        """One scheduled run, with a runner built afresh from what the caller persisted."""
        return self._remember(await self.runner().run())

    async def zero_out(self) -> RunReport:
        return self._remember(await self.runner().zero_out())

    async def repair(self) -> RunReport:
        return self._remember(await self.runner().repair())

    # --- checking -------------------------------------------------------------------------------

    @property
    def zone(self) -> ZoneInfo:
        if self.zone_override is not None:
            return self.zone_override
        return self.exist_sim.world.user(self.exist_username).zone

    def today(self) -> date:
        return self.clock.now().astimezone(self.zone).date()

    def window(self) -> tuple[date, ...]:
        return window_dates(self.today())

    def truth(self) -> dict[AttributeDate, int]:
        """What Exist must show, by the oracle, for every mapped attribute and window date."""
        entries = self.toggl_sim.world.entries_of(self.toggl_user.id)
        return truth(entries, self.mapping, self.zone, self.clock.now())

    def stored(self, attribute: str) -> dict[date, AttributeValue]:
        return self.exist_sim.stored_values(self.exist_username, attribute)

    def exist_values(self) -> dict[AttributeDate, AttributeValue | None]:
        """Exist's stored value of every mapped attribute on every window date (None: no data)."""
        values: dict[AttributeDate, AttributeValue | None] = {}
        for attribute in sorted(set(self.mapping.values())):
            stored = self.stored(attribute)
            for day in self.window():
                values[(attribute, day)] = stored.get(day)
        return values

    def assert_exist_matches_truth(self) -> None:
        """Exist holds the oracle's value on every mapped window date (no data counts as 0)."""
        expected = self.truth()
        actual = {key: value or 0 for key, value in self.exist_values().items()}
        assert set(actual) == set(expected)
        wrong = {key: (actual[key], want) for key, want in expected.items() if actual[key] != want}
        assert not wrong, f"(attribute, date): (Exist, truth) differ: {wrong}"

    def ledger_rows(self) -> Mapping[AttributeDate, int]:
        assert isinstance(self.ledger, InMemoryLedgerStore)
        return self.ledger.snapshot(self.user_id)

    def owner(self, attribute: str) -> str | None:
        service = self.exist_sim.attribute(self.exist_username, attribute).service
        return service.name if service is not None else None


@dataclass
class AccountFactory:
    """Makes `Account`s on one pair of simulators and closes their clients afterwards."""

    clock: FakeClock
    toggl_sim: TogglSimulator
    toggl_url: str
    exist_sim: ExistSimulator
    exist_api_url: str
    exist_oauth_url: str
    exist_oauth_client: SimClient
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _clients: list[AsyncTogglClient | AsyncExistClient] = field(default_factory=list)

    @property
    def app(self) -> OAuthApp:
        return OAuthApp(
            client_id=self.exist_oauth_client.client_id,
            client_secret=SecretStr(self.exist_oauth_client.client_secret),
        )

    async def make(
        self,
        name: str = "alice",
        *,
        timezone: str = "Europe/Berlin",
        toggl_timezone: str | None = None,
        oauth: bool = False,
        scopes: tuple[str, ...] = BRIDGE_SCOPES,
        ledger: LedgerStore | None = None,
        retry: RetryPolicy | None = None,
    ) -> Account:
        """A user on both simulators; with `oauth`, Exist tokens come from the OAuth flow (so
        they can be refreshed), else a personal token."""
        user_id = next(self._ids)
        toggl_user = self.toggl_sim.add_user(
            api_token=f"toggl-token-{name}-{user_id:04d}-abcdef",
            fullname=name.title(),
            timezone=toggl_timezone or timezone,
            plan="premium",
        )
        workspace_id = toggl_user.default_workspace_id
        names = [*PROJECT_ATTRIBUTES, UNMAPPED_PROJECT]
        projects = {
            project: self.toggl_sim.add_project(workspace_id, project).id for project in names
        }
        self.exist_sim.add_user(name, timezone=timezone)
        client_id = self.exist_oauth_client.client_id
        retry = retry or RetryPolicy.testing()
        toggl = AsyncTogglClient(
            toggl_user.api_token, base_url=self.toggl_url, retry=retry, clock=self.clock
        )
        self._clients.append(toggl)
        if oauth:
            code = self.exist_sim.mint_code(name, client_id, REDIRECT_URI, scopes)
            exist = AsyncExistClient(
                app=self.app,
                base_url=self.exist_api_url,
                oauth_base_url=self.exist_oauth_url,
                retry=retry,
                clock=self.clock,
            )
            await exist.exchange_code(code, REDIRECT_URI)
        else:
            exist = AsyncExistClient(
                self.exist_sim.issue_personal_token(name, client_id),
                base_url=self.exist_api_url,
                oauth_base_url=self.exist_oauth_url,
                retry=retry,
                clock=self.clock,
            )
        self._clients.append(exist)
        return Account(
            user_id=user_id,
            clock=self.clock,
            toggl_sim=self.toggl_sim,
            exist_sim=self.exist_sim,
            toggl_user=toggl_user,
            exist_username=name,
            projects=projects,
            toggl=toggl,
            exist=exist,
            ledger=ledger or InMemoryLedgerStore(),
        )

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


def local(zone: ZoneInfo, day: date, hour: int, minute: int = 0) -> datetime:
    """A local wall-clock time on `day` in `zone`."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)


def days_ago(account: Account, days: int) -> date:
    return account.today() - timedelta(days=days)
