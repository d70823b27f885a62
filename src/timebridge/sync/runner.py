"""One sync run for one user: the I/O around the pure planner.

A run brings the user's entry snapshot up to date (`timebridge.entries`: one request in
steady state, usually answered with nothing, since it asks only for what changed), plans with
`plan_sync`, writes the plan to Exist with absolute values in batches of 35, commits each batch's
accepted items to the ledger right after Exist's answer, purges old ledger rows and releases
attributes that are no longer mapped once their zeros have landed. A run that leaves nothing to
do keeps a settled mark with the snapshot, and a later run whose inputs are still the same, the
same day, knows without planning that there is nothing to do (`timebridge.sync.settled`). It
returns a `RunReport` and never raises for an upstream failure: the outcome says what happened
and what the caller must do (DESIGN.md, "Failures").

Why a crash is harmless: the ledger only ever holds values Exist confirmed, and the values are
absolute, so anything lost between Exist's answer and the ledger commit is simply sent again,
with the same value, next run.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from timebridge.clock import Clock
from timebridge.entries import EntrySnapshot, KeptEntry, micros
from timebridge.exist import BATCH_SIZE, AsyncExistClient, UpdateItem
from timebridge.exist import errors as exist_errors
from timebridge.records import IN_FLIGHT, AttributeDate, LoadedState, Settled, UserId, ValueWrite
from timebridge.retry import RetryReason
from timebridge.sync.attributes import other_owners, owned_names, reacquire, release_attributes
from timebridge.sync.ledger import LedgerStore
from timebridge.sync.planner import (
    SyncPlan,
    fetch_range,
    local_today,
    plan_holds_until,
    plan_sync,
    window_dates,
)
from timebridge.sync.settled import inputs_digest
from timebridge.toggl import TIME_ENTRIES_CAP, AsyncTogglClient, TimeEntry
from timebridge.toggl import errors as toggl_errors

logger = logging.getLogger(__name__)

#: The time zone read from Exist's profile is trusted for this long before it is read again.
ZONE_REFRESH_INTERVAL = timedelta(days=1)
#: How much further back than the window a user's first fetch looks, for a timer left running
#: since before the window (later fetches know it from the snapshot).
FIRST_LOOK_BACK = timedelta(days=28)
#: When Toggl's 402 does not say when the quota frees up, its window is an hour.
DEFAULT_QUOTA_RESET = timedelta(hours=1)


class RunKind(enum.StrEnum):
    """What the user (or the scheduler) asked for."""

    SYNC = "sync"
    ZERO_OUT = "zero_out"
    REPAIR = "repair"


class RunOutcome(enum.StrEnum):
    """How a run ended, and so what the caller does next."""

    #: Exist holds the desired values (as far as this run could tell).
    SUCCEEDED = "succeeded"
    #: Some values were refused one by one; they stay out of the ledger and go again next run.
    PARTIAL = "partial"
    #: An upstream kept failing (5xx, timeouts, 429) after bounded retries; the next run repairs.
    FAILED = "failed"
    #: Toggl's hourly quota is spent: schedule the next sync at `next_sync_after`, not before.
    QUOTA_EXCEEDED = "quota_exceeded"
    #: Toggl refused the token twice: the caller deletes the user's Toggl data and tells them.
    #: The runner has already cleared the ledger and released the attributes.
    DISCONNECTED = "disconnected"
    #: Exist refused the token even after a refresh: stop syncing until the user reconnects.
    EXIST_BROKEN = "exist_broken"


Service = Literal["toggl", "exist", "timebridge"]


@dataclass(frozen=True)
class RunFailure:
    """One thing that went wrong; for a refused value, which (attribute, date) it was."""

    service: Service
    message: str
    attribute: str | None = None
    date: date | None = None
    error_code: str | None = None
    status_code: int | None = None


@dataclass(frozen=True)
class RunReport:
    """The record of one run, as the status page and the scheduler need it."""

    user_id: UserId
    kind: RunKind
    outcome: RunOutcome
    started_at: datetime
    finished_at: datetime
    #: Measured on a monotonic clock, so it is real even under a fake wall clock.
    duration: timedelta
    toggl_requests: int
    exist_requests: int
    #: The values Exist accepted, in the order they were written.
    written: tuple[ValueWrite, ...] = ()
    failures: tuple[RunFailure, ...] = ()
    #: Repair: the values that differed in Exist and were rewritten.
    repaired: tuple[ValueWrite, ...] = ()
    #: Attributes given back to Exist (no longer mapped, or the user disconnected).
    released: frozenset[str] = frozenset()
    #: Not before this instant should this user's next sync run (Toggl 402, or a 429's wait).
    next_sync_after: datetime | None = None
    #: The zone the run used, and when it was read from Exist's profile if this run read it:
    #: persist both and pass them back in `UserSyncSettings` to skip the read next time.
    zone: str | None = None
    zone_checked_at: datetime | None = None
    #: Nothing the plan depends on had changed since a run found nothing to do, so this run
    #: did not plan (`timebridge.sync.settled`).
    unchanged: bool = False

    @property
    def values_written(self) -> int:
        return len(self.written)

    @property
    def failed(self) -> bool:
        """Whether the run left anything undone (a scheduler's cycle counts it as failed)."""
        return self.outcome is not RunOutcome.SUCCEEDED

    @property
    def error(self) -> str | None:
        """The first failure's message, for a one-line status."""
        return self.failures[0].message if self.failures else None


@dataclass(frozen=True)
class DryRun:
    """What a run would write now (`SyncRunner.plan`), and what Exist holds as far as we know."""

    window: tuple[date, ...]
    writes: tuple[ValueWrite, ...]
    #: The ledger the plan was made against, with the values of attributes Timebridge has not
    #: written yet read from Exist (what a run would adopt).
    current: Mapping[AttributeDate, int]


@dataclass(frozen=True)
class UserSyncSettings:
    """Everything one user's runs need; built by the caller from the store."""

    user_id: UserId
    toggl: AsyncTogglClient
    exist: AsyncExistClient
    #: Toggl project id -> Exist attribute name (as acquired, see `attributes.save_mapping`).
    mapping: Mapping[int, str]
    clock: Clock
    #: The user's own choice of zone; wins over Exist's.
    zone_override: ZoneInfo | None = None
    #: The zone last read from Exist's profile, and when (from earlier reports).
    exist_zone: ZoneInfo | None = None
    exist_zone_checked_at: datetime | None = None


@dataclass
class _Run:
    """What a run accumulates while it goes; frozen into a `RunReport` at the end."""

    kind: RunKind
    started_at: datetime
    written: list[ValueWrite] = field(default_factory=list)
    failures: list[RunFailure] = field(default_factory=list)
    repaired: list[ValueWrite] = field(default_factory=list)
    released: set[str] = field(default_factory=set)
    next_sync_after: datetime | None = None
    zone: ZoneInfo | None = None
    zone_checked_at: datetime | None = None
    unchanged: bool = False


def _surely_not_applied(error: exist_errors.ExistError) -> bool:
    """Whether Exist certainly did not apply a write that failed this way.

    A refusal (4xx, 401 included) or a request that never left is certain; a 5xx or a lost
    answer is not, so those cells stay in flight.
    """
    if isinstance(error, exist_errors.ServerError | exist_errors.TransportError):
        return error.retry_reason is RetryReason.CONNECT_FAILED
    return True


def _chunks(writes: Sequence[ValueWrite], size: int = BATCH_SIZE) -> Iterator[Sequence[ValueWrite]]:
    for offset in range(0, len(writes), size):
        yield writes[offset : offset + size]


def _after(now: datetime, seconds: float | None, default: timedelta | None) -> datetime | None:
    if seconds is not None:
        return now + timedelta(seconds=seconds)
    return now + default if default is not None else None


class _Disconnected(Exception):
    """Toggl refused the token and `/me` confirmed it."""


class _NotConfirmed(Exception):
    """Toggl refused the token once but `/me` did not confirm it: a glitch, not a revocation."""


class SyncRunner:
    """Runs syncs for one user. Safe to keep between runs (it remembers the zone it read)."""

    def __init__(
        self, settings: UserSyncSettings, ledger: LedgerStore, *, loaded: LoadedState | None = None
    ) -> None:
        """`loaded`: the user's ledger and snapshot if the caller just read them (with the rest
        of what a run needs, in one transaction); the next sync uses them instead of reading
        them again. Any later run reads its own."""
        self._settings = settings
        self._ledger = ledger
        self._loaded = loaded
        self._exist_zone = settings.exist_zone
        self._exist_zone_checked_at = settings.exist_zone_checked_at

    @property
    def _user(self) -> UserId:
        return self._settings.user_id

    # --- public operations ------------------------------------------------------------------

    async def run(self) -> RunReport:
        """A normal sync: bring Exist's window to Toggl's truth."""
        return await self._guarded(RunKind.SYNC, self._sync)

    async def repair(self) -> RunReport:
        """A sync that also reads Exist's values for the window and rewrites any that differ
        (a manual edit in Exist), without zeroing anything that is right."""
        return await self._guarded(RunKind.REPAIR, self._sync)

    async def zero_out(self) -> RunReport:
        """Write 0 to every mapped attribute for every window date, clear the ledger, then sync."""
        return await self._guarded(RunKind.ZERO_OUT, self._zero_out_then_sync)

    async def plan(self) -> DryRun:
        """What a run would write now, without writing anything (`sync --dry-run`): the
        entries fetched in full, attributes new to Timebridge read from Exist, nothing kept.

        Upstream errors propagate as the clients raise them.
        """
        zone = await self._zone(None)
        now = self._settings.clock.now()
        _, kept, _ = await self._ledger.load_with_snapshot(self._user)
        snapshot = await self._current_snapshot(kept, fetch_range(now, zone), now, trusted=False)
        ledger = await self._ledger.load(self._user)
        window = window_dates(local_today(now, zone))
        await self._adopt(self._new_attributes(ledger), window, ledger, keep=False)
        plan = plan_sync(snapshot.sorted_entries(), self._settings.mapping, ledger, zone, now)
        return DryRun(plan.window, plan.writes, ledger)

    # --- the run's frame: counting, failure handling, the report ------------------------------

    async def _guarded(self, kind: RunKind, body: Callable[[_Run], Awaitable[None]]) -> RunReport:
        clock = self._settings.clock
        run = _Run(kind=kind, started_at=clock.now())
        began = time.perf_counter()
        exist_sent_before = self._settings.exist.requests_sent
        toggl_sent_before = self._settings.toggl.requests_sent
        outcome = await self._outcome_of(run, body)
        report = RunReport(
            user_id=self._user,
            kind=kind,
            outcome=outcome,
            started_at=run.started_at,
            finished_at=clock.now(),
            duration=timedelta(seconds=time.perf_counter() - began),
            toggl_requests=self._settings.toggl.requests_sent - toggl_sent_before,
            exist_requests=self._settings.exist.requests_sent - exist_sent_before,
            written=tuple(run.written),
            failures=tuple(run.failures),
            repaired=tuple(run.repaired),
            released=frozenset(run.released),
            next_sync_after=run.next_sync_after,
            zone=run.zone.key if run.zone is not None else None,
            zone_checked_at=run.zone_checked_at,
            unchanged=run.unchanged,
        )
        logger.info(
            "sync run finished",
            extra={
                "user_id": self._user,
                "kind": kind.value,
                "outcome": outcome.value,
                "toggl_requests": report.toggl_requests,
                "exist_requests": report.exist_requests,
                "values_written": report.values_written,
                "failures": len(report.failures),
                "unchanged": report.unchanged,
                **_failure_fields(report),
            },
        )
        return report

    async def _outcome_of(self, run: _Run, body: Callable[[_Run], Awaitable[None]]) -> RunOutcome:
        """Run `body` and translate every way it can fail into an outcome (DESIGN "Failures")."""
        now = self._settings.clock.now
        try:
            try:
                await body(run)
            except toggl_errors.AuthenticationError as refused:
                await self._confirm_revocation(run, refused)
        except _Disconnected:
            try:
                await self._disconnect(run)
            except Exception as exc:
                # The caller deletes the user's data on DISCONNECTED anyway; say what was left.
                logger.exception("cleaning up a disconnect failed", extra={"user_id": self._user})
                run.failures.append(RunFailure("timebridge", f"{type(exc).__name__}: {exc}"))
            return RunOutcome.DISCONNECTED
        except _NotConfirmed:
            return RunOutcome.FAILED
        except toggl_errors.QuotaExceeded as exc:
            run.failures.append(_toggl_failure(exc))
            run.next_sync_after = _after(now(), exc.resets_in, DEFAULT_QUOTA_RESET)
            return RunOutcome.QUOTA_EXCEEDED
        except toggl_errors.TogglError as exc:
            run.failures.append(_toggl_failure(exc))
            run.next_sync_after = _after(now(), exc.retry_after, None)
            return RunOutcome.FAILED
        except exist_errors.AuthenticationError as exc:
            run.failures.append(_exist_failure(exc))
            return RunOutcome.EXIST_BROKEN
        except exist_errors.ExistError as exc:
            run.failures.append(_exist_failure(exc))
            run.next_sync_after = _after(now(), exc.retry_after, None)
            return RunOutcome.FAILED
        except Exception as exc:
            # Whatever broke (the store, a bug), this user's run ends here and is recorded;
            # the scheduler goes on with everyone else.
            logger.exception("sync run crashed", extra={"user_id": self._user})
            run.failures.append(RunFailure("timebridge", f"{type(exc).__name__}: {exc}"))
            return RunOutcome.FAILED
        return RunOutcome.PARTIAL if run.failures else RunOutcome.SUCCEEDED

    async def _confirm_revocation(
        self, run: _Run, refused: toggl_errors.AuthenticationError
    ) -> None:
        """One 401/403 is not enough to wipe a user's setup: ask `/me` before believing it."""
        run.failures.append(_toggl_failure(refused))
        try:
            await self._settings.toggl.me()
        except toggl_errors.AuthenticationError as confirmed:
            run.failures.append(_toggl_failure(confirmed))
            raise _Disconnected from confirmed
        except toggl_errors.TogglError as unclear:
            if isinstance(unclear, toggl_errors.QuotaExceeded):
                raise
            run.failures.append(_toggl_failure(unclear))
            raise _NotConfirmed from unclear
        run.failures.append(
            RunFailure("toggl", "Toggl refused the token once, but /me accepted it: kept connected")
        )
        raise _NotConfirmed

    async def _disconnect(self, run: _Run) -> None:
        """Toggl access is gone: give the attributes back and forget the ledger."""
        ledger = await self._ledger.load(self._user)
        names = set(self._settings.mapping.values()) | {attribute for attribute, _ in ledger}
        try:
            outcome = await release_attributes(self._settings.exist, names)
        except exist_errors.ExistError as exc:
            run.failures.append(_exist_failure(exc))
        else:
            run.released |= outcome.released
            run.failures.extend(
                RunFailure("exist", f"could not release {name}: {why}", attribute=name)
                for name, why in outcome.failed.items()
            )
        await self._ledger.clear(self._user)

    # --- the steps ------------------------------------------------------------------------------

    async def _zone(self, run: _Run | None) -> ZoneInfo:
        """The user's zone: their override, else Exist's (read at most daily), else Toggl's."""
        settings = self._settings
        zone = settings.zone_override
        if zone is None:
            zone = await self._exist_or_toggl_zone(run)
        if run is not None:
            run.zone = zone
        return zone

    async def _exist_or_toggl_zone(self, run: _Run | None) -> ZoneInfo:
        now = self._settings.clock.now()
        checked = self._exist_zone_checked_at
        fresh = checked is not None and now - checked < ZONE_REFRESH_INTERVAL
        if self._exist_zone is not None and fresh:
            return self._exist_zone
        try:
            profile = await self._settings.exist.profile()
            zone = ZoneInfo(profile.timezone)
        except exist_errors.AuthenticationError:
            raise
        except (exist_errors.ExistError, ZoneInfoNotFoundError, ValueError) as exc:
            # Not a failure of the run: a known zone (or Toggl's) serves until the next read.
            logger.warning(
                "could not read the time zone from Exist: %s", exc, extra={"user_id": self._user}
            )
            if self._exist_zone is not None:
                return self._exist_zone
            me = await self._settings.toggl.me()
            return ZoneInfo(me.timezone)
        self._exist_zone, self._exist_zone_checked_at = zone, now
        if run is not None:
            run.zone_checked_at = now
        return zone

    async def _sync(self, run: _Run) -> None:
        settings = self._settings
        zone = await self._zone(run)
        now = settings.clock.now()
        loaded, self._loaded = self._loaded, None
        ledger, kept, settled = loaded or await self._ledger.load_with_snapshot(self._user)
        # Zero Out and Repair are how a user says "make it right": they trust no snapshot.
        snapshot = await self._current_snapshot(
            kept, fetch_range(now, zone), now, trusted=run.kind is RunKind.SYNC
        )
        if snapshot is kept:
            if (
                run.kind is RunKind.SYNC
                and settled is not None
                and settled.holds(inputs_digest(snapshot, settings.mapping, ledger, zone), now)
            ):
                run.unchanged = True
                return
        else:
            settled = None  # it went with the snapshot it was made for
        mark = None
        try:
            window = window_dates(local_today(now, zone))
            await self._adopt(self._new_attributes(ledger), window, ledger, keep=True)
            entries = snapshot.sorted_entries()
            plan = plan_sync(entries, settings.mapping, ledger, zone, now)
            if plan.purge:
                await self._ledger.forget(self._user, plan.purge)
                for key in plan.purge:
                    ledger.pop(key, None)
            writes = list(plan.writes)
            if run.kind is RunKind.REPAIR:
                writes = await self._with_repairs(run, plan, writes)
            await self._write(run, writes, ledger, plan.desired)
            await self._release_retired(run, plan, ledger)
            if not run.failures:
                done = plan.is_empty and run.kind is not RunKind.REPAIR
                mark = self._settled(snapshot, entries, ledger, zone, now, done=done)
        finally:
            # Written once the run knows its mark; written even if the run failed, so that the
            # next one need not fetch it again.
            if snapshot is not kept:
                await self._ledger.keep_snapshot(self._user, snapshot, settled=mark)
        if mark is not None and snapshot is kept and not _same_mark(mark, settled):
            await self._ledger.keep_settled(self._user, mark)

    def _settled(
        self,
        snapshot: EntrySnapshot,
        entries: Sequence[KeptEntry],
        ledger: Mapping[AttributeDate, int],
        zone: ZoneInfo,
        now: datetime,
        *,
        done: bool,
    ) -> Settled | None:
        """The mark to leave if the run left nothing to do (`timebridge.sync.settled`): the
        next runs with the same inputs, before it expires, need not plan. `done`: the run's
        plan was already empty."""
        mapping = self._settings.mapping
        # A plan that did something is made again from where it left the ledger.
        if not done and not plan_sync(entries, mapping, ledger, zone, now).is_empty:
            return None
        until = plan_holds_until(entries, mapping, zone, now)
        if until is None:
            return None
        return Settled(inputs_digest(snapshot, mapping, ledger, zone), now, until)

    async def _current_snapshot(
        self,
        kept: EntrySnapshot | None,
        needed: tuple[datetime, datetime],
        now: datetime,
        *,
        trusted: bool,
    ) -> EntrySnapshot:
        """Every entry starting in `needed` as Toggl has it now, and a timer running since
        before it: the snapshot brought up to date by what changed since it was fetched where
        it covers `needed` (and is `trusted`), else a fetch of the whole range. `kept` itself if
        nothing changed; the caller writes a new one."""
        toggl = self._settings.toggl
        if trusted and kept is not None and kept.covers(needed, now):
            changes = await toggl.time_entries(since=kept.since)
            # An answer at Toggl's cap may have been cut short: then fetch the range itself.
            if len(changes) < TIME_ENTRIES_CAP:
                return kept.updated(changes, fetched_at=now)
        # A first look (nothing kept, or nothing since the range began) reaches further back:
        # Toggl's range selects by start, and a timer left running since before the range
        # still counts in it. Later fetches know such entries from the snapshot.
        first_look = kept is None or kept.since < needed[0]
        start = needed[0] - FIRST_LOOK_BACK if first_look else needed[0]
        fetched = await self._entries_between(start, needed[1])
        if not first_look:
            fetched.extend(await self._started_before(kept, fetched, needed[0]))
        return EntrySnapshot.of(
            (KeptEntry.from_entry(entry) for entry in fetched if not entry.is_deleted), needed, now
        )

    async def _entries_between(self, start: datetime, end: datetime) -> list[TimeEntry]:
        """Toggl's entries starting in [start, end); a start before the account's floor (Toggl
        names it) is moved up to the floor once."""
        toggl = self._settings.toggl
        try:
            return await toggl.time_entries_between(start, end)
        except toggl_errors.StartDateTooEarly as exc:
            if exc.earliest is None:
                raise
            floor = datetime.combine(exc.earliest, datetime.min.time(), tzinfo=UTC)
            if floor <= start:
                raise
            return await toggl.time_entries_between(floor + timedelta(days=1), end)

    async def _started_before(
        self, kept: EntrySnapshot | None, fetched: Sequence[TimeEntry], begin: datetime
    ) -> list[TimeEntry]:
        """Known entries that started before `begin` and reach past it (a timer left running
        for weeks): Toggl's range query selects by start, so they are not in `fetched`, yet
        their time after the window's first midnight counts. Each is asked for by id, one
        request each, which tells whether it was stopped, edited or deleted since; usually
        there is none."""
        if kept is None:
            return []
        toggl, since = self._settings.toggl, micros(begin)
        seen = {entry.id for entry in fetched}
        found: list[TimeEntry] = []
        for entry in kept.entries.values():
            if entry.id in seen or entry.start_us >= since or not entry.reaches(since, since + 1):
                continue
            try:
                found.append(await toggl.time_entry(entry.id))
            except toggl_errors.NotFound:
                continue  # deleted since
        return found

    async def _with_repairs(
        self, run: _Run, plan: SyncPlan, writes: list[ValueWrite]
    ) -> list[ValueWrite]:
        """Add a write for every mapped value that Exist holds differently from desired."""
        names = sorted(set(self._settings.mapping.values()))
        if not names:
            return writes
        current = await self._exist_values(names, plan.window)
        planned = {(write.attribute, write.date) for write in writes}
        for (attribute, day), desired in sorted(plan.desired.items()):
            if attribute not in names:
                continue
            # No data (null, 0 or no value at all) is right when desired is 0.
            if current.get((attribute, day), 0) == desired:
                continue
            fix = ValueWrite(attribute, day, desired)
            run.repaired.append(fix)
            if (attribute, day) not in planned:
                writes.append(fix)
        return writes

    async def _zero_out_then_sync(self, run: _Run) -> None:
        # The zeros change the ledger: the sync that follows must read it afresh.
        self._loaded = None
        zone = await self._zone(run)
        window = window_dates(local_today(self._settings.clock.now(), zone))
        ledger = await self._ledger.load(self._user)
        # Attributes still holding our values but no longer mapped are zeroed too, so that
        # clearing the ledger cannot strand their minutes in Exist.
        attributes = sorted(set(self._settings.mapping.values()) | {a for a, _ in ledger})
        zeros = [ValueWrite(attribute, day, 0) for attribute in attributes for day in window]
        await self._write(run, zeros, ledger, {(w.attribute, w.date): 0 for w in zeros})
        # The cleared ledger: each window value is the 0 Exist accepted; where Exist refused
        # the 0, the old value stays (it is still what Exist holds), so the sync that follows
        # corrects it. Rows outside the window say nothing about Exist any more.
        await self._ledger.forget(self._user, [key for key in ledger if key[1] not in window])
        await self._sync(run)

    async def _exist_values(
        self, names: Sequence[str], window: Sequence[date]
    ) -> dict[AttributeDate, int]:
        """What Exist holds for `names` over `window` (one paged read); no data is absent."""
        found = await self._settings.exist.all_attributes_with_values(
            days=len(window), date_max=window[-1], names=names, include_low_priority=True
        )
        return {
            (attribute.name, value.date): int(value.value)
            for attribute in found
            for value in attribute.values
            if value.value is not None and value.date in window
        }

    def _new_attributes(self, ledger: Mapping[AttributeDate, int]) -> list[str]:
        """Mapped attributes the ledger knows nothing of: Timebridge starts writing them (first
        mapped, taken over, or a fresh store against an Exist that holds values already)."""
        known = {attribute for attribute, _ in ledger}
        return sorted(set(self._settings.mapping.values()) - known)

    async def _adopt(
        self,
        names: Sequence[str],
        window: Sequence[date],
        ledger: dict[AttributeDate, int],
        *,
        keep: bool,
    ) -> None:
        """Attributes Timebridge starts writing: read what Exist holds for `window` once and
        use it as the ledger, so every day that differs from Toggl, zeros included, is
        written. No data (null, or no value) counts as 0. `keep`: store the adopted values (a
        dry run only looks)."""
        if not names or not window:
            return
        held = await self._exist_values(names, window)
        adopted = [
            ValueWrite(name, day, held.get((name, day), 0)) for name in names for day in window
        ]
        if keep:
            await self._ledger.record_accepted(self._user, adopted)
        for write in adopted:
            ledger[(write.attribute, write.date)] = write.value

    async def _write(
        self,
        run: _Run,
        writes: Sequence[ValueWrite],
        ledger: dict[AttributeDate, int],
        desired: Mapping[AttributeDate, int],
    ) -> None:
        """Send `writes` batch by batch, committing each batch's accepted items as it comes.

        Exist's per-item error codes are not documented, so a refusal is never judged by its
        code: when any item is refused, one ownership check (`attributes/owned`) tells whether
        the attribute is still ours. If it is, the refusal stands (the next run tries again). If
        a mapped one is not, it is re-acquired once, its current values adopted as the ledger
        and every value of `desired` that differs written again; if it cannot be re-acquired,
        the failure names the service that holds it now. An unmapped attribute that is no
        longer ours has nothing of ours left to bring down: its rows are forgotten. At most one
        check, one re-acquire and one retry per run.
        """
        refused = await self._write_batches(run, writes, ledger)
        if not refused:
            return
        exist = self._settings.exist
        owned = await owned_names(exist)
        mapped = set(self._settings.mapping.values())
        for write, failure in refused:
            if write.attribute in owned:
                run.failures.append(failure)
        lost = {write.attribute for write, _ in refused if write.attribute not in owned}
        if not lost:
            return
        # Rows about an attribute we no longer hold describe nothing we can vouch for.
        await self._forget_attributes(lost, ledger)
        wanted = lost & mapped
        regained = await reacquire(exist, wanted) if wanted else frozenset()
        taken = wanted - regained
        if taken:
            holders = await other_owners(exist, taken)
            run.failures.extend(
                RunFailure(
                    "exist",
                    f"{write.attribute} is fed by "
                    f"{holders.get(write.attribute, 'another service')} in Exist now and could "
                    "not be taken back; map it again to take it over",
                    attribute=write.attribute,
                    date=write.date,
                    error_code=failure.error_code,
                )
                for write, failure in refused
                if write.attribute in taken
            )
        if not regained:
            return
        window = sorted({day for (name, day) in desired if name in regained})
        await self._adopt(sorted(regained), window, ledger, keep=True)
        retry = [
            ValueWrite(name, day, value)
            for (name, day), value in sorted(desired.items())
            if name in regained and ledger.get((name, day)) != value
        ]
        run.failures.extend(failure for _, failure in await self._write_batches(run, retry, ledger))

    async def _write_batches(
        self,
        run: _Run,
        writes: Sequence[ValueWrite],
        ledger: dict[AttributeDate, int],
    ) -> list[tuple[ValueWrite, RunFailure]]:
        """Write in batches; returns the items Exist refused, each with the failure to record
        if the refusal stands (the caller decides)."""
        kept: list[tuple[ValueWrite, RunFailure]] = []
        for batch in _chunks(writes):
            by_key = {(write.attribute, write.date): write for write in batch}
            before = {key: ledger.get(key) for key in by_key}
            # Marked before sending: if the answer is lost or the run dies before the commit
            # below, the next plan writes these cells again, whatever their value then.
            await self._ledger.mark_in_flight(self._user, by_key)
            for key in by_key:
                ledger[key] = IN_FLIGHT
            try:
                result = await self._settings.exist.update(
                    UpdateItem(name=write.attribute, date=write.date, value=write.value)
                    for write in batch
                )
            except exist_errors.ExistError as exc:
                if _surely_not_applied(exc):
                    await self._restore(list(by_key), before, ledger)
                raise
            accepted = [by_key[(item.item.name, item.item.date)] for item in result.succeeded]
            await self._ledger.record_accepted(self._user, accepted)
            for write in accepted:
                ledger[(write.attribute, write.date)] = write.value
            # A refused item was not applied: Exist still holds what the ledger said before.
            refused_keys = [(f.item.name, f.item.date) for f in result.failed]
            await self._restore(refused_keys, before, ledger)
            run.written.extend(accepted)
            for failure in result.failed:
                write = by_key[(failure.item.name, failure.item.date)]
                kept.append(
                    (
                        write,
                        RunFailure(
                            "exist",
                            f"Exist refused {write.attribute} on {write.date}: {failure.error}",
                            attribute=write.attribute,
                            date=write.date,
                            error_code=failure.error_code,
                        ),
                    )
                )
        return kept

    async def _restore(
        self,
        keys: Sequence[AttributeDate],
        before: Mapping[AttributeDate, int | None],
        ledger: dict[AttributeDate, int],
    ) -> None:
        """Put back the ledger rows of items Exist refused (so not in flight after all)."""
        if not keys:
            return
        known = [ValueWrite(a, d, v) for (a, d) in keys if (v := before.get((a, d))) is not None]
        unknown = [key for key in keys if before.get(key) is None]
        await self._ledger.record_accepted(self._user, known)
        await self._ledger.forget(self._user, unknown)
        for write in known:
            ledger[(write.attribute, write.date)] = write.value
        for key in unknown:
            ledger.pop(key, None)

    async def _forget_attributes(
        self, attributes: set[str], ledger: dict[AttributeDate, int]
    ) -> None:
        if not attributes:
            return
        keys = [key for key in ledger if key[0] in attributes]
        await self._ledger.forget(self._user, keys)
        for key in keys:
            del ledger[key]

    async def _release_retired(
        self, run: _Run, plan: SyncPlan, ledger: dict[AttributeDate, int]
    ) -> None:
        """Release unmapped attributes once every row of theirs is back to zero, and forget them.

        Every row, not just the window's: a day outside the window (dated in another zone,
        say) may still hold our minutes, and forgetting it would strand them there. Such an
        attribute stays ours until that day enters the window and is zeroed, or is purged.
        """
        refused = {failure.attribute for failure in run.failures if failure.attribute}
        holding = {attribute for (attribute, _), value in ledger.items() if value != 0}
        ready = {
            attribute
            for attribute in plan.retired_attributes
            if attribute not in refused and attribute not in holding
        }
        if not ready:
            return
        outcome = await release_attributes(self._settings.exist, ready)
        run.released |= outcome.released
        run.failures.extend(
            RunFailure("exist", f"could not release {name}: {why}", attribute=name)
            for name, why in outcome.failed.items()
        )
        await self._ledger.forget(self._user, [key for key in ledger if key[0] in outcome.released])


def _same_mark(mark: Settled, stored: Settled | None) -> bool:
    """Whether `stored` already says what `mark` says (from an earlier instant: still true)."""
    return stored is not None and (stored.digest, stored.until) == (mark.digest, mark.until)


def _toggl_failure(exc: toggl_errors.TogglError) -> RunFailure:
    return RunFailure("toggl", exc.message, status_code=exc.status_code)


def _exist_failure(exc: exist_errors.ExistError) -> RunFailure:
    return RunFailure("exist", exc.message, status_code=exc.status_code)


def _failure_fields(report: RunReport) -> dict[str, object]:
    """What a log line says of a run's first failure: service, status, code and message (the
    clients' messages never carry a token; the log filter masks any that would)."""
    if not report.failures:
        return {}
    first = report.failures[0]
    fields: dict[str, object] = {"error_service": first.service, "error": first.message}
    if first.status_code is not None:
        fields["error_status"] = first.status_code
    if first.error_code is not None:
        fields["error_code"] = first.error_code
    return fields
