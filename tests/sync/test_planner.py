"""The planner keeps the bridge's promises: named scenarios, then properties against an oracle."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.sync.oracle import truth
from timebridge.records import IN_FLIGHT, ValueWrite
from timebridge.sync.planner import (
    fetch_range,
    plan_sync,
    round_minutes,
    split_at_midnights,
    window_dates,
)
from timebridge.toggl.models import TimeEntry

BERLIN = ZoneInfo("Europe/Berlin")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
_ids = itertools.count(1)


def entry(
    start: datetime,
    seconds: int | None,
    project_id: int | None = 1,
    *,
    deleted: bool = False,
) -> TimeEntry:
    """A stopped entry of `seconds`, or a running one when `seconds` is None."""
    running = seconds is None
    start = start.astimezone(UTC)  # Toggl sends UTC; arithmetic in UTC keeps DST honest
    return TimeEntry(
        id=next(_ids),
        workspace_id=1,
        project_id=project_id,
        start=start,
        stop=None if running else start + timedelta(seconds=seconds or 0),
        duration=-int(start.timestamp()) if running else seconds or 0,
        server_deleted_at=start + timedelta(days=1) if deleted else None,
    )


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


NOW = berlin(2026, 3, 10, 18, 0)
MAPPING = {1: "productive_min", 2: "productive_min", 3: "tv_min"}


def value(plan_desired: Mapping[tuple[str, date], int], attribute: str, day: date) -> int:
    return plan_desired[(attribute, day)]


def test_an_entry_counts_on_its_day() -> None:
    plan = plan_sync([entry(berlin(2026, 3, 9, 9), 5400)], MAPPING, {}, BERLIN, NOW)
    assert value(plan.desired, "productive_min", date(2026, 3, 9)) == 90
    assert ValueWrite("productive_min", date(2026, 3, 9), 90) in plan.writes


def test_deleted_entry_brings_its_day_down() -> None:
    ledger = {("productive_min", date(2026, 3, 9)): 90}
    plan = plan_sync(
        [entry(berlin(2026, 3, 9, 9), 5400, deleted=True)], MAPPING, ledger, BERLIN, NOW
    )
    assert plan.writes == (ValueWrite("productive_min", date(2026, 3, 9), 0),)


def test_entry_moved_to_another_day_moves_its_minutes() -> None:
    ledger = {("productive_min", date(2026, 3, 9)): 30}
    plan = plan_sync([entry(berlin(2026, 3, 8, 9), 1800)], MAPPING, ledger, BERLIN, NOW)
    assert set(plan.writes) == {
        ValueWrite("productive_min", date(2026, 3, 9), 0),
        ValueWrite("productive_min", date(2026, 3, 8), 30),
    }


def test_entry_moved_to_another_attribute_leaves_the_old_one() -> None:
    ledger = {("productive_min", date(2026, 3, 9)): 30}
    plan = plan_sync([entry(berlin(2026, 3, 9, 9), 1800, 3)], MAPPING, ledger, BERLIN, NOW)
    assert set(plan.writes) == {
        ValueWrite("productive_min", date(2026, 3, 9), 0),
        ValueWrite("tv_min", date(2026, 3, 9), 30),
    }


def test_entry_crossing_midnight_counts_on_both_days() -> None:
    plan = plan_sync([entry(berlin(2026, 3, 8, 23, 0), 7200)], MAPPING, {}, BERLIN, NOW)
    assert value(plan.desired, "productive_min", date(2026, 3, 8)) == 60
    assert value(plan.desired, "productive_min", date(2026, 3, 9)) == 60


def test_dst_fall_back_day_has_25_hours() -> None:
    now = berlin(2026, 10, 26, 12, 0)
    whole_day = entry(berlin(2026, 10, 25, 0, 0), 30 * 3600)
    plan = plan_sync([whole_day], MAPPING, {}, BERLIN, now)
    assert value(plan.desired, "productive_min", date(2026, 10, 25)) == 25 * 60
    assert value(plan.desired, "productive_min", date(2026, 10, 26)) == 5 * 60


def test_dst_spring_forward_day_has_23_hours() -> None:
    now = berlin(2026, 3, 30, 12, 0)
    whole_day = entry(berlin(2026, 3, 29, 0, 0), 24 * 3600)
    plan = plan_sync([whole_day], MAPPING, {}, BERLIN, now)
    assert value(plan.desired, "productive_min", date(2026, 3, 29)) == 23 * 60
    assert value(plan.desired, "productive_min", date(2026, 3, 30)) == 60


def test_running_entry_counts_until_now() -> None:
    plan = plan_sync([entry(NOW - timedelta(minutes=45), None)], MAPPING, {}, BERLIN, NOW)
    assert value(plan.desired, "productive_min", NOW.date()) == 45


def test_time_after_now_does_not_count_yet() -> None:
    plan = plan_sync([entry(NOW - timedelta(minutes=10), 3600)], MAPPING, {}, BERLIN, NOW)
    assert value(plan.desired, "productive_min", NOW.date()) == 10


def test_seconds_are_summed_before_rounding_once() -> None:
    short = [entry(berlin(2026, 3, 9, 9, minute), 20) for minute in range(20)]
    plan = plan_sync(short, MAPPING, {}, BERLIN, NOW)
    assert value(plan.desired, "productive_min", date(2026, 3, 9)) == 7, "400 s, not 20 × 0"


def test_half_a_minute_rounds_up() -> None:
    assert [round_minutes(s) for s in (0, 29, 30, 89, 90)] == [0, 0, 1, 1, 2]


def test_projects_sharing_an_attribute_add_up_and_unmapped_ones_are_ignored() -> None:
    entries = [
        entry(berlin(2026, 3, 9, 9), 600, 1),
        entry(berlin(2026, 3, 9, 10), 900, 2),
        entry(berlin(2026, 3, 9, 11), 3000, 99),
        entry(berlin(2026, 3, 9, 12), 3000, None),
    ]
    plan = plan_sync(entries, MAPPING, {}, BERLIN, NOW)
    assert value(plan.desired, "productive_min", date(2026, 3, 9)) == 25
    breakdown = plan.days[("productive_min", date(2026, 3, 9))]
    assert sorted(c.project_id for c in breakdown.contributions) == [1, 2]


def test_nothing_changed_means_nothing_to_write() -> None:
    entries = [entry(berlin(2026, 3, 9, 9), 600)]
    first = plan_sync(entries, MAPPING, {}, BERLIN, NOW)
    ledger = {(w.attribute, w.date): w.value for w in first.writes}
    assert plan_sync(entries, MAPPING, ledger, BERLIN, NOW).writes == ()


def test_a_cell_in_flight_is_written_again_even_as_zero() -> None:
    ledger = {("productive_min", date(2026, 3, 9)): IN_FLIGHT}
    plan = plan_sync([], MAPPING, ledger, BERLIN, NOW)
    assert plan.writes == (ValueWrite("productive_min", date(2026, 3, 9), 0),)


def test_never_written_zero_is_not_written() -> None:
    plan = plan_sync([], MAPPING, {}, BERLIN, NOW)
    assert plan.writes == ()
    assert len(plan.desired) == 2 * 14


def test_window_is_14_local_days_ending_today() -> None:
    plan = plan_sync([], MAPPING, {}, BERLIN, berlin(2026, 3, 10, 0, 30))
    assert plan.window[0] == date(2026, 2, 25)
    assert plan.window[-1] == date(2026, 3, 10)
    old = entry(berlin(2026, 2, 24, 9), 600)
    assert plan_sync([old], MAPPING, {}, BERLIN, NOW).writes == ()


def test_fetch_range_covers_the_window_plus_a_day_to_the_end_of_today() -> None:
    start, end = fetch_range(NOW, BERLIN)
    assert start == datetime(2026, 2, 24, 0, 0, tzinfo=BERLIN)
    assert end == datetime(2026, 3, 11, 0, 0, tzinfo=BERLIN)
    assert fetch_range(NOW + timedelta(hours=1), BERLIN) == (start, end), "the same all day"


def test_ledger_rows_older_than_21_days_are_purged() -> None:
    ledger = {
        ("productive_min", date(2026, 2, 16)): 5,
        ("productive_min", date(2026, 2, 17)): 5,
    }
    plan = plan_sync([], MAPPING, ledger, BERLIN, NOW)
    assert plan.purge == (("productive_min", date(2026, 2, 16)),)
    assert plan.writes == (), "days outside the window are left alone"


def test_unmapped_attribute_is_brought_down_before_release() -> None:
    ledger = {("tv_min", date(2026, 3, 9)): 40, ("tv_min", date(2026, 3, 8)): 0}
    plan = plan_sync([], {1: "productive_min"}, ledger, BERLIN, NOW)
    assert plan.writes == (ValueWrite("tv_min", date(2026, 3, 9), 0),)
    assert plan.retired_attributes == {"tv_min"}


def test_time_zone_decides_the_date() -> None:
    late = entry(datetime(2026, 3, 9, 6, 30, tzinfo=UTC), 600)
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    assert (
        value(
            plan_sync([late], MAPPING, {}, LOS_ANGELES, now).desired,
            "productive_min",
            date(2026, 3, 8),
        )
        == 10
    )
    assert (
        value(
            plan_sync([late], MAPPING, {}, BERLIN, now).desired, "productive_min", date(2026, 3, 9)
        )
        == 10
    )


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        plan_sync([], MAPPING, {}, BERLIN, datetime(2026, 3, 10))


def test_split_at_midnights_keeps_every_second() -> None:
    pieces = split_at_midnights(berlin(2026, 3, 27, 22), berlin(2026, 3, 30, 2), BERLIN)
    assert [day for day, _ in pieces] == [date(2026, 3, d) for d in (27, 28, 29, 30)]
    assert sum(seconds for _, seconds in pieces) == (2 + 24 + 23 + 2) * 3600


# --- properties against the oracle ------------------------------------------------------------

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/Los_Angeles",
    "Pacific/Kiritimati",  # +14
    "Pacific/Apia",  # +13
    "Pacific/Chatham",  # +12:45 / +13:45 with DST
    "Asia/Kathmandu",  # +5:45
    "Australia/Lord_Howe",  # half-hour DST
    "America/Santiago",  # DST changes at midnight
]
#: "now" instants near the 2026 DST changes and in ordinary weeks.
NOWS = [
    datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
    datetime(2026, 3, 30, 9, 0, tzinfo=UTC),
    datetime(2026, 10, 25, 0, 59, tzinfo=UTC),
    datetime(2026, 10, 26, 23, 0, tzinfo=UTC),
    datetime(2026, 3, 9, 10, 0, tzinfo=UTC),
    datetime(2026, 11, 2, 7, 0, tzinfo=UTC),
    datetime(2026, 4, 5, 13, 0, tzinfo=UTC),
    datetime(2026, 9, 6, 4, 0, tzinfo=UTC),
]


#: What `histories` draws: entries, a mapping, a zone, an instant and a ledger.
History = tuple[list[TimeEntry], dict[int, str], ZoneInfo, datetime, dict[tuple[str, date], int]]


@st.composite
def histories(draw: st.DrawFn) -> History:
    now = draw(st.sampled_from(NOWS)) + timedelta(seconds=draw(st.integers(0, 86_400)))
    zone = ZoneInfo(draw(st.sampled_from(ZONES)))
    attributes = ["productive_min", "neutral_min", "tv_min"]
    mapping = draw(st.dictionaries(st.integers(1, 5), st.sampled_from(attributes), max_size=5))
    entries = []
    for entry_id in range(draw(st.integers(0, 25))):
        start = now - timedelta(seconds=draw(st.integers(-3600, 18 * 86_400)))
        running = draw(st.booleans()) and draw(st.booleans())
        seconds = draw(st.integers(0, 40 * 3600))
        entries.append(
            TimeEntry(
                id=entry_id + 1,
                workspace_id=1,
                project_id=draw(st.one_of(st.none(), st.integers(1, 6))),
                start=start,
                stop=None if running else start + timedelta(seconds=seconds),
                duration=-int(start.timestamp()) if running else seconds,
                server_deleted_at=now if draw(st.integers(0, 5)) == 0 else None,
            )
        )
    today = now.astimezone(zone).date()
    ledger_keys = st.tuples(
        st.sampled_from([*attributes, "gaming_min"]),
        st.builds(lambda n: today - timedelta(days=n), st.integers(0, 25)),
    )
    ledger_values = st.one_of(st.just(IN_FLIGHT), st.integers(0, 2000))
    ledger = draw(st.dictionaries(ledger_keys, ledger_values, max_size=12))
    return entries, mapping, zone, now, ledger


@settings(max_examples=300, deadline=None)
@given(histories())
def test_desired_values_equal_the_oracle(history: History) -> None:
    entries, mapping, zone, now, ledger = history
    plan = plan_sync(entries, mapping, ledger, zone, now)
    expected = truth(entries, mapping, zone, now)
    mapped_desired = {k: v for k, v in plan.desired.items() if k[0] in set(mapping.values())}
    assert mapped_desired == expected


@settings(max_examples=300, deadline=None)
@given(histories())
def test_applying_the_writes_reaches_the_desired_state_and_then_stays(
    history: History,
) -> None:
    entries, mapping, zone, now, ledger = history
    plan = plan_sync(entries, mapping, ledger, zone, now)
    for write in plan.writes:
        assert ledger.get((write.attribute, write.date)) != write.value
    exist = dict(ledger)
    exist.update({(w.attribute, w.date): w.value for w in plan.writes})
    for key, wanted in plan.desired.items():
        assert exist.get(key, 0) == wanted
    again = plan_sync(entries, mapping, exist, zone, now)
    assert again.writes == ()


@settings(max_examples=100, deadline=None)
@given(histories())
def test_every_window_date_is_a_local_date_and_purge_is_old(history: History) -> None:
    entries, mapping, zone, now, ledger = history
    plan = plan_sync(entries, mapping, ledger, zone, now)
    assert plan.window == window_dates(now.astimezone(zone).date())
    cutoff = now.astimezone(zone).date() - timedelta(days=21)
    assert all(day < cutoff for _, day in plan.purge)
    assert {k for k in ledger if k[1] < cutoff} == set(plan.purge)
