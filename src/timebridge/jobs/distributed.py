"""The distributed engine: Procrastinate on the store's PostgreSQL, for many users and machines.

It keeps the promises of the embedded scheduler (`timebridge.jobs.embedded`) across any number of
`timebridge worker` processes:
- every cycle (`Settings.sync_cron`) a `fan_out` job queues one `sync_user` job per connected
  user, optionally spread over a jitter window by a stable hash of the user id, so that ten
  thousand users do not all hit Toggl and Exist in the same second;
- never two runs of one user at once: every job of a user carries the `lock` `user-<id>`, which
  Procrastinate will not let two running jobs hold;
- never a pile of duplicates: a user's waiting sync job carries the `queueing_lock` `user-<id>`,
  so a second fan-out (or "sync now") while one waits finds it and counts it as already queued;
- a user whose run hit Toggl's hourly quota (402) gets their next job scheduled after the reset,
  and that waiting job keeps later fan-outs from syncing them sooner;
- one user's failure never stops another's, and a crash is retried (see below).

Crashes, and why Procrastinate's own retries are not used for them. Procrastinate retries a job
by putting it back to "todo"; the queueing lock is a unique index over "todo" jobs, so if a
fan-out queued the user again meanwhile, that retry fails inside the worker and leaves the job
"doing" forever, holding the user's lock (procrastinate-org/procrastinate#1446, #1543). So:
- a `sync_user` that raises (the database went away, a bug) queues a *new* job for the user a
  little later (or finds one already waiting) and ends as failed;
- a worker that dies mid-job (killed, out of memory, machine gone) stops sending heartbeats; a
  periodic `recover_stalled_jobs` job on a live worker puts its jobs back in the queue, or, when
  another job of the user already waits, closes them as failed since that one will sync the user.
Either way the rerun is harmless: values are written to Exist as absolute numbers and the ledger
only holds what Exist confirmed (`timebridge.sync.runner`), so nothing is ever counted twice.

Successful jobs are deleted as they finish (each run is recorded in the store's `sync_runs`);
failed ones are kept two weeks for whoever investigates, then a daily job removes them.

Workers open one store per process (`run_worker`) and hand it to every job through the job
context; the web process only needs an open `App` to call `sync_now`.
"""

from __future__ import annotations

import enum
import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import psycopg
from procrastinate import App, JobContext, PsycopgConnector, exceptions, jobs, types
from procrastinate.app import WorkerOptions
from procrastinate.schema import SchemaManager
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url

from timebridge._pool import ConnectionPool
from timebridge.bridge import Bridge, Skipped
from timebridge.clock import Clock, SystemClock
from timebridge.config import Settings
from timebridge.store import open_store
from timebridge.sync.runner import RunKind, RunReport

logger = logging.getLogger(__name__)

#: Task names are part of the queue's data (jobs waiting in the table name them), so they are
#: fixed here rather than derived from where the functions happen to live.
SYNC_USER_TASK: Final = "timebridge.sync_user"
FAN_OUT_TASK: Final = "timebridge.fan_out"
RECOVER_TASK: Final = "timebridge.recover_stalled_jobs"
CLEANUP_TASK: Final = "timebridge.remove_old_jobs"
#: Users' syncs, and the engine's own bookkeeping (fan-outs, recovery), in separate queues so
#: that a deployment can give them separate workers; a worker listens to both by default.
SYNC_QUEUE: Final = "sync"
SCHEDULE_QUEUE: Final = "schedule"
#: "Sync now" is someone waiting at a page: it goes ahead of a fan-out's backlog.
SYNC_NOW_PRIORITY: Final = 10
#: Where a worker puts its `WorkerResources` in the job context.
RESOURCES_KEY: Final = "timebridge"
#: Finished jobs that were kept (failed, cancelled, aborted) are deleted after this long, daily.
KEEP_FINISHED_JOBS: Final = timedelta(days=14)
CLEANUP_CRON: Final = "17 4 * * *"
#: How many jobs one statement queues during a fan-out.
FAN_OUT_BATCH: Final = 500
#: Any constant works; it only has to be the same for every Timebridge process (and differ from
#: the store's migration lock). "tbqueue".
_SCHEMA_LOCK_ID: Final = 0x7462_7175_6575_65
#: Placing a job retries when a waiting job it wanted to replace was taken by a worker meanwhile.
_PLACE_ATTEMPTS: Final = 4


