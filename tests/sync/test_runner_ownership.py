"""Where Timebridge starts writing an attribute, and where it loses one, Exist ends equal to Toggl.

Over real HTTP against both simulators; every scenario ends comparing what the Exist simulator
stores with the independent oracle.
"""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.sync.runner_harness import AccountFactory, days_ago, local
from timebridge.fakes.exist import ExistSimulator
from timebridge.fakes.toggl import TogglSimulator
from timebridge.sync.runner import RunOutcome

BERLIN = ZoneInfo("Europe/Berlin")
UPDATE = "attributes/update/"
OWNED = "attributes/owned/"
ACQUIRE = "attributes/acquire/"
#: Exist documents `missing_field` and `validation` for writes; the rest are plausible guesses
#: and one code nobody has seen: the runner must not depend on which it gets.
ITEM_CODES = ["not_found", "unauthorised", "forbidden", "validation", "a_code_nobody_knows"]


# --- adopting what Exist holds --------------------------------------------------------------


async def test_a_takeover_brings_every_window_day_to_toggls_truth(
    accounts: AccountFactory, exist_sim: ExistSimulator
) -> None:
    alice = await accounts.make()
    exist_sim.add_service("rescuetime", "RescueTime")
    exist_sim.add_attribute(alice.exist_username, template="productive_min", owner="rescuetime")
    # RescueTime's numbers, on days Toggl has nothing (today) and on a day it has something.
    exist_sim.set_value(alice.exist_username, "productive_min", alice.today(), 180)
    exist_sim.set_value(alice.exist_username, "productive_min", days_ago(alice, 3), 95)
    exist_sim.set_value(alice.exist_username, "productive_min", days_ago(alice, 5), 40)
    alice.track("Deep work", local(BERLIN, days_ago(alice, 3), 9), minutes=30)
    await alice.map_projects("Deep work")

    report = await alice.run()

    assert report.outcome is RunOutcome.SUCCEEDED
    alice.assert_exist_matches_truth()
    assert alice.stored("productive_min")[alice.today()] == 0, "RescueTime's 180 is gone"
    written = {(w.attribute, w.date): w.value for w in report.written}
    assert written == {
        ("productive_min", alice.today()): 0,
        ("productive_min", days_ago(alice, 3)): 30,
        ("productive_min", days_ago(alice, 5)): 0,
    }, "only the days that differ are written"


async def test_a_fresh_store_against_an_exist_that_holds_values_corrects_them(
    accounts: AccountFactory, exist_sim: ExistSimulator
) -> None:
    alice = await accounts.make()
    await alice.map_projects()
    alice.track("Series", local(BERLIN, days_ago(alice, 1), 20), minutes=42)
    await alice.run()
    # Another install of Timebridge (or a reinstall) left values the new ledger knows nothing of.
    exist_sim.set_value(alice.exist_username, "tv_min", days_ago(alice, 4), 77)
    exist_sim.set_value(alice.exist_username, "gaming_min", alice.today(), 12)
    await alice.ledger.clear(alice.user_id)

    report = await alice.run()

    assert report.outcome is RunOutcome.SUCCEEDED
    alice.assert_exist_matches_truth()
    assert {(w.attribute, w.date) for w in report.written} == {
        ("tv_min", days_ago(alice, 4)),
        ("gaming_min", alice.today()),
    }


@pytest.mark.parametrize("empty_days", ["null", "zero"])
async def test_adopting_costs_one_read_once_whether_exist_says_null_or_zero(
    accounts: AccountFactory, exist_sim: ExistSimulator, empty_days: str
) -> None:
    exist_sim.empty_days = empty_days  # type: ignore[assignment]
    alice = await accounts.make()
    await alice.map_projects()
    alice.track("Games", local(BERLIN, days_ago(alice, 2), 19), minutes=33)

    first = await alice.run()
    assert len(exist_sim.requests_to("attributes/with-values/")) == 1
    assert first.values_written == 1, "no data is no data: no zero is written over it"
    exist_sim.clear_requests()
    alice.clock.advance(timedelta(hours=1))
    steady = await alice.run()

    assert steady.exist_requests == 0
    alice.assert_exist_matches_truth()


# --- refusals, whatever Exist calls them ----------------------------------------------------


@pytest.mark.parametrize("code", ITEM_CODES)
async def test_a_refusal_of_an_attribute_still_ours_stands_and_costs_one_check(
    accounts: AccountFactory, exist_sim: ExistSimulator, code: str
) -> None:
    alice = await accounts.make()
    await alice.map_projects()
    alice.track("Deep work", local(BERLIN, days_ago(alice, 1), 9), minutes=30)
    alice.track("Series", local(BERLIN, days_ago(alice, 1), 20), minutes=45)
    exist_sim.fail_items(alice.exist_username, "tv_min", code)
    exist_sim.clear_requests()

    for _ in range(2):  # every run ends, and each costs the same: never an endless loop
        report = await alice.run()
        assert report.outcome is RunOutcome.PARTIAL
        assert [(f.attribute, f.error_code) for f in report.failures] == [("tv_min", code)]
        assert len(exist_sim.requests_to(OWNED)) == 1
        assert exist_sim.requests_to(ACQUIRE) == []
        exist_sim.clear_requests()
        alice.clock.advance(timedelta(hours=1))

    assert alice.stored("productive_min")[days_ago(alice, 1)] == 30
    exist_sim.clear_item_failures()
    assert (await alice.run()).outcome is RunOutcome.SUCCEEDED
    alice.assert_exist_matches_truth()


