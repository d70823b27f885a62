"""The sync planner: what Exist should hold, and what to write to get there. Pure.

Given the user's Toggl entries, the project → attribute mapping, the ledger (the value last
written to Exist and accepted, per attribute and date), the user's time zone and "now", it
computes the desired value of every mapped attribute for each date of the 14-day window, the
writes that bring Exist there (only what differs from the ledger), which entries make up each
day, and which ledger rows are old enough to purge. No I/O and no clock of its own: the same
inputs always give the same plan.

Counting rules (DESIGN.md, "The bridge: exact semantics"):
- only entries whose project is mapped count; deleted entries (`server_deleted_at`) count as
  absent; a running entry counts from its start to `now`;
- time after `now` does not count (a future or running entry counts only its elapsed part),
  so a day's total never runs ahead of the clock;
- each entry is split at local midnights of the user's zone (DST-correct: a fall-back day has
  25 hours, a spring-forward day 23). A plan asks the zone for the window's midnights once and
  splits every entry against them with integer arithmetic: the sync worker plans for every user
  on every run, so the per-entry cost is what counts;
- per (attribute, date) the seconds of all pieces are summed, then rounded half up to whole
  minutes once;
- every mapped attribute gets a value for every window date, zero included, so a deleted or
  moved entry brings its old day down. Attributes that were written before but are no longer
  mapped are brought down to zero too, before they are released;
- a ledger cell marked `IN_FLIGHT` (written, answer never recorded) is written again.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from timebridge.entries import KeptEntry, instant, micros
from timebridge.records import IN_FLIGHT, PURGE_AFTER_DAYS, AttributeDate, ValueWrite

if TYPE_CHECKING:  # the shape only: planning imports no HTTP client
    from timebridge.toggl.models import TimeEntry

#: Days in the window: today and the 13 days before, in the user's zone.
WINDOW_DAYS = 14
#: Entries starting up to this long before the window can still reach into it.
FETCH_MARGIN = timedelta(days=1)

_MICROSECOND = timedelta(microseconds=1)
_MICROSECONDS_PER_SECOND = 1_000_000
#: Local dates before the window whose midnights a plan also computes. A fetched entry starts
#: at most `FETCH_MARGIN` before the window: two dates back when the day before the window is
#: short (spring forward). An entry starting earlier still is split by `split_at_midnights`.
_LEAD_DAYS = 2


@dataclass(frozen=True)
class Contribution:
    """The part of one entry that falls on one local date."""

    entry_id: int
    project_id: int
    seconds: int


@dataclass(frozen=True)
class DayTotal:
    """Why an attribute has its value on a date: the entries that make it up."""

    attribute: str
    date: date
    seconds: int
    minutes: int
    contributions: tuple[Contribution, ...] = ()


@dataclass(frozen=True)
class SyncPlan:
    """Everything one run needs to decide; applying it is the runner's job."""

    window: tuple[date, ...]
    desired: Mapping[AttributeDate, int]
    writes: tuple[ValueWrite, ...]
    days: Mapping[AttributeDate, DayTotal]
    purge: tuple[AttributeDate, ...]
    #: Attributes written before but no longer mapped (zeroed by `writes`, then released).
    retired_attributes: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_empty(self) -> bool:
        """Whether there is nothing to do: nothing to write, purge or release."""
        return not (self.writes or self.purge or self.retired_attributes)


def local_today(now: datetime, zone: ZoneInfo) -> date:
    _require_aware(now)
    return now.astimezone(zone).date()


