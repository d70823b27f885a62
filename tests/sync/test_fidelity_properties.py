"""The bridge's promises, as properties over generated user histories, end to end.

Each example is a `bench.histories.History`: days of a user's Toggl activity (entries created,
edited, moved across days, reassigned, deleted; timers started and stopped; projects remapped;
the Exist time zone changed; the clock moved across midnights and the DST changes of Berlin, Los
Angeles, Lord Howe and Santiago, and through UTC+13/+14 days) interleaved with sync runs, and, in
the fault properties, 5xx, 429, 402, dropped connections and timeouts on both simulators, Exist
refusing items, another service taking an attribute over, and the run killed between Exist's
answer and the ledger commit.

Every history runs through `SyncRunner` over real HTTP against both simulators (two loopback
servers started once per module, switched to fresh simulators for every example) and is judged
by the independent oracle (`tests.sync.oracle.truth`), never by the planner.

The fault properties also carry, as explicit examples, the minimal histories of the runner bugs
they found (see "minimal histories" below): each fails at once, legibly, until the runner is
fixed, and guards against the bug coming back afterwards.

Cost: about 200 examples in all by default, about ten seconds when they pass.
`TIMEBRIDGE_FIDELITY_EXAMPLES=2000` raises the total (shared out in the same proportions) for a
deeper search; examples are derandomized unless `TIMEBRIDGE_FIDELITY_SEED` picks another search,
so a CI result never flickers.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

import pytest
from bench.histories import (
    DEFAULT_MAPPING,
    Advance,
    ArmCrash,
    ChangeZone,
    ClearFaults,
    Create,
    Delete,
    EditDuration,
    Engine,
    FaultRule,
    FinalHook,
    History,
    InjectFaults,
    Op,
    Outcome,
    Remap,
    RunHook,
    RunStats,
    Stage,
    Sync,
    TimebridgeEngine,
    World,
    generate_history,
    replay,
)
from hypothesis import HealthCheck, example, given, seed, settings
from hypothesis import strategies as st

from timebridge.sync.runner import RunOutcome

T = TypeVar("T")

#: How the default total of examples is shared between the properties.
SHARES = {"faults": 80, "clean": 60, "steady": 20, "crash": 40}
TOTAL = int(os.environ.get("TIMEBRIDGE_FIDELITY_EXAMPLES", sum(SHARES.values())))
SEARCH = os.environ.get("TIMEBRIDGE_FIDELITY_SEED")

settings.register_profile(
    "timebridge-fidelity",
    deadline=None,
    derandomize=SEARCH is None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FIDELITY = settings.get_profile("timebridge-fidelity")
#: The Exist zone is read at most daily (DESIGN.md, "Window").
ZONE_REFRESH = timedelta(days=1)


def examples(share: str) -> settings:
    count = max(1, round(TOTAL * SHARES[share] / sum(SHARES.values())))
    return settings(FIDELITY, max_examples=count)


def searched(test: Callable[..., None]) -> Callable[..., None]:
    """Apply `TIMEBRIDGE_FIDELITY_SEED`, if set, to a property."""
    return seed(int(SEARCH))(test) if SEARCH is not None else test


class DrawSource:
    """`bench.histories.Source` over Hypothesis draws, so failing histories shrink."""

    def __init__(self, draw: st.DrawFn) -> None:
        self._draw = draw

    def integer(self, low: int, high: int) -> int:
        return self._draw(st.integers(low, high))

    def choice(self, options: Sequence[T]) -> T:
        return self._draw(st.sampled_from(options))

    def chance(self, probability: float) -> bool:
        # Shrinks towards False (0): the simpler history does less.
        return self._draw(st.integers(0, 99)) >= 100 - round(probability * 100)


@st.composite
def user_histories(
    draw: st.DrawFn, *, faults: bool, fault_weights: dict[str, int] | None = None
) -> History:
    source = DrawSource(draw)
    if fault_weights is None:
        return generate_history(source, faults=faults)
    return generate_history(source, faults=faults, fault_weights=fault_weights)


@pytest.fixture(scope="module")
def stage() -> Iterator[Stage]:
    with Stage() as running:
        yield running


def play(
    history: History,
    stage: Stage,
    *,
    after_run: RunHook | None = None,
    after_final: FinalHook | None = None,
) -> Outcome:
    return asyncio.run(
        replay(history, stage, TimebridgeEngine, after_run=after_run, after_final=after_final)
    )


def timebridge(engine: Engine) -> TimebridgeEngine:
    assert isinstance(engine, TimebridgeEngine)
    return engine


def assert_exact(outcome: Outcome, history: History) -> None:
    wrong = [(a, day.isoformat(), held, want) for a, day, held, want in outcome.wrong]
    assert outcome.exact, (
        f"Exist differs from the truth at (attribute, date, Exist, truth): {wrong}\n"
        f"{history.describe()}"
    )


# --- minimal histories of the bugs these properties found (explicit examples below) -----------

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # 13:00 in Berlin
YESTERDAY_9AM = datetime(2026, 3, 9, 8, 0, tzinfo=UTC)
DEEP_WORK = 3  # mapped to productive_min
DEEP_WORK_UNMAPPED = tuple(
    None if index == DEEP_WORK else attribute for index, attribute in enumerate(DEFAULT_MAPPING)
)


def minimal(*ops: Op, zone: str = "Europe/Berlin", toggl_zone: str | None = None) -> History:
    return History(
        start=T0, zone=zone, toggl_zone=toggl_zone or zone, mapping=DEFAULT_MAPPING, ops=ops
    )


#: Exist accepted a value, the run died before the ledger commit, then the entry went: the
#: desired 0 has no ledger row, and a never-written zero is not written. Exist keeps 30.
CRASH_THEN_DELETE = minimal(
    Create(DEEP_WORK, YESTERDAY_9AM, 30 * 60),
    ArmCrash(1),
    Sync(),
    Delete(0),
    Sync(),
)
#: Same crash, but the ledger had the old value: it still says 30 when Exist holds 45, so the
#: entry changed back to 30 is "already written". Exist keeps 45.
CRASH_THEN_CHANGE_BACK = minimal(
    Create(DEEP_WORK, YESTERDAY_9AM, 30 * 60),
    Sync(),
    EditDuration(0, 45 * 60),
    ArmCrash(1),
    Sync(),
    EditDuration(0, 30 * 60),
    Sync(),
)
#: A run dates a day in Toggl's zone (Exist's profile unreadable): 11:00 UTC is 03-11 in
#: Kiritimati, 03-10 in Los Angeles. Unmapped, productive_min is released as soon as the LA
#: window (up to 03-10) is zero, and all its ledger rows are forgotten, 03-11 included. A day
#: later 03-11 is in the window, the attribute is mapped again, its desired 0 has no ledger row:
#: Exist keeps 30.
RELEASE_FORGETS_A_DAY_OUTSIDE_THE_WINDOW = minimal(
    Create(DEEP_WORK, datetime(2026, 3, 10, 11, 0, tzinfo=UTC), 30 * 60),
    InjectFaults((FaultRule("exist", "5xx", "/api/2/accounts/profile/"),)),
    Sync(),
    ClearFaults(),
    Remap(DEEP_WORK_UNMAPPED),
    Sync(),
    Advance(24 * 3600),
    Remap(DEFAULT_MAPPING),
    Sync(),
    zone="America/Los_Angeles",
    toggl_zone="Pacific/Kiritimati",
)


# --- the properties ---------------------------------------------------------------------------


@searched
@examples("faults")
@given(history=user_histories(faults=True))
@example(history=CRASH_THEN_DELETE)
@example(history=CRASH_THEN_CHANGE_BACK)
@example(history=RELEASE_FORGETS_A_DAY_OUTSIDE_THE_WINDOW)
def test_after_any_history_and_its_faults_one_clean_run_makes_exist_equal_the_truth(
    stage: Stage, history: History
) -> None:
    outcome = play(history, stage)

    assert outcome.final_outcome == RunOutcome.SUCCEEDED.value, history.describe()
    assert outcome.final_zone == history_final_zone(history), history.describe()
    assert_exact(outcome, history)


@searched
@examples("crash")
@given(history=user_histories(faults=True, fault_weights={"crash": 12}))
@example(history=CRASH_THEN_DELETE)
@example(history=CRASH_THEN_CHANGE_BACK)
def test_a_run_killed_between_exists_answer_and_the_ledger_commit_never_leaves_exist_wrong(
    stage: Stage, history: History
) -> None:
    outcome = play(history, stage)

    assert outcome.final_outcome == RunOutcome.SUCCEEDED.value, history.describe()
    assert_exact(outcome, history)


@searched
@examples("clean")
@given(history=user_histories(faults=False))
def test_without_faults_every_run_splits_days_at_local_midnights_in_the_users_zone(
    stage: Stage, history: History
) -> None:
    """Every run, not just the last, leaves Exist equal to the truth: entries split at local
    midnights (DST days of 23 and 25 hours, zones 13 and 14 hours ahead), seconds summed per
    day and rounded once, in the Exist zone read at most once a day."""
    seen: list[tuple[str | None, datetime | None]] = [(None, None)]

    async def check(world: World, engine: Engine, stats: RunStats) -> None:
        runner = timebridge(engine)
        cached_zone, checked_at = seen[-1]
        zone_now = runner.exist_zone.key if runner.exist_zone is not None else None
        seen.append((zone_now, runner.exist_zone_checked_at))
        if stats.outcome == RunOutcome.QUOTA_EXCEEDED.value:
            return  # more than 30 runs in an hour: Toggl's hourly quota, honestly reported
        assert stats.outcome == RunOutcome.SUCCEEDED.value, history.describe()
        now = world.clock.now()
        fresh = checked_at is not None and now - checked_at < ZONE_REFRESH
        expected_zone = cached_zone if fresh and cached_zone else world.exist_zone.key
        assert stats.zone == expected_zone, history.describe()
        truth = world.truth(engine.mapping, ZoneInfo(expected_zone))
        held = world.exist_values(sorted(truth))
        wrong = {key: (held[key], want) for key, want in truth.items() if held[key] != want}
        assert not wrong, f"after the run at {now}: {wrong}\n{history.describe()}"

    outcome = play(history, stage, after_run=check)

    assert_exact(outcome, history)


@searched
@examples("steady")
@given(history=user_histories(faults=False))
def test_a_run_right_after_a_clean_run_writes_nothing_and_costs_one_toggl_request(
    stage: Stage, history: History
) -> None:
    async def again(world: World, engine: Engine) -> None:
        stats = await engine.sync(patient=True)
        report = timebridge(engine).last_report
        assert report.written == (), history.describe()
        assert (stats.toggl_requests, stats.exist_requests) == (1, 0), history.describe()

    play(history, stage, after_final=again)


def history_final_zone(history: History) -> str:
    """The Exist zone at the end of a history (the generator lets a day pass after a change,
    so the runner has read it by then)."""
    zones = [op.zone for op in history.ops if isinstance(op, ChangeZone)]
    return zones[-1] if zones else history.zone
