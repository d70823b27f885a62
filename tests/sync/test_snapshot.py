"""The entry snapshot, pure: when a delta may stand in for a full fetch, and what applying one
does. The end-to-end behaviour (over HTTP, judged by the oracle) is in `test_runner_snapshot`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from timebridge.entries import EntrySnapshot, KeptEntry
from timebridge.sync.planner import fetch_range, plan_sync
from timebridge.toggl.models import TimeEntry

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 3, 10, 9, 0, tzinfo=BERLIN)
NEEDED = fetch_range(NOW, BERLIN)
MAPPING = {1: "productive_min", 2: "tv_min"}


def toggl_entry(
    entry_id: int,
    start: datetime,
    duration: int = 1800,
    *,
    project_id: int | None = 1,
    stop: bool = True,
    deleted: bool = False,
    at: datetime = NOW,
) -> TimeEntry:
    return TimeEntry.model_validate(
        {
            "id": entry_id,
            "workspace_id": 5,
            "project_id": project_id,
            "user_id": 9,
            "start": start.isoformat(),
            "stop": (start + timedelta(seconds=duration)).isoformat()
            if stop and duration >= 0
            else None,
            "duration": duration,
            "at": at.isoformat(),
            "server_deleted_at": at.isoformat() if deleted else None,
        }
    )


def snapshot_of(*entries: TimeEntry) -> EntrySnapshot:
    return EntrySnapshot.of([KeptEntry.from_entry(e) for e in entries], NEEDED, NOW)


def test_a_kept_entry_ends_where_its_toggl_entry_does() -> None:
    start = NOW - timedelta(hours=3)
    stopped = KeptEntry.from_entry(toggl_entry(1, start, 600))
    duration_only = KeptEntry.from_entry(toggl_entry(2, start, 600, stop=False))
    running = KeptEntry.from_entry(toggl_entry(3, start, -1))

    assert stopped.stop == duration_only.stop == start + timedelta(minutes=10)
    assert running.stop is None
    assert stopped.updated_at == NOW


def test_a_snapshot_holds_only_the_entries_of_its_range() -> None:
    before, first, last, after = NEEDED[0] - timedelta(seconds=1), NEEDED[0], NEEDED[1], NEEDED[1]
    snapshot = snapshot_of(
        toggl_entry(1, before - timedelta(seconds=1799), duration=1800),  # ends as it begins
        toggl_entry(2, first),
        toggl_entry(3, last - timedelta(seconds=1)),
        toggl_entry(4, after),
        toggl_entry(5, before, duration=1800),  # reaches into the range: its time counts
        toggl_entry(6, before - timedelta(days=20), -1),  # a timer running since
    )
    assert sorted(snapshot.entries) == [2, 3, 5, 6]


def test_a_snapshot_covers_the_rest_of_its_day_and_nothing_after() -> None:
    snapshot = snapshot_of()
    assert snapshot.covers(NEEDED, NOW)
    later_today = NOW.replace(hour=23, minute=59)
    assert snapshot.covers(fetch_range(later_today, BERLIN), later_today)
    tomorrow = later_today + timedelta(minutes=2)
    assert not snapshot.covers(fetch_range(tomorrow, BERLIN), tomorrow)


def test_a_snapshot_does_not_cover_another_zones_window() -> None:
    snapshot = snapshot_of()
    for name in ("Europe/London", "Asia/Tokyo", "America/New_York"):
        zone = ZoneInfo(name)
        assert not snapshot.covers(fetch_range(NOW, zone), NOW), name


def test_a_snapshot_fetched_in_the_future_is_not_trusted() -> None:
    snapshot = snapshot_of()
    earlier = NOW - timedelta(minutes=1)
    assert not snapshot.covers(fetch_range(earlier, BERLIN), earlier)


def test_a_delta_replaces_removes_and_adds_entries() -> None:
    morning = NOW.replace(hour=7)
    kept = snapshot_of(
        toggl_entry(1, morning),
        toggl_entry(2, morning - timedelta(days=1)),
        toggl_entry(3, morning - timedelta(days=2)),
        toggl_entry(4, morning - timedelta(days=3)),
    )
    later = NOW + timedelta(hours=1)
    changes = [
        toggl_entry(1, morning, 3600, at=later),  # longer
        toggl_entry(2, morning, deleted=True, at=later),
        toggl_entry(3, NEEDED[0] - timedelta(days=30), at=later),  # moved out of the range
        toggl_entry(5, morning - timedelta(days=5), project_id=2, at=later),  # new
        toggl_entry(6, NEEDED[1] + timedelta(hours=1), at=later),  # new, tomorrow: not ours yet
        toggl_entry(7, morning, deleted=True, at=later),  # never seen, deleted
    ]

    updated = kept.updated(changes, fetched_at=later)

    assert sorted(updated.entries) == [1, 4, 5]
    assert updated.entries[1].stop == morning + timedelta(hours=1)
    assert updated.entries[5].project_id == 2
    assert updated.fetched_at == later
    assert (updated.covered_from, updated.covered_to) == NEEDED
    assert sorted(kept.entries) == [1, 2, 3, 4], "the old snapshot is unchanged"


def test_a_delta_that_changes_nothing_leaves_the_snapshot_as_it_was() -> None:
    entry = toggl_entry(1, NOW.replace(hour=7))
    kept = snapshot_of(entry)
    later = NOW + timedelta(hours=1)

    assert kept.updated([], fetched_at=later) is kept
    # Seen again within the overlap, unchanged: still nothing to write.
    assert kept.updated([entry], fetched_at=later) is kept
    assert kept.updated([toggl_entry(9, NEEDED[0] - timedelta(days=1))], fetched_at=later) is kept


def test_sorted_entries_are_oldest_first_then_by_id() -> None:
    morning = NOW.replace(hour=7)
    kept = snapshot_of(toggl_entry(3, morning), toggl_entry(1, morning), toggl_entry(2, NEEDED[0]))
    assert [entry.id for entry in kept.sorted_entries()] == [2, 1, 3]


_OFFSETS = st.integers(min_value=0, max_value=int((NEEDED[1] - NEEDED[0]).total_seconds()))


@st.composite
def _entries(draw: st.DrawFn) -> list[TimeEntry]:
    count = draw(st.integers(min_value=0, max_value=12))
    entries = []
    for entry_id in range(1, count + 1):
        start = NEEDED[0] + timedelta(seconds=draw(_OFFSETS))
        duration = draw(st.one_of(st.just(-1), st.integers(min_value=0, max_value=2 * 86400)))
        entries.append(
            toggl_entry(
                entry_id,
                start,
                duration,
                project_id=draw(st.sampled_from([1, 2, 3, None])),
                stop=draw(st.booleans()),
                deleted=draw(st.booleans()),
            )
        )
    return entries


@settings(max_examples=150, deadline=None)
@given(entries=_entries(), hours_later=st.integers(min_value=0, max_value=14))
def test_planning_from_kept_entries_is_planning_from_toggls(
    entries: list[TimeEntry], hours_later: int
) -> None:
    now = NOW + timedelta(hours=hours_later)
    kept = [KeptEntry.from_entry(entry) for entry in entries if not entry.is_deleted]

    from_kept = plan_sync(kept, MAPPING, {}, BERLIN, now)
    from_toggl = plan_sync(entries, MAPPING, {}, BERLIN, now)

    assert from_kept == from_toggl


@given(
    moment=st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.timezones()
    )
)
def test_kept_instants_are_exact_to_the_microsecond(moment: datetime) -> None:
    kept = KeptEntry.of(1, None, moment, moment, moment)
    # As UTC: an instant in a repeated local hour compares unequal across zones in Python.
    assert kept.start == kept.stop == kept.updated_at == moment.astimezone(UTC)
    assert kept.start.utcoffset() == timedelta(0)


def test_an_entry_twice_in_a_delta_is_applied_as_its_last_sighting() -> None:
    morning = NOW.replace(hour=7)
    kept = snapshot_of(toggl_entry(1, morning), toggl_entry(2, morning))
    later = NOW + timedelta(hours=1)
    deleted = toggl_entry(1, morning, deleted=True, at=later)
    longer = toggl_entry(2, morning, 3600, at=later)

    updated = kept.updated([deleted, deleted, longer, longer], fetched_at=later)

    assert sorted(updated.entries) == [2]
    assert updated.entries[2] == KeptEntry.from_entry(longer)
