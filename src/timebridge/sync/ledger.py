"""The ledger: what Exist holds because we wrote it, and the entries behind it.

The ledger is the runner's memory between runs. For each (attribute, local date) it holds the
value Timebridge last wrote **and Exist accepted**; the planner writes only what differs from it.
It never holds a value Exist did not confirm, so a lost answer or a crash before the commit only
means the same absolute value is sent again next run: harmless, never a double count.

It also keeps the entries seen by the last fetch (no descriptions: they are the user's private
words and nothing here needs them), so a user can see which entries make up a day.

`LedgerStore` is the small async protocol the runner needs; `InMemoryLedgerStore` implements it
for tests, the CLI's personal runs and the embedded default until the SQL store exists.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from timebridge.sync.planner import IN_FLIGHT, AttributeDate, ValueWrite
from timebridge.toggl.models import TimeEntry

#: How the store knows a user (the store's primary key for them).
UserId = int


@dataclass(frozen=True)
class KeptEntry:
    """One Toggl entry as the last fetch saw it: enough to explain a day, nothing private."""

    id: int
    project_id: int | None
    start: datetime
    #: None while the entry is running.
    stop: datetime | None
    #: Toggl's `at`: when the entry last changed.
    updated_at: datetime | None

    @classmethod
    def from_entry(cls, entry: TimeEntry) -> KeptEntry:
        return cls(
            id=entry.id,
            project_id=entry.project_id,
            start=entry.start,
            stop=None if entry.is_running else entry.stop,
            updated_at=entry.at,
        )


class LedgerStore(Protocol):
    """Where the runner keeps each user's ledger and last-seen entries.

    Every method is one transaction: a batch's accepted values are committed together or not at
    all, so the ledger never claims part of a batch Exist did not confirm.
    """

    async def load(self, user_id: UserId) -> dict[AttributeDate, int]:
        """The user's ledger: (attribute, date) -> the value Exist last accepted from us."""
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
        """Delete the user's whole ledger and kept entries (disconnect)."""
        ...

    async def replace_entries(self, user_id: UserId, entries: Sequence[KeptEntry]) -> None:
        """Keep exactly these entries as the user's last fetch."""
        ...

    async def replace_entries_and_load(
        self, user_id: UserId, entries: Sequence[KeptEntry]
    ) -> dict[AttributeDate, int]:
        """`replace_entries`, then `load`: what every run does, so a store may do both at once
        (the SQL store reads once when the fetch is unchanged)."""
        ...

    async def entries(self, user_id: UserId) -> list[KeptEntry]:
        """The entries of the user's last fetch, oldest first."""
        ...


class InMemoryLedgerStore:
    """A `LedgerStore` in a dict; one lock makes each call atomic across concurrent runs."""

    def __init__(self) -> None:
        self._ledgers: dict[UserId, dict[AttributeDate, int]] = {}
        self._entries: dict[UserId, list[KeptEntry]] = {}
        self._lock = asyncio.Lock()

    async def load(self, user_id: UserId) -> dict[AttributeDate, int]:
        async with self._lock:
            return dict(self._ledgers.get(user_id, {}))

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
            self._entries.pop(user_id, None)

    async def replace_entries(self, user_id: UserId, entries: Sequence[KeptEntry]) -> None:
        async with self._lock:
            self._entries[user_id] = sorted(entries, key=lambda entry: (entry.start, entry.id))

    async def replace_entries_and_load(
        self, user_id: UserId, entries: Sequence[KeptEntry]
    ) -> dict[AttributeDate, int]:
        await self.replace_entries(user_id, entries)
        return await self.load(user_id)

    async def entries(self, user_id: UserId) -> list[KeptEntry]:
        async with self._lock:
            return list(self._entries.get(user_id, []))

    def snapshot(self, user_id: UserId) -> Mapping[AttributeDate, int]:
        """The ledger as it is now, without awaiting (for tests and debugging)."""
        return dict(self._ledgers.get(user_id, {}))
