"""A plan cuts entries at local midnights exactly as `split_at_midnights` does, in every zone.

The planner asks the zone for the window's midnights once per plan and cuts every entry against
them with integer arithmetic. These tests hold it to the straightforward way (each entry split
on its own by `split_at_midnights`, which asks the zone at every midnight) in every zone of the
tz database, around every kind of offset change, with entries that carry microseconds.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from timebridge.sync.planner import (
    Contribution,
    DayTotal,
    plan_sync,
    split_at_midnights,
    window_dates,
)
from timebridge.toggl.models import TimeEntry

ALL_ZONES = sorted(available_timezones())
MAPPING = {1: "productive_min", 2: "tv_min", 3: "productive_min"}
_ids = itertools.count(1)


def reference_days(
    entries: list[TimeEntry], mapping: dict[int, str], zone: ZoneInfo, now: datetime
) -> dict[tuple[str, date], tuple[int, tuple[Contribution, ...]]]:
    """Seconds and contributions per (attribute, window date), each entry split on its own."""
    window = window_dates(now.astimezone(zone).date())
    seconds: dict[tuple[str, date], int] = defaultdict(int)
    contributions: dict[tuple[str, date], list[Contribution]] = defaultdict(list)
    for entry in entries:
        if entry.is_deleted or entry.project_id is None or entry.project_id not in mapping:
            continue
        attribute = mapping[entry.project_id]
        for day, piece in split_at_midnights(entry.start, min(entry.end(now), now), zone):
            if day in window:
                seconds[(attribute, day)] += piece
                contributions[(attribute, day)].append(
                    Contribution(entry.id, entry.project_id, piece)
                )
    return {
        (attribute, day): (seconds[(attribute, day)], tuple(contributions[(attribute, day)]))
        for attribute in set(mapping.values())
        for day in window
    }


def planned_days(
    days: dict[tuple[str, date], DayTotal],
) -> dict[tuple[str, date], tuple[int, tuple[Contribution, ...]]]:
    return {key: (total.seconds, total.contributions) for key, total in days.items()}


def new_entry(
    start: datetime,
    *,
    project_id: int | None,
    stop: datetime | None = None,
    duration: int = 0,
    running: bool = False,
    deleted: bool = False,
) -> TimeEntry:
    return TimeEntry(
        id=next(_ids),
        workspace_id=1,
        project_id=project_id,
        start=start,
        stop=None if running else stop,
        duration=-int(start.timestamp()) if running else duration,
        server_deleted_at=start if deleted else None,
    )


def dense_entries(now: datetime, seed: int) -> list[TimeEntry]:
    """Entries every few hours from 17 days before `now` to after it, of every kind."""
    rng = random.Random(seed)
    entries = []
    start = now - timedelta(days=17)
    while start < now + timedelta(hours=2):
        kind = rng.random()
        project_id = rng.choice([None, 1, 2, 3, 4])
        if kind < 0.05:
            entries.append(new_entry(start, project_id=project_id, running=True))
        elif kind < 0.5:
            stop = start + timedelta(microseconds=rng.randint(0, 30 * 3600 * 10**6))
            entries.append(new_entry(start, project_id=project_id, stop=stop, duration=7))
        else:
            duration = rng.randint(0, 30 * 3600)
            entries.append(
                new_entry(start, project_id=project_id, duration=duration, deleted=kind > 0.95)
            )
        start += timedelta(microseconds=rng.randint(1, 5 * 3600 * 10**6))
    return entries


def offset_changes(zone: ZoneInfo, year: int) -> list[datetime]:
    """Noon (UTC) of the days of `year` on which the zone's offset changed."""
    noon = datetime(year, 1, 1, 12, tzinfo=UTC)
    changes = []
    previous = noon.astimezone(zone).utcoffset()
    while noon.year == year:
        noon += timedelta(days=1)
        offset = noon.astimezone(zone).utcoffset()
        if offset != previous:
            changes.append(noon)
        previous = offset
    return changes


# --- named zones and changes --------------------------------------------------------------------

