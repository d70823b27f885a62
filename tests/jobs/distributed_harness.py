"""A live stage for the distributed engine: real PostgreSQL, real worker processes, real HTTP.

- `QueueDatabase`: one fresh database per test module, migrated (store + job queue), emptied
  between tests;
- `LiveWorld`: users connected in the store and on both simulators, which run on a real clock in
  this process (the workers are other processes: they cannot share a fake clock), and the
  checks the tests make afterwards (Exist equals Toggl's truth, the ledger agrees with Exist,
  runs of one user never overlap);
- `WorkerProcess`: `python -m timebridge.cli.worker …` with the simulators' URLs and the
  database in `TIMEBRIDGE_*` variables, its log kept in a file for failure messages;
- `wait_until_drained`: until no sync job waits or runs, failing fast if a worker died.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql
from pydantic import SecretStr

from tests.store.fixtures import PostgresServer
from tests.sync.oracle import truth
from timebridge.clock import Clock
from timebridge.config import Settings
from timebridge.exist import ExistTokens
from timebridge.fakes.exist import ExistSimulator
from timebridge.fakes.toggl import SimUser, TogglSimulator
from timebridge.jobs.distributed import SYNC_USER_TASK, apply_schema, postgres_conninfo
from timebridge.store import ProjectMapping, Store, SyncRun, upgrade

ZONE = "Europe/Berlin"
#: A cron time no test run reaches (nor is within Procrastinate's ten-minute catch-up of), so
#: the workers' periodic fan-out never fires on its own: every cycle in a test is triggered.
NEVER_CRON = "0 3 1 1 *"
PROCRASTINATE_TABLES = (
    "procrastinate_events",
    "procrastinate_periodic_defers",
    "procrastinate_jobs",
    "procrastinate_workers",
)


@dataclass
class QueueDatabase:
    """A database with the store's schema and the job queue's, for one test module."""

    url: str
    server: PostgresServer

    @classmethod
    async def create(cls, server: PostgresServer) -> QueueDatabase:
        url = server.create_database()
        await upgrade(url)
        assert await apply_schema(url) is True
        return cls(url, server)

    @property
    def conninfo(self) -> str:
        return postgres_conninfo(self.url)

    def reset(self) -> None:
        """Empty the store and the queue (the schemas stay)."""
        self.server.truncate(self.url)
        tables = sql.SQL(", ").join(sql.Identifier(name) for name in PROCRASTINATE_TABLES)
        with psycopg.connect(self.conninfo, autocommit=True) as connection:
            connection.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(tables))

    def sync_jobs_by_status(self) -> dict[str, int]:
        with psycopg.connect(self.conninfo, autocommit=True) as connection:
            rows = connection.execute(
                "SELECT status::text, count(*) FROM procrastinate_jobs WHERE task_name = %s "
                "GROUP BY status",
                (SYNC_USER_TASK,),
            ).fetchall()
        return {str(status): int(count) for status, count in rows}

    def doing_sync_jobs(self) -> list[tuple[int, str]]:
        """(job id, lock) of the sync jobs running now."""
        with psycopg.connect(self.conninfo, autocommit=True) as connection:
            rows = connection.execute(
                "SELECT id, lock FROM procrastinate_jobs WHERE task_name = %s "
                "AND status = 'doing' ORDER BY id",
                (SYNC_USER_TASK,),
            ).fetchall()
        return [(int(job_id), str(lock)) for job_id, lock in rows]

    def registered_workers(self) -> int:
        with psycopg.connect(self.conninfo, autocommit=True) as connection:
            row = connection.execute("SELECT count(*) FROM procrastinate_workers").fetchone()
        return int(row[0]) if row else 0


@dataclass
class LiveWorld:
    """Users connected in the store and on both simulators (on a real clock)."""

    store: Store
    clock: Clock
    toggl_sim: TogglSimulator
    exist_sim: ExistSimulator
    exist_client_id: str
    #: Where the simulators are: each connection is stored with its origin.
    settings: Settings
    toggl_users: dict[int, SimUser] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)

    async def connect(self, name: str, *, seed: int = 0) -> int:
        """A user with two mapped projects and three finished entries over the last 30 hours."""
        account = await self.store.accounts.create(f"{name}@example.com")
        toggl_user = self.toggl_sim.add_user(
            api_token=f"toggl-{name}-0123456789", timezone=ZONE, plan="premium"
        )
        workspace = toggl_user.default_workspace_id
        series = self.toggl_sim.add_project(workspace, "Series")
        work = self.toggl_sim.add_project(workspace, "Work")
        now = self.clock.now()
        for hours_ago, project in [(30, series), (26, work), (3, series)]:
            self.toggl_sim.add_time_entry(
                toggl_user,
                start=now - timedelta(hours=hours_ago, minutes=seed % 50),
                duration=1500 + 37 * seed + hours_ago,
                project_id=project.id,
            )
        await self.store.toggl_connections.create(
            account.id, toggl_user.api_token, origin=self.settings.toggl_base_url
        )
        self.exist_sim.add_user(name, timezone=ZONE)
        token = self.exist_sim.issue_personal_token(name, self.exist_client_id)
        await self.store.exist_connections.save(
            account.id,
            ExistTokens(access_token=SecretStr(token), scope=""),
            origin=self.settings.exist_base_url,
        )
        await self.store.mappings.replace(
            account.id,
            [
                ProjectMapping(workspace, series.id, "Series", "tv_min"),
                ProjectMapping(workspace, work.id, "Work", "productive_min"),
            ],
        )
        self.toggl_users[account.id] = toggl_user
        self.names[account.id] = name
        return account.id

    async def connect_many(self, count: int, *, prefix: str = "user") -> list[int]:
        """`count` users, connected a few at a time (the store's pool is small)."""
        users: list[int] = []
        for start in range(0, count, 10):
            batch = range(start, min(count, start + 10))
            users += await asyncio.gather(
                *(self.connect(f"{prefix}{index:04d}", seed=index) for index in batch)
            )
        return sorted(users)

    async def expected(self, user: int) -> dict[tuple[str, date], int]:
        mapping = await self.store.mappings.project_map(user)
        entries = self.toggl_sim.world.entries_of(self.toggl_users[user].id, include_deleted=True)
        return dict(truth(entries, mapping, ZoneInfo(ZONE), self.clock.now()))

    async def mismatches(self, user: int) -> list[str]:
        """Where Exist differs from Toggl's truth, or the ledger from Exist (empty: none)."""
        name = self.names[user]
        problems: list[str] = []
        for (attribute, day), minutes in (await self.expected(user)).items():
            stored = self.exist_sim.stored_values(name, attribute).get(day)
            if (stored or 0) != minutes:
                problems.append(f"{name} {attribute} {day}: Exist {stored}, truth {minutes}")
        for (attribute, day), value in (await self.store.ledger.load(user)).items():
            stored = self.exist_sim.stored_values(name, attribute).get(day)
            if (stored or 0) != value:  # no data in Exist reads as 0
                problems.append(f"{name} {attribute} {day}: ledger {value}, Exist {stored}")
        return problems

    async def runs(self, user: int) -> list[SyncRun]:
        """The user's recorded runs, oldest first."""
        return sorted(await self.store.sync_runs.recent(user, limit=100), key=_started)


def describe(runs: Sequence[SyncRun]) -> str:
    """The runs as one line each, errors included, for assertion messages."""
    return "; ".join(
        f"{run.kind} {run.outcome} {run.started_at:%H:%M:%S.%f}-{run.finished_at:%H:%M:%S.%f}"
        + (f" ({run.error})" if run.error else "")
        for run in runs
    )


def _started(run: SyncRun) -> tuple[datetime, int]:
    return (run.started_at, run.id)


def overlapping(runs: Sequence[SyncRun]) -> list[tuple[SyncRun, SyncRun]]:
    """Consecutive runs of one user where the later started before the earlier finished."""
    ordered = sorted(runs, key=_started)
    return [
        (earlier, later)
        for earlier, later in itertools.pairwise(ordered)
        if later.started_at < earlier.finished_at
    ]


def worker_environment(settings: Settings, secret_key: str, data_dir: Path) -> dict[str, str]:
    """The `TIMEBRIDGE_*` variables a worker process needs to reach this test's world."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TIMEBRIDGE_")}
    env.update(
        {
            "TIMEBRIDGE_DATABASE_URL": settings.database_url,
            "TIMEBRIDGE_SECRET_KEYS": secret_key,
            "TIMEBRIDGE_TOGGL_BASE_URL": settings.toggl_base_url,
            "TIMEBRIDGE_EXIST_BASE_URL": settings.exist_base_url,
            "TIMEBRIDGE_EXIST_OAUTH_BASE_URL": settings.exist_oauth_base_url,
            "TIMEBRIDGE_SYNC_CRON": settings.sync_cron,
            "TIMEBRIDGE_AUTO_MIGRATE": "false",
            "TIMEBRIDGE_DATA_DIR": str(data_dir),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


class WorkerProcess:
    """One `timebridge worker` in its own process, logging to a file."""

    def __init__(
        self,
        name: str,
        env: dict[str, str],
        log_dir: Path,
        *,
        concurrency: int = 8,
        heartbeat: float | None = None,
        stalled_after: float | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        """`heartbeat` and `stalled_after` default to production's (10 s, 30 s): short ones only
        where a test kills a worker, since a worker starved of CPU for that long would be taken
        for dead and its running jobs rerun alongside it."""
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        command = [
            sys.executable,
            "-m",
            "timebridge.cli.worker",
            "--name",
            name,
            "--concurrency",
            str(concurrency),
            *(["--heartbeat", str(heartbeat)] if heartbeat is not None else []),
            *(["--stalled-after", str(stalled_after)] if stalled_after is not None else []),
            *extra_args,
        ]
        self.process = subprocess.Popen(
            command, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as when a machine dies."""
        if self.alive:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM (running jobs finish first); SIGKILL if it does not exit in time."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
        return self.process.returncode

    def diagnostics(self) -> str:
        tail = "\n".join(self.log().splitlines()[-40:])
        return f"--- worker {self.name} (exit {self.process.poll()}) ---\n{tail}"


async def run_cli(env: dict[str, str], *args: str, within: float = 30) -> tuple[int, str]:
    """`python -m timebridge.cli.worker *args` to completion: (exit code, stdout and stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "timebridge.cli.worker",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(within):
        output, _ = await process.communicate()
    return process.returncode or 0, output.decode(errors="replace")


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    within: float,
    workers: Sequence[WorkerProcess] = (),
    what: str = "condition",
    interval: float = 0.1,
) -> None:
    """Poll `condition` until true; fail with the workers' logs on timeout or if one died."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        dead = [worker for worker in workers if not worker.alive]
        if dead or time.monotonic() > deadline:
            reason = "a worker died" if dead else f"timed out after {within:.0f} s"
            logs = "\n".join(worker.diagnostics() for worker in workers)
            raise AssertionError(f"waiting for {what}: {reason}\n{logs}")
        await asyncio.sleep(interval)


async def wait_until_drained(
    database: QueueDatabase, workers: Sequence[WorkerProcess], *, within: float
) -> dict[str, int]:
    """Until no sync job waits or runs; returns the final count of jobs by status."""

    def drained() -> bool:
        counts = database.sync_jobs_by_status()
        return counts.get("todo", 0) == 0 and counts.get("doing", 0) == 0

    await wait_for(
        drained, within=within, workers=workers, what="the queue to drain", interval=0.25
    )
    return database.sync_jobs_by_status()
