"""Throughput: how many users a Timebridge worker keeps in sync per second, against a naive loop.

    python bench/throughput.py [--users 2000] [--concurrency 64] [--latency-ms 100]
        [--baseline-users 200] [--database-url postgresql+psycopg://...] [--seed 0]
        [--repeat 3] [--profile DIR]

Starts the Toggl and Exist simulators, each in a process of its own (`bench.throughput_simulators`),
seeded with N users (14 days of about 20 entries each, four mapped projects and one unmapped,
five time zones), and every simulated request delayed by `--latency-ms` (a network round trip
to the real services; 0 measures pure CPU). Seeds a store with N accounts connected to them
(a SQLite file in a temporary directory, or a fresh database created on the PostgreSQL server of
`--database-url` and dropped at the end). Then, each engine in a process of its own
(`bench.throughput_worker`), so that the peak RSS is the engine's own:

- Timebridge: `EmbeddedScheduler(max_concurrency=C)` over `Bridge.sync`: a first full cycle (not
  measured: it fills the ledger), a steady-state cycle, then ~10 % of users change their entries
  and a changed cycle runs.
- The baseline, a naive loop: the same `Bridge.sync`, one user after another, on the
  same data, for a steady and a changed cycle (after an unmeasured warm-up cycle, so that both
  engines are measured in warm processes). With real latency it is slow, so it runs on the
  first `--baseline-users` users (users/s is a rate: it does not depend on how many are synced).

Each measured cycle runs `--repeat` times and the table shows the median one (the notes give the
spread): on a machine of two cores, another process's work moves a single figure a lot.
The table gives, per engine and cycle: users/s, Toggl and Exist requests per user (from the run
reports; the simulators' own counts are checked against them), users that got writes, runs that
did not succeed, and the CPU seconds of the worker and of both simulators (they share the
machine's cores with the worker). The last line gives the steady-state rates and their ratio.
`--profile DIR` writes a cProfile of each measured Timebridge cycle to DIR and prints the top
functions (cProfile slows the worker down: the figures of such a run are not comparable).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pstats
import queue
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from psycopg import sql
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from bench.throughput_simulators import CONTROL_PREFIX
from bench.throughput_worker import NAIVE, TIMEBRIDGE, CycleFigures, WorkerConfig, WorkerResult
from timebridge.config import Settings, sqlite_url
from timebridge.exist import ExistTokens
from timebridge.store import ProjectMapping, new_key, open_store, upgrade

REPO = Path(__file__).resolve().parent.parent
#: Goals from the issue (not timed tests): checked and printed, never asserted.
GOAL_USERS_PER_SECOND = 250.0
GOAL_RATIO = 20.0
GOAL_RSS_MB = 200.0
#: Bounds on every wait, so the benchmark always stops by itself.
SIMULATOR_START_TIMEOUT = 600.0
WORKER_TIMEOUT = 3600.0
ENGINE_NAMES = {TIMEBRIDGE: "timebridge", NAIVE: "naive loop"}


@dataclass(frozen=True)
class Simulator:
    """A simulator process serving on 127.0.0.1:`port`."""

    process: subprocess.Popen[str]
    port: int
    seeding_seconds: float

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def control(self) -> str:
        return f"{self.url}{CONTROL_PREFIX}"


@dataclass
class Report:
    """Everything `main` measured, for the table and for tests."""

    users: int
    seed: int
    concurrency: int
    latency_ms: float
    baseline_users: int
    database: str
    entries: int
    seconds: float
    timebridge: WorkerResult
    naive: WorkerResult

    def cycle(self, engine: str, name: str) -> CycleFigures:
        result = self.timebridge if engine == TIMEBRIDGE else self.naive
        return next(cycle for cycle in result.cycles if cycle.cycle == name)

    @property
    def timebridge_rate(self) -> float:
        """Steady-state users per second of Timebridge."""
        return self.cycle(TIMEBRIDGE, "steady").users_per_second

    @property
    def naive_rate(self) -> float:
        """Steady-state users per second of the naive loop."""
        return self.cycle(NAIVE, "steady").users_per_second

    @property
    def ratio(self) -> float:
        return self.timebridge_rate / self.naive_rate if self.naive_rate else float("inf")

    def summary(self) -> str:
        return (
            f"throughput: timebridge {self.timebridge_rate:.0f} users/s, naive loop "
            f"{self.naive_rate:.0f} users/s ({self.ratio:.1f}x), "
            f"peak RSS {self.timebridge.peak_rss_mb:.0f} MB"
        )


# --- the simulators -----------------------------------------------------------------------------


def start_simulator(
    service: str, users: int, seed: int, latency_ms: float, manifest: Path | None
) -> Simulator:
    command = [
        sys.executable,
        "-m",
        "bench.throughput_simulators",
        service,
        f"--users={users}",
        f"--seed={seed}",
        f"--latency-ms={latency_ms}",
    ]
    if manifest is not None:
        command.append(f"--manifest={manifest}")
    process = subprocess.Popen(
        command,
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_child_environment(),
    )
    assert process.stdout is not None
    line = _first_line(process.stdout, SIMULATOR_START_TIMEOUT)
    if line is None or not line.startswith("READY "):
        process.kill()
        raise RuntimeError(f"the {service} simulator did not start (said {line!r})")
    _, port, seeding = line.split()
    return Simulator(process, int(port), float(seeding))


def _first_line(stream: IO[str], timeout: float) -> str | None:
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout).strip()
    except queue.Empty:
        return None


def stop_simulator(simulator: Simulator) -> None:
    process = simulator.process
    with contextlib.suppress(OSError):
        if process.stdin is not None:
            process.stdin.close()  # the simulator stops when its stdin closes
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@contextlib.contextmanager
def simulators(
    users: int, seed: int, latency_ms: float, manifest: Path
) -> Iterator[tuple[Simulator, Simulator]]:
    started: list[Simulator] = []
    try:
        # Exist seeds in a moment; Toggl's half a million entries take a while.
        started.append(start_simulator("exist", users, seed, latency_ms, None))
        started.append(start_simulator("toggl", users, seed, latency_ms, manifest))
        yield started[1], started[0]
    finally:
        for simulator in started:
            stop_simulator(simulator)


def _child_environment() -> dict[str, str]:
    """Our environment, with the repository importable (before anything else on the path)."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