def postgres_conninfo(database_url: str) -> str:
    """The libpq connection string of the store's SQLAlchemy URL (`postgresql+psycopg://…`).

    Procrastinate talks to psycopg directly, so it needs libpq's form; query parameters such as
    `sslmode` or a socket `host` are carried over.
    """
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise ValueError("the distributed engine needs PostgreSQL (TIMEBRIDGE_DATABASE_URL)")
    parameters: dict[str, str | int] = {
        key: raw if isinstance(raw, str) else raw[-1] for key, raw in url.query.items()
    }
    fields: dict[str, str | int | None] = {
        "host": url.host,
        "port": url.port,
        "user": url.username,
        "password": url.password,
        "dbname": url.database,
    }
    parameters.update({key: value for key, value in fields.items() if value is not None})
    return make_conninfo("", **parameters)


def user_lock(user_id: int) -> str:
    """The lock every job of the user holds while it runs (never two at once)."""
    return f"user-{user_id}"


def queueing_lock(user_id: int, kind: RunKind = RunKind.SYNC) -> str:
    """The user's waiting-job slot for `kind`.

    Plain syncs share `user-<id>`; a Zero Out or a Repair gets a slot of its own, so that asking
    for one is never swallowed by a routine sync that happens to be waiting.
    """
    base = user_lock(user_id)
    return base if kind is RunKind.SYNC else f"{base}:{kind.value}"


def jitter_offset(user_id: int, window: timedelta) -> timedelta:
    """Where in the window the user's sync goes: the same place every cycle, spread evenly.

    A hash rather than `user_id % window`: consecutive ids (users who signed up together) would
    otherwise land in consecutive seconds. Stable across processes and restarts, unlike `hash()`.
    """
    seconds = int(window.total_seconds())
    if seconds <= 0:
        return timedelta(0)
    digest = hashlib.blake2b(str(user_id).encode(), digest_size=8, person=b"tb-jitter").digest()
    return timedelta(seconds=int.from_bytes(digest, "big") % seconds)


@dataclass(frozen=True)
class EngineOptions:
    """How the engine paces and guards itself; the defaults suit production."""

    #: Spread each cycle's syncs over this window (zero: all queued to run at once).
    jitter: timedelta = timedelta(0)
    #: How often a worker tells the database it is alive.
    heartbeat_interval: float = 10.0
    #: A worker silent for this long is taken for dead and its running jobs are recovered.
    #: Several heartbeats long, so that a busy worker is never mistaken for a dead one (its
    #: user's sync would then run twice at once).
    stalled_after: float = 30.0
    #: How many times a job whose worker died is put back before it is given up (a job that
    #: kills every worker that runs it must not take them all down forever).
    max_recoveries: int = 3
    #: A sync that raised is queued again this many times, waiting `crash_retry_delay`, then
    #: twice that, and so on; after that the next cycle tries again.
    crash_retries: int = 3
    crash_retry_delay: timedelta = timedelta(seconds=30)

    def __post_init__(self) -> None:
        if self.jitter < timedelta(0):
            raise ValueError("jitter must not be negative")
        if self.heartbeat_interval <= 0 or self.stalled_after <= self.heartbeat_interval:
            raise ValueError("stalled_after must be longer than heartbeat_interval (> 0)")
        if self.max_recoveries < 0 or self.crash_retries < 0:
            raise ValueError("retry counts must not be negative")

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineOptions:
        """Options from settings; `sync_jitter_seconds` is read only if Settings has it."""
        jitter = settings.sync_jitter_seconds
        return cls(jitter=timedelta(seconds=float(jitter)))

    @property
    def recovery_cron(self) -> str:
        """How often to look for dead workers' jobs: every `stalled_after` (at least a second,
        at most a minute), so a crashed job waits at most about twice that."""
        seconds = max(1, min(60, int(self.stalled_after)))
        return "* * * * *" if seconds == 60 else f"* * * * * */{seconds}"


@dataclass(frozen=True)
class WorkerResources:
    """What one worker process shares between all its jobs (one store, not one per job)."""

    bridge: Bridge
    options: EngineOptions
    clock: Clock


class Placement(enum.StrEnum):
    """What asking for a user's job did."""

    #: A new job was queued.
    QUEUED = "queued"
    #: A suitable job was already waiting; nothing was added.
    ALREADY_QUEUED = "already_queued"


@dataclass(frozen=True)
class PlacedJob:
    """The user's waiting job after a request, and whether the request added it."""

    placement: Placement
    job_id: int | None
    scheduled_at: datetime | None


