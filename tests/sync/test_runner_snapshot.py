"""Runs after the first of the day ask Toggl only for what changed, and Exist still ends up equal
to the oracle: end to end over real HTTP against both simulators."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from tests.sync.runner_harness import Account, AccountFactory, days_ago, local
from timebridge.entries import KeptEntry
from timebridge.records import LoadedState, UserId
from timebridge.sync.ledger import InMemoryLedgerStore
from timebridge.sync.runner import RunOutcome, SyncRunner
from timebridge.toggl import TIME_ENTRIES_CAP

BERLIN = ZoneInfo("Europe/Berlin")
TIME_ENTRIES = "/api/v9/me/time_entries"


def fetches(account: Account) -> list[str]:
    """Each entries request so far: "delta" (`since`) or "range" (`start_date`/`end_date`)."""
    return [
        "delta" if "since=" in request.query else "range"
        for request in account.toggl_sim.requests
        if request.path == TIME_ENTRIES and request.user_id == account.toggl_user.id
    ]


def toggl_entries_in_range(account: Account, start: datetime, end: datetime) -> list[KeptEntry]:
    entries = account.toggl_sim.world.entries_of(account.toggl_user.id)
    kept = [KeptEntry.from_entry(entry) for entry in entries if start <= entry.start < end]
    return sorted(kept, key=lambda entry: (entry.start, entry.id))


async def synced(account: Account) -> None:
    """A run that succeeds with one entries request: a delta, or a range (then, on a user's
    first fetch, also the one question for a timer running since before the range)."""
    before = len(account.toggl_sim.requests)
    report = await account.run()
    assert report.outcome is RunOutcome.SUCCEEDED, report.failures
    asked = [
        "current" if request.path.endswith("/current") else "entries"
        for request in account.toggl_sim.requests[before:]
        if request.user_id == account.toggl_user.id
    ]
    assert asked in (["entries"], ["entries", "current"]), asked
    assert report.toggl_requests == len(asked)
    account.assert_exist_matches_truth()


async def morning_account(accounts: AccountFactory) -> Account:
    alice = await accounts.make()
    alice.clock.set(local(BERLIN, alice.today(), 8))
    await alice.map_projects()
    for days in range(0, 14, 2):
        alice.track("Games", local(BERLIN, days_ago(alice, days), 7), minutes=40 + days)
    return alice


async def test_later_runs_of_the_day_ask_only_for_what_changed(accounts: AccountFactory) -> None:
    alice = await morning_account(accounts)
    await synced(alice)

    for _ in range(3):
        alice.clock.advance(timedelta(hours=1))
        await synced(alice)

    assert fetches(alice) == ["range", "delta", "delta", "delta"]
    assert [report.values_written for report in alice.reports[1:]] == [0, 0, 0]


async def test_an_entry_saved_by_a_clock_minutes_behind_ours_is_still_seen(
    accounts: AccountFactory,
) -> None:
    alice = await morning_account(accounts)
    fetched_at = alice.clock.now()
    await synced(alice)
    # Saved after our fetch was answered, stamped by Toggl's clock three minutes behind ours:
    # a delta asking only for changes since the instant of our fetch would never see it.
    alice.toggl_sim.add_time_entry(
        alice.toggl_user,
        start=local(BERLIN, alice.today(), 6),
        duration=25 * 60,
        project_id=alice.projects["Series"],
        saved_at=fetched_at - timedelta(minutes=3),
    )
    alice.clock.advance(timedelta(hours=1))

    await synced(alice)

    assert fetches(alice) == ["range", "delta"]
    assert alice.stored("tv_min")[alice.today()] == 25


async def test_edits_deletions_and_new_entries_reach_exist_through_a_delta(
    accounts: AccountFactory,
) -> None:
    alice = await morning_account(accounts)
    doomed = alice.track("Series", local(BERLIN, days_ago(alice, 3), 20), minutes=50)
    moved = alice.track("Movies", local(BERLIN, days_ago(alice, 5), 21), minutes=95)
    renamed = alice.track("Deep work", local(BERLIN, days_ago(alice, 1), 9), minutes=30)
    await synced(alice)

    alice.clock.advance(timedelta(hours=1))
    alice.delete(doomed)
    alice.move(moved, local(BERLIN, days_ago(alice, 9), 23))  # across midnight, days earlier
    alice.reassign(renamed, "Chores")  # to an unmapped project
    alice.track("Deep work", local(BERLIN, days_ago(alice, 12), 10), minutes=25)
    alice.track("Games", local(BERLIN, alice.today(), 8, 30), minutes=20)
    await synced(alice)

    assert fetches(alice) == ["range", "delta"]
    assert alice.reports[-1].values_written > 0
    snapshot = (await alice.ledger.load_with_snapshot(alice.user_id)).snapshot
    assert snapshot is not None
    in_range = toggl_entries_in_range(alice, snapshot.covered_from, snapshot.covered_to)
    assert snapshot.sorted_entries() == in_range
    assert {entry.id for entry in in_range} >= {moved.id, renamed.id}
    assert doomed.id not in snapshot.entries


async def test_the_first_run_of_a_new_day_fetches_the_whole_window(
    accounts: AccountFactory,
) -> None:
    alice = await morning_account(accounts)
    alice.clock.set(local(BERLIN, alice.today(), 23, 30))
    await synced(alice)
    alice.clock.advance(timedelta(hours=1))  # 00:30, the next day
    await synced(alice)
    alice.clock.advance(timedelta(hours=1))
    await synced(alice)

    assert fetches(alice) == ["range", "range", "delta"]


async def test_an_entry_dated_later_today_counts_once_its_time_has_come(
    accounts: AccountFactory,
) -> None:
    alice = await morning_account(accounts)
    # Entered in the morning for the afternoon (a planned block), never touched again.
    alice.track("Deep work", local(BERLIN, alice.today(), 14), minutes=60)
    await synced(alice)
    assert alice.stored("productive_min").get(alice.today()) is None

    alice.clock.set(local(BERLIN, alice.today(), 16))
    await synced(alice)

    assert fetches(alice) == ["range", "delta"]
    assert alice.stored("productive_min")[alice.today()] == 60


async def test_a_running_timer_keeps_counting_without_changing_in_toggl(
    accounts: AccountFactory,
) -> None:
    alice = await morning_account(accounts)
    alice.track("Deep work", local(BERLIN, alice.today(), 7, 30))  # running since 07:30
    await synced(alice)
    assert alice.stored("productive_min")[alice.today()] == 30

    alice.clock.advance(timedelta(minutes=45))
    await synced(alice)

    assert fetches(alice) == ["range", "delta"]
    assert alice.stored("productive_min")[alice.today()] == 75


async def test_a_new_time_zone_fetches_the_whole_window(accounts: AccountFactory) -> None:
    alice = await morning_account(accounts)
    await synced(alice)

    alice.zone_override = ZoneInfo("America/Los_Angeles")
    alice.clock.advance(timedelta(minutes=30))
    await synced(alice)

    assert fetches(alice) == ["range", "range"]


async def test_zero_out_and_repair_trust_no_snapshot(accounts: AccountFactory) -> None:
    alice = await morning_account(accounts)
    await synced(alice)

    alice.clock.advance(timedelta(minutes=10))
    assert (await alice.zero_out()).outcome is RunOutcome.SUCCEEDED
    alice.clock.advance(timedelta(minutes=10))
    assert (await alice.repair()).outcome is RunOutcome.SUCCEEDED
    alice.assert_exist_matches_truth()

    assert fetches(alice) == ["range", "range", "range"]


async def test_a_delta_at_toggls_cap_is_not_trusted(accounts: AccountFactory) -> None:
    alice = await morning_account(accounts)
    await synced(alice)

    # More changes than Toggl answers in one go: the delta may be cut short.
    yesterday = local(BERLIN, days_ago(alice, 1), 0)
    for n in range(TIME_ENTRIES_CAP):
        alice.track("Deep work", yesterday + timedelta(seconds=40 * n), seconds=30)
    alice.clock.advance(timedelta(hours=1))
    report = await alice.run()

    assert report.outcome is RunOutcome.SUCCEEDED, report.failures
    assert fetches(alice)[:3] == ["range", "delta", "range"]
    alice.assert_exist_matches_truth()


class CountingLedger(InMemoryLedgerStore):
    def __init__(self) -> None:
        super().__init__()
        self.loads = 0

    async def load_with_snapshot(self, user_id: UserId) -> LoadedState:
        self.loads += 1
        return await super().load_with_snapshot(user_id)


async def test_a_state_loaded_by_the_caller_serves_one_run_only(
    accounts: AccountFactory,
) -> None:
    ledger = CountingLedger()
    alice = await accounts.make(ledger=ledger)
    alice.clock.set(local(BERLIN, alice.today(), 8))
    await alice.map_projects()
    alice.track("Games", local(BERLIN, days_ago(alice, 1), 7), minutes=40)
    await synced(alice)
    assert ledger.loads == 1

    # What the caller read with the run's context: the run does not read it again...
    runner = SyncRunner(
        alice.settings(), ledger, loaded=await ledger.load_with_snapshot(alice.user_id)
    )
    ledger.loads = 0
    alice.clock.advance(timedelta(hours=1))
    assert (await runner.run()).outcome is RunOutcome.SUCCEEDED
    assert ledger.loads == 0
    # ...and a second run of the same runner, or a Zero Out, reads its own.
    assert (await runner.run()).outcome is RunOutcome.SUCCEEDED
    assert ledger.loads == 1
    stale = SyncRunner(
        alice.settings(), ledger, loaded=await ledger.load_with_snapshot(alice.user_id)
    )
    ledger.loads = 0
    assert (await stale.zero_out()).outcome is RunOutcome.SUCCEEDED
    assert ledger.loads == 1
    alice.assert_exist_matches_truth()
