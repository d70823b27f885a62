"""A faithful model of the seed's Toggl Track processor (Exist Integrations), as a runner against
the same simulators as Timebridge.

It follows the product seed (`shared/seeds/000_…`) and the study of the original code
(`shared/reference/prior-art-existintegrations.md`, sections 2.3-2.8 and 5), step for step:

Every run (`TogglProcessor::handle`, once an hour):
1. Check Exist: `GET attributes/owned/`. Any failure skips the user for this hour.
2. Fetch the user's entries of the last 14 days (`since` = the server's UTC date 14 days ago, in
   the Toggl profile's zone; no `until`, so up to the end of Toggl's today). A failure skips the
   user for this hour. The original paged Reports v2 (50 rows a page); the simulators speak v9,
   so this model makes one `/me/time_entries` request instead (its request count is a floor).
   Running timers are not in the report, so they count only once stopped.
3. For each entry of a mapped project, the delta ledger (`TogglService::processTimeEntry`): the
   entry is dated by the local date of its END in the Exist zone captured at connect (no split
   at midnight); its minutes are rounded per entry, half away from zero. The ledger is
   append-only rows of (entry, attribute, date, delta), grouped by date only (not attribute):
   a new entry adds +minutes; an entry whose date is not among its dates adds -sum for every
   old date (under its current attribute) and +minutes on the new date; otherwise a changed
   total adds the difference on that date. The sums count unsent rows too. Deleted entries,
   entries moved to an unmapped project or out of the window are never reversed.
4. Send the unsent zero rows with `attributes/update/`, then ALL unsent rows (the zero rows
   again included) with `attributes/increment/`, in batches of 35. Each item Exist accepts marks
   the oldest unsent row with the same attribute, date and value as sent; failed items (Exist
   refuses negative increments) are ignored and stay unsent, re-sent every run. A failed request
   (4xx/5xx) leaves its rows unsent.
5. Purge the rows dated more than 21 days before the server's UTC today.

Errors are those of the original's HTTP wrapper: 4xx/5xx become "no answer" and are handled as
above; a dropped connection or timeout is an uncaught exception that ends the run on the spot
(the original's command died for every remaining user). There are no retries and no timeouts.

Saving the mapping page (`ExistService::setAttributes` and `TogglController::setAttributes`):
acquire the newly mapped templates, release the unmapped ones and delete their rows, then
"zero" every mapped attribute: delete all its rows and add a zero row for each UTC date from 14
days ago to today, which the next run sends with `attributes/update/` before re-incrementing
every entry from scratch.

Departures, all in the original's favour or neutral: movies go to `movies_min` like Timebridge
(the original created a custom attribute), only the user's own entries exist in the simulated
workspace (the original counted teammates' too), and a single 401 disconnect is not modelled
(no history revokes a token).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bench.histories import RunStats, SimulatedCrash, World, loopback_transport
from timebridge.clock import Clock
from timebridge.exist import (
    AcquireItem,
    AsyncExistClient,
    ExistError,
    IncrementItem,
    UpdateItem,
    WriteResult,
)
from timebridge.retry import RetryPolicy
from timebridge.toggl import AsyncTogglClient, TimeEntry, TogglError

#: `BASE_DAYS`: how far back entries are fetched and zero rows are written.
BASE_DAYS = 14
#: `LOG_DAYS_KEPT`: ledger rows older than this are purged.
LOG_DAYS_KEPT = 21
#: `exist.maxUpdate`: items per Exist write request.
MAX_UPDATE = 35
#: The attributes the original offered for Toggl, in its config order.
TOGGL_ATTRIBUTES: tuple[str, ...] = (
    "tv_min",
    "movies_min",
    "gaming_min",
    "productive_min",
    "neutral_min",
    "distracting_min",
)
ZERO = "zero"
#: The original's Guzzle client had no timeout; this is long enough never to fire here.
NO_TIMEOUT = 300.0


@dataclass
class Row:
    """One `user_data` row: a delta in minutes, or a zero-out row (`service_id` "zero")."""

    id: int
    service_id: str
    attribute: str
    date: date
    value: int
    sent: bool = False


def round_minutes(seconds: int) -> int:
    """PHP's `round(ms / 1000 / 60)`: half away from zero (durations are never negative)."""
    return (2 * seconds + 60) // 120


