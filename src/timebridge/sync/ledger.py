"""The ledger: what Exist holds because we wrote it, and the entries behind it.

The ledger is the runner's memory between runs. For each (attribute, local date) it holds the
value Timebridge last wrote **and Exist accepted**; the planner writes only what differs from it.
It never holds a value Exist did not confirm, so a lost answer or a crash before the commit only
means the same absolute value is sent again next run: harmless, never a double count.

Beside it the store keeps the user's entry snapshot (`timebridge.entries`): the entries of
the last fetches, without descriptions (they are the user's private words and nothing here needs
them), so a run can ask Toggl only for what changed and a user can see which entries make up a
day.

`LedgerStore` is the small async protocol the runner needs; `InMemoryLedgerStore` implements it
for tests, and `timebridge.store.SqlLedgerStore` in the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from timebridge.entries import EntrySnapshot, KeptEntry
from timebridge.records import IN_FLIGHT, AttributeDate, LoadedState, Settled, UserId, ValueWrite

__all__ = ["InMemoryLedgerStore", "LedgerStore"]


class LedgerStore(Protocol):
    """Where the runner keeps each user's ledger and entry snapshot.

    Every method is one transaction: a batch's accepted values are committed together or not at
    all, so the ledger never claims part of a batch Exist did not confirm.
    """

    async def load(self, user_id: UserId) -> dict[AttributeDate, int]:
        """The user's ledger: (attribute, date) -> the value Exist last accepted from us."""
        ...

    async def load_with_snapshot(self, user_id: UserId) -> LoadedState:
        """The ledger, the entry snapshot (None if there is none) and the settled mark, in one
        read: what every run starts with."""
        ...

    async def keep_snapshot(
        self, user_id: UserId, snapshot: EntrySnapshot, *, settled: Settled | None = None
    ) -> None:
        """Replace the user's entry snapshot with this one, and its settled mark with
        `settled` (a mark belongs to one snapshot)."""
        ...

    async def keep_settled(self, user_id: UserId, settled: Settled) -> None:
        """Keep the mark of a run that found nothing to do (`timebridge.sync.settled`).

        Kept with the entry snapshot; a user without one has nothing to keep it with.
        """
        ...

    async def mark_in_flight(self, user_id: UserId, keys: Iterable[AttributeDate]) -> None:
        """Before a batch is sent: mark its cells `IN_FLIGHT`, atomically, so that whatever
        happens to the answer, the next plan writes them again."""
        ...

    async def record_accepted(self, user_id: UserId, accepted: Sequence[ValueWrite]) -> None:
        """Commit the values Exist accepted from one write batch, atomically."""
        ...

    async def forget(self, user_id: UserId, keys: Iterable[AttributeDate]) -> None:
        """Delete these ledger rows (purged dates, released attributes)."""
        ...

    async def clear(self, user_id: UserId) -> None:
        """Delete the user's whole ledger and entry snapshot (disconnect)."""
        ...

    async def entries(self, user_id: UserId) -> list[KeptEntry]:
        """The entries of the user's snapshot, oldest first."""
        ...


class InMemoryLedgerStore:
    """A `LedgerStore` in a dict; one lock makes each call atomic across concurrent runs."""

    def __init__(self) -> None:
        self._ledgers: dict[UserId, dict[AttributeDate, int]] = {}
        self._snapshots: dict[UserId, EntrySnapshot] = {}
        self._settled: dict[UserId, Settled] = {}
        self._lock = asyncio.Lock()

    async def load(self, user_id: UserId) -> dict[AttributeDate, int]:
        async with self._lock:
            return dict(self._ledgers.get(user_id, {}))

    async def load_with_snapshot(self, user_id: UserId) -> LoadedState:
        async with self._lock:
            return LoadedState(
                dict(self._ledgers.get(user_id, {})),
                self._snapshots.get(user_id),
                self._settled.get(user_id),
            )

    async def keep_snapshot(
        self, user_id: UserId, snapshot: EntrySnapshot, *, settled: Settled | None = None
    ) -> None:
        async with self._lock:
            self._snapshots[user_id] = snapshot
            if settled is None:
                self._settled.pop(user_id, None)
            else:
                self._settled[user_id] = settled

    async def keep_settled(self, user_id: UserId, settled: Settled) -> None:
        async with self._lock:
            if user_id in self._snapshots:
                self._settled[user_id] = settled

    async def mark_in_flight(self, user_id: UserId, keys: Iterable[AttributeDate]) -> None:
        async with self._lock:
            ledger = self._ledgers.setdefault(user_id, {})
            for key in keys:
                ledger[key] = IN_FLIGHT

    async def record_accepted(self, user_id: UserId, accepted: Sequence[ValueWrite]) -> None:
        async with self._lock:
            ledger = self._ledgers.setdefault(user_id, {})
            for write in accepted:
                ledger[(write.attribute, write.date)] = write.value

    async def forget(self, user_id: UserId, keys: Iterable[AttributeDate]) -> None:
        async with self._lock:
            ledger = self._ledgers.get(user_id, {})
            for key in keys:
                ledger.pop(key, None)

    async def clear(self, user_id: UserId) -> None:
        async with self._lock:
            self._ledgers.pop(user_id, None)
            self._snapshots.pop(user_id, None)
            self._settled.pop(user_id, None)

    async def entries(self, user_id: UserId) -> list[KeptEntry]:
        async with self._lock:
            snapshot = self._snapshots.get(user_id)
        return snapshot.sorted_entries() if snapshot is not None else []

    def snapshot(self, user_id: UserId) -> Mapping[AttributeDate, int]:
        """The ledger as it is now, without awaiting (for tests and debugging)."""
        return dict(self._ledgers.get(user_id, {}))