ODD_DAYS = [
    ("Europe/Berlin", datetime(2026, 10, 26, 12, 0, tzinfo=UTC)),  # 25-hour day
    ("Europe/Berlin", datetime(2026, 3, 30, 12, 0, tzinfo=UTC)),  # 23-hour day
    ("America/Santiago", datetime(2026, 4, 6, 12, 0, tzinfo=UTC)),  # back at midnight
    ("America/Santiago", datetime(2026, 9, 7, 12, 0, tzinfo=UTC)),  # midnight skipped
    ("America/Havana", datetime(2026, 11, 2, 12, 0, tzinfo=UTC)),  # midnight comes twice
    ("Australia/Lord_Howe", datetime(2026, 4, 6, 3, 0, tzinfo=UTC)),  # half-hour change
    ("Pacific/Chatham", datetime(2026, 9, 28, 3, 0, tzinfo=UTC)),  # +12:45 / +13:45
    ("Pacific/Kiritimati", datetime(2026, 3, 9, 10, 0, tzinfo=UTC)),  # +14
    ("Pacific/Apia", datetime(2012, 1, 5, 12, 0, tzinfo=UTC)),  # 30 December 2011 skipped
    ("Pacific/Kiritimati", datetime(1995, 1, 8, 12, 0, tzinfo=UTC)),  # 31 December 1994 skipped
    ("America/St_Johns", datetime(2010, 11, 8, 12, 0, tzinfo=UTC)),  # back across midnight
    ("America/Toronto", datetime(1919, 4, 2, 12, 0, tzinfo=UTC)),  # 23:30 jumped to 00:30
    ("America/Goose_Bay", datetime(2010, 3, 15, 12, 0, tzinfo=UTC)),  # forward at 00:01
]


@pytest.mark.parametrize(("zone_name", "now"), ODD_DAYS)
def test_entries_split_as_split_at_midnights_splits_them(zone_name: str, now: datetime) -> None:
    zone = ZoneInfo(zone_name)
    for seed in range(3):
        moment = now + timedelta(minutes=seed * 487, microseconds=seed * 123_457)
        entries = dense_entries(moment, seed)
        plan = plan_sync(entries, MAPPING, {}, zone, moment)
        assert planned_days(dict(plan.days)) == reference_days(entries, MAPPING, zone, moment)


def test_a_zone_whose_dates_go_back_is_split_as_split_at_midnights_splits_it() -> None:
    # St. John's set its clocks back from 00:01 to 23:01 the day before: the 7th came twice.
    now = datetime(2010, 11, 8, 12, 0, tzinfo=UTC)
    zone = ZoneInfo("America/St_Johns")
    entries = dense_entries(now, 11)
    plan = plan_sync(entries, MAPPING, {}, zone, now)
    assert planned_days(dict(plan.days)) == reference_days(entries, MAPPING, zone, now)


# --- any zone, near any change ------------------------------------------------------------------


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[TimeEntry], ZoneInfo, datetime]:
    zone = ZoneInfo(draw(st.sampled_from(ALL_ZONES)))
    year = draw(st.integers(1900, 2037))
    changes = offset_changes(zone, year)
    around = draw(st.sampled_from(changes)) if changes else datetime(year, 6, 1, tzinfo=UTC)
    now = around + timedelta(microseconds=draw(st.integers(-86_400 * 10**6, 16 * 86_400 * 10**6)))
    entries = []
    for _ in range(draw(st.integers(0, 30))):
        start = now - timedelta(microseconds=draw(st.integers(-3600 * 10**6, 18 * 86_400 * 10**6)))
        project_id = draw(st.sampled_from([None, 1, 2, 3, 4]))
        kind = draw(st.sampled_from(["running", "stop", "duration"]))
        if kind == "running":
            entries.append(new_entry(start, project_id=project_id, running=True))
        elif kind == "stop":
            length = timedelta(microseconds=draw(st.integers(-(10**6), 40 * 3600 * 10**6)))
            stop = start + length
            duration = draw(st.integers(0, 40 * 3600))
            entries.append(new_entry(start, project_id=project_id, stop=stop, duration=duration))
        else:
            duration = draw(st.integers(0, 40 * 3600))
            deleted = draw(st.integers(0, 9)) == 0
            entries.append(
                new_entry(start, project_id=project_id, duration=duration, deleted=deleted)
            )
    return entries, zone, now


@settings(max_examples=400, deadline=None)
@given(histories())
def test_any_zone_near_any_offset_change_splits_as_split_at_midnights(
    history: tuple[list[TimeEntry], ZoneInfo, datetime],
) -> None:
    entries, zone, now = history
    plan = plan_sync(entries, MAPPING, {}, zone, now)
    assert planned_days(dict(plan.days)) == reference_days(entries, MAPPING, zone, now)