class SeedProcessor:
    """The processor for one user, with its `user_data` rows and project mapping in memory."""

    def __init__(
        self,
        toggl: AsyncTogglClient,
        exist: AsyncExistClient,
        clock: Clock,
        *,
        exist_zone: ZoneInfo,
        toggl_zone: ZoneInfo,
    ) -> None:
        self.toggl = toggl
        self.exist = exist
        self.clock = clock
        #: `exist_users.timezone`: captured at connect, never refreshed by the processor.
        self.exist_zone = exist_zone
        self.toggl_zone = toggl_zone
        self.rows: list[Row] = []
        #: `toggl_projects.attribute`: project id -> attribute (None: ignored).
        self.projects: dict[int, str | None] = {}
        #: `user_attributes` for the Toggl integration.
        self.user_attributes: set[str] = set()
        self.is_new = True
        self._ids = itertools.count(1)
        #: Die after Exist answered this many write requests in the next run (a crash test).
        self.crash_after: int | None = None
        self._answers = 0

    # --- the mapping page -------------------------------------------------------------------

    async def save_mapping(self, requested: Mapping[int, str | None]) -> bool:
        """`TogglController::setAttributes`; False when Exist failed (nothing more is done)."""
        wanted = {attribute for attribute in requested.values() if attribute is not None}
        if not await self._set_attributes(wanted):
            return False
        self.is_new = False
        self.projects.update(requested)
        for attribute in sorted(self.user_attributes):
            self._zero_user_data(attribute)
        return True

    async def _set_attributes(self, wanted: set[str]) -> bool:
        """`ExistService::setAttributes`: acquire new attributes, release dropped ones."""
        acquire: list[str] = []
        release: list[str] = []
        for attribute in TOGGL_ATTRIBUTES:
            if attribute in wanted:
                if attribute not in self.user_attributes:
                    acquire.append(attribute)
                    if self.is_new:
                        self._zero_user_data(attribute)
            elif attribute in self.user_attributes:
                release.append(attribute)
                self.rows = [row for row in self.rows if row.attribute != attribute]
                self.user_attributes.discard(attribute)
        if acquire:
            try:
                acquired = await self.exist.acquire([AcquireItem(template=a) for a in acquire])
            except ExistError as exc:
                _crash_on_transport(exc)
                return False
            for success in acquired.succeeded:
                if success.item.template is not None:
                    self.user_attributes.add(success.item.template)
        if release:
            try:
                await self.exist.release(release)
            except ExistError as exc:
                _crash_on_transport(exc)
                return False
        return True

    def _zero_user_data(self, attribute: str) -> None:
        """`ExistService::zeroUserData`: forget the attribute's rows, zero its last 15 UTC days."""
        self.rows = [row for row in self.rows if row.attribute != attribute]
        today = self._server_today()
        for offset in range(BASE_DAYS, -1, -1):
            self._add(ZERO, attribute, today - timedelta(days=offset), 0)

    # --- the hourly run ---------------------------------------------------------------------

    async def run(self) -> str:
        """One `toggl:process` run for this user; returns how it ended."""
        self._answers = 0
        try:
            return await self._run()
        finally:
            self.crash_after = None

    async def _run(self) -> str:
        try:
            await self.exist.owned_attributes()
        except ExistError as exc:
            _crash_on_transport(exc)
            return "skipped: Exist check failed"
        try:
            entries = await self._time_entries()
        except TogglError as exc:
            _crash_on_transport(exc)
            return "skipped: Toggl failed"
        for entry in entries:
            self._process(entry)
        await self._send(zero=True)
        await self._send(zero=False)
        cutoff = self._server_today() - timedelta(days=LOG_DAYS_KEPT)
        self.rows = [row for row in self.rows if row.date >= cutoff]
        return "succeeded"

    async def _time_entries(self) -> list[TimeEntry]:
        """The detailed report: mapped projects, `since` 14 UTC days ago, `until` Toggl's today."""
        since = self._server_today() - timedelta(days=BASE_DAYS)
        today = self.clock.now().astimezone(self.toggl_zone).date()
        start = datetime.combine(since, time(0), self.toggl_zone)
        end = datetime.combine(today + timedelta(days=1), time(0), self.toggl_zone)
        entries = await self.toggl.time_entries_between(start, end)
        mapped = {project for project, attribute in self.projects.items() if attribute}
        return [
            entry
            for entry in entries
            if entry.project_id in mapped and not entry.is_running and not entry.is_deleted
        ]

    def _process(self, entry: TimeEntry) -> None:
        """`TogglService::processTimeEntries` for one entry, then `processTimeEntry`."""
        attribute = self.projects.get(entry.project_id) if entry.project_id else None
        if attribute is None or entry.stop is None:
            return
        day = entry.stop.astimezone(self.exist_zone).date()
        value = round_minutes(entry.duration)
        service_id = str(entry.id)
        sums: dict[date, int] = {}
        for row in self.rows:
            if row.service_id == service_id:
                sums[row.date] = sums.get(row.date, 0) + row.value
        if not sums:
            self._add(service_id, attribute, day, value)
        elif day not in sums:
            for old_day, total in sums.items():
                self._add(service_id, attribute, old_day, -total)
            self._add(service_id, attribute, day, value)
        elif sums[day] != value:
            self._add(service_id, attribute, day, value - sums[day])

    async def _send(self, *, zero: bool) -> None:
        """`ExistService::sendUserData`."""
        unsent = [row for row in self.rows if not row.sent and (not zero or row.service_id == ZERO)]
        payload = [(row.attribute, row.date, row.value) for row in unsent]
        for offset in range(0, len(payload), MAX_UPDATE):
            batch = payload[offset : offset + MAX_UPDATE]
            try:
                result = await self._write(batch, zero=zero)
            except ExistError as exc:
                _crash_on_transport(exc)
                continue  # the request failed: its rows stay unsent
            self._answers += 1
            if self.crash_after is not None and self._answers >= self.crash_after:
                raise SimulatedCrash("killed between Exist's answer and marking rows sent")
            for success in result.succeeded:
                item = success.item
                self._mark_sent(item.name, item.date, item.value, zero=zero)

    async def _write(
        self, batch: Sequence[tuple[str, date, int]], *, zero: bool
    ) -> WriteResult[UpdateItem] | WriteResult[IncrementItem]:
        if zero:
            return await self.exist.update(
                UpdateItem(name=name, date=day, value=value) for name, day, value in batch
            )
        return await self.exist.increment(
            IncrementItem(name=name, date=day, value=value) for name, day, value in batch
        )

    def _mark_sent(self, name: str, day: date | None, value: object, *, zero: bool) -> None:
        for row in self.rows:  # rows are kept in id order: the oldest match first
            if (
                not row.sent
                and row.attribute == name
                and row.date == day
                and row.value == value
                and (not zero or row.service_id == ZERO)
            ):
                row.sent = True
                return

    def _add(self, service_id: str, attribute: str, day: date, value: int) -> None:
        self.rows.append(Row(next(self._ids), service_id, attribute, day, value))

    def _server_today(self) -> date:
        """The server's date: the app runs in UTC."""
        return self.clock.now().astimezone(UTC).date()