def window_dates(today: date, days: int = WINDOW_DAYS) -> tuple[date, ...]:
    """The window's dates, oldest first."""
    return tuple(today - timedelta(days=offset) for offset in range(days - 1, -1, -1))


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant a local date begins (where midnight is skipped, the first real instant)."""
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def fetch_range(
    now: datetime, zone: ZoneInfo, days: int = WINDOW_DAYS
) -> tuple[datetime, datetime]:
    """The instants whose entries a run must fetch: the window plus one day of margin before,
    up to the end of today.

    Entries are filtered on their start, so an entry that starts the evening before the window
    and runs past midnight is only seen thanks to the margin. (An entry longer than the margin
    that reaches into the window is not seen; a day is a generous bound for tracked time.)
    The range runs to the end of today, not to `now`, so that it is the same for every run of
    the day: an entry later today counts as its time comes (see `timebridge.sync.snapshot`).
    """
    today = local_today(now, zone)
    first_day = window_dates(today, days)[0]
    return local_midnight(first_day, zone) - FETCH_MARGIN, local_midnight(
        today + timedelta(days=1), zone
    )


def plan_holds_until(
    entries: Iterable[KeptEntry], mapping: Mapping[int, str], zone: ZoneInfo, at: datetime
) -> datetime | None:
    """Until when a plan made at `at` stays the plan, none of its other inputs changing.

    Time changes a plan in two ways only: a mapped entry that has not ended by `at` (running,
    or stopping later) adds minutes as the clock moves, and the window moves at local midnight.
    So: None (no time at all) if any mapped entry ends after `at`, else the next local midnight.
    """
    _require_aware(at)
    at_us = micros(at)
    for entry in entries:
        if entry.project_id in mapping and (entry.stop_us is None or entry.stop_us > at_us):
            return None
    return local_midnight(local_today(at, zone) + timedelta(days=1), zone)


def split_at_midnights(start: datetime, end: datetime, zone: ZoneInfo) -> list[tuple[date, int]]:
    """Seconds of [start, end) on each local date it touches, in order."""
    if end <= start:
        return []
    pieces: list[tuple[date, int]] = []
    day = start.astimezone(zone).date()
    cursor = start
    while cursor < end:
        next_midnight = local_midnight(day + timedelta(days=1), zone)
        piece_end = min(end, next_midnight)
        seconds = int((piece_end - cursor).total_seconds())
        if seconds > 0:
            pieces.append((day, seconds))
        cursor = piece_end
        day += timedelta(days=1)
    return pieces


def round_minutes(seconds: int) -> int:
    """Whole minutes, half up (90 s -> 2 min, 89 s -> 1 min)."""
    return (seconds + 30) // 60


def plan_sync(
    entries: Iterable[KeptEntry | TimeEntry],
    mapping: Mapping[int, str],
    ledger: Mapping[AttributeDate, int],
    zone: ZoneInfo,
    now: datetime,
    *,
    window_days: int = WINDOW_DAYS,
    purge_after_days: int = PURGE_AFTER_DAYS,
) -> SyncPlan:
    """The plan for one user at `now`. See the module docstring for the rules."""
    _require_aware(now)
    today = local_today(now, zone)
    window = window_dates(today, window_days)
    seconds, contributions = _count_window(entries, mapping, zone, now, window)

    mapped = set(mapping.values())
    retired = {attribute for (attribute, day), value in ledger.items() if attribute not in mapped}
    desired: dict[AttributeDate, int] = {}
    days: dict[AttributeDate, DayTotal] = {}
    for attribute in sorted(mapped):
        for day in window:
            key = (attribute, day)
            total = seconds.get(key, 0)
            desired[key] = round_minutes(total)
            days[key] = DayTotal(
                attribute, day, total, desired[key], tuple(contributions.get(key, ()))
            )
    for attribute in sorted(retired):
        for day in window:
            if ledger.get((attribute, day), 0) != 0:
                desired[(attribute, day)] = 0

    writes = tuple(
        ValueWrite(attribute, day, value)
        for (attribute, day), value in sorted(desired.items())
        if _needs_write(ledger.get((attribute, day)), value)
    )
    cutoff = today - timedelta(days=purge_after_days)
    purge = tuple(sorted(key for key in ledger if key[1] < cutoff))
    return SyncPlan(
        window=window,
        desired=desired,
        writes=writes,
        days=days,
        purge=purge,
        retired_attributes=frozenset(retired),
    )


def _count_window(
    entries: Iterable[KeptEntry | TimeEntry],
    mapping: Mapping[int, str],
    zone: ZoneInfo,
    now: datetime,
    window: Sequence[date],
) -> tuple[dict[AttributeDate, int], dict[AttributeDate, list[Contribution]]]:
    """Seconds and contributions of the mapped entries per (attribute, window date).

    The same pieces as `split_at_midnights` gives, without asking the zone per entry: the
    instants the local dates begin are computed once (as integer microseconds), and each entry
    is cut against them by bisection. Entries starting more than `_LEAD_DAYS` dates before the
    window, and zones whose dates do not simply follow their midnights in this span, take
    `split_at_midnights` itself.
    """
    seconds: dict[AttributeDate, int] = defaultdict(int)
    contributions: dict[AttributeDate, list[Contribution]] = defaultdict(list)
    first = window[0] - timedelta(days=_LEAD_DAYS)
    dates = [first + timedelta(days=offset) for offset in range(len(window) + _LEAD_DAYS + 1)]
    starts = _day_starts(first, len(dates), zone)
    in_window = set(window)
    now_us = micros(now)
    keys: dict[str, list[AttributeDate]] = {}
    for entry in entries:
        project_id = entry.project_id
        if project_id is None:
            continue
        attribute = mapping.get(project_id)
        if attribute is None:
            continue
        if not isinstance(entry, KeptEntry):
            if entry.is_deleted:
                continue
            entry = KeptEntry.from_entry(entry)
        begin, stop = entry.start_us, entry.stop_us
        end = now_us if stop is None or stop > now_us else stop
        if end <= begin:
            continue
        if starts is None or begin < starts[0]:
            for day, piece in split_at_midnights(entry.start, instant(end), zone):
                if day in in_window:
                    key = (attribute, day)
                    seconds[key] += piece
                    contributions[key].append(Contribution(entry.id, project_id, piece))
            continue
        # The date the entry starts on; a piece before the window is skipped whole. As `end`
        # is at most `now`, the entry ends before the last start (the day after today).
        index = bisect_right(starts, begin) - 1
        cursor = begin
        if index < _LEAD_DAYS:
            if starts[_LEAD_DAYS] >= end:
                continue
            index, cursor = _LEAD_DAYS, starts[_LEAD_DAYS]
        attribute_keys = keys.get(attribute)
        if attribute_keys is None:
            attribute_keys = keys[attribute] = [(attribute, day) for day in dates]
        while True:
            boundary = starts[index + 1]
            piece_end = end if end < boundary else boundary
            # Whole seconds per piece, truncated, as `split_at_midnights` counts them.
            piece = (piece_end - cursor) // _MICROSECONDS_PER_SECOND
            if piece > 0:
                key = attribute_keys[index]
                seconds[key] += piece
                contributions[key].append(Contribution(entry.id, project_id, piece))
            if boundary >= end:
                break
            cursor = boundary
            index += 1
    return seconds, contributions


@lru_cache(maxsize=512)
def _day_starts(first: date, count: int, zone: ZoneInfo) -> tuple[int, ...] | None:
    """When each of `count` local dates from `first` begins (`local_midnight`), in microseconds
    since the epoch; None unless every instant from the first to the last is on the date
    bisecting these starts gives. (Cached: a worker plans many users of the same zones a day.)

    That holds when each midnight is the first instant of its date and dates never go back. A
    midnight swallowed by a gap that does not begin at it, or a clock set back across midnight
    (as some zones once did at 00:01), breaks it: then the caller asks the zone entry by entry.
    """
    starts: list[int] = []
    for day in (first + timedelta(days=offset) for offset in range(count)):
        midnight = local_midnight(day, zone)
        # Where midnight comes twice, the second one: the date must not be earlier before it.
        second = datetime.combine(day, time(0, fold=1), tzinfo=zone).astimezone(UTC)
        if (
            midnight.astimezone(zone).date() < day
            or (midnight - _MICROSECOND).astimezone(zone).date() >= day
            or (second > midnight and (second - _MICROSECOND).astimezone(zone).date() < day)
        ):
            return None
        starts.append(micros(midnight))
    if any(later < earlier for earlier, later in pairwise(starts)):
        return None
    return tuple(starts)


def _needs_write(last_written: int | None, value: int) -> bool:
    # A zero never written is not written: Exist shows no data, which reads the same.
    if last_written is None:
        return value != 0
    return last_written == IN_FLIGHT or last_written != value


def _require_aware(instant: datetime) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
