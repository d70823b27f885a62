"""The measured process of `bench/throughput.py`: one engine's sync cycles, in a process of its own.

    python -m bench.throughput_worker CONFIG.json

Reads what to run from the config file `bench/throughput.py` wrote (`WorkerConfig`), opens the
store the benchmark seeded, warms the process up with one full cycle of its users through
`EmbeddedScheduler` (not measured; for Timebridge it is the table's "first" cycle, which fills
the ledger and reads every user's zone from Exist), then measures a steady-state cycle and, after
~10 % of its users changed their Toggl entries, a changed cycle: each `repeat` times (the same
users changing anew before each changed one), reporting the median. A measured cycle is
- `timebridge`: `EmbeddedScheduler.run_cycle` with `concurrency` slots over
  `Bridge.sync`;
- `naive`: a plain loop calling `Bridge.sync` for one user after the other.

Both engines measure warm processes on the same footing, on the event loop `timebridge serve`
runs its scheduler on (uvloop where installed, as uvicorn chooses). Prints one JSON line: every
cycle's figures and the process's peak RSS (`ru_maxrss`, its own: the engine runs alone in it).
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import json
import logging
import random
import resource
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from timebridge._pool import ConnectionPool
from timebridge.bridge import Bridge, Skipped
from timebridge.config import Settings
from timebridge.jobs import EmbeddedScheduler
from timebridge.store import open_store
from timebridge.sync.runner import RunReport

TIMEBRIDGE = "timebridge"
NAIVE = "naive"


@dataclass(frozen=True)
class WorkerConfig:
    """What one worker process runs; written as JSON by the benchmark."""

    engine: str
    settings: dict[str, Any]
    #: (account id, simulator user index) of the users this engine syncs, in order.
    users: list[tuple[int, int]]
    #: Timebridge's `max_concurrency` (also the warm-up's, for both engines).
    concurrency: int
    seed: int
    change_fraction: float
    toggl_control: str
    exist_control: str
    #: Report the warm-up cycle as the "first" cycle (Timebridge's table rows).
    report_warm_up: bool
    #: Profile the measured cycles with cProfile into this directory (slows them down).
    profile_dir: str | None = None
    #: Each measured cycle runs this many times; the median one is reported.
    repeat: int = 1


@dataclass
class CycleFigures:
    """One cycle of one engine, as the table shows it."""

    engine: str
    cycle: str
    users: int
    seconds: float
    cpu_seconds: float
    toggl_requests: int
    exist_requests: int
    values_written: int
    users_written: int
    outcomes: dict[str, int] = field(default_factory=dict)
    changed_users: int = 0
    #: What the simulators saw during the cycle (requests answered, CPU seconds spent).
    sim_toggl_requests: int = 0
    sim_exist_requests: int = 0
    sim_cpu_seconds: float = 0.0
    #: Users/s of every repetition of this cycle, in order (this one is their median).
    rates: list[float] = field(default_factory=list)

    @property
    def users_per_second(self) -> float:
        return self.users / self.seconds if self.seconds > 0 else 0.0

    @property
    def failed(self) -> int:
        return sum(count for outcome, count in self.outcomes.items() if outcome != "succeeded")


@dataclass(frozen=True)
class WorkerResult:
    """What a worker prints: its cycles and its own peak RSS."""

    cycles: list[CycleFigures]
    peak_rss_mb: float

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkerResult:
        return cls([CycleFigures(**cycle) for cycle in data["cycles"]], data["peak_rss_mb"])


class Simulators:
    """The simulators' control API (never delayed, never counted as API requests)."""

    def __init__(self, toggl_control: str, exist_control: str) -> None:
        self._http = httpx.Client(timeout=120)
        self._toggl = toggl_control.rstrip("/")
        self._exist = exist_control.rstrip("/")

    def stats(self) -> tuple[int, int, float]:
        """Requests answered so far by Toggl and Exist, and the CPU both have spent."""
        toggl = self._http.get(f"{self._toggl}/stats").raise_for_status().json()
        exist = self._http.get(f"{self._exist}/stats").raise_for_status().json()
        return (
            sum(toggl["requests"].values()),
            sum(exist["requests"].values()),
            toggl["cpu_seconds"] + exist["cpu_seconds"],
        )

    def change(self, indices: Sequence[int], salt: str) -> int:
        body = {"indices": list(indices), "salt": salt}
        answer = self._http.post(f"{self._toggl}/change", json=body).raise_for_status().json()
        return int(answer["users"])

    def close(self) -> None:
        self._http.close()


def changed_indices(config: WorkerConfig) -> list[int]:
    """The simulator users who change their entries before the changed cycle (~10 %)."""
    indices = [index for _, index in config.users]
    count = max(1, round(len(indices) * config.change_fraction)) if indices else 0
    return sorted(random.Random(f"{config.seed}:{config.engine}:change").sample(indices, count))


