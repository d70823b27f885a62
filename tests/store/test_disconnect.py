"""Disconnecting Toggl leaves nothing of the user's Toggl integration, and touches nothing else."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select

from timebridge.entries import EntrySnapshot, KeptEntry
from timebridge.exist.models import ExistTokens
from timebridge.records import ValueWrite
from timebridge.store import Integration, ProjectMapping, Store, WebhookState, WebhookSubscription
from timebridge.store.models import Base
from timebridge.sync.runner import RunKind, RunOutcome, RunReport

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
#: Tables that hold nothing of the Toggl integration once it is disconnected.
TOGGL_TABLES = (
    "toggl_connections",
    "mappings",
    "ledger",
    "entry_snapshots",
    "webhook_endpoints",
    "webhook_subscriptions",
    "webhook_events",
)


async def set_up_everything(store: Store, email: str) -> int:
    """A user with every kind of row: two Toggl connections, Exist, mappings, a Trakt claim,
    ledger, entries and a run record."""
    user = (await store.accounts.create(email)).id
    first = await store.toggl_connections.create(user, f"tok-{email}-1")
    endpoint = await store.webhooks.create(user, first.id, f"path-{email}", f"secret-{email}")
    await store.webhooks.save_subscriptions(
        endpoint, [WebhookSubscription(7, "Home", 70, WebhookState.ACTIVE)]
    )
    target = await store.webhooks.target(f"path-{email}")
    assert target is not None
    assert await store.webhooks.first_sight(target, 123)
    await store.toggl_connections.create(user, f"tok-{email}-2")
    await store.exist_connections.save(user, ExistTokens.personal(f"exist-{email}"))
    await store.claims.claim(user, "tv_min", Integration.TRAKT)
    await store.mappings.replace(
        user,
        [
            ProjectMapping(1, 10, "Games", "gaming_min"),
            ProjectMapping(1, 11, "Code", "productive_min"),
        ],
    )
    await store.mappings.save(user, ProjectMapping(1, 12, "Chat", "neutral_min"))
    await store.mappings.remove(user, 12)  # unmapped, its claim not yet released
    await store.ledger.record_accepted(
        user, [ValueWrite("gaming_min", date(2026, 3, d), d) for d in range(1, 10)]
    )
    entries = [KeptEntry.of(n, 10, NOW - timedelta(hours=n), None, None) for n in range(1, 4)]
    covered = (NOW - timedelta(days=15), NOW + timedelta(hours=12))
    await store.ledger.keep_snapshot(user, EntrySnapshot.of(entries, covered, NOW))
    await store.sync_runs.record(
        RunReport(
            user_id=user,
            kind=RunKind.SYNC,
            outcome=RunOutcome.SUCCEEDED,
            started_at=NOW,
            finished_at=NOW,
            duration=timedelta(seconds=1),
            toggl_requests=1,
            exist_requests=1,
        )
    )
    return user


async def rows_of(store: Store, user: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    async with store.database.transaction() as session:
        for table in Base.metadata.sorted_tables:
            column = table.c.id if table.name == "accounts" else table.c.account_id
            counts[table.name] = (
                await session.scalar(select(func.count()).select_from(table).where(column == user))
                or 0
            )
    return counts


async def test_disconnect_deletes_everything_of_the_toggl_integration(store: Store) -> None:
    alice = await set_up_everything(store, "alice@example.com")
    bob = await set_up_everything(store, "bob@example.com")
    bob_before = await rows_of(store, bob)

    report = await store.disconnect_toggl(alice)

    assert report.connections == 2
    assert report.mappings == 2
    assert report.ledger_rows == 9
    assert report.entries == 3
    assert report.attributes == {"gaming_min", "productive_min", "neutral_min"}
    after = await rows_of(store, alice)
    assert {table: after[table] for table in TOGGL_TABLES} == dict.fromkeys(TOGGL_TABLES, 0)
    assert await store.claims.holders(alice) == {"tv_min": "trakt"}  # Trakt's stays
    assert await store.exist_connections.get(alice) is not None
    assert after["sync_runs"] == 1  # the history that tells the user what happened
    assert await rows_of(store, bob) == bob_before


async def test_disconnecting_twice_is_harmless(store: Store) -> None:
    alice = await set_up_everything(store, "alice@example.com")
    await store.disconnect_toggl(alice)
    again = await store.disconnect_toggl(alice)
    assert (again.connections, again.mappings, again.ledger_rows, again.entries) == (0, 0, 0, 0)
    assert again.attributes == frozenset()


async def test_deleting_an_account_leaves_no_row_of_it(store: Store) -> None:
    alice = await set_up_everything(store, "alice@example.com")
    bob = await set_up_everything(store, "bob@example.com")
    bob_before = await rows_of(store, bob)

    assert await store.accounts.delete(alice)

    assert set((await rows_of(store, alice)).values()) == {0}
    assert await rows_of(store, bob) == bob_before