@pytest.mark.parametrize("code", ITEM_CODES)
async def test_an_attribute_taken_by_another_service_is_taken_back_and_refilled(
    accounts: AccountFactory, exist_sim: ExistSimulator, code: str
) -> None:
    alice = await accounts.make()
    await alice.map_projects()
    alice.track("Deep work", local(BERLIN, days_ago(alice, 1), 9), minutes=30)
    await alice.run()
    # RescueTime took the attribute and wrote over our day; Exist refuses our next write with
    # some code.
    exist_sim.set_owner(alice.exist_username, "productive_min", "rescuetime")
    exist_sim.set_value(alice.exist_username, "productive_min", days_ago(alice, 1), 200)
    exist_sim.set_value(alice.exist_username, "productive_min", days_ago(alice, 6), 15)
    exist_sim.fail_items(alice.exist_username, "productive_min", code, times=1)
    alice.track("Deep work", local(BERLIN, days_ago(alice, 2), 9), minutes=50)
    exist_sim.clear_requests()

    report = await alice.run()

    assert report.outcome is RunOutcome.SUCCEEDED, report.failures
    assert len(exist_sim.requests_to(ACQUIRE)) == 1
    assert alice.owner("productive_min") == "timebridge"
    alice.assert_exist_matches_truth()


async def test_an_attribute_that_cannot_be_taken_back_names_who_holds_it(
    accounts: AccountFactory, exist_sim: ExistSimulator
) -> None:
    alice = await accounts.make()
    await alice.map_projects()
    alice.track("Deep work", local(BERLIN, days_ago(alice, 1), 9), minutes=30)
    exist_sim.add_service("rescuetime", "RescueTime")
    exist_sim.set_owner(alice.exist_username, "productive_min", "rescuetime")
    exist_sim.fail_items(alice.exist_username, "productive_min", "forbidden", endpoints=["acquire"])
    exist_sim.clear_requests()

    report = await alice.run()

    assert report.outcome is RunOutcome.PARTIAL
    assert len(exist_sim.requests_to(ACQUIRE)) == 1, "one attempt per run"
    [failure] = report.failures
    assert failure.attribute == "productive_min"
    assert "RescueTime" in failure.message


# --- a timer running for longer than the fetch range --------------------------------------


async def test_a_timer_running_for_weeks_counts_on_every_window_day(
    accounts: AccountFactory, toggl_sim: TogglSimulator
) -> None:
    alice = await accounts.make()
    await alice.map_projects()
    timer = alice.track("Deep work", local(BERLIN, days_ago(alice, 20), 9))  # running for weeks

    report = await alice.run()

    assert report.outcome is RunOutcome.SUCCEEDED
    alice.assert_exist_matches_truth()
    assert alice.stored("productive_min")[days_ago(alice, 13)] == 24 * 60
    # Kept in the snapshot: later runs of the day count it without asking again.
    alice.clock.advance(timedelta(hours=1))
    later = await alice.run()
    assert later.toggl_requests == 1
    alice.assert_exist_matches_truth()
    # A new day's full fetch leaves it out (it started before the range): asked for by id.
    alice.clock.advance(timedelta(days=1))
    toggl_sim.clear_requests()
    await alice.run()
    assert toggl_sim.requests[-1].path.endswith(f"/me/time_entries/{timer.id}")
    alice.assert_exist_matches_truth()
    # Stopped at last, then the next day: its window days still count, up to its stop.
    toggl_sim.world.update_time_entry(
        alice.toggl_user.id,
        alice.workspace_id,
        timer.id,
        {"stop": local(BERLIN, days_ago(alice, 2), 12)},
    )
    alice.clock.advance(timedelta(days=1))
    await alice.run()
    alice.assert_exist_matches_truth()
    assert alice.stored("productive_min")[days_ago(alice, 2)] == 0, "stopped the day before"


async def test_a_weeks_long_entry_deleted_in_toggl_leaves_the_window(
    accounts: AccountFactory, toggl_sim: TogglSimulator
) -> None:
    alice = await accounts.make()
    await alice.map_projects()
    timer = alice.track("Series", local(BERLIN, days_ago(alice, 16), 22))
    await alice.run()
    toggl_sim.world.delete_time_entry(alice.toggl_user.id, alice.workspace_id, timer.id)
    alice.clock.advance(timedelta(days=1))

    await alice.run()

    alice.assert_exist_matches_truth()  # every window day back to 0
    assert not any(alice.stored("tv_min").get(day) for day in alice.window())


async def test_a_timer_running_for_a_day_and_a_half_is_counted_without_asking_for_it(
    accounts: AccountFactory, toggl_sim: TogglSimulator
) -> None:
    alice = await accounts.make()
    await alice.map_projects()
    alice.track("Series", local(BERLIN, days_ago(alice, 1), 6))  # running since yesterday morning
    toggl_sim.clear_requests()

    report = await alice.run()

    assert report.outcome is RunOutcome.SUCCEEDED
    assert not any(r.path.endswith("/current") for r in toggl_sim.requests), "it was in range"
    alice.assert_exist_matches_truth()


async def test_a_first_look_back_beyond_the_accounts_floor_starts_at_the_floor(
    accounts: AccountFactory, toggl_sim: TogglSimulator
) -> None:
    alice = await accounts.make()
    alice.toggl_user.history_days = 20  # Toggl lets this account read back 20 days only
    await alice.map_projects()
    alice.track("Games", local(BERLIN, days_ago(alice, 12), 19), minutes=33)
    toggl_sim.clear_requests()

    report = await alice.run()

    assert report.outcome is RunOutcome.SUCCEEDED, report.failures
    alice.assert_exist_matches_truth()
    assert [r.status for r in toggl_sim.requests if r.path.endswith("/time_entries")] == [400, 200]
