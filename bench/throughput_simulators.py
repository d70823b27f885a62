"""The simulators of `bench/throughput.py`, one per process, seeded with N users.

    python -m bench.throughput_simulators toggl|exist --users N --seed S --manifest PATH
        [--latency-ms L]

Builds a `TogglSimulator` or an `ExistSimulator` on the real clock, seeds N users through the
Python API (deterministically from the seed: the same users, zones, projects and entries every
time), writes what the store needs to connect them to `--manifest` (JSON), serves the simulator
on a free loopback port and prints `READY <port>`. It stops when its standard input closes (the
benchmark closes it, or dies), so it never outlives the run.

Besides the simulator's own API (every request delayed by `--latency-ms`, a network's round trip)
it answers a benchmark control API that is never delayed:
- `GET /_bench/stats`: requests answered so far (API requests only, by status) and the process's
  CPU seconds, so a cycle's requests and the simulator's CPU can be read as differences;
- `POST /_bench/change` (Toggl only) `{"indices": [...], "salt": "..."}`: those users change
  their Toggl week as a person would (an entry longer, one moved to another project, one deleted).

The simulators share the machine's cores with the measured worker, so the Toggl simulator is made
cheap where the benchmark leans on it, without changing a byte of what it answers:
- Toggl's world scans every entry of every user on each list request (over half a million in a
  2,000-user world); `IndexedTogglWorld` keeps each user's entry ids apart;
- rendering ~280 entries to JSON on every window fetch costs more than the worker's parsing of
  them; `BenchTogglSimulator` keeps each entry's rendered JSON until the entry changes (entries
  are immutable models, replaced on every change) for the plain `start_date`/`end_date` fetch
  the bridge makes, and leaves every other query to the simulator's own handler.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from timebridge.clock import Clock, SystemClock
from timebridge.fakes import Fault, serve_in_thread
from timebridge.fakes.exist import ExistSimulator
from timebridge.fakes.toggl import TogglSimulator, wire
from timebridge.fakes.toggl.state import SimulatorError, SimUser, TogglWorld
from timebridge.toggl.models import TimeEntry

#: The Exist OAuth client Timebridge acts as in the benchmark.
EXIST_CLIENT_ID = "timebridge-bench"
EXIST_CLIENT_SECRET = "timebridge-bench-secret"
EXIST_SERVICE = "timebridge"
#: Each user's Toggl projects and the Exist attribute each maps to (None: not mapped).
PROJECTS: dict[str, str | None] = {
    "Series": "tv_min",
    "Games": "gaming_min",
    "Deep work": "productive_min",
    "Email": "neutral_min",
    "Errands": None,
}
ZONES = ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC", "Australia/Sydney")
#: Days of history seeded (the sync window) and entries per day (drawn around the mean).
DAYS = 14
ENTRIES_PER_DAY = (17, 23)
CONTROL_PREFIX = "/_bench"


@dataclass(frozen=True)
class SeededUser:
    """What the store needs to connect user `index` to both simulators."""

    index: int
    name: str
    time_zone: str
    toggl_token: str
    workspace_id: int
    #: Toggl project id -> (project name, Exist attribute) for the mapped projects.
    mapping: dict[int, tuple[str, str]]
    exist_token: str
    entries: int = 0


def user_name(index: int) -> str:
    return f"u{index:05d}"


def toggl_token(seed: int, index: int) -> str:
    return f"bench-toggl-{seed}-{index:05d}-0123456789"


def exist_token(seed: int, index: int) -> str:
    return f"bench-exist-{seed}-{index:05d}-0123456789"


def zone_of(seed: int, index: int) -> str:
    return ZONES[random.Random(f"{seed}:zone:{index}").randrange(len(ZONES))]


# --- Toggl --------------------------------------------------------------------------------------


class IndexedTogglWorld(TogglWorld):
    """`TogglWorld` with each user's entry ids indexed, so listing them is O(their entries)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self._entries_by_user: dict[int, list[int]] = {}

    def add_time_entry(self, *, user_id: int, **fields: Any) -> TimeEntry:
        with self.lock:
            entry = super().add_time_entry(user_id=user_id, **fields)
            self._entries_by_user.setdefault(user_id, []).append(entry.id)
            return entry

    def entries_of(self, user_id: int, *, include_deleted: bool = False) -> list[TimeEntry]:
        with self.lock:
            found = (self.entries[entry_id] for entry_id in self._entries_by_user.get(user_id, ()))
            return [entry for entry in found if include_deleted or not entry.is_deleted]