# --- the store ----------------------------------------------------------------------------------


@contextlib.contextmanager
def database(url: str | None, directory: Path) -> Iterator[str]:
    """A SQLite file in `directory`, or a fresh PostgreSQL database dropped at the end."""
    if url is None:
        yield sqlite_url(directory / "throughput.db")
        return
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        yield url
        return
    admin = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"timebridge_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


async def seed_store(settings: Settings, seeded: Sequence[dict[str, Any]]) -> list[tuple[int, int]]:
    """An account per simulated user, connected to both simulators, with its mapping saved.

    Returns (account id, simulator user index) pairs in index order.
    """
    await upgrade(settings.database_url)
    store = await open_store(settings)
    pairs: list[tuple[int, int]] = []
    try:
        for user in seeded:
            account = await store.accounts.create(f"{user['name']}@bench.example")
            await store.toggl_connections.create(
                account.id, user["toggl_token"], origin=settings.toggl_base_url
            )
            await store.exist_connections.save(
                account.id,
                ExistTokens(access_token=SecretStr(user["exist_token"]), scope=""),
                origin=settings.exist_base_url,
            )
            await store.mappings.replace(
                account.id,
                [
                    ProjectMapping(user["workspace_id"], int(project_id), name, attribute)
                    for project_id, (name, attribute) in user["mapping"].items()
                ],
            )
            pairs.append((account.id, int(user["index"])))
    finally:
        await store.close()
    return pairs


# --- the workers --------------------------------------------------------------------------------


