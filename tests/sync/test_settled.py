"""When a run may skip planning, pure: how long a plan holds, and what the inputs' digest sees.
The end-to-end behaviour (over HTTP, judged by the oracle) is in `test_runner_settled`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from timebridge.entries import EntrySnapshot, KeptEntry, encode_entries, micros
from timebridge.records import Settled
from timebridge.sync.planner import local_midnight, plan_holds_until, plan_sync
from timebridge.sync.settled import inputs_digest

BERLIN = ZoneInfo("Europe/Berlin")
MAPPING = {1: "productive_min", 2: "tv_min"}
# A week with Berlin's spring-forward night in it (2026-03-29).
SPAN_START = datetime(2026, 3, 24, tzinfo=UTC)
SPAN = timedelta(days=8)
ZONES = [BERLIN, ZoneInfo("America/St_Johns"), ZoneInfo("Pacific/Kiritimati"), ZoneInfo("UTC")]


def kept(
    entry_id: int, start: datetime, minutes: int | None, project_id: int | None = 1
) -> KeptEntry:
    stop = start + timedelta(minutes=minutes) if minutes is not None else None
    return KeptEntry.of(entry_id, project_id, start, stop, start)


def snapshot_of(*entries: KeptEntry) -> EntrySnapshot:
    covered = (SPAN_START - timedelta(days=20), SPAN_START + SPAN + timedelta(days=2))
    return EntrySnapshot.of(entries, covered, SPAN_START)


_SECONDS = st.integers(min_value=0, max_value=int(SPAN.total_seconds()))


@st.composite
def _entries(draw: st.DrawFn) -> list[KeptEntry]:
    entries = []
    for entry_id in range(draw(st.integers(min_value=0, max_value=10))):
        start = SPAN_START + timedelta(seconds=draw(_SECONDS))
        running = draw(st.booleans()) and draw(st.booleans())
        minutes = None if running else draw(st.integers(min_value=0, max_value=30 * 60))
        project = draw(st.sampled_from([1, 2, 3, None]))
        entries.append(kept(entry_id, start, minutes, project))
    return entries


@settings(max_examples=300, deadline=None)
@given(
    entries=_entries(),
    zone=st.sampled_from(ZONES),
    at_seconds=_SECONDS,
    later_seconds=st.integers(min_value=0, max_value=2 * 86400),
)
def test_a_plan_made_when_nothing_was_left_to_do_holds_until_its_time(
    entries: list[KeptEntry], zone: ZoneInfo, at_seconds: int, later_seconds: int
) -> None:
    at = SPAN_START + timedelta(seconds=at_seconds)
    later = at + timedelta(seconds=later_seconds)
    until = plan_holds_until(entries, MAPPING, zone, at)
    # Exist as the plan at `at` left it: the ledger holds every desired value.
    settled = plan_sync(entries, MAPPING, {}, zone, at).desired
    again = plan_sync(entries, MAPPING, dict(settled), zone, later)
    if until is not None and later < until:
        assert again.is_empty
        assert again.desired == settled
    if until is not None:
        # It holds no further than the next local midnight: then the window moves.
        assert until == local_midnight(at.astimezone(zone).date() + timedelta(days=1), zone)


def test_a_plan_with_a_running_or_later_ending_entry_holds_no_time() -> None:
    at = datetime(2026, 3, 25, 9, tzinfo=BERLIN)
    finished = kept(1, at - timedelta(hours=2), 60)
    running = kept(2, at - timedelta(minutes=30), None)
    planned_for_later = kept(3, at + timedelta(hours=5), 60)

    assert plan_holds_until([finished], MAPPING, BERLIN, at) == datetime(2026, 3, 26, tzinfo=BERLIN)
    assert plan_holds_until([finished, running], MAPPING, BERLIN, at) is None
    assert plan_holds_until([finished, planned_for_later], MAPPING, BERLIN, at) is None
    # Unmapped time does not move any value.
    unmapped = kept(4, at - timedelta(minutes=5), None, project_id=3)
    assert plan_holds_until([finished, unmapped], MAPPING, BERLIN, at) is not None


def test_a_settled_mark_holds_for_the_same_inputs_inside_its_span_only() -> None:
    at = datetime(2026, 3, 25, 9, tzinfo=BERLIN)
    mark = Settled("d1", at, at + timedelta(hours=15))

    assert mark.holds("d1", at)
    assert mark.holds("d1", at + timedelta(hours=14, minutes=59))
    assert not mark.holds("d1", at + timedelta(hours=15))
    assert not mark.holds("d1", at - timedelta(seconds=1))  # the clock went back
    assert not mark.holds("d2", at + timedelta(hours=1))


def test_the_digest_changes_with_every_input_a_plan_reads() -> None:
    day = datetime(2026, 3, 25, 9, tzinfo=BERLIN)
    entries = [kept(1, day, 30), kept(2, day + timedelta(hours=2), 45, project_id=2)]
    snapshot = snapshot_of(*entries)
    ledger = {("productive_min", day.date()): 30, ("tv_min", day.date()): 45}
    base = inputs_digest(snapshot, MAPPING, ledger, BERLIN)

    edited = snapshot_of(entries[0], kept(2, day + timedelta(hours=2), 46, project_id=2))
    wider = EntrySnapshot.of(
        entries, (snapshot.covered_from - timedelta(days=1), snapshot.covered_to), day
    )
    variants = [
        inputs_digest(edited, MAPPING, ledger, BERLIN),
        inputs_digest(wider, MAPPING, ledger, BERLIN),
        inputs_digest(snapshot, {**MAPPING, 3: "neutral_min"}, ledger, BERLIN),
        inputs_digest(snapshot, {1: "tv_min", 2: "productive_min"}, ledger, BERLIN),
        inputs_digest(snapshot, MAPPING, {**ledger, ("tv_min", day.date()): -1}, BERLIN),
        inputs_digest(snapshot, MAPPING, {("productive_min", day.date()): 30}, BERLIN),
        inputs_digest(snapshot, MAPPING, ledger, ZoneInfo("Europe/Paris")),
    ]
    assert base not in variants
    assert len(set(variants)) == len(variants)


def test_the_digest_depends_on_content_not_on_form_or_order() -> None:
    day = datetime(2026, 3, 25, 9, tzinfo=BERLIN)
    entries = [kept(2, day + timedelta(hours=2), 45), kept(1, day, 30)]
    ledger = {("productive_min", day.date()): 75, ("tv_min", day.date()): 0}
    built = snapshot_of(*entries)
    # As the store gives it back: still encoded, fetched at another time.
    stored = EntrySnapshot.from_encoded(
        encode_entries(reversed(entries)), built.covered_from, built.covered_to, day
    )
    reordered = dict(reversed(list(ledger.items())))

    assert inputs_digest(built, MAPPING, ledger, BERLIN) == inputs_digest(
        stored, dict(reversed(list(MAPPING.items()))), reordered, BERLIN
    )


def test_a_stored_snapshot_is_decoded_only_when_its_entries_are_needed() -> None:
    day = datetime(2026, 3, 25, 9, tzinfo=BERLIN)
    entries = [kept(1, day, 30), kept(2, day + timedelta(hours=2), None)]
    built = snapshot_of(*entries)
    stored = EntrySnapshot.from_encoded(
        built.encoded, built.covered_from, built.covered_to, built.fetched_at
    )

    assert "encoded" in repr(stored)
    # An empty delta leaves it as it is, still encoded.
    assert stored.updated([], fetched_at=day) is stored
    assert "encoded" in repr(stored)
    assert stored == built
    assert stored.sorted_entries() == entries
    assert stored.entries[2].stop_us is None
    assert micros(day) == stored.entries[1].start_us