async def run(config: WorkerConfig) -> WorkerResult:
    settings = Settings(**config.settings)
    store = await open_store(settings)
    pool = ConnectionPool()
    service = Bridge.from_settings(store, settings, pool=pool)
    simulators = Simulators(config.toggl_control, config.exist_control)
    accounts = [account for account, _ in config.users]
    reports: list[RunReport | Skipped | BaseException] = []

    async def sync_user(user: int) -> RunReport | Skipped:
        try:
            result = await service.sync(user)
        except Exception as exc:
            # `sync_user` raised (the store failed outside the runner's guard): the scheduler
            # logs it and goes on; the figures count it.
            reports.append(exc)
            raise
        reports.append(result)
        return result

    async def listed() -> list[int]:
        return accounts

    scheduler = EmbeddedScheduler(
        cron="40 * * * *",
        list_users=listed,
        sync_user=sync_user,
        max_concurrency=config.concurrency,
    )

    async def scheduled() -> None:
        await scheduler.run_cycle()

    async def one_after_another() -> None:
        for user in accounts:
            with contextlib.suppress(Exception):  # counted in the figures
                await sync_user(user)

    cycle = scheduled if config.engine == TIMEBRIDGE else one_after_another
    figures: list[CycleFigures] = []
    try:
        first = await _measure(config, "first", scheduled, reports, simulators)
        if config.report_warm_up:
            figures.append(first)
        steady = [
            await _measure(config, "steady", cycle, reports, simulators)
            for _ in range(config.repeat)
        ]
        figures.append(median(steady))
        changed = []
        for repetition in range(config.repeat):
            # The same users each time, with entries changed anew.
            salt = f"{config.seed}:{config.engine}:{repetition}"
            users = simulators.change(changed_indices(config), salt)
            after = await _measure(config, "changed", cycle, reports, simulators)
            after.changed_users = users
            changed.append(after)
        figures.append(median(changed))
    finally:
        simulators.close()
        await pool.aclose()
        await store.close()
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    return WorkerResult(figures, peak_kb / 1024)


async def _measure(
    config: WorkerConfig,
    name: str,
    cycle: Callable[[], Awaitable[None]],
    reports: list[RunReport | Skipped | BaseException],
    simulators: Simulators,
) -> CycleFigures:
    reports.clear()
    toggl_before, exist_before, sim_cpu_before = simulators.stats()
    profiler = cProfile.Profile() if config.profile_dir and name != "first" else None
    cpu_began, began = time.process_time(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    await cycle()
    if profiler is not None:
        profiler.disable()
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    toggl_after, exist_after, sim_cpu_after = simulators.stats()
    if profiler is not None and config.profile_dir is not None:
        profiler.dump_stats(str(Path(config.profile_dir) / f"{config.engine}-{name}.prof"))
    runs = [report for report in reports if isinstance(report, RunReport)]
    outcomes = Counter(_outcome(report) for report in reports)
    return CycleFigures(
        engine=config.engine,
        cycle=name,
        users=len(reports),
        seconds=seconds,
        cpu_seconds=cpu,
        toggl_requests=sum(report.toggl_requests for report in runs),
        exist_requests=sum(report.exist_requests for report in runs),
        values_written=sum(report.values_written for report in runs),
        users_written=sum(1 for report in runs if report.values_written),
        outcomes=dict(outcomes),
        sim_toggl_requests=toggl_after - toggl_before,
        sim_exist_requests=exist_after - exist_before,
        sim_cpu_seconds=sim_cpu_after - sim_cpu_before,
    )


def median(repetitions: Sequence[CycleFigures]) -> CycleFigures:
    """The repetition with the median rate (the slower middle one of an even count), knowing
    every repetition's rate."""
    ranked = sorted(repetitions, key=lambda cycle: cycle.users_per_second)
    middle = ranked[(len(ranked) - 1) // 2]
    middle.rates = [cycle.users_per_second for cycle in repetitions]
    return middle


def _outcome(result: RunReport | Skipped | BaseException) -> str:
    if isinstance(result, RunReport):
        return result.outcome.value
    if isinstance(result, Skipped):
        return "skipped"
    return f"raised {type(result).__name__}"


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # not on Windows: asyncio's own loop, as uvicorn would use
        return None
    return uvloop.new_event_loop


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        raise SystemExit("usage: python -m bench.throughput_worker CONFIG.json")
    # Every run is reported in the figures; a log line per failed run would only be noise.
    logging.basicConfig(level=logging.ERROR)
    raw = json.loads(Path(args[0]).read_text())
    raw["users"] = [tuple(pair) for pair in raw["users"]]
    # The event loop `timebridge serve` runs the embedded scheduler on (uvicorn picks uvloop).
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        result = runner.run(run(WorkerConfig(**raw)))
    cycles = [asdict(cycle) for cycle in result.cycles]
    print(json.dumps({"cycles": cycles, "peak_rss_mb": result.peak_rss_mb}))


if __name__ == "__main__":
    main()
