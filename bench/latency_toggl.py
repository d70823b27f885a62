"""The Toggl simulator of `bench/latency.py`, in a process of its own, with webhooks.

    python -m bench.latency_toggl --users N --seed S --manifest PATH [--latency-ms L]

Builds a `TogglSimulator` on the real clock (its webhook deliveries as the simulator makes them
by default: real HTTP POSTs from its delivery threads, Toggl's retry schedule as guessed in
`fakes/toggl/webhooks.py`), seeds N users as `bench/throughput.py` does
(`bench.throughput_simulators.seed_toggl`: 14 days of about 20 entries, four mapped projects
and one unmapped, five time zones), writes the users to `--manifest`, serves on a free loopback
port and prints `READY <port>`. Every API request (`/api/*` and `/webhooks/*`) is delayed by
`--latency-ms`. It stops when its standard input closes.

The benchmark drives it through a control API that is never delayed:
- `POST /_bench/change` `{"indices", "salt"}`: those users change their week as in
  `bench/throughput.py` (for the scheduled baseline's cycle, before webhooks are on);
- `POST /_bench/timers` `{"indices", "salt"}`: each of those users starts a timer on a mapped
  project, as if 10-40 minutes ago;
- `POST /_bench/edit` `{"index", "kind", "salt"}`: one edit made directly in the simulator's
  world (which queues the webhook deliveries, as a change made in Toggl's app would), kind
  `create`, `duration`, `project`, `stop` or `delete`; answers the wall-clock time of the
  change (`time.time()`), the Exist keys `[attribute, day]` it touches, and the oracle's values
  of the user after it (`tests/sync/oracle.py::truth`);
- `POST /_bench/truth` `{"indices"}`: the oracle's values of those users now;
- `GET /_bench/stats`: webhook deliveries attempted, failed, dropped and still pending.

Each user's entry ids are indexed (`IndexedTogglWorld`, as in the throughput benchmark), so a
`since=` fetch does not scan the 56,000 entries of 200 users.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.sync.oracle import truth

from bench.throughput_simulators import (
    PROJECTS,
    IndexedTogglWorld,
    SeededUser,
    change_users,
    seed_toggl,
)
from timebridge.clock import Clock, SystemClock
from timebridge.fakes import Fault, serve_in_thread
from timebridge.fakes.toggl import TogglSimulator
from timebridge.fakes.toggl.state import SimUser
from timebridge.fakes.toggl.webhooks import WebhookService
from timebridge.toggl.models import TimeEntry

CONTROL_PREFIX = "/_bench"
KINDS = ("create", "duration", "project", "stop", "delete")
#: Edits touch entries of the last days only (the window is 14 days; a zone's midnight during
#: the run moves it by one).
EDIT_DAYS = 12


class LatencyTogglSimulator(TogglSimulator):
    """`TogglSimulator` over an `IndexedTogglWorld`, its webhooks listening to that world."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        settings = self.webhooks.settings
        self.webhooks.close()
        self.world = IndexedTogglWorld(self.clock)
        self.webhooks = WebhookService(self.world, self.clock, settings)


def _days(start: datetime, end: datetime, zone: ZoneInfo) -> list[date]:
    first, last = start.astimezone(zone).date(), end.astimezone(zone).date()
    if end > start and end.astimezone(zone).timetz().replace(tzinfo=None) == datetime.min.time():
        last -= timedelta(days=1)  # ends at midnight: nothing of it on the next day
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


