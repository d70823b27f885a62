"""CPU per user: what one steady-state sync costs the worker's processor, outside any I/O.

    python bench/cpu_per_user.py [--users 5] [--rounds 40] [--repeat 5] [--seed 0]

Builds, for `--users` users in different time zones, the JSON body Toggl answers for a run's
fetch (`fetch_range`: the 14-day window plus a day of margin, about 20 entries a day on four
mapped projects and one unmapped, a running entry, two deleted ones, Toggl's legacy field names
beside the current ones), at a "now" whose window holds the October/November DST changes. Then
measures, with `time.process_time` (best of `--repeat`, each `--rounds` times over every user):

- validate: the body's bytes into sorted entries, as the client does
  (`timebridge.toggl._api.time_entries_between` answered with the body);
- plan: `plan_sync` over the entries as the runner keeps them (`KeptEntry`, from the user's
  snapshot) with a ledger equal to the desired state (steady state: nothing to write).

Both are measured in the same run against a straightforward reference kept in this file: the
entries validated one `TimeEntry.model_validate` at a time from `json.loads`, with the legacy
names filled in by Python, and a planner that asks the zone for every local midnight it splits
at. The reference plan is checked equal to `plan_sync`'s before anything is timed.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from timebridge.entries import KeptEntry
from timebridge.records import IN_FLIGHT, AttributeDate, ValueWrite
from timebridge.sync.planner import (
    Contribution,
    DayTotal,
    SyncPlan,
    fetch_range,
    local_midnight,
    local_today,
    plan_sync,
    round_minutes,
    window_dates,
)
from timebridge.toggl._api import time_entries_between
from timebridge.toggl.models import TimeEntry

#: Each user's Toggl projects and the Exist attribute each maps to (None: not mapped).
PROJECTS: dict[str, str | None] = {
    "Series": "tv_min",
    "Games": "gaming_min",
    "Deep work": "productive_min",
    "Email": "neutral_min",
    "Errands": None,
}
ZONES = ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC", "Australia/Sydney")
#: A "now" whose window holds Europe's (25 October) and North America's (1 November) fall-back.
NOW = datetime(2026, 11, 3, 17, 30, tzinfo=UTC)
ENTRIES_PER_DAY = (17, 23)
#: Toggl's legacy short names, sent beside the current ones.
LEGACY_NAMES = {"workspace_id": "wid", "project_id": "pid", "task_id": "tid", "user_id": "uid"}
WORDS = ("review", "draft", "call", "notes", "plan", "fix", "read", "write", "sync", "email")


@dataclass(frozen=True)
class User:
    """One simulated user: the body Toggl answers for the run's fetch, and what planning needs."""

    zone: ZoneInfo
    mapping: dict[int, str]
    body: bytes
    entries: int


@dataclass(frozen=True)
class Figures:
    """CPU microseconds per user of one stage, for Timebridge and for the reference."""

    stage: str
    timebridge_us: float
    naive_us: float

    @property
    def ratio(self) -> float:
        return self.naive_us / self.timebridge_us if self.timebridge_us else float("inf")


# --- the users ---------------------------------------------------------------------------------


def _toggl_time(instant: datetime) -> str:
    # Toggl writes UTC instants with an explicit offset and whole seconds.
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _entry(
    entry_id: int,
    user_id: int,
    workspace_id: int,
    project_id: int | None,
    start: datetime,
    seconds: int | None,
    rng: random.Random,
    *,
    deleted: bool = False,
) -> dict[str, Any]:
    running = seconds is None
    stop = None if seconds is None else start + timedelta(seconds=seconds)
    changed = stop or start
    current = {
        "id": entry_id,
        "workspace_id": workspace_id,
        "project_id": project_id,
        "task_id": None,
        "billable": False,
        "start": _toggl_time(start),
        "stop": None if stop is None else _toggl_time(stop),
        # Toggl reports a running entry's duration as minus its start's Unix time.
        "duration": -int(start.timestamp()) if running else seconds,
        "description": " ".join(rng.choices(WORDS, k=rng.randint(1, 4))),
        "tags": rng.choice([[], [], ["focus"], ["client", "billable-later"]]),
        "tag_ids": [],
        "duronly": True,
        "at": _toggl_time(changed + timedelta(seconds=rng.randint(0, 90))),
        "server_deleted_at": _toggl_time(changed + timedelta(hours=1)) if deleted else None,
        "user_id": user_id,
        "permissions": None,
    }
    legacy = {short: current[name] for name, short in LEGACY_NAMES.items()}
    return current | legacy


