"""What the bridge's operations return, besides a run's `RunReport` (`timebridge.sync.runner`)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date


class SkipReason(enum.StrEnum):
    """Why a user was not synced at all."""

    NO_TOGGL = "no active Toggl connection"
    NO_EXIST = "no active Exist connection"


@dataclass(frozen=True)
class Skipped:
    """A sync that did not run; the scheduler treats it like a run with nothing to wait for."""

    user_id: int
    reason: SkipReason
    next_sync_after: None = None

    @property
    def failed(self) -> bool:
        """Not a failed run: there was nothing to run."""
        return False


class SyncNotPossible(Exception):
    """The account lacks an active Toggl or Exist connection, so nothing can be planned."""

    def __init__(self, user_id: int, reason: SkipReason) -> None:
        super().__init__(f"user {user_id}: {reason.value}")
        self.user_id = user_id
        self.reason = reason


@dataclass(frozen=True)
class PlannedWrite:
    """One value a sync would write: what Exist holds now as far as Timebridge knows, and the
    new value."""

    attribute: str
    date: date
    #: What the ledger says Exist holds (what we wrote, or what Exist held when we started
    #: writing the attribute); None when nothing is known (Exist holds no value).
    current: int | None
    value: int


@dataclass(frozen=True)
class SyncPreview:
    """A dry run: the writes a run would make now, none of them made."""

    #: None for a personal config never synced yet (there is no account until the first run).
    account_id: int | None
    window: tuple[date, ...]
    writes: tuple[PlannedWrite, ...]
    #: Attributes a real run would first acquire in Exist (not held by Timebridge yet).
    to_acquire: tuple[str, ...] = ()
    toggl_requests: int = 0
    exist_requests: int = 0


@dataclass(frozen=True)
class MappingSaved:
    """What saving a mapping did in Exist and in the store."""

    #: project id -> the attribute name stored (movies may have fallen back to a custom one).
    mapping: Mapping[int, str]
    #: Attributes Exist refused to let us own, with its reason: those projects are not synced.
    refused: Mapping[str, str] = field(default_factory=dict)
    #: Attributes another service (say RescueTime) fed until now, with its name.
    taken_over: Mapping[str, str] = field(default_factory=dict)
    #: Unmapped attributes given back to Exist now.
    released: frozenset[str] = frozenset()
    exist_requests: int = 0


__all__ = [
    "MappingSaved",
    "PlannedWrite",
    "SkipReason",
    "Skipped",
    "SyncNotPossible",
    "SyncPreview",
]