class Driver:
    """The edits, on the simulator's world (see the module docstring)."""

    def __init__(self, sim: TogglSimulator, users: Sequence[SeededUser]) -> None:
        self.sim = sim
        self.users = users
        by_name = {user.fullname: user for user in sim.world.users.values()}
        self._sim_users: list[SimUser] = [by_name[user.name] for user in users]
        self._lock = threading.Lock()

    def mapping(self, index: int) -> dict[int, str]:
        return {pid: attribute for pid, (_, attribute) in self.users[index].mapping.items()}

    def truth(self, index: int) -> dict[tuple[str, date], int]:
        seeded, user = self.users[index], self._sim_users[index]
        return truth(
            self.sim.world.entries_of(user.id, include_deleted=True),
            self.mapping(index),
            ZoneInfo(seeded.time_zone),
            self.sim.clock.now(),
        )

    def _keys(self, index: int, entries: Iterable[TimeEntry | None]) -> set[tuple[str, date]]:
        mapping, zone = self.mapping(index), ZoneInfo(self.users[index].time_zone)
        now = self.sim.clock.now()
        keys: set[tuple[str, date]] = set()
        for entry in entries:
            if entry is None or entry.project_id not in mapping:
                continue
            end = entry.stop if entry.stop is not None and entry.duration >= 0 else now
            keys.update((mapping[entry.project_id], day) for day in _days(entry.start, end, zone))
        return keys

    def _editable(self, index: int, rng: random.Random) -> TimeEntry | None:
        """A stopped entry of a mapped project in the last days, or None."""
        user, mapping = self._sim_users[index], self.mapping(index)
        floor = self.sim.clock.now() - timedelta(days=EDIT_DAYS)
        found = [
            entry
            for entry in self.sim.world.entries_of(user.id)
            if entry.project_id in mapping and not entry.is_running and entry.start >= floor
        ]
        return rng.choice(sorted(found, key=lambda entry: entry.id)) if found else None

    def start_timers(self, indices: Sequence[int], salt: str) -> int:
        for index in indices:
            rng = random.Random(f"{salt}:timer:{index}")
            user = self._sim_users[index]
            self.sim.add_time_entry(
                user,
                start=self.sim.clock.now() - timedelta(minutes=rng.randint(10, 40)),
                duration=-1,
                project_id=rng.choice(sorted(self.mapping(index))),
                description="bench timer",
            )
        return len(indices)

    def edit(self, index: int, kind: str, salt: str) -> dict[str, Any]:
        with self._lock:  # one edit at a time: each answer's oracle values are the newest
            rng = random.Random(salt)
            before, after = self._apply(index, kind, rng)
            at = time.time()
            keys = self._keys(index, (before, after))
            values = self.truth(index)
        return {
            "at": at,
            "kind": kind,
            "keys": sorted([attribute, day.isoformat()] for attribute, day in keys),
            "truth": _jsonable_truth(values),
        }

    def _apply(
        self, index: int, kind: str, rng: random.Random
    ) -> tuple[TimeEntry | None, TimeEntry | None]:
        world, user = self.sim.world, self._sim_users[index]
        wid, mapping = user.default_workspace_id, self.mapping(index)
        now = self.sim.clock.now()
        if kind == "stop":
            running = [entry for entry in world.entries_of(user.id) if entry.is_running]
            if running:
                before = running[0]
                return before, world.stop_time_entry(user.id, wid, before.id)
            kind = "create"  # no timer to stop (not planned so): an entry instead
        target = None if kind == "create" else self._editable(index, rng)
        if kind == "create" or target is None:
            seconds = rng.randint(5, 60) * 60
            start = now - timedelta(seconds=rng.randint(seconds + 60, EDIT_DAYS * 86_400))
            made = self.sim.add_time_entry(
                user,
                start=start,
                duration=seconds,
                project_id=rng.choice(sorted(mapping)),
                description="bench edit",
            )
            return None, made
        if kind == "duration":
            change = rng.randint(3, 30) * 60
            longer = target.duration + change
            end = target.start + timedelta(seconds=longer)
            # Longer when it still ends in the past, else shorter (never under 5 minutes).
            duration = longer if end <= now else max(300, target.duration - change)
            if duration == target.duration:
                duration = target.duration + 180 if end <= now else target.duration - 180
            return target, world.update_time_entry(user.id, wid, target.id, {"duration": duration})
        if kind == "project":
            others = sorted(pid for pid in mapping if pid != target.project_id)
            moved = world.update_time_entry(
                user.id, wid, target.id, {"project_id": rng.choice(others)}
            )
            return target, moved
        if kind == "delete":
            world.delete_time_entry(user.id, wid, target.id)
            return target, None
        raise ValueError(f"unknown edit kind {kind!r}")

    def stats(self) -> dict[str, float]:
        hooks = self.sim.webhooks
        attempts = [a for a in hooks.attempts if not a.probe and a.action != "ping"]
        replies = sorted(a.elapsed for a in attempts if a.elapsed is not None)
        return {
            "deliveries": len(attempts),
            "delivered": sum(1 for a in attempts if a.status is not None and a.status < 300),
            "failed": sum(1 for a in attempts if a.status is None or a.status >= 300),
            "dropped": len(hooks.dropped),
            "pending": hooks.pending(),
            # How long the service took to answer a delivery (the issue asks < 100 ms).
            "reply_p50_ms": _ms(replies, 0.50),
            "reply_p99_ms": _ms(replies, 0.99),
            "reply_max_ms": _ms(replies, 1.0),
        }


