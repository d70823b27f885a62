"""Every run is recorded: start, end, outcome, requests, values written, error."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest

from tests.store.transaction_log import transaction_log
from timebridge.records import ValueWrite
from timebridge.store import AccountNotFound, Store
from timebridge.store.repositories import RUN_ERROR_LENGTH
from timebridge.sync.runner import RunFailure, RunKind, RunOutcome, RunReport

START = datetime(2026, 3, 10, 11, 40, tzinfo=UTC)


def report(
    user: int,
    *,
    started_at: datetime = START,
    outcome: RunOutcome = RunOutcome.SUCCEEDED,
    failures: tuple[RunFailure, ...] = (),
    written: int = 2,
    next_sync_after: datetime | None = None,
) -> RunReport:
    return RunReport(
        user_id=user,
        kind=RunKind.SYNC,
        outcome=outcome,
        started_at=started_at,
        finished_at=started_at + timedelta(seconds=3),
        duration=timedelta(seconds=2.5),
        toggl_requests=1,
        exist_requests=3,
        written=tuple(ValueWrite("tv_min", date(2026, 3, d), d) for d in range(1, written + 1)),
        failures=failures,
        next_sync_after=next_sync_after,
    )


async def test_a_run_report_is_recorded_as_the_runner_made_it(store: Store) -> None:
    user = (await store.accounts.create("ada@example.com")).id
    resets = START + timedelta(minutes=20)
    failure = RunFailure("toggl", "hourly quota spent", status_code=402)

    saved = await store.sync_runs.record(
        report(
            user,
            outcome=RunOutcome.QUOTA_EXCEEDED,
            failures=(failure,),
            written=0,
            next_sync_after=resets,
        )
    )

    [run] = await store.sync_runs.recent(user)
    assert run == saved
    assert (run.kind, run.outcome) == ("sync", "quota_exceeded")
    assert (run.started_at, run.finished_at) == (START, START + timedelta(seconds=3))
    assert run.duration == timedelta(seconds=2.5)
    assert (run.toggl_requests, run.exist_requests, run.values_written) == (1, 3, 0)
    assert run.error == "hourly quota spent"
    assert run.next_sync_after == resets


async def test_recent_runs_come_newest_first(store: Store) -> None:
    user = (await store.accounts.create("ada@example.com")).id
    other = (await store.accounts.create("bob@example.com")).id
    for hour in range(5):
        await store.sync_runs.record(report(user, started_at=START + timedelta(hours=hour)))
    await store.sync_runs.record(report(other))

    runs = await store.sync_runs.recent(user, limit=3)

    assert [run.started_at for run in runs] == [START + timedelta(hours=h) for h in (4, 3, 2)]
    assert {run.values_written for run in runs} == {2}
    assert await store.sync_runs.count(user) == 5


async def test_a_long_error_is_cut_to_a_status_line(store: Store) -> None:
    user = (await store.accounts.create("ada@example.com")).id
    failure = RunFailure("exist", "x" * (RUN_ERROR_LENGTH * 2))
    await store.sync_runs.record(report(user, outcome=RunOutcome.FAILED, failures=(failure,)))
    [run] = await store.sync_runs.recent(user)
    assert run.error is not None and len(run.error) == RUN_ERROR_LENGTH


async def test_old_run_records_can_be_purged(store: Store) -> None:
    user = (await store.accounts.create("ada@example.com")).id
    for days in (40, 30, 1):
        await store.sync_runs.record(report(user, started_at=START - timedelta(days=days)))
    assert await store.sync_runs.purge(START - timedelta(days=21)) == 2
    assert await store.sync_runs.count(user) == 1


async def test_a_run_of_an_unknown_account_is_refused(store: Store) -> None:
    with pytest.raises(AccountNotFound):
        await store.sync_runs.record(report(4242))


async def test_runs_recorded_at_the_same_time_share_a_transaction_and_keep_their_own_rows(
    store: Store,
) -> None:
    users = [(await store.accounts.create(f"user{n}@example.com")).id for n in range(12)]

    with transaction_log(store.database) as log:
        saved = await asyncio.gather(
            *(
                store.sync_runs.record(report(user, written=n % 4, started_at=START))
                for n, user in enumerate(users)
            )
        )

    # All twelve were waiting before the first write began: one transaction for all of them.
    assert len(log.writers) == 1
    assert [run.account_id for run in saved] == users
    assert len({run.id for run in saved}) == len(users)
    for run, user in zip(saved, users, strict=True):
        assert await store.sync_runs.recent(user) == [run]
        assert run.values_written == users.index(user) % 4


async def test_a_run_of_a_deleted_account_fails_alone_in_its_batch(store: Store) -> None:
    alice, bob, carol = [
        (await store.accounts.create(f"{name}@example.com")).id for name in ("a", "b", "c")
    ]
    await store.accounts.delete(bob)

    outcomes = await asyncio.gather(
        *(store.sync_runs.record(report(user)) for user in (alice, alice, bob, carol)),
        return_exceptions=True,
    )

    assert isinstance(outcomes[2], AccountNotFound)
    recorded = [outcome for n, outcome in enumerate(outcomes) if n != 2]
    assert all(not isinstance(outcome, BaseException) for outcome in recorded)
    assert await store.sync_runs.count(alice) == 2
    assert await store.sync_runs.count(carol) == 1
    assert await store.sync_runs.count(bob) == 0