@dataclass(frozen=True)
class FanOutReport:
    """What one cycle's fan-out queued."""

    users: int
    queued: int
    already_queued: int


@dataclass(frozen=True)
class RecoveryReport:
    """What one look for dead workers' jobs found."""

    #: Put back in the queue.
    retried: int = 0
    #: Closed as failed because another job of the same user is already waiting.
    superseded: int = 0
    #: Closed as failed after `max_recoveries` attempts.
    given_up: int = 0


# --- schema -----------------------------------------------------------------------------------


class QueueSchemaMissing(RuntimeError):
    """Procrastinate's tables are not in the database, and this process may not create them."""


async def schema_exists(database_url: str) -> bool:
    """Whether Procrastinate's tables are in the database."""
    async with await psycopg.AsyncConnection.connect(
        postgres_conninfo(database_url), autocommit=True
    ) as connection:
        return await _has_schema(connection)


async def apply_schema(database_url: str) -> bool:
    """Create Procrastinate's tables unless they exist; True if this call created them.

    Safe to run any number of times and from several machines at once: an advisory lock makes
    concurrent callers take turns, and the second finds the tables there. Upgrading to a newer
    Procrastinate that changes its schema needs that release's migrations, not this.
    """
    async with await psycopg.AsyncConnection.connect(
        postgres_conninfo(database_url), autocommit=True
    ) as connection:
        await connection.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK_ID,))
        try:
            if await _has_schema(connection):
                return False
            async with connection.transaction():
                await connection.execute(SchemaManager.get_schema())
            logger.info("created the job queue's tables")
            return True
        finally:
            await connection.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK_ID,))


async def _has_schema(connection: psycopg.AsyncConnection[tuple[object, ...]]) -> bool:
    cursor = await connection.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL")
    row = await cursor.fetchone()
    return bool(row and row[0])


# --- the app and its tasks --------------------------------------------------------------------


def build_app(
    settings: Settings, options: EngineOptions | None = None, *, pool_size: int = 4
) -> App:
    """The Procrastinate app on the store's database, with Timebridge's tasks registered.

    Not opened: use `async with app.open_async():` (workers and the web process each open it
    once). `pool_size` bounds the queue's own connections (the store has its own pool).
    """
    options = options or EngineOptions.from_settings(settings)
    connector = PsycopgConnector(
        conninfo=postgres_conninfo(settings.database_url),
        min_size=1,
        max_size=max(2, pool_size),
    )
    app = App(connector=connector)
    app.task(name=SYNC_USER_TASK, queue=SYNC_QUEUE, pass_context=True)(_sync_user_task)
    fan_out_task = app.task(name=FAN_OUT_TASK, queue=SCHEDULE_QUEUE, pass_context=True)(
        _fan_out_task
    )
    # Every worker runs the periodic deferrer; the database lets one job per tick through, and
    # the queueing lock keeps a slow fan-out from piling up behind itself.
    app.periodic(cron=settings.sync_cron, periodic_id="cycle", queueing_lock=FAN_OUT_TASK)(
        fan_out_task
    )
    # No `lock` here: a recovery whose worker died would hold it, and only a recovery could
    # release it.
    recover_task = app.task(name=RECOVER_TASK, queue=SCHEDULE_QUEUE, pass_context=True)(
        _recover_task
    )
    app.periodic(cron=options.recovery_cron, periodic_id="stalled", queueing_lock=RECOVER_TASK)(
        recover_task
    )
    cleanup_task = app.task(name=CLEANUP_TASK, queue=SCHEDULE_QUEUE, pass_context=True)(
        _cleanup_task
    )
    app.periodic(cron=CLEANUP_CRON, periodic_id="daily", queueing_lock=CLEANUP_TASK)(cleanup_task)
    return app


def _resources(context: JobContext) -> WorkerResources:
    resources = context.additional_context.get(RESOURCES_KEY)
    if not isinstance(resources, WorkerResources):
        raise RuntimeError(
            "Timebridge jobs run in `timebridge worker` processes (run_worker), which open the "
            "store they need; a bare `procrastinate worker` does not"
        )
    return resources