def _crash_on_transport(exc: ExistError | TogglError) -> None:
    """The original caught only Guzzle's HTTP errors: no answer at all killed the run."""
    if exc.status_code is None:
        raise SimulatedCrash(f"uncaught: {exc}") from exc


class SeedProcessorEngine:
    """`SeedProcessor` as a `bench.histories.Engine`: connected as the original connected."""

    name = "seed processor"

    def __init__(self, world: World) -> None:
        self._world = world
        never = RetryPolicy.never()
        self.toggl = AsyncTogglClient(
            world.toggl_user.api_token,
            base_url=world.toggl_url,
            retry=never,
            clock=world.clock,
            timeout=NO_TIMEOUT,
            transport=loopback_transport(),
        )
        self.exist = AsyncExistClient(
            world.exist_token,
            base_url=world.exist_api_url,
            oauth_base_url=world.exist_oauth_url,
            retry=never,
            clock=world.clock,
            timeout=NO_TIMEOUT,
            transport=loopback_transport(),
        )
        self.processor: SeedProcessor | None = None
        self.outcomes: list[str] = []

    async def _connect(self) -> SeedProcessor:
        """Connecting reads the zones once: Exist's profile, and Toggl's `/me`."""
        if self.processor is None:
            profile = await self.exist.profile()
            me = await self.toggl.me()
            self.processor = SeedProcessor(
                self.toggl,
                self.exist,
                self._world.clock,
                exist_zone=ZoneInfo(profile.timezone),
                toggl_zone=ZoneInfo(me.timezone),
            )
        return self.processor

    @property
    def mapping(self) -> Mapping[int, str]:
        if self.processor is None:
            return {}
        return {project: a for project, a in self.processor.projects.items() if a is not None}

    async def save_mapping(self, requested: Mapping[int, str]) -> None:
        processor = await self._connect()
        # The page posts every project: the ones not mapped are posted as "Ignore".
        posted: dict[int, str | None] = dict.fromkeys(self._world.project_ids)
        posted.update(requested)
        await processor.save_mapping(posted)

    async def sync(self, *, patient: bool = False) -> RunStats:
        processor = await self._connect()
        toggl_before, exist_before = self.toggl.requests_sent, self.exist.requests_sent
        try:
            outcome = await processor.run()
        except SimulatedCrash as crash:
            outcome = f"crashed: {crash}"
        self.outcomes.append(outcome)
        return RunStats(
            outcome,
            self.toggl.requests_sent - toggl_before,
            self.exist.requests_sent - exist_before,
            processor.exist_zone.key,
        )

    def arm_crash(self, after_batches: int) -> None:
        if self.processor is not None:
            self.processor.crash_after = after_batches

    def disarm_crash(self) -> None:
        if self.processor is not None:
            self.processor.crash_after = None

    async def aclose(self) -> None:
        await self.toggl.aclose()
        await self.exist.aclose()
