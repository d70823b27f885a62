"""One sync run for one user: the I/O around the pure planner.

A run brings the user's entry snapshot up to date (`timebridge.sync.snapshot`: one request in
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
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from timebridge.clock import Clock
from timebridge.exist import BATCH_SIZE, ERROR_UNAUTHORISED, AsyncExistClient, UpdateItem
from timebridge.exist import errors as exist_errors
from timebridge.retry import RetryReason
from timebridge.sync.attributes import reacquire, release_attributes
from timebridge.sync.ledger import LedgerStore, LoadedState, UserId
from timebridge.sync.planner import (
    IN_FLIGHT,
    AttributeDate,
    SyncPlan,
    ValueWrite,
    fetch_range,
    local_today,
    plan_holds_until,
    plan_sync,
    window_dates,
)
from timebridge.sync.settled import Settled, inputs_digest
from timebridge.sync.snapshot import EntrySnapshot, KeptEntry
from timebridge.toggl import TIME_ENTRIES_CAP, AsyncTogglClient
from timebridge.toggl import errors as toggl_errors

logger = logging.getLogger(__name__)

#: The time zone read from Exist's profile is trusted for this long before it is read again.
ZONE_REFRESH_INTERVAL = timedelta(days=1)
#: Exist's per-item code for an attribute the user does not have (the simulator's; [guess]).
ERROR_NOT_FOUND = "not_found"
#: Write refusals that one re-acquire can cure: not our attribute, or no attribute at all
#: (acquiring a template creates it).
_REACQUIRE_CODES = frozenset({ERROR_UNAUTHORISED, ERROR_NOT_FOUND})
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
    def error(self) -> str | None:
        """The first failure's message, for a one-line status."""
        return self.failures[0].message if self.failures else None


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

    async def plan(self) -> SyncPlan:
        """The plan a run would apply now, without writing anything (`sync --dry-run`).

        Upstream errors propagate as the clients raise them.
        """
        zone = await self._zone(None)
        now = self._settings.clock.now()
        entries = await self._settings.toggl.time_entries_between(*fetch_range(now, zone))
        ledger = await self._ledger.load(self._user)
        return plan_sync(entries, self._settings.mapping, ledger, zone, now)

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
        trusted = kept if run.kind is RunKind.SYNC else None
        snapshot = await self._current_snapshot(trusted, fetch_range(now, zone), now)
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
            entries = snapshot.sorted_entries()
            plan = plan_sync(entries, settings.mapping, ledger, zone, now)
            if plan.purge:
                await self._ledger.forget(self._user, plan.purge)
                for key in plan.purge:
                    ledger.pop(key, None)
            writes = list(plan.writes)
            if run.kind is RunKind.REPAIR:
                writes = await self._with_repairs(run, plan, writes)
            await self._write(run, writes, ledger)
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
        self, kept: EntrySnapshot | None, needed: tuple[datetime, datetime], now: datetime
    ) -> EntrySnapshot:
        """Every entry starting in `needed` as Toggl has it now: the snapshot brought up to
        date by what changed since it was fetched where it covers `needed`, else a fetch of the
        whole range. `kept` itself if nothing changed; the caller writes a new one."""
        toggl = self._settings.toggl
        if kept is not None and kept.covers(needed, now):
            changes = await toggl.time_entries(since=kept.since)
            # An answer at Toggl's cap may have been cut short: then fetch the range itself.
            if len(changes) < TIME_ENTRIES_CAP:
                return kept.updated(changes, fetched_at=now)
        fetched = await toggl.time_entries_between(*needed)
        return EntrySnapshot.of(
            (KeptEntry.from_entry(entry) for entry in fetched if not entry.is_deleted), needed, now
        )

    async def _with_repairs(
        self, run: _Run, plan: SyncPlan, writes: list[ValueWrite]
    ) -> list[ValueWrite]:
        """Add a write for every mapped value that Exist holds differently from desired."""
        names = sorted(set(self._settings.mapping.values()))
        if not names:
            return writes
        found = await self._settings.exist.all_attributes_with_values(
            days=len(plan.window), date_max=plan.window[-1], names=names
        )
        current = {
            (attribute.name, value.date): value.value
            for attribute in found
            for value in attribute.values
        }
        planned = {(write.attribute, write.date) for write in writes}
        for (attribute, day), desired in sorted(plan.desired.items()):
            if attribute not in names:
                continue
            held = current.get((attribute, day))
            # No data reads as zero in Exist, so a missing value is right when desired is 0.
            if (held is None and desired == 0) or held == desired:
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
        await self._write(run, zeros, ledger)
        # The cleared ledger: each window value is the 0 Exist accepted; where Exist refused
        # the 0, the old value stays (it is still what Exist holds), so the sync that follows
        # corrects it. Rows outside the window say nothing about Exist any more.
        await self._ledger.forget(self._user, [key for key in ledger if key[1] not in window])
        await self._sync(run)

    async def _write(
        self, run: _Run, writes: Sequence[ValueWrite], ledger: dict[AttributeDate, int]
    ) -> None:
        """Send `writes` batch by batch, committing each batch's accepted items as it comes.

        Items refused because the attribute is not ours (or no longer exists) are retried once,
        after one re-acquire, at the end. A retired attribute the user deleted in Exist has
        nothing left to bring down, so it is not re-created.
        """
        refused = await self._write_batches(run, writes, ledger, set_aside=_REACQUIRE_CODES)
        if not refused:
            return
        mapped = set(self._settings.mapping.values())
        missing = {write.attribute for write, code in refused if code == ERROR_NOT_FOUND}
        gone = missing - mapped
        # Rows about an attribute that no longer exists describe nothing in Exist: forgotten,
        # a retired one stops needing zeros and a re-created one gets every day again next run.
        await self._forget_attributes(missing, ledger)
        wanted = [(write, code) for write, code in refused if write.attribute not in gone]
        owned = await reacquire(self._settings.exist, {write.attribute for write, _ in wanted})
        run.failures.extend(
            RunFailure(
                "exist",
                f"{write.attribute} is not ours in Exist and could not be acquired again",
                attribute=write.attribute,
                date=write.date,
                error_code=code,
            )
            for write, code in wanted
            if write.attribute not in owned
        )
        retry = [write for write, _ in wanted if write.attribute in owned]
        await self._write_batches(run, retry, ledger, set_aside=frozenset())

    async def _write_batches(
        self,
        run: _Run,
        writes: Sequence[ValueWrite],
        ledger: dict[AttributeDate, int],
        *,
        set_aside: frozenset[str],
    ) -> list[tuple[ValueWrite, str]]:
        """Write in batches; returns the items refused with a code in `set_aside` (with the
        code), and records every other refusal as a failure."""
        kept: list[tuple[ValueWrite, str]] = []
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
                if failure.error_code in set_aside:
                    kept.append((write, failure.error_code))
                    continue
                run.failures.append(
                    RunFailure(
                        "exist",
                        f"Exist refused {write.attribute} on {write.date}: {failure.error}",
                        attribute=write.attribute,
                        date=write.date,
                        error_code=failure.error_code,
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