async def _sync_user_task(
    context: JobContext, user_id: int, kind: str = RunKind.SYNC.value, attempt: int = 0
) -> str:
    """One user's run: `Bridge.sync`, then whatever its result asks of the queue."""
    resources = _resources(context)
    run_kind = RunKind(kind)
    try:
        result = await resources.bridge.sync(user_id, run_kind)
    except Exception:
        if attempt < resources.options.crash_retries:
            delay = resources.options.crash_retry_delay * (2**attempt)
            placed = await schedule_sync(
                context.app,
                user_id,
                not_before=resources.clock.now() + delay,
                kind=run_kind,
                attempt=attempt + 1,
                hold_back=False,
            )
            logger.exception(
                "sync of user %s raised; next attempt %s (%s)",
                user_id,
                placed.scheduled_at or "as soon as possible",
                placed.placement,
            )
        else:
            logger.exception("sync of user %s raised; waiting for the next cycle", user_id)
        raise
    if result.next_sync_after is not None:
        # Toggl's quota is spent (402) or it asked us to wait (429): the user's next job waits
        # for the reset, and while it waits no fan-out can queue a sooner one.
        await schedule_sync(context.app, user_id, not_before=result.next_sync_after)
    return _describe(result)


def _describe(result: RunReport | Skipped) -> str:
    if isinstance(result, Skipped):
        return f"user {result.user_id} skipped: {result.reason}"
    return f"user {result.user_id} {result.outcome}: {result.values_written} values written"


async def _fan_out_task(context: JobContext, timestamp: int) -> str:
    resources = _resources(context)
    report = await fan_out(
        context.app,
        await resources.bridge.users_to_sync(),
        cycle_start=datetime.fromtimestamp(timestamp, UTC),
        jitter=resources.options.jitter,
    )
    logger.info(
        "fan-out: %d users, %d queued, %d already queued",
        report.users,
        report.queued,
        report.already_queued,
    )
    return f"{report.queued} queued, {report.already_queued} already queued"


async def _recover_task(context: JobContext, timestamp: int) -> str:
    options = _resources(context).options
    report = await recover_stalled_jobs(
        context.app, stalled_after=options.stalled_after, max_recoveries=options.max_recoveries
    )
    return f"{report.retried} retried, {report.superseded} superseded, {report.given_up} given up"


