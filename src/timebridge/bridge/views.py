"""What the pages and the JSON API show of an account: read models, built from the store alone.

`overview` (connections, last run, mapping size) and `status` (per mapped attribute, the window's
days: what Toggl says and what Exist holds as far as Timebridge knows) cost no upstream request:
Toggl's side is planned from the entries kept by the last sync (`timebridge.entries`), with the
same planner a sync uses, so a chart and a sync never disagree; Exist's side is the ledger (what
Timebridge wrote and Exist accepted, or what Exist held when Timebridge began writing). `day`
explains one total: the entries that make it, each with its part on that local date.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from timebridge.clock import Clock
from timebridge.entries import KeptEntry
from timebridge.records import IN_FLIGHT
from timebridge.store import (
    Account,
    ExistConnection,
    ProjectMapping,
    Store,
    SyncRun,
    TogglConnection,
)
from timebridge.sync.planner import SyncPlan, local_midnight, plan_sync, round_minutes


@dataclass(frozen=True)
class Overview:
    """The home page's facts: both connections (no token), the mapping, the last run."""

    account: Account
    #: The default Toggl connection, and every Toggl connection of the account.
    toggl: TogglConnection | None
    toggl_connections: tuple[TogglConnection, ...]
    exist: ExistConnection | None
    mapping: tuple[ProjectMapping, ...]
    last_run: SyncRun | None
    #: The zone the account's days are counted in.
    zone: str


@dataclass(frozen=True)
class EntryPart:
    """One Toggl entry's part of one local date."""

    entry_id: int
    project_id: int
    #: The project's name when the mapping was last saved.
    project_name: str
    #: The entry's start and stop in the account's zone (stop None: still running).
    start: datetime
    stop: datetime | None
    #: Seconds of the entry counted on this date.
    seconds: int
    #: The entry began on an earlier date, or goes on past this one: cut at midnight.
    cut_before: bool
    cut_after: bool


@dataclass(frozen=True)
class DayView:
    """One attribute on one local date."""

    attribute: str
    date: date
    #: What Toggl says: the seconds of the mapped entries, and that total in whole minutes.
    seconds: int
    minutes: int
    #: What Exist holds as far as Timebridge knows (None: unknown, e.g. a write in flight).
    exist: int | None
    entries: tuple[EntryPart, ...] = ()

    @property
    def in_sync(self) -> bool:
        return self.exist == self.minutes or (self.exist is None and self.minutes == 0)


@dataclass(frozen=True)
class AttributeDays:
    """The window's days of one mapped attribute, oldest first."""

    attribute: str
    days: tuple[DayView, ...]


@dataclass(frozen=True)
class StatusView:
    """The status page: every mapped attribute over the window."""

    zone: str
    window: tuple[date, ...]
    #: When Toggl's entries were last fetched (None: never synced yet).
    fetched_at: datetime | None
    attributes: tuple[AttributeDays, ...]


@dataclass(frozen=True)
class ProjectView:
    """One Toggl project of the account's default connection, and the attribute it feeds."""

    workspace_id: int
    workspace_name: str
    project_id: int
    name: str
    client_id: int | None
    client_name: str | None
    #: Toggl's colour, as it sends it ("#0b83d9").
    color: str
    #: False for an archived project (its entries still count).
    active: bool
    #: The Exist attribute the project feeds (None: not mapped).
    attribute: str | None


@dataclass(frozen=True)
class ProjectListing:
    """The projects of every workspace of the default Toggl connection, and what listing them
    cost of the user's Toggl quota."""

    connection_id: str
    projects: tuple[ProjectView, ...]
    toggl_requests: int


class DayNotFound(LookupError):
    """The attribute is not mapped, or the date is outside the window."""