def run_worker(config: WorkerConfig, directory: Path) -> WorkerResult:
    path = directory / f"worker-{config.engine}.json"
    path.write_text(json.dumps(asdict(config)))
    finished = subprocess.run(
        [sys.executable, "-m", "bench.throughput_worker", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT,
        env=_child_environment(),
    )
    lines = finished.stdout.strip().splitlines()
    if finished.returncode != 0 or not lines:
        raise RuntimeError(
            f"the {config.engine} worker failed ({finished.returncode}):\n{finished.stderr[-4000:]}"
        )
    return WorkerResult.from_json(json.loads(lines[-1]))


# --- the report ---------------------------------------------------------------------------------


def table(report: Report) -> list[str]:
    header = (
        f"{'engine':<11} {'cycle':<8} {'users':>6} {'seconds':>8} {'users/s':>8} "
        f"{'toggl req/user':>15} {'exist req/user':>15} {'users written':>14} {'not ok':>7} "
        f"{'worker cpu s':>13} {'sims cpu s':>11}"
    )
    lines = [header, "-" * len(header)]
    for result in (report.timebridge, report.naive):
        for c in result.cycles:
            users = max(1, c.users)
            lines.append(
                f"{ENGINE_NAMES[c.engine]:<11} {c.cycle:<8} {c.users:>6} {c.seconds:>8.2f} "
                f"{c.users_per_second:>8.1f} {c.toggl_requests / users:>15.2f} "
                f"{c.exist_requests / users:>15.2f} {c.users_written:>14} {c.failed:>7} "
                f"{c.cpu_seconds:>13.2f} {c.sim_cpu_seconds:>11.2f}"
            )
    return lines


def notes(report: Report) -> list[str]:
    lines: list[str] = []
    for result in (report.timebridge, report.naive):
        for c in result.cycles:
            if (c.sim_toggl_requests, c.sim_exist_requests) != (c.toggl_requests, c.exist_requests):
                lines.append(
                    f"note: {ENGINE_NAMES[c.engine]} {c.cycle}: the simulators answered "
                    f"{c.sim_toggl_requests} Toggl and {c.sim_exist_requests} Exist requests, "
                    f"the run reports count {c.toggl_requests} and {c.exist_requests}"
                )
            if c.failed:
                lines.append(f"note: {ENGINE_NAMES[c.engine]} {c.cycle}: outcomes {c.outcomes}")
    for name in ("steady", "changed"):
        tb, naive = report.cycle(TIMEBRIDGE, name), report.cycle(NAIVE, name)
        ratio = tb.users_per_second / naive.users_per_second if naive.seconds else float("inf")
        line = (
            f"{name}: timebridge {tb.users_per_second:.1f} users/s{_spread(tb)}, "
            f"naive loop {naive.users_per_second:.1f} users/s{_spread(naive)} ({ratio:.1f}x)"
        )
        if name == "changed":
            line += f"; {tb.changed_users} and {naive.changed_users} users changed before it"
        lines.append(line)
    lines.append(
        f"peak RSS: timebridge worker {report.timebridge.peak_rss_mb:.0f} MB, "
        f"naive worker {report.naive.peak_rss_mb:.0f} MB"
    )
    rate = report.timebridge_rate
    goals = [
        (f">= {GOAL_USERS_PER_SECOND:.0f} users/s", rate >= GOAL_USERS_PER_SECOND),
        (f">= {GOAL_RATIO:.0f}x the naive loop", report.ratio >= GOAL_RATIO),
        (f"< {GOAL_RSS_MB:.0f} MB RSS", report.timebridge.peak_rss_mb < GOAL_RSS_MB),
    ]
    lines.append(
        "goals (steady state): "
        + ", ".join(f"{goal}: {'met' if met else 'MISSED'}" for goal, met in goals)
    )
    return lines


def _spread(cycle: CycleFigures) -> str:
    """The rates of a repeated cycle, as in `(median of 3: 431.2-452.0)`; nothing for one."""
    if len(cycle.rates) < 2:
        return ""
    return f" (median of {len(cycle.rates)}: {min(cycle.rates):.1f}-{max(cycle.rates):.1f})"


def print_profiles(directory: Path, top: int = 25) -> None:
    for path in sorted(directory.glob(f"{TIMEBRIDGE}-*.prof")):
        print(f"\n--- {path.name}: top {top} functions by own time ---")
        pstats.Stats(str(path)).sort_stats("tottime").print_stats(top)
        print(f"--- {path.name}: top {top} by cumulative time ---")
        pstats.Stats(str(path)).sort_stats("cumulative").print_stats(top)


# --- command line ------------------------------------------------------------------------------


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/throughput.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--users", type=int, default=2000, help="simulated users (2000)")
    parser.add_argument(
        "--concurrency", type=int, default=64, help="Timebridge's max_concurrency (64)"
    )
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server to use (a fresh database is created and dropped on it); "
        "default: a SQLite file in a temporary directory",
    )
    parser.add_argument("--seed", type=int, default=0, help="which users and entries (0)")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=100.0,
        help="delay of every simulated API request, a network round trip (100; 0: pure CPU)",
    )
    parser.add_argument(
        "--baseline-users",
        type=int,
        default=200,
        help="users the naive loop syncs (200; the first ones)",
    )
    parser.add_argument(
        "--change-fraction", type=float, default=0.1, help="users changed before a cycle (0.1)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="measure each cycle this many times and report the median (3)",
    )
    parser.add_argument("--profile", type=Path, metavar="DIR", help="cProfile Timebridge's cycles")
    args = parser.parse_args(argv)
    if args.users < 1 or args.concurrency < 1 or args.baseline_users < 1 or args.repeat < 1:
        parser.error("--users, --concurrency, --baseline-users and --repeat must be at least 1")
    if not 0 < args.change_fraction <= 1:
        parser.error("--change-fraction must be in (0, 1]")
    return args