async def _cleanup_task(context: JobContext, timestamp: int) -> str:
    """The daily upkeep: the store's old ledger and entry rows and run records
    (`Bridge.purge`), the check of every Toggl webhook (`Webhooks.check_all`), and the jobs
    table (successful jobs are deleted as they finish, `run_worker`; the others are kept a
    while for whoever investigates, then go too)."""
    counts, checks = await _resources(context).bridge.daily_upkeep()
    hours = int(KEEP_FINISHED_JOBS.total_seconds() // 3600)
    await context.app.job_manager.delete_old_jobs(
        nb_hours=hours, include_failed=True, include_cancelled=True, include_aborted=True
    )
    return (
        f"purged {counts.ledger_rows} ledger rows and {counts.snapshots} entry snapshots; "
        f"checked {checks.checked} webhook endpoints ({checks.failed} failed); "
        f"removed jobs finished over {hours} hours ago"
    )


# --- queueing ---------------------------------------------------------------------------------


def _sync_job(
    app: App,
    user_id: int,
    *,
    kind: RunKind = RunKind.SYNC,
    scheduled_at: datetime | None = None,
    priority: int = jobs.DEFAULT_PRIORITY,
    attempt: int = 0,
) -> jobs.Job:
    task_kwargs: types.JSONDict = {"user_id": user_id}
    if kind is not RunKind.SYNC:
        task_kwargs["kind"] = kind.value
    if attempt:
        task_kwargs["attempt"] = attempt
    return app.configure_task(
        SYNC_USER_TASK,
        lock=user_lock(user_id),
        queueing_lock=queueing_lock(user_id, kind),
        task_kwargs=task_kwargs,
        schedule_at=scheduled_at,
        queue=SYNC_QUEUE,
        priority=priority,
    ).job


async def fan_out(
    app: App,
    users: Sequence[int],
    *,
    cycle_start: datetime | None = None,
    jitter: timedelta = timedelta(0),
) -> FanOutReport:
    """Queue one sync job per user (those with a job already waiting are counted, not doubled).

    With a jitter window, each user's job is scheduled at `cycle_start` plus their stable offset
    (`jitter_offset`). Jobs are inserted in batches; a batch that meets a job queued meanwhile
    by someone else is redone one job at a time, so a race costs speed, never a user.
    """
    cycle_start = cycle_start or SystemClock().now()
    waiting = {
        job.queueing_lock
        for job in await app.job_manager.list_jobs_async(task=SYNC_USER_TASK, status="todo")
    }
    pending = [user for user in dict.fromkeys(users) if queueing_lock(user) not in waiting]
    queued = 0
    for start in range(0, len(pending), FAN_OUT_BATCH):
        batch = [
            _sync_job(
                app,
                user,
                scheduled_at=cycle_start + jitter_offset(user, jitter) if jitter else None,
            )
            for user in pending[start : start + FAN_OUT_BATCH]
        ]
        try:
            await app.job_manager.batch_defer_jobs_async(batch)
            queued += len(batch)
        except exceptions.AlreadyEnqueued:
            for job in batch:
                try:
                    await app.job_manager.defer_job_async(job)
                    queued += 1
                except exceptions.AlreadyEnqueued:
                    pass
    return FanOutReport(
        users=len(set(users)), queued=queued, already_queued=len(set(users)) - queued
    )


async def sync_now(
    app: App, user_id: int, kind: RunKind = RunKind.SYNC, *, clock: Clock | None = None
) -> PlacedJob:
    """Queue a run of `kind` for the user to start as soon as a worker is free.

    For the web layer's "Sync now" (and Zero Out, Repair). It goes ahead of routine jobs; a job
    of the user already waiting to start now with that urgency is reused, and one waiting for
    later (a jitter slot, a quota reset) is brought forward: "sync now" is the user's explicit
    wish, and if the quota is still spent the run says so and the next job waits for the reset.
    If a run of the user is in progress, this one starts right after it (never alongside it).
    """
    now = (clock or SystemClock()).now()

    def good_enough(waiting: jobs.Job) -> bool:
        starts_now = waiting.scheduled_at is None or waiting.scheduled_at <= now
        return starts_now and waiting.priority >= SYNC_NOW_PRIORITY

    return await _place(
        app, _sync_job(app, user_id, kind=kind, priority=SYNC_NOW_PRIORITY), good_enough
    )


async def sync_soon(app: App, user_id: int, *, at: datetime) -> PlacedJob:
    """Queue a sync of the user to start at `at` (a webhook's events, gathered a few seconds).

    A job of the user waiting to start by `at` covers the event and is kept (it has not
    fetched yet); one waiting for later (its slot in the hourly cycle) is brought forward. The
    caller chooses `at` after any quota wait of the user's (`Bridge.quota_wait`).
    """

    def covers(waiting: jobs.Job) -> bool:
        return waiting.scheduled_at is None or waiting.scheduled_at <= at

    return await _place(app, _sync_job(app, user_id, scheduled_at=at), covers)


async def schedule_sync(
    app: App,
    user_id: int,
    *,
    not_before: datetime,
    kind: RunKind = RunKind.SYNC,
    attempt: int = 0,
    hold_back: bool = True,
) -> PlacedJob:
    """Queue the user's next run of `kind` for `not_before`.

    `hold_back` (a quota wait): no run may start sooner, so a waiting job due later is kept and
    one due sooner is replaced by this one; a job queued before the 402 must not cut the wait
    short. Without it (a retry after a crash), any job already waiting will do: it syncs the
    user anyway, and sooner.
    """

    def acceptable(waiting: jobs.Job) -> bool:
        if not hold_back:
            return True
        return waiting.scheduled_at is not None and waiting.scheduled_at >= not_before

    job = _sync_job(app, user_id, kind=kind, scheduled_at=not_before, attempt=attempt)
    return await _place(app, job, acceptable)


async def _place(app: App, job: jobs.Job, acceptable: Callable[[jobs.Job], bool]) -> PlacedJob:
    """Queue `job`, or keep the waiting job with its queueing lock if `acceptable`, or replace it.

    Replacing is cancel-then-queue: cancelling only succeeds while the job still waits, so a
    waiting job a worker takes meanwhile runs as planned and the next attempt queues after it.
    """
    waiting: list[jobs.Job] = []
    for _ in range(_PLACE_ATTEMPTS):
        try:
            placed = await app.job_manager.defer_job_async(job)
        except exceptions.AlreadyEnqueued:
            pass
        else:
            return PlacedJob(Placement.QUEUED, placed.id, placed.scheduled_at)
        waiting = list(
            await app.job_manager.list_jobs_async(queueing_lock=job.queueing_lock, status="todo")
        )
        for existing in waiting:
            if acceptable(existing):
                return PlacedJob(Placement.ALREADY_QUEUED, existing.id, existing.scheduled_at)
            assert existing.id is not None
            await app.job_manager.cancel_job_by_id_async(existing.id, delete_job=True)
    # Others kept queueing for this user as fast as we replaced: one of theirs is waiting.
    last = waiting[0] if waiting else None
    return PlacedJob(
        Placement.ALREADY_QUEUED,
        last.id if last else None,
        last.scheduled_at if last else None,
    )


async def recover_stalled_jobs(
    app: App, *, stalled_after: float, max_recoveries: int = 3
) -> RecoveryReport:
    """Put back the running jobs of workers silent for `stalled_after` seconds (dead ones).

    Procrastinate's recipe (`get_stalled_jobs` then `retry_job`) fails when another job with the
    same queueing lock already waits (procrastinate-org/procrastinate#1446); such a stalled job
    is closed as failed instead, since the waiting one will sync the user. The stalled job keeps
    holding the user's lock until then, so the waiting one never ran alongside it.
    """
    retried = superseded = given_up = 0
    stalled: Iterable[jobs.Job] = await app.job_manager.get_stalled_jobs(
        seconds_since_heartbeat=stalled_after
    )
    for job in stalled:
        try:
            if job.attempts >= max_recoveries:
                logger.error("job %s killed its worker %d times; giving up", job.id, job.attempts)
                await app.job_manager.finish_job(job, status=jobs.Status.FAILED, delete_job=False)
                given_up += 1
                continue
            try:
                await app.job_manager.retry_job(job)
                retried += 1
                logger.warning("recovered job %s of a dead worker", job.call_string)
            except exceptions.UniqueViolation:
                await app.job_manager.finish_job(job, status=jobs.Status.FAILED, delete_job=False)
                superseded += 1
        except exceptions.ConnectorException:
            # Another worker's recovery got there first: the job is no longer "doing".
            logger.debug("stalled job %s was recovered elsewhere", job.id)
    return RecoveryReport(retried=retried, superseded=superseded, given_up=given_up)


# --- running ----------------------------------------------------------------------------------


async def fan_out_now(
    settings: Settings, options: EngineOptions | None = None, *, clock: Clock | None = None
) -> FanOutReport:
    """Run one cycle's fan-out from this process (the `fan-out-now` command)."""
    options = options or EngineOptions.from_settings(settings)
    clock = clock or SystemClock()
    app = build_app(settings, options, pool_size=2)
    async with app.open_async():
        store = await open_store(settings, clock=clock)
        try:
            users = await Bridge.from_settings(store, settings, clock=clock).users_to_sync()
        finally:
            await store.close()
        return await fan_out(app, users, cycle_start=clock.now(), jitter=options.jitter)


async def run_worker(
    settings: Settings,
    options: EngineOptions | None = None,
    *,
    concurrency: int = 8,
    queues: Sequence[str] | None = None,
    name: str | None = None,
    wait: bool = True,
    install_signal_handlers: bool = True,
    delete_jobs: jobs.DeleteJobCondition = jobs.DeleteJobCondition.SUCCESSFUL,
) -> None:
    """Run one worker until stopped (SIGINT/SIGTERM: finish running jobs, then exit).

    With `wait=False` it returns once no job is left to start and the running ones finished.
    Successful jobs are deleted by default: each run is recorded in the store's `sync_runs`, and
    a queue of ten thousand users an hour must not grow without end; failed ones stay to be
    looked at.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    options = options or EngineOptions.from_settings(settings)
    if not await schema_exists(settings.database_url):
        if not settings.migrate_on_start:
            raise QueueSchemaMissing(
                "the job queue's tables are missing: run `timebridge db upgrade` first"
            )
        await apply_schema(settings.database_url)
    clock = SystemClock()
    app = build_app(settings, options, pool_size=2 + concurrency // 2)
    async with app.open_async():
        store = await open_store(settings, clock=clock)
        pool = ConnectionPool()
        try:
            bridge = Bridge.from_settings(store, settings, clock=clock, pool=pool)
            resources = WorkerResources(bridge, options, clock)
            worker_options: WorkerOptions = {
                "concurrency": concurrency,
                "name": name or "worker",
                "wait": wait,
                "install_signal_handlers": install_signal_handlers,
                "additional_context": {RESOURCES_KEY: resources},
                "update_heartbeat_interval": options.heartbeat_interval,
                "stalled_worker_timeout": options.stalled_after,
                "delete_jobs": delete_jobs,
            }
            if queues:
                worker_options["queues"] = list(queues)
            await app.run_worker_async(**worker_options)
        finally:
            await pool.aclose()
            await store.close()
