"""Plain records the engine (`timebridge.sync`) and the store (`timebridge.store`) share.

Neither package owns these: the engine plans and writes with them, the store keeps them. This
module is pure (no HTTP, no database, no clock), so importing it, or the planner, loads
neither. The kept Toggl entries live beside it in `timebridge.entries`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import NamedTuple

from timebridge.entries import EntrySnapshot

#: How the store knows a user (the store's primary key for them).
UserId = int

#: One Exist value: an attribute on a local date.
AttributeDate = tuple[str, date]

#: A ledger value meaning "a write of this cell was sent and its answer never recorded": Exist
#: may hold the old value or the new one. Such a cell is written again whatever its desired
#: value, zero included, so a run that died between Exist's answer and the ledger commit (or a
#: write whose answer was lost) can never leave Exist wrong.
IN_FLIGHT = -1

#: Ledger (and kept-entry) rows older than this many days are purged.
PURGE_AFTER_DAYS = 21


@dataclass(frozen=True)
class ValueWrite:
    """One absolute value to send with Exist's `attributes/update/`."""

    attribute: str
    date: date
    value: int


class Settled(NamedTuple):
    """A run found nothing to do at `at`, with inputs of `digest`; so it stays until `until`
    (`timebridge.sync.settled` makes and checks these)."""

    digest: str
    at: datetime
    until: datetime

    def holds(self, digest: str, now: datetime) -> bool:
        """Whether a run at `now` with inputs of `digest` has nothing to do either."""
        return digest == self.digest and self.at <= now < self.until


class LoadedState(NamedTuple):
    """A user's ledger, entry snapshot and settled mark as read at one moment."""

    ledger: dict[AttributeDate, int]
    snapshot: EntrySnapshot | None
    settled: Settled | None = None


__all__ = [
    "IN_FLIGHT",
    "PURGE_AFTER_DAYS",
    "AttributeDate",
    "LoadedState",
    "Settled",
    "UserId",
    "ValueWrite",
]
