"""Generated user histories, replayed end to end against the Toggl and Exist simulators.

A `History` is what one user does over a few days: create, edit, move, reassign and delete time
entries, start and stop timers, remap projects, change their Exist time zone, let the clock run
across midnights and DST changes, and ask for syncs in between. With faults, it also carries
what goes wrong meanwhile: 5xx, 429, 402, dropped connections and timeouts on either service,
Exist refusing items one by one, another service taking an attribute over, and the sync being
killed between Exist's answer and its own bookkeeping.

`generate_history` draws a history from a `Source`: `RandomSource` (a seeded `random.Random`, for
the benchmark) or any adapter with the same three methods (the property tests draw through
Hypothesis, so failures shrink). Histories are plain frozen data: the benchmark replays the same
history through several engines, with and without its faults (`History.without_faults`).

`replay` plays a history against fresh simulators behind a `Stage` (two loopback servers started
once and switched to new simulators for every history), through an `Engine` (Timebridge's
`SyncRunner` here, the seed's processor in `bench.baselines.seed_processor`). Then the faults
stop, one clean run completes, and Exist's stored values are compared with the independent
oracle (`tests.sync.oracle.truth`) for every mapped attribute and window date.

Bounds the generator keeps, because the bridge documents them (DESIGN.md, "Fetch": entries are
fetched by start, with one day of margin before the window): entries are created or edited with
at most 23 hours; a timer, which may run for days while the clock moves on, always starts (or is
moved to) at most 12 hours before that moment; and the clock moves at most about five days. So
every entry that reaches into the window starts inside the fetch range.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from types import TracebackType
from typing import Literal, Protocol, TypeVar
from zoneinfo import ZoneInfo

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send
from tests.sync.oracle import truth

from timebridge.clock import FakeClock
from timebridge.exist import AsyncExistClient, ValueType
from timebridge.fakes import Fault, FaultPlan, serve_in_thread
from timebridge.fakes.exist import ExistSimulator
from timebridge.fakes.toggl import QUOTA_MESSAGE, SimUser, TogglSimulator
from timebridge.records import UserId, ValueWrite
from timebridge.retry import RetryPolicy
from timebridge.sync.attributes import save_mapping
from timebridge.sync.ledger import InMemoryLedgerStore
from timebridge.sync.runner import RunReport, SyncRunner, UserSyncSettings
from timebridge.toggl import AsyncTogglClient, TimeEntry

T = TypeVar("T")

#: The user's Toggl projects; each history maps them (or not) to Exist attributes.
PROJECTS: tuple[str, ...] = (
    "Series",
    "Movies",
    "Games",
    "Deep work",
    "Email",
    "Social media",
    "Chores",
)
#: The Exist attributes a project can be mapped to (the bridge's templates).
ATTRIBUTES: tuple[str, ...] = (
    "tv_min",
    "movies_min",
    "gaming_min",
    "productive_min",
    "neutral_min",
    "distracting_min",
)
#: The mapping every history starts from (before its own changes): Chores is never mapped.
DEFAULT_MAPPING: tuple[str | None, ...] = (*ATTRIBUTES, None)

#: Zones with DST changes (one at midnight, one by half an hour), far east and west of UTC,
#: and with offsets that are not whole hours.
ZONES: tuple[str, ...] = (
    "Europe/Berlin",
    "America/Los_Angeles",
    "Pacific/Kiritimati",
    "Pacific/Tongatapu",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Asia/Kathmandu",
    "UTC",
)
#: Where histories begin: shortly before a DST change or a midnight in that zone (local time).
ANCHORS: tuple[tuple[str, datetime], ...] = (
    ("Europe/Berlin", datetime(2026, 3, 29, 2, 0)),  # spring forward, 02:00 -> 03:00
    ("Europe/Berlin", datetime(2026, 10, 25, 3, 0)),  # fall back, 03:00 -> 02:00
    ("America/Los_Angeles", datetime(2026, 3, 8, 2, 0)),
    ("America/Los_Angeles", datetime(2026, 11, 1, 2, 0)),
    ("Pacific/Kiritimati", datetime(2026, 3, 29, 0, 0)),  # UTC+14
    ("Pacific/Tongatapu", datetime(2026, 10, 25, 0, 0)),  # UTC+13
    ("Australia/Lord_Howe", datetime(2026, 4, 5, 2, 0)),  # back by half an hour
    ("Australia/Lord_Howe", datetime(2026, 10, 4, 2, 0)),  # forward by half an hour
    ("America/Santiago", datetime(2026, 4, 5, 0, 0)),  # DST ends at midnight
    ("America/Santiago", datetime(2026, 9, 6, 0, 0)),  # DST starts at midnight
    ("Asia/Kathmandu", datetime(2026, 6, 15, 0, 0)),  # UTC+5:45
    ("UTC", datetime(2026, 1, 15, 0, 0)),
)
#: The longest entry a history creates: entries that reach into the window must start within
#: the fetch's one-day margin before it.
MAX_ENTRY_SECONDS = 23 * 3600
#: A timer starts at most this long before the moment it is started (or moved).
MAX_TIMER_AGE = timedelta(hours=12)
#: The most a history moves the clock in total (plus the day after a late zone change).
MAX_ADVANCE = timedelta(days=4)
#: Timebridge reads the Exist zone at most daily; a history lets a day pass after its last
#: zone change so that the final check is about the zone the user has now.
ZONE_SETTLE = timedelta(days=1, minutes=1)
#: Latency of a "timeout" fault, and the client timeout used while faults may be active.
TIMEOUT_LATENCY = 0.1
FAST_TIMEOUT = 0.05
#: The client timeout for runs without faults (a loaded CI machine must not time out).
PATIENT_TIMEOUT = 30.0

EXIST_USERNAME = "alice"
EXIST_CLIENT_ID = "timebridge-fidelity"
EXIST_CLIENT_SECRET = "timebridge-fidelity-secret"
EXIST_SERVICE = "timebridge"
TOGGL_TOKEN = "toggl-fidelity-token-0001"
USER_ID: UserId = 1


# --- where the randomness comes from ------------------------------------------------------------


class Source(Protocol):
    """What the generator draws from. Simpler values come first, so a shrinking source (such as
    Hypothesis) shrinks histories towards small integers, first options and `False`."""

    def integer(self, low: int, high: int) -> int:
        """An integer in [low, high]."""
        ...

    def choice(self, options: Sequence[T]) -> T:
        """One of `options`."""
        ...

    def chance(self, probability: float) -> bool:
        """True with about this probability."""
        ...


class RandomSource:
    """A `Source` over a seeded `random.Random` (the benchmark's)."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def integer(self, low: int, high: int) -> int:
        return self._rng.randint(low, high)

    def choice(self, options: Sequence[T]) -> T:
        return options[self._rng.randrange(len(options))]

    def chance(self, probability: float) -> bool:
        return self._rng.random() < probability


# --- what a history is made of -------------------------------------------------------------------

FaultKind = Literal["5xx", "429", "402", "drop", "timeout", "items"]
Service = Literal["toggl", "exist"]


@dataclass(frozen=True)
class FaultRule:
    """One fault on one simulator, as data (turned into a `timebridge.fakes.Fault` on replay)."""

    service: Service
    kind: FaultKind
    path: str
    #: Fire for the next `times` matching requests; None: until cleared.
    times: int | None = None
    probability: float = 1.0
    status: int = 503

    def to_fault(self) -> Fault:
        where = {"path": self.path, "times": self.times, "probability": self.probability}
        fault = Fault.model_validate(where)
        if self.kind == "5xx":
            return fault.model_copy(update={"status": self.status, "body": "upstream trouble"})
        if self.kind == "429":
            headers = {"Retry-After": "1"}
            return fault.model_copy(update={"status": 429, "body": "Slow down", "headers": headers})
        if self.kind == "402":
            headers = {"X-Toggl-Quota-Remaining": "0", "X-Toggl-Quota-Resets-In": "900"}
            return fault.model_copy(
                update={"status": 402, "body": QUOTA_MESSAGE, "headers": headers}
            )
        if self.kind == "drop":
            return fault.model_copy(update={"drop": True})
        if self.kind == "timeout":
            # The answer comes after the client gave up; the request itself is applied.
            return fault.model_copy(update={"latency": TIMEOUT_LATENCY})
        # Exist answers 202 and lists none of the items as accepted: each one failed.
        body = '{"success": [], "failed": []}'
        return fault.model_copy(update={"method": "POST", "status": 202, "body": body})

    def __str__(self) -> str:
        how = f"x{self.times}" if self.times is not None else f"p={self.probability:.2f}"
        what = f"{self.status}" if self.kind == "5xx" else self.kind
        return f"{self.service}:{what}@{self.path}[{how}]"


@dataclass(frozen=True)
class Create:
    project: int
    start: datetime
    seconds: int


@dataclass(frozen=True)
class StartTimer:
    project: int
    start: datetime


@dataclass(frozen=True)
class StopTimer:
    pass


@dataclass(frozen=True)
class EditDuration:
    entry: int
    seconds: int


@dataclass(frozen=True)
class EditDescription:
    entry: int
    description: str


@dataclass(frozen=True)
class Move:
    entry: int
    start: datetime


@dataclass(frozen=True)
class Reassign:
    entry: int
    project: int


@dataclass(frozen=True)
class Delete:
    entry: int


@dataclass(frozen=True)
class Remap:
    """The user saves the mapping page with this mapping (index: project, value: attribute)."""

    mapping: tuple[str | None, ...]


@dataclass(frozen=True)
class ChangeZone:
    """The user changes their time zone in Exist's settings."""

    zone: str


@dataclass(frozen=True)
class Advance:
    seconds: int


@dataclass(frozen=True)
class Sync:
    pass


@dataclass(frozen=True)
class InjectFaults:
    """From now until `ClearFaults` (or the end), these faults apply."""

    rules: tuple[FaultRule, ...]


@dataclass(frozen=True)
class ClearFaults:
    pass


@dataclass(frozen=True)
class ArmCrash:
    """The next run is killed after Exist answered its `after_batches`-th write, before the
    engine records what Exist accepted."""

    after_batches: int


@dataclass(frozen=True)
class StealAttribute:
    """Another service (RescueTime) takes the attribute over in Exist."""

    attribute: str


@dataclass(frozen=True)
class BreakAttribute:
    """Exist refuses every value for this attribute, one by one, until the faults stop."""

    attribute: str


Op = (
    Create
    | StartTimer
    | StopTimer
    | EditDuration
    | EditDescription
    | Move
    | Reassign
    | Delete
    | Remap
    | ChangeZone
    | Advance
    | Sync
    | InjectFaults
    | ClearFaults
    | ArmCrash
    | StealAttribute
    | BreakAttribute
)
FAULT_OPS = (InjectFaults, ClearFaults, ArmCrash, StealAttribute, BreakAttribute)


@dataclass(frozen=True)
class History:
    """One user's days: where the clock starts, their zones and mapping, and what happens."""

    start: datetime
    zone: str
    toggl_zone: str
    mapping: tuple[str | None, ...]
    ops: tuple[Op, ...]
    #: Seeds the simulators' fault dice (probabilistic rules), so a replay is repeatable.
    fault_seed: int = 0

    @property
    def has_faults(self) -> bool:
        return any(isinstance(op, FAULT_OPS) for op in self.ops)

    @property
    def has_timeouts(self) -> bool:
        return any(
            isinstance(op, InjectFaults) and any(rule.kind == "timeout" for rule in op.rules)
            for op in self.ops
        )

    @property
    def syncs(self) -> int:
        return sum(isinstance(op, Sync) for op in self.ops)

    def without_faults(self) -> History:
        """The same user activity with nothing going wrong."""
        return replace(self, ops=tuple(op for op in self.ops if not isinstance(op, FAULT_OPS)))

    def describe(self) -> str:
        lines = [
            f"History(start={self.start.isoformat()}, zone={self.zone}, "
            f"toggl_zone={self.toggl_zone}, fault_seed={self.fault_seed})",
            f"  mapping: {_mapping_text(self.mapping)}",
        ]
        lines += [f"  {number:>3} {_op_text(op)}" for number, op in enumerate(self.ops, 1)]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.describe()


def _mapping_text(mapping: Sequence[str | None]) -> str:
    return ", ".join(f"{PROJECTS[index]}->{attribute}" for index, attribute in enumerate(mapping))


def _op_text(op: Op) -> str:
    if isinstance(op, Create):
        return f"create #{PROJECTS[op.project]} {op.start.isoformat()} {op.seconds}s"
    if isinstance(op, StartTimer):
        return f"start timer #{PROJECTS[op.project]} at {op.start.isoformat()}"
    if isinstance(op, Move):
        return f"move entry {op.entry} to {op.start.isoformat()}"
    if isinstance(op, Reassign):
        return f"reassign entry {op.entry} to #{PROJECTS[op.project]}"
    if isinstance(op, Remap):
        return f"remap: {_mapping_text(op.mapping)}"
    if isinstance(op, InjectFaults):
        return "faults: " + ", ".join(str(rule) for rule in op.rules)
    return repr(op)


# --- generating histories ------------------------------------------------------------------------


def local_midnight(day: date, zone: ZoneInfo) -> datetime:
    """The UTC instant a local date begins."""
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


@dataclass
class _Draft:
    """What the generator must know about the user's state to draw valid operations."""

    now: datetime
    zone: ZoneInfo
    mapping: tuple[str | None, ...]
    alive: list[int] = field(default_factory=list)
    created: int = 0
    running: int | None = None
    #: Entries started as timers (of any length) and not given a duration since.
    timers: set[int] = field(default_factory=set)
    advanced: timedelta = timedelta(0)
    zone_changed_at: datetime | None = None
    ops: list[Op] = field(default_factory=list)


def _when(source: Source, draft: _Draft) -> datetime:
    """An instant to start an entry at: recent, around a local midnight, anywhere in the last
    fifteen days, or a little in the future."""
    kind = source.integer(0, 3)
    if kind == 0:
        return draft.now - timedelta(seconds=source.integer(0, 6 * 3600))
    if kind == 1:
        today = draft.now.astimezone(draft.zone).date()
        day = today - timedelta(days=source.integer(0, 15))
        offset = timedelta(seconds=source.integer(-4 * 3600, 4 * 3600))
        return local_midnight(day, draft.zone) + offset
    if kind == 2:
        return draft.now - timedelta(seconds=source.integer(0, 15 * 86400))
    return draft.now + timedelta(seconds=source.integer(1, 3 * 3600))


def _seconds(source: Source) -> int:
    """A duration: seconds around the rounding edges, minutes, hours, or most of a day."""
    kind = source.integer(0, 3)
    if kind == 0:
        return source.integer(0, 120)
    if kind == 1:
        return source.integer(2, 90) * 60 + source.choice((0, 29, 30, 31, 59))
    if kind == 2:
        return source.integer(0, 6 * 3600)
    return source.integer(6 * 3600, MAX_ENTRY_SECONDS)


def _timer_start(source: Source, draft: _Draft) -> datetime:
    return draft.now - timedelta(seconds=source.integer(0, int(MAX_TIMER_AGE.total_seconds())))


def _advance(source: Source, draft: _Draft) -> Advance | None:
    kind = source.integer(0, 3)
    if kind == 0:
        step = timedelta(minutes=source.integer(1, 90))
    elif kind == 1:
        step = timedelta(hours=source.integer(1, 8), minutes=source.integer(0, 59))
    elif kind == 2:
        # To just after (or just before) the next local midnight.
        tomorrow = draft.now.astimezone(draft.zone).date() + timedelta(days=1)
        target = local_midnight(tomorrow, draft.zone) + timedelta(minutes=source.integer(-10, 30))
        step = max(target - draft.now, timedelta(minutes=1))
    else:
        step = timedelta(hours=source.integer(20, 30))
    step = min(step, MAX_ADVANCE - draft.advanced)
    if step <= timedelta(0):
        return None
    return Advance(int(step.total_seconds()))


def _fault_rules(source: Source) -> tuple[FaultRule, ...]:
    rules: list[FaultRule] = []
    for _ in range(source.integer(1, 3)):
        service: Service = source.choice(("toggl", "exist"))
        if service == "toggl":
            kinds: tuple[FaultKind, ...] = ("5xx", "429", "drop", "402", "timeout")
            paths: tuple[str, ...] = ("/api/v9/me/time_entries", "/api/v9/*")
        else:
            kinds = ("5xx", "items", "429", "drop", "timeout")
            paths = (
                "/api/2/attributes/update/",
                "/api/2/*",
                "/api/2/attributes/increment/",
                "/api/2/accounts/profile/",
            )
        kind = source.choice(kinds)
        path = "/api/2/attributes/*" if kind == "items" else source.choice(paths)
        # Timeouts cost real waiting: a few at a time, never a storm until cleared.
        if kind == "timeout" or source.chance(0.7):
            times: int | None = source.integer(1, 4)
            probability = 1.0
        else:
            times, probability = None, source.choice((0.5, 0.25, 0.75))
        status = source.choice((503, 500, 502, 504))
        rules.append(FaultRule(service, kind, path, times, probability, status))
    return tuple(rules)


#: How often each kind of fault operation is drawn, against the user's operations (USER_OPS).
FAULT_WEIGHTS: Mapping[str, int] = {"faults": 7, "calm": 3, "crash": 3, "steal": 1, "break": 2}
USER_OPS: tuple[tuple[int, str], ...] = (
    (18, "sync"),
    (20, "create"),
    (15, "advance"),
    (6, "delete"),
    (6, "edit"),
    (6, "move"),
    (4, "reassign"),
    (4, "start"),
    (3, "stop"),
    (2, "describe"),
    (3, "remap"),
    (3, "zone"),
)


def generate_history(
    source: Source,
    *,
    faults: bool = True,
    max_ops: int = 30,
    fault_weights: Mapping[str, int] = FAULT_WEIGHTS,
) -> History:
    """Draw one history. With `faults`, fault operations are mixed into the user's activity,
    each kind as often as `fault_weights` says (a kind left out is never drawn)."""
    anchor_zone, anchor_local = source.choice(ANCHORS)
    anchor = anchor_local.replace(tzinfo=ZoneInfo(anchor_zone)).astimezone(UTC)
    start = anchor - timedelta(minutes=source.integer(0, 36 * 60))
    zone = anchor_zone if not source.chance(0.2) else source.choice(ZONES)
    toggl_zone = zone if not source.chance(0.3) else source.choice(ZONES)
    mapping = list(DEFAULT_MAPPING)
    for _ in range(source.integer(0, 2) if source.chance(0.3) else 0):
        mapping[source.integer(0, len(PROJECTS) - 1)] = source.choice((None, *ATTRIBUTES))
    draft = _Draft(now=start, zone=ZoneInfo(zone), mapping=tuple(mapping))

    kinds = list(USER_OPS)
    if faults:
        kinds += [(weight, kind) for kind, weight in fault_weights.items() if weight > 0]
    total = sum(weight for weight, _ in kinds)
    for _ in range(source.integer(1, max_ops)):
        pick = source.integer(0, total - 1)
        op = _draw_op(source, draft, _weighted(kinds, pick))
        if op is not None:
            draft.ops.append(op)
            _track(draft, op)
    if draft.zone_changed_at is not None and draft.now < draft.zone_changed_at + ZONE_SETTLE:
        settle = Advance(int((draft.zone_changed_at + ZONE_SETTLE - draft.now).total_seconds()))
        draft.ops.append(settle)
        _track(draft, settle)
    return History(
        start=start,
        zone=zone,
        toggl_zone=toggl_zone,
        mapping=tuple(mapping),
        ops=tuple(draft.ops),
        fault_seed=source.integer(0, 2**31),
    )


def _weighted(kinds: Sequence[tuple[int, str]], pick: int) -> str:
    for weight, kind in kinds:
        if pick < weight:
            return kind
        pick -= weight
    return kinds[-1][1]


def _draw_op(source: Source, draft: _Draft, kind: str) -> Op | None:
    project_count = len(PROJECTS)
    if kind in ("delete", "edit", "move", "reassign", "describe") and not draft.alive:
        kind = "create"
    if kind == "sync":
        return Sync()
    if kind == "create":
        project = source.integer(0, project_count - 1)
        return Create(project, _when(source, draft), _seconds(source))
    if kind == "advance":
        return _advance(source, draft) or Sync()
    if kind == "start":
        return StartTimer(source.integer(0, project_count - 1), _timer_start(source, draft))
    if kind == "stop":
        return StopTimer() if draft.running is not None else Sync()
    if kind == "remap":
        mapping = list(draft.mapping)
        mapping[source.integer(0, project_count - 1)] = source.choice((None, *ATTRIBUTES))
        return Remap(tuple(mapping))
    if kind == "zone":
        return ChangeZone(source.choice(ZONES))
    if kind == "faults":
        return InjectFaults(_fault_rules(source))
    if kind == "calm":
        return ClearFaults()
    if kind == "crash":
        return ArmCrash(source.integer(1, 2))
    if kind == "steal":
        return StealAttribute(source.choice(ATTRIBUTES))
    if kind == "break":
        return BreakAttribute(source.choice(ATTRIBUTES))
    entry = source.choice(draft.alive)
    if kind == "delete":
        return Delete(entry)
    if kind == "edit":
        return EditDuration(entry, _seconds(source))
    if kind == "describe":
        return EditDescription(entry, f"edited {source.integer(0, 99)}")
    if kind == "reassign":
        return Reassign(entry, source.integer(0, project_count - 1))
    # Move: a timer, running or stopped, may have run for days while the clock moved on, so it
    # stays recent: the fetch must see where it starts (see MAX_ENTRY_SECONDS).
    start = _timer_start(source, draft) if entry in draft.timers else _when(source, draft)
    return Move(entry, start)


def _track(draft: _Draft, op: Op) -> None:
    if isinstance(op, Create | StartTimer):
        draft.alive.append(draft.created)
        if isinstance(op, StartTimer):
            draft.running = draft.created
            draft.timers.add(draft.created)
        draft.created += 1
    elif isinstance(op, EditDuration):
        draft.timers.discard(op.entry)
        if op.entry == draft.running:
            draft.running = None
    elif isinstance(op, StopTimer):
        draft.running = None
    elif isinstance(op, Delete):
        draft.alive.remove(op.entry)
        if op.entry == draft.running:
            draft.running = None
    elif isinstance(op, Remap):
        draft.mapping = op.mapping
    elif isinstance(op, ChangeZone):
        draft.zone = ZoneInfo(op.zone)
        draft.zone_changed_at = draft.now
    elif isinstance(op, Advance):
        draft.now += timedelta(seconds=op.seconds)
        draft.advanced += timedelta(seconds=op.seconds)


# --- the stage: two loopback servers, new simulators for every history ---------------------------


class Switchboard:
    """An ASGI app that forwards to whichever simulator is plugged in, and counts the requests
    still being answered (a "timeout" fault answers after the client gave up)."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.app
        if app is None:
            raise RuntimeError("no simulator is plugged in")
        self.in_flight += 1
        try:
            await app(scope, receive, send)
        finally:
            self.in_flight -= 1


@dataclass
class World:
    """One history's simulators, user and clock."""

    history: History
    clock: FakeClock
    toggl_sim: TogglSimulator
    exist_sim: ExistSimulator
    toggl_user: SimUser
    project_ids: tuple[int, ...]
    exist_token: str
    toggl_url: str
    exist_api_url: str
    exist_oauth_url: str
    entry_ids: list[int] = field(default_factory=list)
    #: Attributes a `BreakAttribute` broke, with the value type to restore when faults stop.
    broken: dict[str, ValueType] = field(default_factory=dict)

    @property
    def exist_zone(self) -> ZoneInfo:
        return self.exist_sim.world.user(EXIST_USERNAME).zone

    @property
    def workspace_id(self) -> int:
        return self.toggl_user.default_workspace_id

    def mapping_of(self, attributes: Sequence[str | None]) -> dict[int, str]:
        return {
            self.project_ids[index]: attribute
            for index, attribute in enumerate(attributes)
            if attribute is not None
        }

    def entries(self) -> list[TimeEntry]:
        return self.toggl_sim.world.entries_of(self.toggl_user.id)

    def truth(self, mapping: Mapping[int, str], zone: ZoneInfo) -> dict[tuple[str, date], int]:
        return truth(self.entries(), dict(mapping), zone, self.clock.now())

    def stored(self, attribute: str) -> dict[date, int]:
        try:
            values = self.exist_sim.stored_values(EXIST_USERNAME, attribute)
        except ValueError:  # the attribute does not exist in Exist: no data
            return {}
        return {day: int(value) for day, value in values.items() if isinstance(value, int | float)}

    def exist_values(self, keys: Sequence[tuple[str, date]]) -> dict[tuple[str, date], int]:
        """Exist's stored value for each key; no data reads as 0, as in Exist's apps."""
        by_attribute = {attribute: self.stored(attribute) for attribute in {a for a, _ in keys}}
        return {(a, day): by_attribute[a].get(day, 0) for a, day in keys}

    def set_faults(self, rules: Sequence[FaultRule]) -> None:
        self.toggl_sim.faults.clear()
        self.exist_sim.faults.clear()
        for rule in rules:
            sim = self.toggl_sim if rule.service == "toggl" else self.exist_sim
            sim.faults.add(rule.to_fault())

    def calm(self) -> None:
        """The faults stop: no fault rules, broken attributes mended, hourly budgets fresh."""
        self.set_faults(())
        with self.exist_sim.world.lock:
            attributes = self.exist_sim.world.user(EXIST_USERNAME).attributes
            for name, value_type in self.broken.items():
                if name in attributes:
                    attributes[name].value_type = value_type
        self.broken.clear()
        self.toggl_sim.quota.reset()
        self.exist_sim.quota.reset()


class Stage:
    """The simulators' two servers, started once; `world()` plugs in fresh simulators."""

    def __init__(self) -> None:
        self.toggl_board = Switchboard()
        self.exist_board = Switchboard()
        self._stack = contextlib.ExitStack()
        self.toggl_base = ""
        self.exist_base = ""

    def __enter__(self) -> Stage:
        toggl = self._stack.enter_context(serve_in_thread(self.toggl_board))
        exist = self._stack.enter_context(serve_in_thread(self.exist_board))
        self.toggl_base, self.exist_base = toggl.url, exist.url
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    def world(self, history: History) -> World:
        clock = FakeClock(history.start)
        toggl_sim = TogglSimulator(clock)
        exist_sim = ExistSimulator(clock)
        toggl_sim.faults.rng = random.Random(history.fault_seed)
        exist_sim.faults.rng = random.Random(history.fault_seed + 1)
        user = toggl_sim.add_user(
            api_token=TOGGL_TOKEN, fullname="Alice", timezone=history.toggl_zone, plan="premium"
        )
        projects = tuple(
            toggl_sim.add_project(user.default_workspace_id, name).id for name in PROJECTS
        )
        exist_sim.add_user(EXIST_USERNAME, timezone=history.zone)
        exist_sim.add_service("rescuetime", "RescueTime")
        client = exist_sim.add_client(
            "Timebridge",
            client_id=EXIST_CLIENT_ID,
            client_secret=EXIST_CLIENT_SECRET,
            service=EXIST_SERVICE,
        )
        token = exist_sim.issue_personal_token(EXIST_USERNAME, client.client_id)
        self.toggl_board.app = toggl_sim.asgi_app
        self.exist_board.app = exist_sim.asgi_app
        return World(
            history=history,
            clock=clock,
            toggl_sim=toggl_sim,
            exist_sim=exist_sim,
            toggl_user=user,
            project_ids=projects,
            exist_token=token,
            toggl_url=f"{self.toggl_base}/api/v9",
            exist_api_url=f"{self.exist_base}/api/2/",
            exist_oauth_url=f"{self.exist_base}/oauth2/",
        )

    async def quiesce(self) -> None:
        """Wait until no request is still being answered (late answers of "timeout" faults)."""
        deadline = time.monotonic() + 10 * TIMEOUT_LATENCY + 5
        while self.toggl_board.in_flight or self.exist_board.in_flight:
            if time.monotonic() > deadline:
                raise RuntimeError("the simulators are still answering requests")
            await asyncio.sleep(0.01)


# --- engines: what turns Toggl's entries into Exist's values -------------------------------------


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def loopback_transport() -> httpx.AsyncHTTPTransport:
    """An HTTP transport for the simulators: plain HTTP on loopback, so the TLS context (whose
    CA bundle takes ~20 ms to load, for every client) is made once per process."""
    return httpx.AsyncHTTPTransport(verify=_tls_context())


@dataclass(frozen=True)
class RunStats:
    """One sync run as the benchmark counts it."""

    outcome: str
    toggl_requests: int
    exist_requests: int
    #: The zone the run dated days in, when the engine says.
    zone: str | None = None


class Engine(Protocol):
    """A sync engine for one user, driven by `replay`."""

    name: str

    @property
    def mapping(self) -> Mapping[int, str]:
        """The mapping as saved (Toggl project id -> Exist attribute)."""
        ...

    async def save_mapping(self, requested: Mapping[int, str]) -> None:
        """What saving the mapping page does."""
        ...

    async def sync(self, *, patient: bool = False) -> RunStats:
        """One scheduled run; `patient` runs use long client timeouts."""
        ...

    def arm_crash(self, after_batches: int) -> None:
        """Kill the next run after Exist answered its `after_batches`-th write."""
        ...

    def disarm_crash(self) -> None: ...

    async def aclose(self) -> None: ...


EngineFactory = Callable[[World], Engine]


class SimulatedCrash(Exception):
    """The process died here (raised by a crash armed with `Engine.arm_crash`)."""


class CrashingLedger(InMemoryLedgerStore):
    """Timebridge's in-memory ledger, which can be made to die once between Exist's answer and
    the commit of what Exist accepted (the runner commits each batch right after the answer)."""

    def __init__(self) -> None:
        super().__init__()
        self._crash_after: int | None = None
        self._batches = 0

    def arm(self, after_batches: int) -> None:
        self._crash_after, self._batches = after_batches, 0

    def disarm(self) -> None:
        self._crash_after = None

    async def record_accepted(self, user_id: UserId, accepted: Sequence[ValueWrite]) -> None:
        if self._crash_after is not None:
            self._batches += 1
            if self._batches >= self._crash_after:
                self._crash_after = None
                raise SimulatedCrash("killed between Exist's answer and the ledger commit")
        await super().record_accepted(user_id, accepted)


class TimebridgeEngine:
    """Timebridge's `SyncRunner`, run as the scheduler would: a runner built afresh for every
    run from what the caller persisted (mapping, the zone read from Exist and when)."""

    name = "timebridge"

    def __init__(self, world: World) -> None:
        self._world = world
        self.ledger = CrashingLedger()
        self._mapping: dict[int, str] = {}
        self.exist_zone: ZoneInfo | None = None
        self.exist_zone_checked_at: datetime | None = None
        self.reports: list[RunReport] = []
        self._patient = self._clients(PATIENT_TIMEOUT)
        self._fast = self._clients(FAST_TIMEOUT) if world.history.has_timeouts else self._patient

    def _clients(self, timeout: float) -> tuple[AsyncTogglClient, AsyncExistClient]:
        world = self._world
        # Production's attempts, without the sleeping between them.
        retry = RetryPolicy.testing(attempts=RetryPolicy().attempts)
        toggl = AsyncTogglClient(
            world.toggl_user.api_token,
            base_url=world.toggl_url,
            retry=retry,
            clock=world.clock,
            timeout=timeout,
            transport=loopback_transport(),
        )
        exist = AsyncExistClient(
            world.exist_token,
            base_url=world.exist_api_url,
            oauth_base_url=world.exist_oauth_url,
            retry=retry,
            clock=world.clock,
            timeout=timeout,
            transport=loopback_transport(),
        )
        return toggl, exist

    @property
    def mapping(self) -> Mapping[int, str]:
        return self._mapping

    @property
    def last_report(self) -> RunReport:
        return self.reports[-1]

    async def save_mapping(self, requested: Mapping[int, str]) -> None:
        change = await save_mapping(
            self._patient[1], self.ledger, USER_ID, previous=self._mapping, requested=requested
        )
        self._mapping = dict(change.mapping)

    async def sync(self, *, patient: bool = False) -> RunStats:
        toggl, exist = self._patient if patient else self._fast
        settings = UserSyncSettings(
            user_id=USER_ID,
            toggl=toggl,
            exist=exist,
            mapping=dict(self._mapping),
            clock=self._world.clock,
            exist_zone=self.exist_zone,
            exist_zone_checked_at=self.exist_zone_checked_at,
        )
        report = await SyncRunner(settings, self.ledger).run()
        self.ledger.disarm()  # a crash is armed for one run only
        if report.zone_checked_at is not None and report.zone is not None:
            self.exist_zone = ZoneInfo(report.zone)
            self.exist_zone_checked_at = report.zone_checked_at
        self.reports.append(report)
        return RunStats(
            report.outcome.value, report.toggl_requests, report.exist_requests, report.zone
        )

    def arm_crash(self, after_batches: int) -> None:
        self.ledger.arm(after_batches)

    def disarm_crash(self) -> None:
        self.ledger.disarm()

    async def aclose(self) -> None:
        for toggl, exist in {self._patient, self._fast}:
            await toggl.aclose()
            await exist.aclose()


# --- replaying -----------------------------------------------------------------------------------

Cell = tuple[str, date]


@dataclass(frozen=True)
class Outcome:
    """How one engine ended one history: Exist against the truth after the final clean run."""

    engine: str
    faults: bool
    exact: bool
    #: Sum over mapped window cells of |Exist - truth|, in minutes.
    error_minutes: int
    cells: int
    #: The cells that differ: (attribute, date, Exist, truth).
    wrong: tuple[tuple[str, date, int, int], ...]
    #: Sync runs made (the final clean one included) and the requests they sent.
    runs: int
    toggl_requests: int
    exist_requests: int
    final_outcome: str
    final_zone: str | None


RunHook = Callable[[World, Engine, RunStats], Awaitable[None]]
FinalHook = Callable[[World, Engine], Awaitable[None]]


async def apply(op: Op, world: World, engine: Engine) -> None:
    """Apply one non-sync operation of a history to the world (and the engine)."""
    sims = world.toggl_sim.world
    user_id, workspace_id = world.toggl_user.id, world.workspace_id
    if isinstance(op, Create):
        entry = world.toggl_sim.add_time_entry(
            world.toggl_user,
            start=op.start,
            duration=op.seconds,
            project_id=world.project_ids[op.project],
        )
        world.entry_ids.append(entry.id)
    elif isinstance(op, StartTimer):
        entry = world.toggl_sim.add_time_entry(
            world.toggl_user, start=op.start, duration=-1, project_id=world.project_ids[op.project]
        )
        world.entry_ids.append(entry.id)
    elif isinstance(op, StopTimer):
        running = [entry for entry in world.entries() if entry.is_running]
        for entry in running:
            sims.stop_time_entry(user_id, workspace_id, entry.id)
    elif isinstance(op, EditDuration):
        sims.update_time_entry(
            user_id, workspace_id, world.entry_ids[op.entry], {"duration": op.seconds}
        )
    elif isinstance(op, EditDescription):
        sims.update_time_entry(
            user_id, workspace_id, world.entry_ids[op.entry], {"description": op.description}
        )
    elif isinstance(op, Move):
        entry_id = world.entry_ids[op.entry]
        sims.update_time_entry(user_id, workspace_id, entry_id, {"start": op.start})
    elif isinstance(op, Reassign):
        project = world.project_ids[op.project]
        sims.update_time_entry(
            user_id, workspace_id, world.entry_ids[op.entry], {"project_id": project}
        )
    elif isinstance(op, Delete):
        sims.delete_time_entry(user_id, workspace_id, world.entry_ids[op.entry])
    elif isinstance(op, Remap):
        await _without_faults(world, engine.save_mapping(world.mapping_of(op.mapping)))
    elif isinstance(op, ChangeZone):
        with world.exist_sim.world.lock:
            world.exist_sim.world.user(EXIST_USERNAME).timezone = op.zone
    elif isinstance(op, Advance):
        world.clock.advance(timedelta(seconds=op.seconds))
    elif isinstance(op, InjectFaults):
        world.set_faults(op.rules)
    elif isinstance(op, ClearFaults):
        world.set_faults(())
    elif isinstance(op, ArmCrash):
        engine.arm_crash(op.after_batches)
    elif isinstance(op, StealAttribute):
        with contextlib.suppress(ValueError):  # not in Exist (yet): nothing to steal
            world.exist_sim.set_owner(EXIST_USERNAME, op.attribute, "rescuetime")
    elif isinstance(op, BreakAttribute):
        with world.exist_sim.world.lock:
            attribute = world.exist_sim.world.user(EXIST_USERNAME).attributes.get(op.attribute)
            if attribute is not None and op.attribute not in world.broken:
                world.broken[op.attribute] = attribute.value_type
                attribute.value_type = ValueType.STRING
    else:  # pragma: no cover - Sync is the replay loop's
        raise TypeError(f"cannot apply {op!r}")


async def _without_faults(world: World, action: Awaitable[None]) -> None:
    """Saving the mapping page is a user action that reports its own errors; the histories'
    faults are about the scheduled syncs, so they are held back (counts and all) meanwhile."""
    injectors = (world.toggl_sim.asgi_app, world.exist_sim.asgi_app)
    plans = [injector.plan for injector in injectors]
    for injector in injectors:
        injector.plan = FaultPlan()
    try:
        await action
    finally:
        for injector, plan in zip(injectors, plans, strict=True):
            injector.plan = plan


async def replay(
    history: History,
    stage: Stage,
    make_engine: EngineFactory,
    *,
    after_run: RunHook | None = None,
    after_final: FinalHook | None = None,
) -> Outcome:
    """Play `history` through a fresh engine on fresh simulators, stop the faults, run once
    more, and compare Exist with the oracle's truth in the user's Exist zone.

    `after_run` sees every run (the final one included); `after_final` is called once the
    comparison is made, with the engine still open."""
    world = stage.world(history)
    engine = make_engine(world)
    runs = toggl_requests = exist_requests = 0
    try:
        await engine.save_mapping(world.mapping_of(history.mapping))
        for op in history.ops:
            if not isinstance(op, Sync):
                await apply(op, world, engine)
                continue
            stats = await engine.sync()
            await stage.quiesce()
            runs += 1
            toggl_requests += stats.toggl_requests
            exist_requests += stats.exist_requests
            if after_run is not None:
                await after_run(world, engine, stats)
        world.calm()
        engine.disarm_crash()
        await stage.quiesce()
        final = await engine.sync(patient=True)
        runs += 1
        toggl_requests += final.toggl_requests
        exist_requests += final.exist_requests
        if after_run is not None:
            await after_run(world, engine, final)
        zone = world.exist_zone
        expected = world.truth(engine.mapping, zone)
        held = world.exist_values(sorted(expected))
        wrong = tuple(
            (attribute, day, held[(attribute, day)], want)
            for (attribute, day), want in sorted(expected.items())
            if held[(attribute, day)] != want
        )
        if after_final is not None:
            await after_final(world, engine)
        return Outcome(
            engine=engine.name,
            faults=history.has_faults,
            exact=not wrong,
            error_minutes=sum(abs(have - want) for _, _, have, want in wrong),
            cells=len(expected),
            wrong=wrong,
            runs=runs,
            toggl_requests=toggl_requests,
            exist_requests=exist_requests,
            final_outcome=final.outcome,
            final_zone=final.zone,
        )
    finally:
        await engine.aclose()


def drawn_history(seed: int, index: int, *, faults: bool = True) -> History:
    """History `index` of the histories drawn from `seed` (the same seed, the same history)."""
    return generate_history(RandomSource(random.Random(f"{seed}:{index}")), faults=faults)


def histories(seed: int, count: int, *, faults: bool = True) -> Iterator[History]:
    """The first `count` histories drawn from `seed`."""
    for index in range(count):
        yield drawn_history(seed, index, faults=faults)