def main(argv: Sequence[str] | None = None) -> Report:
    args = parse(argv)
    began = time.perf_counter()
    baseline_users = min(args.baseline_users, args.users)
    with tempfile.TemporaryDirectory(prefix="timebridge-throughput-") as temp:
        directory = Path(temp)
        manifest = directory / "users.json"
        with (
            simulators(args.users, args.seed, args.latency_ms, manifest) as (toggl, exist),
            database(args.database_url, directory) as database_url,
        ):
            seeded = json.loads(manifest.read_text())
            settings: dict[str, Any] = {
                "data_dir": str(directory),
                "database_url": database_url,
                "secret_keys": new_key(),
                "toggl_base_url": f"{toggl.url}/api/v9/",
                "exist_base_url": f"{exist.url}/api/2/",
                "exist_oauth_base_url": f"{exist.url}/oauth2/",
                "auto_migrate": False,
            }
            store_settings = Settings.model_validate(settings)
            store_began = time.perf_counter()
            pairs = asyncio.run(seed_store(store_settings, seeded))
            store_seconds = time.perf_counter() - store_began
            entries = sum(int(user["entries"]) for user in seeded)
            database_name = "SQLite" if store_settings.is_sqlite else "PostgreSQL"
            print(
                f"{args.users} users (seed {args.seed}): {entries} Toggl entries "
                f"({entries / args.users:.0f} per user over 14 days); simulators seeded in "
                f"{toggl.seeding_seconds:.1f} s (Toggl) and {exist.seeding_seconds:.1f} s (Exist), "
                f"store ({database_name}) in {store_seconds:.1f} s",
                flush=True,
            )
            print(
                f"every simulated request delayed {args.latency_ms:g} ms; timebridge: embedded "
                f"scheduler, max_concurrency {args.concurrency}, all {args.users} users; naive "
                f"loop: one user after another, the first {baseline_users} users; each measured "
                f"cycle {args.repeat} times, the median shown",
                flush=True,
            )
            if args.profile is not None:
                args.profile.mkdir(parents=True, exist_ok=True)

            def config(engine: str, users: list[tuple[int, int]]) -> WorkerConfig:
                return WorkerConfig(
                    engine=engine,
                    settings=settings,
                    users=users,
                    concurrency=args.concurrency,
                    seed=args.seed,
                    change_fraction=args.change_fraction,
                    toggl_control=toggl.control,
                    exist_control=exist.control,
                    report_warm_up=engine == TIMEBRIDGE,
                    repeat=args.repeat,
                    profile_dir=(
                        str(args.profile.resolve())
                        if args.profile is not None and engine == TIMEBRIDGE
                        else None
                    ),
                )

            timebridge = run_worker(config(TIMEBRIDGE, pairs), directory)
            naive = run_worker(config(NAIVE, pairs[:baseline_users]), directory)
    report = Report(
        users=args.users,
        seed=args.seed,
        concurrency=args.concurrency,
        latency_ms=args.latency_ms,
        baseline_users=baseline_users,
        database=database_name,
        entries=entries,
        seconds=time.perf_counter() - began,
        timebridge=timebridge,
        naive=naive,
    )
    print()
    for line in table(report):
        print(line)
    print()
    for line in notes(report):
        print(line)
    if args.profile is not None:
        print_profiles(args.profile)
    print(f"wall time {report.seconds:.0f} s")
    print(report.summary())
    return report


if __name__ == "__main__":
    main()