class BenchTogglSimulator(TogglSimulator):
    """`TogglSimulator` over an `IndexedTogglWorld`, with window fetches rendered from a cache."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.world = IndexedTogglWorld(self.clock)
        self._rendered: dict[int, tuple[TimeEntry, bytes]] = {}

    async def _list_entries(self, request: Request, user: SimUser) -> Response:
        query = request.query_params
        if set(query) != {"start_date", "end_date"}:
            return await super()._list_entries(request, user)
        # What the simulator's handler does for this query, rendering aside.
        start = self._instant("start_date", query["start_date"], user)
        end = self._instant("end_date", query["end_date"], user)
        if end <= start:
            raise SimulatorError(400, "end_date must be after start_date")
        floor = user.start_date_floor(self.clock.now())
        if start < datetime.combine(floor, clock_time(0), ZoneInfo(user.timezone)):
            raise SimulatorError(400, f"start_date must not be earlier than {floor.isoformat()}")
        entries = [entry for entry in self.world.entries_of(user.id) if start <= entry.start < end]
        entries.sort(key=lambda entry: (entry.start, entry.id), reverse=True)
        rendered = b",".join(self._render(entry) for entry in entries[: self.entries_cap])
        return Response(b"[" + rendered + b"]", media_type=wire.MEDIA_TYPE)

    def _render(self, entry: TimeEntry) -> bytes:
        cached = self._rendered.get(entry.id)
        if cached is None or cached[0] is not entry:
            # As the simulator renders a listed entry.
            text = json.dumps(wire.listed_entry(entry), ensure_ascii=False, separators=(",", ":"))
            cached = (entry, text.encode())
            self._rendered[entry.id] = cached
        return cached[1]


def seed_toggl(sim: TogglSimulator, users: int, seed: int) -> list[SeededUser]:
    """N users, each with the projects of `PROJECTS` and `DAYS` days of entries before now."""
    now = sim.clock.now()
    seeded: list[SeededUser] = []
    for index in range(users):
        rng = random.Random(f"{seed}:toggl:{index}")
        zone_name = zone_of(seed, index)
        user = sim.add_user(
            api_token=toggl_token(seed, index),
            email=f"{user_name(index)}@bench.example",
            fullname=user_name(index),
            timezone=zone_name,
            plan="premium",
        )
        projects = [
            sim.add_project(user.default_workspace_id, name, color="#06aaf5") for name in PROJECTS
        ]
        count = 0
        for start, seconds in _days_of_entries(rng, ZoneInfo(zone_name), now):
            sim.add_time_entry(
                user,
                start=start,
                duration=seconds,
                project_id=rng.choice(projects).id,
                description="bench",
                # Tracked live: each entry was last saved when it stopped, not at seeding.
                saved_at=start + timedelta(seconds=seconds),
            )
            count += 1
        mapping = {
            project.id: (project.name, attribute)
            for project in projects
            if (attribute := PROJECTS[project.name]) is not None
        }
        seeded.append(
            SeededUser(
                index=index,
                name=user_name(index),
                time_zone=zone_name,
                toggl_token=user.api_token,
                workspace_id=user.default_workspace_id,
                mapping=mapping,
                exist_token=exist_token(seed, index),
                entries=count,
            )
        )
    return seeded


def _days_of_entries(
    rng: random.Random, zone: ZoneInfo, now: datetime
) -> Iterator[tuple[datetime, int]]:
    """About 20 entries a day on the window's days, back to back from the morning, all ended."""
    today = now.astimezone(zone).date()
    for offset in range(DAYS - 1, -1, -1):
        day = today - timedelta(days=offset)
        start = datetime.combine(day, clock_time(7), zone) + timedelta(minutes=rng.randint(0, 59))
        for _ in range(rng.randint(*ENTRIES_PER_DAY)):
            seconds = rng.randint(5 * 60, 40 * 60)
            if start + timedelta(seconds=seconds) > now:
                return
            yield start, seconds
            start += timedelta(seconds=seconds + rng.randint(0, 10 * 60))


def change_users(sim: TogglSimulator, users: Sequence[SeededUser], salt: str) -> int:
    """Each user lengthens an entry, moves one to another project and deletes one; returns
    how many entries changed."""
    changed = 0
    by_name = {user.fullname: user for user in sim.world.users.values()}
    for seeded in users:
        user = by_name[seeded.name]
        rng = random.Random(f"{salt}:{seeded.index}")
        entries = sorted(sim.world.entries_of(user.id), key=lambda entry: entry.id)
        if len(entries) < 3:
            continue
        longer, moved, deleted = rng.sample(entries, 3)
        sim.world.update_time_entry(
            user.id, None, longer.id, {"duration": longer.duration + rng.randint(3, 30) * 60}
        )
        targets = [pid for pid in seeded.mapping if pid != moved.project_id]
        sim.world.update_time_entry(user.id, None, moved.id, {"project_id": rng.choice(targets)})
        sim.world.delete_time_entry(user.id, None, deleted.id)
        changed += 3
    return changed


