"""Runs whose inputs match the last settled run's do not plan, and Exist still ends up equal to
the oracle whatever changes after: end to end over real HTTP against both simulators."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from tests.sync.runner_harness import Account, AccountFactory, days_ago, local
from tests.sync.test_runner_snapshot import fetches, morning_account
from timebridge.fakes.exist import ExistSimulator
from timebridge.sync.runner import RunOutcome, RunReport

BERLIN = ZoneInfo("Europe/Berlin")
UPDATE = "/api/2/attributes/update/"


async def run_an_hour_later(account: Account) -> RunReport:
    account.clock.advance(timedelta(hours=1))
    report = await account.run()
    assert report.outcome is RunOutcome.SUCCEEDED, report.failures
    account.assert_exist_matches_truth()
    return report


async def settled_account(accounts: AccountFactory) -> Account:
    """Alice after a first run that wrote her two weeks and found nothing left to do."""
    alice = await morning_account(accounts)
    first = await alice.run()
    assert first.values_written > 0
    assert not first.unchanged
    return alice


async def test_runs_after_a_settled_one_do_not_plan_while_nothing_changes(
    accounts: AccountFactory,
) -> None:
    alice = await settled_account(accounts)

    reports = [await run_an_hour_later(alice) for _ in range(3)]

    assert [report.unchanged for report in reports] == [True, True, True]
    assert [report.values_written for report in reports] == [0, 0, 0]
    assert fetches(alice) == ["range", "delta", "delta", "delta"]


async def test_an_edit_in_toggl_is_planned_and_written_then_settles_again(
    accounts: AccountFactory,
) -> None:
    alice = await settled_account(accounts)
    await run_an_hour_later(alice)
    entry = alice.track("Deep work", local(BERLIN, days_ago(alice, 2), 10), minutes=50)

    changed = await run_an_hour_later(alice)
    alice.move(entry, local(BERLIN, days_ago(alice, 4), 10))
    moved = await run_an_hour_later(alice)
    quiet = await run_an_hour_later(alice)

    assert (changed.unchanged, changed.values_written) == (False, 1)
    assert (moved.unchanged, moved.values_written) == (False, 2)
    assert quiet.unchanged


async def test_a_running_timer_never_settles(accounts: AccountFactory) -> None:
    alice = await settled_account(accounts)
    timer = alice.track("Series", local(BERLIN, alice.today(), 8, 15))  # running since 08:15

    reports = [await run_an_hour_later(alice) for _ in range(3)]

    assert [report.unchanged for report in reports] == [False, False, False]
    assert [report.values_written for report in reports] == [1, 1, 1]
    assert alice.stored("tv_min")[alice.today()] == 3 * 60 - 15
    # Stopped: the next run writes its final minutes, the one after need not plan.
    alice.clock.advance(timedelta(minutes=20))
    alice.toggl_sim.world.stop_time_entry(alice.toggl_user.id, alice.workspace_id, timer.id)
    stopped = await run_an_hour_later(alice)
    assert (stopped.unchanged, alice.stored("tv_min")[alice.today()]) == (False, 3 * 60 + 5)
    assert (await run_an_hour_later(alice)).unchanged


async def test_a_new_mapping_is_planned(accounts: AccountFactory) -> None:
    alice = await morning_account(accounts)
    alice.track("Email", local(BERLIN, days_ago(alice, 1), 9), minutes=35)
    await alice.map_projects("Games")
    await alice.run()
    assert (await run_an_hour_later(alice)).unchanged

    await alice.map_projects("Games", "Email")
    report = await run_an_hour_later(alice)

    assert not report.unchanged
    assert alice.stored("neutral_min")[days_ago(alice, 1)] == 35


async def test_a_ledger_changed_by_another_run_is_planned(accounts: AccountFactory) -> None:
    alice = await settled_account(accounts)
    # Another process's run died after sending a batch: its cell is in flight.
    day = days_ago(alice, 2)
    await alice.ledger.mark_in_flight(alice.user_id, [("gaming_min", day)])

    report = await run_an_hour_later(alice)

    assert not report.unchanged
    assert [(write.attribute, write.date) for write in report.written] == [("gaming_min", day)]
    assert (await run_an_hour_later(alice)).unchanged


async def test_a_run_with_a_refused_write_leaves_no_mark(
    accounts: AccountFactory, exist_sim: ExistSimulator
) -> None:
    alice = await settled_account(accounts)
    alice.track("Games", local(BERLIN, days_ago(alice, 3), 12), minutes=15)
    exist_sim.faults.add(method="POST", path=UPDATE, status=502, times=10)
    alice.clock.advance(timedelta(hours=1))
    failed = await alice.run()
    assert failed.outcome is RunOutcome.FAILED

    exist_sim.faults.clear()
    retried = await run_an_hour_later(alice)

    assert not retried.unchanged
    assert retried.values_written == 1
    assert (await run_an_hour_later(alice)).unchanged


async def test_zero_out_and_repair_always_plan(accounts: AccountFactory) -> None:
    alice = await settled_account(accounts)
    assert (await run_an_hour_later(alice)).unchanged

    zeroed = await alice.zero_out()
    repaired = await alice.repair()

    assert not zeroed.unchanged and zeroed.values_written > 0
    assert not repaired.unchanged
    alice.assert_exist_matches_truth()
    assert (await run_an_hour_later(alice)).unchanged