def _ms(ordered: list[float], share: float) -> float:
    if not ordered:
        return 0.0
    return round(1000 * ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)


def _jsonable_truth(values: dict[tuple[str, date], int]) -> list[list[Any]]:
    return [[attribute, day.isoformat(), minutes] for (attribute, day), minutes in values.items()]


class Control:
    """The `/_bench` API in front of the simulator (never delayed)."""

    def __init__(self, app: ASGIApp, driver: Driver) -> None:
        self._app = app
        self._driver = driver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(CONTROL_PREFIX):
            response = await self._control(Request(scope, receive))
            await response(scope, receive, send)
            return
        await self._app(scope, receive, send)

    async def _control(self, request: Request) -> Response:
        path = request.url.path.removeprefix(CONTROL_PREFIX)
        driver = self._driver
        if path == "/stats" and request.method == "GET":
            return JSONResponse(driver.stats())
        body = await request.json() if request.method == "POST" else {}
        if path == "/change":
            chosen = [driver.users[int(index)] for index in body["indices"]]
            return JSONResponse({"entries": change_users(driver.sim, chosen, str(body["salt"]))})
        if path == "/timers":
            indices = [int(index) for index in body["indices"]]
            return JSONResponse({"timers": driver.start_timers(indices, str(body["salt"]))})
        if path == "/edit":
            return JSONResponse(driver.edit(int(body["index"]), str(body["kind"]), body["salt"]))
        if path == "/truth":
            return JSONResponse(
                {str(i): _jsonable_truth(driver.truth(int(i))) for i in body["indices"]}
            )
        return JSONResponse({"error": "unknown control request"}, status_code=404)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.latency_toggl")
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--manifest", type=Path, required=True)
    args = parser.parse_args(argv)
    sim = LatencyTogglSimulator(SystemClock())
    seeded = seed_toggl(sim, args.users, args.seed)
    if args.latency_ms:
        for path in ("/api/*", "/webhooks/*"):
            sim.faults.add(Fault(path=path, latency=args.latency_ms / 1000))
    args.manifest.write_text(json.dumps([asdict(user) for user in seeded]))
    app = Control(sim.asgi_app, Driver(sim, seeded))
    stop = threading.Event()
    threading.Thread(target=_wait_for_eof, args=(stop,), daemon=True).start()
    try:
        with serve_in_thread(app) as server:
            print(f"READY {server.port}", flush=True)
            stop.wait()  # bounded: the benchmark closes our stdin when done (or dies)
    finally:
        sim.webhooks.close()


def _wait_for_eof(stop: threading.Event) -> None:
    try:
        while sys.stdin.readline():
            pass
    finally:
        stop.set()


__all__ = ["KINDS", "PROJECTS", "main"]

if __name__ == "__main__":
    main()