def make_user(seed: int, index: int) -> User:
    """User `index` of the run seeded with `seed` (the same user whatever the other options)."""
    rng = random.Random(f"{seed}:cpu:{index}")
    zone = ZoneInfo(ZONES[index % len(ZONES)])
    user_id, workspace_id = 1000 + index, 5000 + index
    project_ids = {name: 700_000 + 10 * index + n for n, name in enumerate(PROJECTS)}
    mapping = {project_ids[name]: a for name, a in PROJECTS.items() if a is not None}
    ids = iter(range(90_000_000 + 10_000 * index, 90_000_000 + 10_000 * (index + 1)))
    first, _ = fetch_range(NOW, zone)
    items: list[dict[str, Any]] = []
    day = first.astimezone(zone).date()
    last = local_today(NOW, zone)
    while day <= last:
        # Evenings run late now and then, so a few entries cross local midnight.
        start = datetime.combine(day, clock_time(7), zone) + timedelta(minutes=rng.randint(0, 90))
        for _ in range(rng.randint(*ENTRIES_PER_DAY)):
            seconds = rng.randint(5 * 60, 50 * 60)
            if start + timedelta(seconds=seconds) > NOW:
                break
            if start >= first:
                project = rng.choice(list(project_ids.values()))
                items.append(_entry(next(ids), user_id, workspace_id, project, start, seconds, rng))
            start += timedelta(seconds=seconds + rng.randint(0, 15 * 60))
        day += timedelta(days=1)
    for victim in rng.sample(items[:-1], 2):
        victim.update(server_deleted_at=victim["at"])
    running_start = NOW - timedelta(minutes=rng.randint(5, 40))
    project = project_ids["Deep work"]
    items.append(_entry(next(ids), user_id, workspace_id, project, running_start, None, rng))
    # One entry without a project, as people leave them.
    items[len(items) // 2].update(project_id=None, pid=None)
    return User(zone=zone, mapping=mapping, body=json.dumps(items).encode(), entries=len(items))


# --- Timebridge's way --------------------------------------------------------------------------


def fetch(user: User, response: httpx.Response) -> list[TimeEntry]:
    """The client's parse of the fetch's answer (one request: the answer is below the cap)."""
    operation = time_entries_between(*fetch_range(NOW, user.zone))
    next(operation)
    try:
        operation.send(response)
    except StopIteration as done:
        entries: list[TimeEntry] = done.value
        return entries
    raise RuntimeError("time_entries_between asked for a second request")


# --- the reference -----------------------------------------------------------------------------


def naive_fetch(user: User, response: httpx.Response) -> list[TimeEntry]:
    """`json.loads`, the legacy names filled in by Python, one `model_validate` per entry."""
    start, end = fetch_range(NOW, user.zone)
    entries = []
    for item in json.loads(response.content):
        for name, short in LEGACY_NAMES.items():
            if item.get(name) is None and short in item:
                item[name] = item[short]
        entries.append(TimeEntry.model_validate(item))
    return sorted(
        (entry for entry in entries if start <= entry.start < end),
        key=lambda entry: (entry.start, entry.id),
    )


def naive_split(start: datetime, end: datetime, zone: ZoneInfo) -> list[tuple[date, int]]:
    """Seconds of [start, end) on each local date, asking the zone for every midnight."""
    pieces: list[tuple[date, int]] = []
    day = start.astimezone(zone).date()
    cursor = start
    while cursor < end:
        next_midnight = local_midnight(day + timedelta(days=1), zone)
        piece_end = min(end, next_midnight)
        seconds = int((piece_end - cursor).total_seconds())
        if seconds > 0:
            pieces.append((day, seconds))
        cursor = piece_end
        day += timedelta(days=1)
    return pieces


def naive_plan(
    entries: Iterable[TimeEntry],
    mapping: Mapping[int, str],
    ledger: Mapping[AttributeDate, int],
    zone: ZoneInfo,
    now: datetime,
) -> SyncPlan:
    """The planner's rules, written the straightforward way: each entry split on its own."""
    today = local_today(now, zone)
    window = window_dates(today)
    in_window = set(window)
    seconds: dict[AttributeDate, int] = defaultdict(int)
    contributions: dict[AttributeDate, list[Contribution]] = defaultdict(list)
    for entry in entries:
        if entry.is_deleted or entry.project_id is None:
            continue
        attribute = mapping.get(entry.project_id)
        if attribute is None:
            continue
        for day, piece in naive_split(entry.start, min(entry.end(now), now), zone):
            if day in in_window:
                seconds[(attribute, day)] += piece
                contributions[(attribute, day)].append(
                    Contribution(entry.id, entry.project_id, piece)
                )
    mapped = set(mapping.values())
    retired = {attribute for attribute, _ in ledger if attribute not in mapped}
    desired: dict[AttributeDate, int] = {}
    days: dict[AttributeDate, DayTotal] = {}
    for attribute in sorted(mapped):
        for day in window:
            total = seconds.get((attribute, day), 0)
            desired[(attribute, day)] = round_minutes(total)
            days[(attribute, day)] = DayTotal(
                attribute, day, total, round_minutes(total), tuple(contributions[(attribute, day)])
            )
    for attribute in sorted(retired):
        for day in window:
            if ledger.get((attribute, day), 0) != 0:
                desired[(attribute, day)] = 0

    def needs_write(key: AttributeDate, value: int) -> bool:
        last = ledger.get(key)
        return value != 0 if last is None else last == IN_FLIGHT or last != value

    writes = tuple(
        ValueWrite(attribute, day, value)
        for (attribute, day), value in sorted(desired.items())
        if needs_write((attribute, day), value)
    )
    cutoff = today - timedelta(days=21)
    return SyncPlan(
        window=window,
        desired=desired,
        writes=writes,
        days=days,
        purge=tuple(sorted(key for key in ledger if key[1] < cutoff)),
        retired_attributes=frozenset(retired),
    )


# --- measuring ---------------------------------------------------------------------------------


def cpu_us_per_user(work: Callable[[int], object], users: int, rounds: int, repeat: int) -> float:
    """Best of `repeat`: CPU microseconds per call of `work(user)`, over `rounds` rounds."""
    best = float("inf")
    for _ in range(repeat):
        began = time.process_time()
        for _ in range(rounds):
            for index in range(users):
                work(index)
        best = min(best, time.process_time() - began)
    return 1e6 * best / (rounds * users)


def measure(users: Sequence[User], rounds: int, repeat: int) -> list[Figures]:
    responses = [httpx.Response(200, content=user.body) for user in users]
    entries = [fetch(user, response) for user, response in zip(users, responses, strict=True)]
    kept = [
        sorted(
            (KeptEntry.from_entry(entry) for entry in fetched if not entry.is_deleted),
            key=lambda entry: (entry.start_us, entry.id),
        )
        for fetched in entries
    ]
    ledgers = []
    for user, response, fetched, snapshot in zip(users, responses, entries, kept, strict=True):
        if naive_fetch(user, response) != fetched:
            raise AssertionError("the reference validates the entries differently")
        first = plan_sync(snapshot, user.mapping, {}, user.zone, NOW)
        ledger = {(w.attribute, w.date): w.value for w in first.writes}
        steady = plan_sync(snapshot, user.mapping, ledger, user.zone, NOW)
        if steady.writes or steady != naive_plan(fetched, user.mapping, ledger, user.zone, NOW):
            raise AssertionError("the reference plans differently, or the ledger is not steady")
        ledgers.append(ledger)

    def validate(index: int) -> object:
        return fetch(users[index], responses[index])

    def naive_validate(index: int) -> object:
        return naive_fetch(users[index], responses[index])

    def plan(index: int) -> object:
        user = users[index]
        return plan_sync(kept[index], user.mapping, ledgers[index], user.zone, NOW)

    def naive(index: int) -> object:
        user = users[index]
        return naive_plan(entries[index], user.mapping, ledgers[index], user.zone, NOW)

    count = len(users)
    figures = [
        Figures(
            "validate",
            cpu_us_per_user(validate, count, rounds, repeat),
            cpu_us_per_user(naive_validate, count, rounds, repeat),
        ),
        Figures(
            "plan",
            cpu_us_per_user(plan, count, rounds, repeat),
            cpu_us_per_user(naive, count, rounds, repeat),
        ),
    ]
    total = Figures(
        "total",
        sum(f.timebridge_us for f in figures),
        sum(f.naive_us for f in figures),
    )
    return [*figures, total]


# --- the report --------------------------------------------------------------------------------


def table(figures: Sequence[Figures]) -> list[str]:
    header = f"{'stage':<9} {'timebridge us/user':>19} {'naive us/user':>14} {'ratio':>7}"
    lines = [header, "-" * len(header)]
    for row in figures:
        lines.append(
            f"{row.stage:<9} {row.timebridge_us:>19.0f} {row.naive_us:>14.0f} {row.ratio:>6.1f}x"
        )
    return lines


def summary(figures: Sequence[Figures]) -> list[str]:
    names = {"validate": "validation", "plan": "planner", "total": "total"}
    return [
        f"{names[row.stage]} {row.timebridge_us / 1000:.2f} ms/user "
        f"vs naive {row.naive_us / 1000:.2f} ms ({row.ratio:.1f}x)"
        for row in figures
    ]


# --- command line ------------------------------------------------------------------------------


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/cpu_per_user.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--users", type=int, default=5, help="simulated users (5, one a zone)")
    parser.add_argument("--rounds", type=int, default=40, help="rounds over every user (40)")
    parser.add_argument("--repeat", type=int, default=5, help="measurements, best kept (5)")
    parser.add_argument("--seed", type=int, default=0, help="which entries (0)")
    args = parser.parse_args(argv)
    if min(args.users, args.rounds, args.repeat) < 1:
        parser.error("--users, --rounds and --repeat must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> list[Figures]:
    args = parse(argv)
    users = [make_user(args.seed, index) for index in range(args.users)]
    entries = sum(user.entries for user in users)
    zones = ", ".join(dict.fromkeys(user.zone.key for user in users))
    print(
        f"{args.users} users (seed {args.seed}; {zones}): {entries / args.users:.0f} Toggl "
        f"entries per user over the 15 days fetched; now {NOW.isoformat()}; CPU time, best of "
        f"{args.repeat} x {args.rounds} rounds"
    )
    figures = measure(users, args.rounds, args.repeat)
    print()
    for line in table(figures):
        print(line)
    print()
    for line in summary(figures):
        print(line)
    return figures


if __name__ == "__main__":
    main()
