"""`Store.sync_context`: what a sync run needs, in one read, secrets only for a run that will
happen and never in a repr."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from tests.store.transaction_log import transaction_log
from timebridge.entries import EntrySnapshot, KeptEntry
from timebridge.exist.models import ExistTokens
from timebridge.records import ValueWrite
from timebridge.store import (
    ConnectionStatus,
    ExistState,
    ProjectMapping,
    SecretBox,
    Store,
    TogglState,
    UndecryptableSecret,
    ZoneReading,
    new_key,
)
from timebridge.sync.runner import RunKind, RunOutcome, RunReport

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
EXPIRES = datetime(2026, 4, 1, 9, 30, tzinfo=UTC)


async def connected_user(store: Store) -> int:
    user = (await store.accounts.create("ada@example.com", time_zone="Europe/Lisbon")).id
    await store.toggl_connections.create(user, "tok-ada-1", label="old")
    await store.toggl_connections.create(user, "tok-ada-2", make_default=True)
    await store.exist_connections.save(
        user,
        ExistTokens(
            access_token=SecretStr("exist-access"),
            refresh_token=SecretStr("exist-refresh"),
            expires_at=EXPIRES,
            scope="read write",
        ),
        time_zone="Europe/Berlin",
    )
    await store.mappings.replace(
        user,
        [ProjectMapping(1, 10, "Games", "gaming_min"), ProjectMapping(1, 11, "Code", "tv_min")],
    )
    return user


async def test_a_connected_user_gets_everything_in_one_read(store: Store) -> None:
    user = await connected_user(store)
    default = await store.toggl_connections.default(user)
    exist = await store.exist_connections.get(user)
    assert default is not None and exist is not None

    with transaction_log(store.database) as log:
        context = await store.sync_context(user)

    assert len(log.transactions) == 1
    assert log.writers == []
    assert context.zone_override == "Europe/Lisbon"
    assert context.toggl == TogglState(default.id, ConnectionStatus.ACTIVE)
    assert context.exist == ExistState(
        ConnectionStatus.ACTIVE, "Europe/Berlin", exist.time_zone_checked_at
    )
    assert dict(context.mapping) == {10: "gaming_min", 11: "tv_min"}
    assert context.secrets is not None
    assert context.secrets.toggl_token.get_secret_value() == "tok-ada-2"
    tokens = context.secrets.exist_tokens
    assert tokens.access_token.get_secret_value() == "exist-access"
    assert tokens.refresh_token is not None
    assert tokens.refresh_token.get_secret_value() == "exist-refresh"
    assert (tokens.expires_at, tokens.scope) == (EXPIRES, "read write")
    assert tokens == await store.exist_connections.tokens(user)


async def test_the_context_never_shows_a_secret(store: Store) -> None:
    user = await connected_user(store)
    context = await store.sync_context(user)
    for shown in (repr(context), str(context), repr(context.secrets)):
        for secret in ("tok-ada-2", "exist-access", "exist-refresh"):
            assert secret not in shown


async def test_no_account_and_no_connections_have_no_context(store: Store) -> None:
    nobody = await store.sync_context(4242)
    assert (nobody.toggl, nobody.exist, nobody.secrets) == (None, None, None)

    user = (await store.accounts.create("ada@example.com")).id
    bare = await store.sync_context(user)
    assert (bare.toggl, bare.exist, bare.secrets, dict(bare.mapping)) == (None, None, None, {})


async def test_a_user_who_cannot_run_gets_no_secrets(store: Store) -> None:
    user = await connected_user(store)
    await store.exist_connections.mark_broken(user)

    context = await store.sync_context(user)

    assert context.exist is not None and context.exist.status is ConnectionStatus.FAILED
    assert context.toggl is not None and context.toggl.status is ConnectionStatus.ACTIVE
    assert context.secrets is None
    assert dict(context.mapping) == {}


async def test_a_pending_default_connection_has_no_token(store: Store) -> None:
    user = (await store.accounts.create("ada@example.com")).id
    pending = await store.toggl_connections.create(user)
    await store.exist_connections.save(user, ExistTokens.personal("exist-ada"))

    context = await store.sync_context(user)

    assert context.toggl == TogglState(pending.id, ConnectionStatus.PENDING)
    assert context.secrets is None


async def test_a_skipped_user_with_an_unreadable_secret_is_still_skipped(
    store: Store,
) -> None:
    user = await connected_user(store)
    default = await store.toggl_connections.default(user)
    assert default is not None
    await store.toggl_connections.mark_failed(user, default.id, "revoked")

    # Keys that decrypt none of its secrets: nothing is decrypted, so nothing fails.
    context = await Store(store.database, SecretBox([new_key()])).sync_context(user)

    assert context.toggl == TogglState(default.id, ConnectionStatus.FAILED)
    assert context.secrets is None


async def test_other_users_rows_stay_out_of_the_context(store: Store) -> None:
    ada = await connected_user(store)
    bob = (await store.accounts.create("bob@example.com")).id
    await store.toggl_connections.create(bob, "tok-bob-1")
    await store.exist_connections.save(bob, ExistTokens.personal("exist-bob"))
    await store.mappings.replace(bob, [ProjectMapping(1, 99, "Films", "movies_min")])

    context = await store.sync_context(ada)

    assert dict(context.mapping) == {10: "gaming_min", 11: "tv_min"}
    assert context.secrets is not None
    assert context.secrets.toggl_token.get_secret_value() == "tok-ada-2"
    assert context.secrets.exist_tokens.access_token.get_secret_value() == "exist-access"


# --- the run record and the zone, one write -------------------------------------------------------


def report(user: int) -> RunReport:
    return RunReport(
        user_id=user,
        kind=RunKind.SYNC,
        outcome=RunOutcome.SUCCEEDED,
        started_at=NOW,
        finished_at=NOW,
        duration=timedelta(seconds=1),
        toggl_requests=1,
        exist_requests=1,
    )


async def test_a_zone_read_from_exist_is_kept_in_the_run_records_write(store: Store) -> None:
    user = await connected_user(store)
    checked = NOW + timedelta(hours=2)

    with transaction_log(store.database) as log:
        await store.sync_runs.record(report(user), exist_zone=ZoneReading("Asia/Tokyo", checked))

    [write] = log.transactions
    assert {table for table, _ in write.writes} == {"sync_runs", "exist_connections"}
    exist = await store.exist_connections.get(user)
    assert exist is not None
    assert (exist.time_zone, exist.time_zone_checked_at) == ("Asia/Tokyo", checked)
    assert await store.sync_runs.count(user) == 1


async def test_a_run_is_recorded_even_if_exist_was_disconnected_meanwhile(store: Store) -> None:
    user = await connected_user(store)
    await store.exist_connections.delete(user)

    await store.sync_runs.record(report(user), exist_zone=ZoneReading("Asia/Tokyo", NOW))

    assert await store.sync_runs.count(user) == 1
    assert await store.exist_connections.get(user) is None


async def test_a_zone_that_is_not_one_is_refused(store: Store) -> None:
    user = await connected_user(store)
    with pytest.raises(ValueError, match="not a time zone"):
        await store.sync_runs.record(report(user), exist_zone=ZoneReading("Mars/Olympus", NOW))
    assert await store.sync_runs.count(user) == 0


async def runnable_user(store: Store, name: str, minutes: int) -> int:
    """A user with both connections active, a mapping, a ledger row and a snapshot."""
    user = (await store.accounts.create(f"{name}@example.com")).id
    await store.toggl_connections.create(user, f"tok-{name}")
    await store.exist_connections.save(user, ExistTokens(access_token=SecretStr(f"ex-{name}")))
    await store.mappings.replace(user, [ProjectMapping(1, user, name, "gaming_min")])
    await store.ledger.record_accepted(user, [ValueWrite("gaming_min", NOW.date(), minutes)])
    entry = KeptEntry.of(user, user, NOW, NOW + timedelta(minutes=minutes), NOW)
    snapshot = EntrySnapshot.of([entry], (NOW - timedelta(days=15), NOW + timedelta(days=1)), NOW)
    await store.ledger.keep_snapshot(user, snapshot)
    return user


async def test_runs_starting_together_share_one_read_and_each_gets_its_own(store: Store) -> None:
    users = [await runnable_user(store, name, 10 * n) for n, name in enumerate("abcdef", 1)]
    bare = (await store.accounts.create("bare@example.com")).id

    with transaction_log(store.database) as log:
        contexts = await asyncio.gather(*(store.sync_context(u) for u in [*users, bare, users[0]]))

    assert len(log.transactions) == 1
    assert log.writers == []
    for context, (n, user) in zip(contexts, enumerate(users, 1), strict=False):
        assert context.account_id == user
        assert dict(context.mapping) == {user: "gaming_min"}
        assert context.secrets is not None
        assert context.secrets.toggl_token.get_secret_value() == f"tok-{'abcdef'[n - 1]}"
        assert context.state is not None
        assert context.state.ledger == {("gaming_min", NOW.date()): 10 * n}
        assert context.state.snapshot is not None
        assert list(context.state.snapshot.entries) == [user]
    assert (contexts[6].account_id, contexts[6].secrets, contexts[6].state) == (bare, None, None)
    # The same user twice: two ledgers, so that one run's changes are not the other's.
    first, again = contexts[0].state, contexts[7].state
    assert first is not None and again is not None
    assert first.ledger == again.ledger and first.ledger is not again.ledger


async def test_a_secret_that_cannot_be_decrypted_fails_its_own_run_only(store: Store) -> None:
    alice = await runnable_user(store, "alice", 10)
    # Bob's tokens were written under a key this store does not have.
    stranger = Store(store.database, SecretBox([new_key()]))
    bob = await runnable_user(stranger, "bob", 20)

    outcomes = await asyncio.gather(
        store.sync_context(alice), store.sync_context(bob), return_exceptions=True
    )

    assert isinstance(outcomes[1], UndecryptableSecret)
    context = outcomes[0]
    assert not isinstance(context, BaseException)
    assert context.secrets is not None
    assert context.secrets.toggl_token.get_secret_value() == "tok-alice"