# --- Exist --------------------------------------------------------------------------------------


def seed_exist(sim: ExistSimulator, users: int, seed: int) -> None:
    """The same N users on Exist, each with a personal token of the Timebridge client and the
    mapped attributes already acquired by it (as saving the mapping page leaves them)."""
    client = sim.add_client(
        "Timebridge",
        client_id=EXIST_CLIENT_ID,
        client_secret=EXIST_CLIENT_SECRET,
        service=EXIST_SERVICE,
    )
    attributes = sorted({a for a in PROJECTS.values() if a is not None})
    for index in range(users):
        name = user_name(index)
        sim.add_user(name, timezone=zone_of(seed, index))
        sim.issue_personal_token(name, client.client_id, access_token=exist_token(seed, index))
        for attribute in attributes:
            sim.add_attribute(name, template=attribute, owner=EXIST_SERVICE)


# --- serving ------------------------------------------------------------------------------------


class Control:
    """The `/_bench` API in front of a simulator (never delayed, never counted)."""

    def __init__(
        self,
        app: ASGIApp,
        requests: Any,
        toggl: TogglSimulator | None,
        users: Sequence[SeededUser],
    ) -> None:
        self._app = app
        self._requests = requests
        self._toggl = toggl
        self._users = users

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(CONTROL_PREFIX):
            response = await self._control(Request(scope, receive))
            await response(scope, receive, send)
            return
        await self._app(scope, receive, send)

    async def _control(self, request: Request) -> Response:
        path = request.url.path.removeprefix(CONTROL_PREFIX)
        if path == "/stats" and request.method == "GET":
            by_status: dict[str, int] = {}
            for recorded in self._requests():
                if recorded.path.startswith("/_admin"):
                    continue
                by_status[str(recorded.status)] = by_status.get(str(recorded.status), 0) + 1
            return JSONResponse({"requests": by_status, "cpu_seconds": time.process_time()})
        if path == "/change" and request.method == "POST" and self._toggl is not None:
            body = await request.json()
            chosen = [self._users[int(index)] for index in body["indices"]]
            changed = change_users(self._toggl, chosen, str(body.get("salt", "")))
            return JSONResponse({"users": len(chosen), "entries": changed})
        return JSONResponse({"error": "unknown control request"}, status_code=404)


def build(service: str, users: int, seed: int, latency: float) -> tuple[ASGIApp, list[SeededUser]]:
    """The seeded simulator of `service` behind the control API, and the users it holds."""
    clock = SystemClock()
    if service == "toggl":
        toggl = BenchTogglSimulator(clock)
        seeded = seed_toggl(toggl, users, seed)
        if latency:
            toggl.faults.add(Fault(path="/api/*", latency=latency))
        return Control(toggl.asgi_app, lambda: toggl.requests, toggl, seeded), seeded
    exist = ExistSimulator(clock)
    seed_exist(exist, users, seed)
    if latency:
        exist.faults.add(Fault(path="/api/*", latency=latency))
    return Control(exist.asgi_app, lambda: exist.requests, None, []), []


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput_simulators")
    parser.add_argument("service", choices=("toggl", "exist"))
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--manifest", type=Path, help="where to write the seeded users (JSON)")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    # Half a million objects that live until the end: collecting them over and over while
    # seeding, and again during the measured cycles, would only slow the simulator down.
    gc.disable()
    app, seeded = build(args.service, args.users, args.seed, args.latency_ms / 1000)
    gc.freeze()
    gc.enable()
    if args.manifest is not None:
        args.manifest.write_text(json.dumps([_jsonable(user) for user in seeded]))
    seeding = time.perf_counter() - began
    stop = threading.Event()
    threading.Thread(target=_wait_for_eof, args=(stop,), daemon=True).start()
    with serve_in_thread(app) as server:
        print(f"READY {server.port} {seeding:.2f}", flush=True)
        # Bounded: the benchmark closes our stdin when it is done (or its process ends).
        stop.wait()


def _jsonable(user: SeededUser) -> dict[str, Any]:
    data = asdict(user)
    data["mapping"] = {str(pid): list(pair) for pid, pair in user.mapping.items()}
    return data


def _wait_for_eof(stop: threading.Event) -> None:
    try:
        while sys.stdin.readline():
            pass
    finally:
        stop.set()


if __name__ == "__main__":
    main()