class Views:
    """Read models of one store; every method is scoped to one account."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def overview(self, account_id: int) -> Overview:
        store = self._store
        account = await store.accounts.get(account_id)
        connections = tuple(await store.toggl_connections.list(account_id))
        exist = await store.exist_connections.get(account_id)
        runs = await store.sync_runs.recent(account_id, limit=1)
        return Overview(
            account=account,
            toggl=next((c for c in connections if c.is_default), None),
            toggl_connections=connections,
            exist=exist,
            mapping=tuple(await store.mappings.for_account(account_id)),
            last_run=runs[0] if runs else None,
            zone=_zone_of(account, exist).key,
        )

    async def runs(self, account_id: int, limit: int = 50) -> list[SyncRun]:
        """The account's last runs, newest first."""
        return await self._store.sync_runs.recent(account_id, limit=limit)

    async def status(self, account_id: int) -> StatusView:
        plan, zone, fetched_at, _, ledger = await self._plan(account_id)
        attributes = sorted({attribute for attribute, _ in plan.days})
        return StatusView(
            zone=zone.key,
            window=plan.window,
            fetched_at=fetched_at,
            attributes=tuple(
                AttributeDays(
                    attribute,
                    tuple(
                        _day(plan, ledger, attribute, day, zone, entries={}, names={})
                        for day in plan.window
                    ),
                )
                for attribute in attributes
            ),
        )

    async def day(self, account_id: int, attribute: str, day: date) -> DayView:
        """One attribute's total on one date, with the entries behind it; `DayNotFound` for an
        attribute not mapped or a date outside the window."""
        plan, zone, _, kept, ledger = await self._plan(account_id)
        if (attribute, day) not in plan.days:
            raise DayNotFound(f"{attribute} on {day.isoformat()} is not in the window")
        names = {
            m.project_id: m.project_name for m in await self._store.mappings.for_account(account_id)
        }
        return _day(plan, ledger, attribute, day, zone, entries=kept, names=names)

    async def _plan(
        self, account_id: int
    ) -> tuple[
        SyncPlan, ZoneInfo, datetime | None, dict[int, KeptEntry], Mapping[tuple[str, date], int]
    ]:
        store = self._store
        account = await store.accounts.get(account_id)
        exist = await store.exist_connections.get(account_id)
        zone = _zone_of(account, exist)
        mapping = await store.mappings.project_map(account_id)
        ledger, snapshot, _ = await store.ledger.load_with_snapshot(account_id)
        entries = snapshot.sorted_entries() if snapshot is not None else []
        plan = plan_sync(entries, mapping, ledger, zone, self._clock.now())
        fetched_at = snapshot.fetched_at if snapshot is not None else None
        return plan, zone, fetched_at, {entry.id: entry for entry in entries}, ledger


def _zone_of(account: Account, exist: ExistConnection | None) -> ZoneInfo:
    """The account's own zone, else the one Exist uses for its days, else UTC."""
    for name in (account.time_zone, exist.time_zone if exist is not None else None):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def _day(
    plan: SyncPlan,
    ledger: Mapping[tuple[str, date], int],
    attribute: str,
    day: date,
    zone: ZoneInfo,
    *,
    entries: Mapping[int, KeptEntry],
    names: Mapping[int, str],
) -> DayView:
    total = plan.days[(attribute, day)]
    held = ledger.get((attribute, day))
    begins, ends = (
        local_midnight(day, zone),
        local_midnight(date.fromordinal(day.toordinal() + 1), zone),
    )
    parts = []
    for contribution in total.contributions:
        entry = entries.get(contribution.entry_id)
        if entry is None:
            continue
        stop = entry.stop
        parts.append(
            EntryPart(
                entry_id=entry.id,
                project_id=contribution.project_id,
                project_name=names.get(
                    contribution.project_id, f"project {contribution.project_id}"
                ),
                start=entry.start.astimezone(zone),
                stop=stop.astimezone(zone) if stop is not None else None,
                seconds=contribution.seconds,
                cut_before=entry.start < begins,
                cut_after=stop is None or stop > ends,
            )
        )
    return DayView(
        attribute=attribute,
        date=day,
        seconds=total.seconds,
        minutes=round_minutes(total.seconds),
        exist=None if held == IN_FLIGHT else (held if held is not None else 0),
        entries=tuple(sorted(parts, key=lambda part: (part.start, part.entry_id))),
    )


__all__ = [
    "AttributeDays",
    "DayNotFound",
    "DayView",
    "EntryPart",
    "Overview",
    "ProjectListing",
    "ProjectView",
    "StatusView",
    "Views",
]
