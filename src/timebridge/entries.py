"""What the bridge keeps of a user's Toggl entries between runs, and how a run brings it up to date.

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

Everything here is pure: no HTTP, no database, no clock. The engine (`timebridge.sync`) and
the store (`timebridge.store`) both use these records; neither owns them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from hashlib import blake2b
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, NamedTuple

if TYPE_CHECKING:  # the shape only: importing this module loads no HTTP client
    from timebridge.toggl.models import TimeEntry

#: A delta asks for changes since the last fetch was sent minus this much: Toggl's `at` comes
#: from Toggl's clock, not ours, and an edit being saved while our request was answered may
#: carry an `at` from just before it. Entries seen twice are simply applied twice.
SINCE_OVERLAP = timedelta(minutes=5)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class KeptEntry(NamedTuple):
    """One Toggl entry as the bridge keeps it: enough to count and explain a day, nothing
    private (no description, no tags).

    Instants are whole microseconds since the epoch (UTC): exact, what the planner computes
    with, and what the store keeps, so that loading a user's two weeks of entries and planning
    with them creates no `datetime` at all. The properties give them as aware datetimes.
    """

    id: int
    project_id: int | None
    start_us: int
    #: None while the entry is running.
    stop_us: int | None
    #: Toggl's `at`: when the entry last changed.
    updated_us: int | None

    @classmethod
    def of(
        cls,
        entry_id: int,
        project_id: int | None,
        start: datetime,
        stop: datetime | None,
        updated_at: datetime | None,
    ) -> KeptEntry:
        return cls(
            entry_id,
            project_id,
            micros(start),
            micros(stop) if stop is not None else None,
            micros(updated_at) if updated_at is not None else None,
        )

    @classmethod
    def from_entry(cls, entry: TimeEntry) -> KeptEntry:
        return cls.of(
            entry.id,
            entry.project_id,
            entry.start,
            # A stopped entry without `stop` (duration only) ends `duration` after its start.
            None if entry.is_running else entry.end(entry.start),
            entry.at,
        )

    def reaches(self, low: int, high: int) -> bool:
        """Whether the entry belongs in a snapshot covering [low, high) (microseconds): it
        starts there, or started before and was still running at `low` (Toggl's range query
        selects by start, so such an entry is fetched on its own, see the runner)."""
        if self.start_us >= high:
            return False
        return self.start_us >= low or self.stop_us is None or self.stop_us > low

    @property
    def start(self) -> datetime:
        return instant(self.start_us)

    @property
    def stop(self) -> datetime | None:
        return instant(self.stop_us) if self.stop_us is not None else None

    @property
    def updated_at(self) -> datetime | None:
        return instant(self.updated_us) if self.updated_us is not None else None


def micros(moment: datetime) -> int:
    """An aware instant as whole microseconds since the epoch (exact, unlike `timestamp()`)."""
    return (moment - _EPOCH) // _MICROSECOND


def instant(microseconds: int) -> datetime:
    """The aware UTC instant `microseconds` after the epoch."""
    seconds, fraction = divmod(microseconds, 1_000_000)
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.replace(microsecond=fraction) if fraction else moment


class EntrySnapshot:
    """Every entry of the user that starts in [covered_from, covered_to), as Toggl had them
    when the fetch sent at `fetched_at` was answered.

    A snapshot read from the store stays in its stored form (`encoded`) until its entries are
    asked for: a steady-state run that learns nothing changed never decodes them (see
    `timebridge.sync.settled`).
    """

    __slots__ = ("_encoded", "_entries", "covered_from", "covered_to", "fetched_at")

    def __init__(
        self,
        entries: Mapping[int, KeptEntry],
        covered_from: datetime,
        covered_to: datetime,
        fetched_at: datetime,
    ) -> None:
        self._entries: Mapping[int, KeptEntry] | None = entries
        self._encoded: str | None = None
        self.covered_from: Final = covered_from
        self.covered_to: Final = covered_to
        #: When the request that made these entries current was sent (the bridge's clock).
        self.fetched_at: Final = fetched_at

    @classmethod
    def of(
        cls,
        entries: Iterable[KeptEntry],
        covered: tuple[datetime, datetime],
        fetched_at: datetime,
    ) -> EntrySnapshot:
        """A snapshot of a full fetch of `covered`; entries outside it are left out, except one
        that started before it and reaches into it (`KeptEntry.reaches`)."""
        low, high = micros(covered[0]), micros(covered[1])
        kept = {entry.id: entry for entry in entries if entry.reaches(low, high)}
        return cls(MappingProxyType(kept), covered[0], covered[1], fetched_at)

    @classmethod
    def from_encoded(
        cls, encoded: str, covered_from: datetime, covered_to: datetime, fetched_at: datetime
    ) -> EntrySnapshot:
        """A snapshot as the store keeps it (`encoded`); decoded when its entries are needed."""
        snapshot = cls(MappingProxyType({}), covered_from, covered_to, fetched_at)
        snapshot._entries, snapshot._encoded = None, encoded
        return snapshot

    @property
    def entries(self) -> Mapping[int, KeptEntry]:
        """Entry id -> entry."""
        if self._entries is None:
            assert self._encoded is not None
            decoded = {entry.id: entry for entry in decode_entries(self._encoded)}
            self._entries = MappingProxyType(decoded)
        return self._entries

    @property
    def encoded(self) -> str:
        """The entries in their stored form (`encode_entries`)."""
        if self._encoded is None:
            self._encoded = encode_entries(self.entries.values())
        return self._encoded

    @property
    def digest(self) -> str:
        """A fingerprint of what this snapshot says (its range and entries, not `fetched_at`),
        the same in every process."""
        content = f"{micros(self.covered_from)}:{micros(self.covered_to)}:{self.encoded}"
        return blake2b(content.encode(), digest_size=16).hexdigest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EntrySnapshot):
            return NotImplemented
        return (self.covered_from, self.covered_to, self.fetched_at) == (
            other.covered_from,
            other.covered_to,
            other.fetched_at,
        ) and self.entries == other.entries

    __hash__ = None  # type: ignore[assignment]  # mutable cache inside; compared by value

    def __repr__(self) -> str:
        count = len(self._entries) if self._entries is not None else "encoded"
        return (
            f"EntrySnapshot(entries={count}, covered_from={self.covered_from.isoformat()}, "
            f"covered_to={self.covered_to.isoformat()}, fetched_at={self.fetched_at.isoformat()})"
        )

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
        one goes, and one that now lies outside the covered range goes too. If nothing
        differs, the snapshot itself (with its old `fetched_at`: the next delta asks for a
        little more, and nothing needs writing)."""
        low, high = micros(self.covered_from), micros(self.covered_to)
        entries: dict[int, KeptEntry] | None = None
        for change in changes:
            kept = KeptEntry.from_entry(change)
            gone = change.is_deleted or not kept.reaches(low, high)
            if (None if gone else kept) == self.entries.get(change.id):
                continue
            if entries is None:
                entries = dict(self.entries)
            if gone:
                entries.pop(change.id, None)
            else:
                entries[change.id] = kept
        if entries is None:
            return self
        return EntrySnapshot(
            MappingProxyType(entries), self.covered_from, self.covered_to, fetched_at
        )

    def sorted_entries(self) -> list[KeptEntry]:
        """The entries, oldest first (ties by id)."""
        return sorted(self.entries.values(), key=_start_then_id)


def _start_then_id(entry: KeptEntry) -> tuple[int, int]:
    return entry.start_us, entry.id


def encode_entries(entries: Iterable[KeptEntry]) -> str:
    """Entries in the form the store keeps them: a compact JSON array of each entry's fields in
    order, by id. The same entries always give the same text (`EntrySnapshot.digest`)."""
    return json.dumps(sorted(entries, key=_entry_id), separators=(",", ":"))


def decode_entries(text: str) -> list[KeptEntry]:
    """The entries of `encode_entries`' text, by id."""
    make = KeptEntry._make
    return [make(fields) for fields in json.loads(text)]


def _entry_id(entry: KeptEntry) -> int:
    return entry.id
