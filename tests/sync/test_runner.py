"""The runner keeps the bridge's promises, end to end over real HTTP against both simulators.

Every scenario ends by reading Exist's stored values back from the Exist simulator and comparing
them with the independent oracle for every mapped attribute and window date.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.sync.runner_harness import (
    PROJECT_ATTRIBUTES,
    UNMAPPED_PROJECT,
    AccountFactory,
    days_ago,
    local,
)
from timebridge.entries import KeptEntry
from timebridge.exist import ValueType
from timebridge.fakes.exist import ExistSimulator
from timebridge.fakes.toggl import TogglSimulator
from timebridge.fakes.toggl.state import USER_QUOTA
from timebridge.records import IN_FLIGHT, UserId, ValueWrite
from timebridge.sync.attributes import other_owners
from timebridge.sync.ledger import InMemoryLedgerStore
from timebridge.sync.runner import RunKind, RunOutcome

BERLIN = ZoneInfo("Europe/Berlin")
UPDATE = "attributes/update/"
TIME_ENTRIES = "/api/v9/me/time_entries"


def toggl_requests_to(toggl_sim: TogglSimulator, path: str) -> int:
    return sum(1 for request in toggl_sim.requests if request.path == path)


# --- counting and writing ---------------------------------------------------------------------


async def test_first_run_writes_every_nonzero_day(accounts: AccountFactory) -> None:
    alice = await accounts.make()
    await alice.map_projects()
    for offset, project in enumerate(PROJECT_ATTRIBUTES):
        alice.track(project, local(BERLIN, days_ago(alice, offset * 2), 9), minutes=30 + offset)
    alice.track("Deep work", local(BERLIN, days_ago(alice, 13), 8), minutes=45)
    alice.track(UNMAPPED_PROJECT, local(BERLIN, days_ago(alice, 1), 8), minutes=600)

    report = await alice.run()

    assert report.outcome is RunOutcome.SUCCEEDED
    nonzero = {key: value for key, value in alice.truth().items() if value}
    assert len(nonzero) == 7
    assert {(w.attribute, w.date): w.value for w in report.written} == nonzero
    alice.assert_exist_matches_truth()
    # Every window value is known: the ones written, and the zeros Exist held already.
    assert alice.ledger_rows() == alice.truth()


async def test_seconds_are_summed_before_rounding(accounts: AccountFactory) -> None:
    alice = await accounts.make()
    await alice.map_projects("Deep work")
    start = local(BERLIN, days_ago(alice, 2), 9)
    for n in range(20):  # 20 x 20 s: 6.67 min, rounded once to 7 (per entry it would be 0)
        alice.track("Deep work", start + timedelta(minutes=n), seconds=20)

    await alice.run()

    assert alice.stored("productive_min")[days_ago(alice, 2)] == 7
    alice.assert_exist_matches_truth()


async def test_deleted_entry_brings_its_day_down(accounts: AccountFactory) -> None:
    alice = await accounts.make()
    await alice.map_projects()
    day = days_ago(alice, 3)
    doomed = alice.track("Games", local(BERLIN, day, 20), minutes=90)
    alice.track("Games", local(BERLIN, days_ago(alice, 4), 20), minutes=15)
    await alice.run()
    assert alice.stored("gaming_min")[day] == 90

    alice.delete(doomed)
    report = await alice.run()

    assert report.written == (ValueWrite("gaming_min", day, 0),)
    assert alice.stored("gaming_min")[day] == 0
    alice.assert_exist_matches_truth()


async def test_entry_moved_across_midnight_moves_its_minutes(accounts: AccountFactory) -> None:
    alice = await accounts.make()
    await alice.map_projects()
    old_day, new_day = days_ago(alice, 5), days_ago(alice, 3)
    entry = alice.track("Series", local(BERLIN, old_day, 10), minutes=60)
    await alice.run()

    alice.move(entry, local(BERLIN, new_day, 23, 30))  # now 30 min on each side of midnight
    report = await alice.run()

    assert set(report.written) == {
        ValueWrite("tv_min", old_day, 0),
        ValueWrite("tv_min", new_day, 30),
        ValueWrite("tv_min", new_day + timedelta(days=1), 30),
    }
    alice.assert_exist_matches_truth()


async def test_entry_moved_to_another_attribute_moves_its_minutes(
    accounts: AccountFactory,
) -> None:
    alice = await accounts.make()
    await alice.map_projects()
    day = days_ago(alice, 1)
    entry = alice.track("Email", local(BERLIN, day, 10), minutes=40)
    await alice.run()

    alice.reassign(entry, "Social media")
    report = await alice.run()

    assert set(report.written) == {
        ValueWrite("neutral_min", day, 0),
        ValueWrite("distracting_min", day, 40),
    }
    alice.assert_exist_matches_truth()


async def test_running_entry_counts_up_to_now(accounts: AccountFactory) -> None:
    alice = await accounts.make()
    await alice.map_projects()
    alice.track("Deep work", alice.clock.now() - timedelta(minutes=25))
    await alice.run()
    assert alice.stored("productive_min")[alice.today()] == 25

    alice.clock.advance(timedelta(minutes=10))
    await alice.run()

    assert alice.stored("productive_min")[alice.today()] == 35
    alice.assert_exist_matches_truth()


async def test_days_follow_the_zone_of_the_exist_profile(accounts: AccountFactory) -> None:
    # Toggl says Berlin, Exist says Los Angeles: Exist's days are the ones to fill.
    la = ZoneInfo("America/Los_Angeles")
    alice = await accounts.make(timezone="America/Los_Angeles", toggl_timezone="Europe/Berlin")
    await alice.map_projects()
    alice.track("Deep work", local(la, days_ago(alice, 2), 23, 30), minutes=60)

    report = await alice.run()

    assert report.zone == "America/Los_Angeles"
    assert set(report.written) == {
        ValueWrite("productive_min", days_ago(alice, 2), 30),
        ValueWrite("productive_min", days_ago(alice, 1), 30),
    }
    alice.assert_exist_matches_truth()


async def test_the_users_own_zone_wins_and_needs_no_profile_read(
    accounts: AccountFactory, exist_sim: ExistSimulator
) -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    alice = await accounts.make()
    alice.zone_override = tokyo
    await alice.map_projects()
    alice.track("Deep work", local(tokyo, days_ago(alice, 1), 23, 45), minutes=30)
    exist_sim.clear_requests()

    report = await alice.run()

    assert report.zone == "Asia/Tokyo"
    assert exist_sim.requests_to("accounts/profile/") == []
    assert set(report.written) == {
        ValueWrite("productive_min", days_ago(alice, 1), 15),
        ValueWrite("productive_min", days_ago(alice, 0), 15),
    }
    alice.assert_exist_matches_truth()


async def test_an_unreadable_exist_profile_falls_back_to_the_toggl_zone(
    accounts: AccountFactory, exist_sim: ExistSimulator
) -> None:
    alice = await accounts.make(timezone="Europe/Berlin", toggl_timezone="Asia/Tokyo")
    await alice.map_projects()
    exist_sim.faults.add(path="/api/2/accounts/profile/", status=503, times=3)

    report = await alice.run()

    assert report.outcome is RunOutcome.SUCCEEDED
    assert (report.zone, report.zone_checked_at) == ("Asia/Tokyo", None)


async def test_steady_state_run_makes_one_toggl_request_and_no_exist_request(
    accounts: AccountFactory, toggl_sim: TogglSimulator, exist_sim: ExistSimulator
) -> None:
    alice = await accounts.make()
    await alice.map_projects()
    alice.track("Deep work", local(BERLIN, days_ago(alice, 1), 9), minutes=50)
    first = await alice.run()
    # The profile (for the zone), what Exist holds before Timebridge writes, one update.
    assert first.exist_requests == 3
    toggl_sim.clear_requests()
    exist_sim.clear_requests()

    alice.clock.advance(timedelta(hours=1))
    report = await alice.run()

    assert report.outcome is RunOutcome.SUCCEEDED
    assert report.written == ()
    assert (report.toggl_requests, report.exist_requests) == (1, 0)
    assert [request.path for request in toggl_sim.requests] == [TIME_ENTRIES]
    assert exist_sim.requests == []
    alice.assert_exist_matches_truth()


async def test_the_zone_is_read_from_exist_again_after_a_day(
    accounts: AccountFactory, exist_sim: ExistSimulator
) -> None:
    alice = await accounts.make()
    await alice.map_projects()
    await alice.run()
    exist_sim.clear_requests()

    alice.clock.advance(timedelta(hours=23))
    await alice.run()
    assert exist_sim.requests_to("accounts/profile/") == []
    alice.clock.advance(timedelta(hours=2))
    await alice.run()

    assert len(exist_sim.requests_to("accounts/profile/")) == 1


@pytest.mark.parametrize("changed", [1, 35, 36, 71, 84])
async def test_n_changed_values_take_ceil_n_over_35_exist_writes(
    accounts: AccountFactory, exist_sim: ExistSimulator, changed: int
) -> None:
    alice = await accounts.make()
    await alice.map_projects()
    cells = [(project, offset) for project in PROJECT_ATTRIBUTES for offset in range(14)]
    for project, offset in cells[:changed]:
        alice.track(project, local(BERLIN, days_ago(alice, offset), 8), minutes=10 + offset)
    exist_sim.clear_requests()

    report = await alice.run()

    updates = exist_sim.requests_to(UPDATE)
    assert len(updates) == math.ceil(changed / 35)
    assert all(request.items is not None and request.items <= 35 for request in updates)
    assert report.values_written == changed
    alice.assert_exist_matches_truth()


async def test_dry_run_plans_without_writing(
    accounts: AccountFactory, exist_sim: ExistSimulator
) -> None:
    alice = await accounts.make()
    await alice.map_projects()
    alice.track("Email", local(BERLIN, days_ago(alice, 1), 9), minutes=15)
    exist_sim.clear_requests()

    plan = await alice.runner().plan()

    assert plan.writes == (ValueWrite("neutral_min", days_ago(alice, 1), 15),)
    assert exist_sim.requests_to(UPDATE) == []
    assert alice.ledger_rows() == {}


async def test_entries_of_the_last_fetch_are_kept_without_descriptions(
    accounts: AccountFactory,
) -> None:
    alice = await accounts.make()
    await alice.map_projects()
    entry = alice.track("Games", local(BERLIN, days_ago(alice, 2), 21), minutes=30)

    await alice.run()

    kept = await alice.ledger.entries(alice.user_id)
    assert kept == [KeptEntry.from_entry(entry)]
    assert not hasattr(kept[0], "description")


async def test_ledger_rows_older_than_21_days_are_purged(accounts: AccountFactory) -> None:
    alice = await accounts.make()
    await alice.map_projects()
    old = alice.today() - timedelta(days=22)
    recent = alice.today() - timedelta(days=20)
    await alice.ledger.record_accepted(
        alice.user_id, [ValueWrite("tv_min", old, 5), ValueWrite("tv_min", recent, 5)]
    )

    await alice.run()

    assert ("tv_min", old) not in alice.ledger_rows()
    assert alice.ledger_rows()[("tv_min", recent)] == 5


# --- crashes and per-item failures ---------------------------------------------------------------


class CrashingLedger(InMemoryLedgerStore):
    """A store that dies once, after Exist accepted a batch but before the commit."""

    def __init__(self, crash_on_batch: int = 1) -> None:
        super().__init__()
        self.batches = 0
        self.crash_on_batch = crash_on_batch

    async def record_accepted(self, user_id: UserId, accepted: Sequence[ValueWrite]) -> None:
        self.batches += 1
        if self.batches == self.crash_on_batch:
            raise ConnectionError("the database went away")
        await super().record_accepted(user_id, accepted)


async def test_crash_after_exist_write_never_double_counts(
    accounts: AccountFactory, exist_sim: ExistSimulator
) -> None:
    # The first commit adopts what Exist holds; the second is the first batch.
    ledger = CrashingLedger(crash_on_batch=3)
    alice = await accounts.make(ledger=ledger)
    await alice.map_projects()
    for project in PROJECT_ATTRIBUTES:
        for offset in range(8):  # 48 values: two batches
            alice.track(project, local(BERLIN, days_ago(alice, offset), 7), minutes=20 + offset)

    crashed = await alice.run()

    assert crashed.outcome is RunOutcome.FAILED
    assert "the database went away" in (crashed.error or "")
    # Exist took both batches; the ledger only the first.
    assert len(exist_sim.requests_to(UPDATE)) == 2
    rows = alice.ledger_rows().values()
    assert sum(value == IN_FLIGHT for value in rows) == 13, "the uncommitted batch is in flight"
    assert len(rows) == len(alice.truth()), "the rest is known: written, or zero all along"
    alice.assert_exist_matches_truth()

    again = await alice.run()

    assert again.outcome is RunOutcome.SUCCEEDED
    assert again.values_written == 48 - 35  # the uncommitted batch, resent as the same values
    alice.assert_exist_matches_truth()
    assert alice.ledger_rows() == alice.truth()


async def test_exist_per_item_failure_is_retried_next_run(
    accounts: AccountFactory, exist_sim: ExistSimulator
) -> None:
    alice = await accounts.make()
    await alice.map_projects()
    day = days_ago(alice, 1)
    alice.track("Deep work", local(BERLIN, day, 9), minutes=30)
    alice.track("Series", local(BERLIN, day, 20), minutes=45)
    # Exist refuses one item of the batch (a 202 with a `failed` list) and takes the other.
    tv = exist_sim.world.user(alice.exist_username).attributes["tv_min"]
    tv.value_type = ValueType.STRING
    partial = await alice.run()

    assert partial.outcome is RunOutcome.PARTIAL
    assert [(f.attribute, f.date, f.error_code) for f in partial.failures] == [
        ("tv_min", day, "validation")
    ]
    assert len(exist_sim.requests_to(UPDATE)) == 1
    assert alice.ledger_rows()[("tv_min", day)] == 0, "still what Exist holds: nothing"
    assert alice.stored("productive_min")[day] == 30

    tv.value_type = ValueType.DURATION
    again = await alice.run()

    assert again.outcome is RunOutcome.SUCCEEDED
    assert again.written == (ValueWrite("tv_min", day, 45),)
    alice.assert_exist_matches_truth()


# --- Toggl failures ----------------------------------------------------------------------------


async def test_toggl_403_confirmed_disconnects_and_releases(
    accounts: AccountFactory, toggl_sim: TogglSimulator
) -> None:
    alice = await accounts.make()
    await alice.map_projects()
    alice.track("Games", local(BERLIN, days_ago(alice, 1), 19), minutes=70)
    await alice.run()
    assert alice.ledger_rows()
    toggl_sim.world.revoke_token(alice.toggl_user.id)
    toggl_sim.clear_requests()

    report = await alice.run()

    assert report.outcome is RunOutcome.DISCONNECTED
    assert [r.path for r in toggl_sim.requests] == [TIME_ENTRIES, "/api/v9/me"]
    assert report.toggl_requests == 2
    assert report.released == frozenset(PROJECT_ATTRIBUTES.values())
    assert all(alice.owner(attribute) is None for attribute in PROJECT_ATTRIBUTES.values())
    assert alice.ledger_rows() == {}
    assert await alice.ledger.entries(alice.user_id) == []
    # Disconnecting does not touch what Exist already shows.
    alice.assert_exist_matches_truth()


async def test_single_toggl_glitch_does_not_disconnect(
    accounts: AccountFactory, toggl_sim: TogglSimulator
) -> None:
    alice = await accounts.make()
    await alice.map_projects()
    alice.track("Games", local(BERLIN, days_ago(alice, 1), 19), minutes=70)
    await alice.run()
    rows = dict(alice.ledger_rows())
    alice.track("Games", local(BERLIN, days_ago(alice, 2), 19), minutes=20)
    toggl_sim.faults.add(path=TIME_ENTRIES, status=403, body="Forbidden", times=1)

    glitch = await alice.run()

    assert glitch.outcome is RunOutcome.FAILED
    assert glitch.toggl_requests == 2  # the refused fetch and the /me that vouched for the token
    assert glitch.released == frozenset()
    assert alice.ledger_rows() == rows
    assert all(alice.owner(attribute) == "timebridge" for attribute in PROJECT_ATTRIBUTES.values())

    healed = await alice.run()

    assert healed.outcome is RunOutcome.SUCCEEDED
    alice.assert_exist_matches_truth()


async def test_quota_402_stops_the_run_and_reports_the_reset(
    accounts: AccountFactory, toggl_sim: TogglSimulator, exist_sim: ExistSimulator
) -> None:
    alice = await accounts.make()
    await alice.map_projects()
    alice.track("Email", local(BERLIN, days_ago(alice, 1), 9), minutes=25)
    for _ in range(USER_QUOTA):  # other calls spent this hour's user quota
        toggl_sim.quota.take((alice.toggl_user.id, None), USER_QUOTA)
    alice.clock.advance(timedelta(minutes=10))
    exist_sim.clear_requests()
    toggl_sim.clear_requests()

    report = await alice.run()

    assert report.outcome is RunOutcome.QUOTA_EXCEEDED
    assert report.toggl_requests == 1  # never retried inside the run
    assert [r.status for r in toggl_sim.requests] == [402]
    assert report.next_sync_after == alice.clock.now() + timedelta(minutes=50)
    assert exist_sim.requests_to(UPDATE) == []

    assert report.next_sync_after is not None
    alice.clock.set(report.next_sync_after)
    later = await alice.run()

    assert later.outcome is RunOutcome.SUCCEEDED
    alice.assert_exist_matches_truth()


async def test_server_errors_fail_the_run_and_the_next_run_repairs(
    accounts: AccountFactory, toggl_sim: TogglSimulator, exist_sim: ExistSimulator
) -> None:
    alice = await accounts.make()
    await alice.map_projects()
    for project in PROJECT_ATTRIBUTES:
        for offset in range(7):  # 42 values: two batches
            alice.track(project, local(BERLIN, days_ago(alice, offset), 6), minutes=5 + offset)

    toggl_sim.faults.add(path=TIME_ENTRIES, status=503, times=3)
    toggl_down = await alice.run()

    assert toggl_down.outcome is RunOutcome.FAILED
    assert toggl_down.toggl_requests == 3  # RetryPolicy.testing(): three attempts, then give up
    assert toggl_down.failures[0].status_code == 503
    assert alice.ledger_rows() == {}

    class ExistFailsAfterFirstBatch(InMemoryLedgerStore):
        commits = 0

        async def record_accepted(self, user_id: UserId, accepted: Sequence[ValueWrite]) -> None:
            await super().record_accepted(user_id, accepted)
            self.commits += 1
            # The first commit adopts what Exist holds; the second is the first batch.
            if self.commits == 2:
                exist_sim.faults.add(method="POST", path="/api/2/attributes/update/", status=502)

    alice.ledger = ExistFailsAfterFirstBatch()
    exist_down = await alice.run()

    assert exist_down.outcome is RunOutcome.FAILED
    assert exist_down.values_written == 35
    assert exist_down.failures[0].status_code == 502
    rows = alice.ledger_rows().values()
    assert sum(value == IN_FLIGHT for value in rows) == 7, "a 502 may have been applied"

    exist_sim.faults.clear()
    repaired = await alice.run()

    assert repaired.outcome is RunOutcome.SUCCEEDED
    assert repaired.values_written == 42 - 35
    alice.assert_exist_matches_truth()


# --- Exist failures ----------------------------------------------------------------------------


async def test_exist_401_refreshes_the_token_once_and_goes_on(
    accounts: AccountFactory, exist_sim: ExistSimulator
) -> None:
    alice = await accounts.make(oauth=True)
    await alice.map_projects()
    alice.track("Series", local(BERLIN, days_ago(alice, 1), 21), minutes=44)
    before = alice.exist.tokens
    exist_sim.faults.add(
        path="/api/2/attributes/update/", status=401, body='{"detail": "Invalid token."}', times=1
    )

    report = await alice.run()

    assert report.outcome is RunOutcome.SUCCEEDED
    assert alice.exist.tokens != before
    assert len(exist_sim.requests_to("/oauth2/access_token")) == 2  # the exchange, one refresh
    alice.assert_exist_matches_truth()


async def test_exist_401_after_refresh_marks_exist_broken(
    accounts: AccountFactory, exist_sim: ExistSimulator
) -> None:
    alice = await accounts.make(oauth=True)
    await alice.map_projects()
    alice.track("Series", local(BERLIN, days_ago(alice, 1), 21), minutes=44)
    await alice.run()
    alice.track("Series", local(BERLIN, days_ago(alice, 2), 21), minutes=10)
    tokens = alice.exist.tokens
    assert tokens is not None
    exist_sim.revoke_token(tokens.access_token.get_secret_value())  # and its refresh token
    rows = dict(alice.ledger_rows())

    report = await alice.run()

    assert report.outcome is RunOutcome.EXIST_BROKEN
    assert alice.ledger_rows() == rows
    assert alice.stored("tv_min").get(days_ago(alice, 2)) is None


async def test_ownership_loss_reacquires_once(
    accounts: AccountFactory, exist_sim: ExistSimulator
) -> None:
    alice = await accounts.make()
    await alice.map_projects()
    alice.track("Deep work", local(BERLIN, days_ago(alice, 1), 9), minutes=30)
    await alice.run()
    exist_sim.set_owner(alice.exist_username, "productive_min", "rescuetime")
    alice.track("Deep work", local(BERLIN, days_ago(alice, 2), 9), minutes=50)
    exist_sim.clear_requests()

    report = await alice.run()

    assert report.outcome is RunOutcome.SUCCEEDED
    assert len(exist_sim.requests_to("attributes/acquire/")) == 1
    assert len(exist_sim.requests_to(UPDATE)) == 2  # refused, then retried after re-acquiring
    assert alice.owner("productive_min") == "timebridge"
    alice.assert_exist_matches_truth()


async def test_ownership_that_cannot_be_regained_is_left_for_the_next_run(
    accounts: AccountFactory, exist_sim: ExistSimulator
) -> None:
    # The user granted only productivity scopes: the media attributes can never be ours.
    alice = await accounts.make(oauth=True, scopes=("productivity_read", "productivity_write"))
    exist_sim.add_attribute(alice.exist_username, template="tv_min", owner="rescuetime")
    change = await alice.map_projects("Deep work", "Series")
    assert set(change.claims.refused) == {"tv_min"}
    alice.mapping[alice.projects["Series"]] = "tv_min"  # as if mapped before the scopes shrank
    alice.track("Series", local(BERLIN, days_ago(alice, 1), 20), minutes=30)
    alice.track("Deep work", local(BERLIN, days_ago(alice, 1), 9), minutes=30)
    exist_sim.clear_requests()

    report = await alice.run()

    assert report.outcome is RunOutcome.PARTIAL
    assert len(exist_sim.requests_to("attributes/acquire/")) == 1
    assert [(f.attribute, f.error_code) for f in report.failures] == [("tv_min", "unauthorised")]
    assert ("tv_min", days_ago(alice, 1)) not in alice.ledger_rows()
    assert alice.stored("productive_min")[days_ago(alice, 1)] == 30


async def test_attribute_deleted_in_exist_is_created_again(
    accounts: AccountFactory, exist_sim: ExistSimulator
) -> None:
    alice = await accounts.make()
    await alice.map_projects()
    alice.track("Series", local(BERLIN, days_ago(alice, 1), 20), minutes=42)
    await alice.run()
    with exist_sim.world.lock:  # the user deleted the attribute on exist.io
        del exist_sim.world.user(alice.exist_username).attributes["tv_min"]
    alice.track("Series", local(BERLIN, days_ago(alice, 2), 20), minutes=12)

    report = await alice.run()

    # Its history went with it: acquired again (so created), it is refilled in the same run.
    assert report.outcome is RunOutcome.SUCCEEDED
    assert report.written == (
        ValueWrite("tv_min", days_ago(alice, 2), 12),
        ValueWrite("tv_min", days_ago(alice, 1), 42),
    )
    assert alice.owner("tv_min") == "timebridge"
    alice.assert_exist_matches_truth()
    assert (await alice.run()).written == ()


# --- Zero Out, Repair, unmapping ----------------------------------------------------------------


async def test_zero_out_rewrites_the_window(
    accounts: AccountFactory, exist_sim: ExistSimulator
) -> None:
    alice = await accounts.make()
    await alice.map_projects()
    alice.track("Games", local(BERLIN, days_ago(alice, 2), 19), minutes=33)
    alice.track("Deep work", local(BERLIN, days_ago(alice, 0), 9), minutes=61)
    await alice.run()
    # Junk in Exist that the ledger knows nothing about (a manual edit, an old double count).
    exist_sim.set_value(alice.exist_username, "tv_min", days_ago(alice, 6), 500)
    exist_sim.set_value(alice.exist_username, "gaming_min", days_ago(alice, 2), 66)
    exist_sim.clear_requests()

    report = await alice.zero_out()

    assert report.kind is RunKind.ZERO_OUT
    assert report.outcome is RunOutcome.SUCCEEDED
    zeros = [w for w in report.written if w.value == 0]
    assert len(zeros) == len(PROJECT_ATTRIBUTES) * 14
    assert [w for w in report.written if w.value] == [
        ValueWrite("gaming_min", days_ago(alice, 2), 33),
        ValueWrite("productive_min", days_ago(alice, 0), 61),
    ]
    assert sum(r.items or 0 for r in exist_sim.requests_to(UPDATE)) == 84 + 2
    alice.assert_exist_matches_truth()
    assert alice.ledger_rows() == alice.truth()  # every window value, zeros included


async def test_repair_fixes_a_manual_edit_in_exist(
    accounts: AccountFactory, exist_sim: ExistSimulator
) -> None:
    alice = await accounts.make()
    await alice.map_projects()
    alice.track("Deep work", local(BERLIN, days_ago(alice, 1), 9), minutes=45)
    await alice.run()
    exist_sim.set_value(alice.exist_username, "productive_min", days_ago(alice, 1), 120)
    exist_sim.set_value(alice.exist_username, "neutral_min", days_ago(alice, 4), 9)
    untouched = await alice.run()
    assert untouched.written == ()  # the ledger alone cannot see a manual edit

    report = await alice.repair()

    assert report.kind is RunKind.REPAIR
    assert set(report.repaired) == {
        ValueWrite("productive_min", days_ago(alice, 1), 45),
        ValueWrite("neutral_min", days_ago(alice, 4), 0),
    }
    assert set(report.written) == set(report.repaired)
    alice.assert_exist_matches_truth()


async def test_unmapped_attribute_is_zeroed_then_released(
    accounts: AccountFactory, exist_sim: ExistSimulator
) -> None:
    alice = await accounts.make()
    await alice.map_projects()
    day = days_ago(alice, 3)
    alice.track("Games", local(BERLIN, day, 18), minutes=80)
    await alice.run()

    change = await alice.unmap("Games", "Movies")
    # Movies never got a value from us: released at once. Games has minutes to take back first.
    assert change.released.released == frozenset({"movies_min"})
    assert change.retiring == frozenset({"gaming_min"})
    assert alice.owner("gaming_min") == "timebridge"

    report = await alice.run()

    assert report.written == (ValueWrite("gaming_min", day, 0),)
    assert report.released == frozenset({"gaming_min"})
    assert alice.owner("gaming_min") is None
    assert alice.stored("gaming_min")[day] == 0
    assert all(attribute != "gaming_min" for attribute, _ in alice.ledger_rows())
    alice.assert_exist_matches_truth()


async def test_movies_falls_back_to_a_custom_attribute(
    accounts: AccountFactory, exist_sim: ExistSimulator
) -> None:
    alice = await accounts.make()
    exist_sim.refuse_template(alice.exist_username, "movies_min")

    change = await alice.map_projects()

    fallback = change.claims.names["movies_min"]
    assert fallback == "watching_movies"  # Exist's slug, read from its answer
    assert alice.mapping[alice.projects["Movies"]] == fallback
    created = exist_sim.attribute(alice.exist_username, fallback)
    assert (created.label, created.group.name, created.value_type, created.manual) == (
        "Watching movies",
        "media",
        ValueType.DURATION,
        False,
    )
    alice.track("Movies", local(BERLIN, days_ago(alice, 1), 20), minutes=118)

    report = await alice.run()

    assert report.written == (ValueWrite(fallback, days_ago(alice, 1), 118),)
    alice.assert_exist_matches_truth()


async def test_movies_uses_the_template_when_exist_knows_it(accounts: AccountFactory) -> None:
    alice = await accounts.make()

    change = await alice.map_projects("Movies")

    assert change.mapping == {alice.projects["Movies"]: "movies_min"}
    assert alice.owner("movies_min") == "timebridge"


async def test_mapping_an_attribute_we_already_own_is_fine(accounts: AccountFactory) -> None:
    alice = await accounts.make()
    await alice.map_projects("Deep work")

    change = await alice.map_projects("Deep work", "Email")

    assert change.claims.refused == {}
    assert set(change.mapping.values()) == {"productive_min", "neutral_min"}


async def test_the_mapping_page_can_tell_who_owns_an_attribute_before_taking_it(
    accounts: AccountFactory, exist_sim: ExistSimulator
) -> None:
    alice = await accounts.make()
    exist_sim.add_service("rescuetime", "RescueTime")
    exist_sim.add_attribute(alice.exist_username, template="productive_min", owner="rescuetime")
    await alice.map_projects("Games")

    owners = await other_owners(alice.exist, ["productive_min", "gaming_min", "tv_min"])

    assert owners == {"productive_min": "RescueTime"}


# --- isolation ---------------------------------------------------------------------------------


async def test_one_users_failure_does_not_affect_another(
    accounts: AccountFactory, exist_sim: ExistSimulator, toggl_sim: TogglSimulator
) -> None:
    alice = await accounts.make("alice")
    bob = await accounts.make("bob", timezone="America/New_York")
    carol = await accounts.make("carol", timezone="Asia/Tokyo")
    for account in (alice, bob, carol):
        await account.map_projects()
        account.track(
            "Deep work", local(account.zone, days_ago(account, 1), 10), minutes=20 + account.user_id
        )
    tokens = alice.exist.tokens
    assert tokens is not None
    exist_sim.revoke_token(tokens.access_token.get_secret_value())
    toggl_sim.world.revoke_token(carol.toggl_user.id)

    reports = await asyncio.gather(alice.run(), bob.run(), carol.run())

    assert [report.outcome for report in reports] == [
        RunOutcome.EXIST_BROKEN,
        RunOutcome.SUCCEEDED,
        RunOutcome.DISCONNECTED,
    ]
    bob.assert_exist_matches_truth()
    assert bob.ledger_rows() == bob.truth()
