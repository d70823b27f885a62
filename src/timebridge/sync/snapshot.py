"""What the bridge knows of a user's Toggl entries between runs, and how a run brings it up to date.

A run needs every entry that starts in its fetch range (the window plus a day of margin, up to
the end of today). Fetching that range costs one request whose answer holds every entry of two
weeks, about 100 kB, although in steady state (hourly runs) almost nothing changed since the
last run. So the bridge keeps a **snapshot**: the entries of a range as a full fetch returned
them, and the instant that fetch was sent. A later run of the same local day asks Toggl only
for what changed since then (`GET /me/time_entries?since=`, which also returns entries deleted
since, [docs]) and applies it: usually an empty answer, the same single request.

When is the snapshot trusted? Only when it covers the whole range the run needs. The covered
range ends at the end of the local day of the full fetch, so each user's first run of a day
(and any run after a time zone change) fetches the whole range again; entries dated in the
future when the snapshot was made are then seen once their day has come, and whatever a delta
could ever have missed is corrected within a day. Zero Out and Repair fetch in full too.

Everything here is pure: no HTTP, no database, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType

from timebridge.toggl.models import TimeEntry

#: A delta asks for changes since the last fetch was sent minus this much: Toggl's `at` comes
#: from Toggl's clock, not ours, and an edit being saved while our request was answered may
#: carry an `at` from just before it. Entries seen twice are simply applied twice.
SINCE_OVERLAP = timedelta(minutes=5)


@dataclass(frozen=True)
class KeptEntry:
    """One Toggl entry as the bridge keeps it: enough to count and explain a day, nothing
    private (no description, no tags)."""

    id: int
    project_id: int | None
    start: datetime
    #: None while the entry is running.
    stop: datetime | None
    #: Toggl's `at`: when the entry last changed.
    updated_at: datetime | None

    @classmethod
    def from_entry(cls, entry: TimeEntry) -> KeptEntry:
        return cls(
            id=entry.id,
            project_id=entry.project_id,
            start=entry.start,
            # A stopped entry without `stop` (duration only) ends `duration` after its start.
            stop=None if entry.is_running else entry.end(entry.start),
            updated_at=entry.at,
        )


@dataclass(frozen=True)
class EntrySnapshot:
    """Every entry of the user that starts in [covered_from, covered_to), as Toggl had them
    when the fetch sent at `fetched_at` was answered."""

    entries: Mapping[int, KeptEntry]
    covered_from: datetime
    covered_to: datetime
    #: When the request that made these entries current was sent (the bridge's clock).
    fetched_at: datetime

    @classmethod
    def of(
        cls,
        entries: Iterable[KeptEntry],
        covered: tuple[datetime, datetime],
        fetched_at: datetime,
    ) -> EntrySnapshot:
        """A snapshot of a full fetch of `covered`; entries outside it are left out."""
        covered_from, covered_to = covered
        kept = {entry.id: entry for entry in entries if covered_from <= entry.start < covered_to}
        return cls(MappingProxyType(kept), covered_from, covered_to, fetched_at)

    def covers(self, needed: tuple[datetime, datetime], now: datetime) -> bool:
        """Whether a delta since `fetched_at` brings this snapshot to everything in `needed`.

        A snapshot from the future (the clock went back) is not trusted either.
        """
        needed_from, needed_to = needed
        return (
            self.covered_from <= needed_from
            and needed_to <= self.covered_to
            and self.fetched_at <= now
        )

    @property
    def since(self) -> datetime:
        """What a delta fetch asks Toggl for: changes since this instant."""
        return self.fetched_at - SINCE_OVERLAP

    def updated(self, changes: Iterable[TimeEntry], fetched_at: datetime) -> EntrySnapshot:
        """This snapshot with a delta applied: a changed entry replaces its old self, a deleted
        one goes, and one that now starts outside the covered range goes too. If nothing
        differs, the snapshot itself (with its old `fetched_at`: the next delta asks for a
        little more, and nothing needs writing)."""
        entries = dict(self.entries)
        for change in changes:
            kept = KeptEntry.from_entry(change)
            inside = self.covered_from <= kept.start < self.covered_to
            if change.is_deleted or not inside:
                entries.pop(change.id, None)
            else:
                entries[change.id] = kept
        if entries == self.entries:
            return self
        return EntrySnapshot(
            MappingProxyType(entries), self.covered_from, self.covered_to, fetched_at
        )

    def sorted_entries(self) -> list[KeptEntry]:
        """The entries, oldest first (ties by id)."""
        return sorted(self.entries.values(), key=_start_then_id)


def _start_then_id(entry: KeptEntry) -> tuple[datetime, int]:
    return entry.start, entry.id
