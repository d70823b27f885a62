"""The distributed engine on real PostgreSQL, with real worker processes and both simulators.

What is promised at scale (DESIGN.md, "Storage and scale", "Cadence", "Failures"): one cycle
syncs every connected user exactly once however many workers share it; two runs of one user
never overlap; a waiting job is never doubled; a worker killed mid-job costs a rerun, never a
double count; a user whose Toggl quota is spent is not synced again before it resets.

PostgreSQL is required: these tests fail (never skip) when it cannot be reached.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from procrastinate import App
from pydantic import SecretStr
from typer.testing import CliRunner

from tests.conftest import EXIST_CLIENT_ID, EXIST_CLIENT_SECRET
from tests.jobs.distributed_harness import (
    NEVER_CRON,
    LiveWorld,
    QueueDatabase,
    WorkerProcess,
    describe,
    overlapping,
    run_cli,
    wait_for,
    wait_until_drained,
    worker_environment,
)
from tests.store.fixtures import PostgresServer, run_blocking
from tests.webhooks.conftest import free_socket, serve_app
from timebridge.bridge import Bridge, Skipped
from timebridge.cli.worker import worker_app
from timebridge.clock import SystemClock
from timebridge.config import Settings
from timebridge.fakes import serve_in_thread
from timebridge.fakes.exist import ExistSimulator
from timebridge.fakes.toggl import TogglSimulator
from timebridge.jobs.distributed import (
    CLEANUP_TASK,
    FAN_OUT_TASK,
    RECOVER_TASK,
    SYNC_NOW_PRIORITY,
    SYNC_USER_TASK,
    EngineOptions,
    Placement,
    QueueSchemaMissing,
    RecoveryReport,
    apply_schema,
    build_app,
    fan_out,
    jitter_offset,
    postgres_conninfo,
    queueing_lock,
    recover_stalled_jobs,
    run_worker,
    schedule_sync,
    schema_exists,
    sync_now,
    sync_soon,
    user_lock,
)
from timebridge.records import IN_FLIGHT
from timebridge.store import Database, SecretBox, Store, new_key
from timebridge.sync.runner import RunKind, RunReport
from timebridge.web import create_app

# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def queue_database(postgres_server: PostgresServer) -> QueueDatabase:
    return run_blocking(QueueDatabase.create(postgres_server))


@pytest.fixture
def clean_database(queue_database: QueueDatabase) -> QueueDatabase:
    queue_database.reset()
    return queue_database


@pytest.fixture(scope="module")
def queue_secret_key() -> str:
    return new_key()


@pytest.fixture
def live_toggl() -> Iterator[tuple[TogglSimulator, str]]:
    simulator = TogglSimulator(SystemClock())
    with serve_in_thread(simulator.asgi_app) as server:
        yield simulator, f"{server.url}/api/v9"


@pytest.fixture
def live_exist() -> Iterator[tuple[ExistSimulator, str]]:
    simulator = ExistSimulator(SystemClock())
    simulator.add_client(
        "Timebridge",
        client_id=EXIST_CLIENT_ID,
        client_secret=EXIST_CLIENT_SECRET,
        service="timebridge",
    )
    with serve_in_thread(simulator.asgi_app) as server:
        yield simulator, server.url


@pytest.fixture
def settings(
    clean_database: QueueDatabase,
    live_toggl: tuple[TogglSimulator, str],
    live_exist: tuple[ExistSimulator, str],
    queue_secret_key: str,
    tmp_path: Path,
) -> Settings:
    return Settings(
        database_url=clean_database.url,
        secret_keys=SecretStr(queue_secret_key),
        toggl_base_url=live_toggl[1],
        exist_base_url=f"{live_exist[1]}/api/2/",
        exist_oauth_base_url=f"{live_exist[1]}/oauth2/",
        sync_cron=NEVER_CRON,
        auto_migrate=False,
        data_dir=tmp_path / "data",
    )


@pytest.fixture
async def world(
    settings: Settings,
    queue_secret_key: str,
    live_toggl: tuple[TogglSimulator, str],
    live_exist: tuple[ExistSimulator, str],
) -> AsyncIterator[LiveWorld]:
    clock = SystemClock()
    store = Store(Database(settings.database_url), SecretBox([queue_secret_key]), clock)
    yield LiveWorld(store, clock, live_toggl[0], live_exist[0], EXIST_CLIENT_ID, settings)
    await store.close()


@pytest.fixture
async def queue(settings: Settings) -> AsyncIterator[App]:
    """The app as the web process holds it: open, running no worker."""
    app = build_app(settings)
    async with app.open_async():
        yield app


Spawn = Callable[..., WorkerProcess]


@pytest.fixture
def worker_env(settings: Settings, queue_secret_key: str, tmp_path: Path) -> dict[str, str]:
    return worker_environment(settings, queue_secret_key, tmp_path)


@pytest.fixture
def spawn(worker_env: dict[str, str], tmp_path: Path) -> Iterator[Spawn]:
    """Starts worker processes (`spawn(name, concurrency=…)`); stops what is left at the end."""
    started: list[WorkerProcess] = []

    def start(name: str, **options: Any) -> WorkerProcess:
        worker = WorkerProcess(name, worker_env, tmp_path, **options)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop(timeout=5)


async def drain_in_process(
    settings: Settings,
    database: QueueDatabase,
    *,
    options: EngineOptions | None = None,
    concurrency: int = 4,
    within: float = 20,
) -> None:
    """Run a worker in this process until no sync job waits or runs.

    One `wait=False` pass stops as soon as nothing can start, which leaves jobs that were not
    due yet (jitter) or were waiting for their user's lock: pass again until none is left.
    """
    deadline = time.monotonic() + within
    while database.sync_jobs_by_status().keys() & {"todo", "doing"}:
        assert time.monotonic() < deadline, database.sync_jobs_by_status()
        await run_worker(
            settings,
            options or EngineOptions(),
            concurrency=concurrency,
            wait=False,
            install_signal_handlers=False,
        )
        await asyncio.sleep(0.05)


# --- one cycle across two workers ---------------------------------------------------------------


async def test_one_cycle_syncs_each_of_200_users_exactly_once_across_two_workers(
    world: LiveWorld,
    queue: App,
    clean_database: QueueDatabase,
    spawn: Spawn,
    worker_env: dict[str, str],
) -> None:
    users = await world.connect_many(200)
    workers = [spawn("alpha", concurrency=8), spawn("beta", concurrency=8)]
    await wait_for(
        lambda: clean_database.registered_workers() == 2,
        within=30,
        workers=workers,
        what="both workers to start",
    )

    code, output = await run_cli(worker_env, "fan-out-now")
    assert code == 0, output
    assert "200 users: 200 syncs queued, 0 already queued." in output
    final = await wait_until_drained(clean_database, workers, within=60)
    assert final == {}, f"every job succeeded (and was deleted): {final}"

    for user in users:
        runs = await world.runs(user)
        assert [run.outcome for run in runs] == ["succeeded"], (
            f"{world.names[user]}: {describe(runs)}\n"
            + "\n".join(worker.diagnostics() for worker in workers)
        )
        assert not overlapping(runs)
        assert await world.mismatches(user) == []
    for worker in workers:
        assert worker.alive, worker.diagnostics()
        assert "Job timebridge.sync_user" in worker.log(), f"{worker.name} ran no sync"
        assert worker.stop() == 0, worker.diagnostics()


# --- a worker killed mid-job ------------------------------------------------------------------


async def test_worker_killed_mid_job_is_rerun_elsewhere_and_nothing_is_counted_twice(
    world: LiveWorld,
    queue: App,
    clean_database: QueueDatabase,
    spawn: Spawn,
) -> None:
    users = await world.connect_many(12, prefix="crash")
    # Exist holds every write for a while: the jobs are in flight when the worker dies, and
    # the writes land in Exist afterwards, with nobody left to record them in the ledger.
    world.exist_sim.faults.add(method="POST", path="/api/2/attributes/update/", latency=4.0)
    fast_recovery = {"heartbeat": 0.5, "stalled_after": 3.0}
    doomed = spawn("doomed", concurrency=12, **fast_recovery)
    await wait_for(
        lambda: clean_database.registered_workers() == 1,
        within=30,
        workers=[doomed],
        what="the first worker to start",
    )
    await fan_out(queue, users)
    await wait_for(
        lambda: (
            len(clean_database.doing_sync_jobs()) == len(users)
            and world.exist_sim.faults.fired >= len(users)
        ),
        within=30,
        workers=[doomed],
        what="every job to be writing to Exist",
    )
    running = clean_database.doing_sync_jobs()
    doomed.kill()
    assert {lock for _, lock in running} == {user_lock(user) for user in users}
    for user in users:
        ledger = await world.store.ledger.load(user)
        assert ledger, "a write was on its way"
        # What Exist held before (nothing: 0) and the cells on their way.
        assert set(ledger.values()) == {0, IN_FLIGHT}, "killed before Exist's answer was recorded"
        assert await world.runs(user) == []
    world.exist_sim.faults.clear()

    rescuer = spawn("rescuer", concurrency=4, **fast_recovery)
    final = await wait_until_drained(clean_database, [rescuer], within=40)
    assert final == {}, f"every recovered job succeeded: {final}"
    assert rescuer.log().count("recovered job") == len(users), rescuer.diagnostics()
    for user in users:
        runs = await world.runs(user)
        assert [run.outcome for run in runs] == ["succeeded"], describe(runs)
        assert await world.mismatches(user) == []


# --- the locks ----------------------------------------------------------------------------------


async def test_fan_out_twice_before_workers_start_queues_one_job_per_user(
    world: LiveWorld,
    queue: App,
    settings: Settings,
    clean_database: QueueDatabase,
) -> None:
    users = await world.connect_many(20, prefix="twice")
    cycle = datetime.now(UTC).replace(microsecond=0)
    window = timedelta(seconds=2)
    first = await fan_out(queue, users, cycle_start=cycle, jitter=window)
    second = await fan_out(queue, users, cycle_start=cycle, jitter=window)
    assert (first.queued, first.already_queued) == (20, 0)
    assert (second.queued, second.already_queued) == (0, 20)

    waiting = list(await queue.job_manager.list_jobs_async(task=SYNC_USER_TASK, status="todo"))
    assert sorted(job.queueing_lock or "" for job in waiting) == sorted(
        queueing_lock(user) for user in users
    )
    for job in waiting:
        user = int(job.task_kwargs["user_id"])  # type: ignore[arg-type]
        assert job.lock == user_lock(user)
        assert job.scheduled_at == cycle + jitter_offset(user, window), "spread by a stable hash"

    await drain_in_process(settings, clean_database)
    for user in users:
        assert len(await world.runs(user)) == 1, world.names[user]
        assert await world.mismatches(user) == []


async def test_runs_of_one_user_never_overlap_even_with_idle_workers(
    world: LiveWorld,
    queue: App,
    clean_database: QueueDatabase,
    spawn: Spawn,
) -> None:
    users = await world.connect_many(3, prefix="lock")
    # Each run takes over a second, so a second job of the user is due while the first runs.
    world.toggl_sim.faults.add(method="GET", path="/api/v9/me/time_entries*", latency=1.2)
    workers = [spawn("one", concurrency=4), spawn("two", concurrency=4)]
    await wait_for(
        lambda: clean_database.registered_workers() == 2,
        within=30,
        workers=workers,
        what="both workers to start",
    )
    for user in users:
        assert (await sync_now(queue, user)).placement is Placement.QUEUED
    await wait_for(
        lambda: len(clean_database.doing_sync_jobs()) == len(users),
        within=20,
        workers=workers,
        what="every user's first run to start",
    )
    for user in users:
        again = await sync_now(queue, user)
        assert again.placement is Placement.QUEUED, "a running job does not hold the queue"
        third = await sync_now(queue, user)
        assert third.placement is Placement.ALREADY_QUEUED
        assert third.job_id == again.job_id

    await wait_until_drained(clean_database, workers, within=30)
    for user in users:
        runs = await world.runs(user)
        assert len(runs) == 2, describe(runs)
        assert not overlapping(runs), describe(runs)
        assert await world.mismatches(user) == []


# --- quota ----------------------------------------------------------------------------------------


async def test_spent_quota_schedules_the_users_next_job_after_the_reset(
    world: LiveWorld,
    queue: App,
    settings: Settings,
    clean_database: QueueDatabase,
) -> None:
    user = await world.connect("quota")
    world.toggl_sim.faults.add(
        method="GET",
        path="/api/v9/me*",
        status=402,
        body='"You have hit your hourly limit for API calls."',
        headers={"X-Toggl-Quota-Resets-In": "1800"},
    )
    await fan_out(queue, [user])
    await run_worker(
        settings, EngineOptions(), concurrency=1, wait=False, install_signal_handlers=False
    )

    [run] = await world.runs(user)
    assert run.outcome == "quota_exceeded"
    assert run.next_sync_after is not None
    assert run.next_sync_after - run.finished_at >= timedelta(minutes=29)
    [waiting] = await queue.job_manager.list_jobs_async(task=SYNC_USER_TASK, status="todo")
    assert waiting.queueing_lock == queueing_lock(user)
    assert waiting.scheduled_at == run.next_sync_after

    again = await fan_out(queue, [user])
    assert (again.queued, again.already_queued) == (0, 1), "no sync before the reset"
    [still] = await queue.job_manager.list_jobs_async(task=SYNC_USER_TASK, status="todo")
    assert still.id == waiting.id

    # The user's own "Sync now" is not held back: it replaces the waiting job, ahead of others.
    placed = await sync_now(queue, user)
    assert placed.placement is Placement.QUEUED
    [brought_forward] = await queue.job_manager.list_jobs_async(task=SYNC_USER_TASK, status="todo")
    assert brought_forward.id == placed.job_id != waiting.id
    assert brought_forward.scheduled_at is None
    assert brought_forward.priority == SYNC_NOW_PRIORITY


async def test_zero_out_is_not_swallowed_by_a_waiting_sync(
    world: LiveWorld, queue: App, settings: Settings, clean_database: QueueDatabase
) -> None:
    user = await world.connect("zero")
    await fan_out(queue, [user])
    placed = await sync_now(queue, user, RunKind.ZERO_OUT)
    assert placed.placement is Placement.QUEUED
    jobs = await queue.job_manager.list_jobs_async(task=SYNC_USER_TASK, status="todo")
    assert sorted(job.queueing_lock or "" for job in jobs) == sorted(
        [queueing_lock(user), queueing_lock(user, RunKind.ZERO_OUT)]
    )
    assert {job.lock for job in jobs} == {user_lock(user)}, "still never two runs at once"

    await drain_in_process(settings, clean_database, concurrency=2)
    runs = await world.runs(user)
    assert sorted(run.kind for run in runs) == ["sync", "zero_out"]
    assert not overlapping(runs)
    assert await world.mismatches(user) == []


# --- pieces -------------------------------------------------------------------------------------


def test_jitter_is_stable_within_the_window_and_spreads_users() -> None:
    window = timedelta(minutes=50)
    offsets = [jitter_offset(user, window) for user in range(1, 201)]
    assert offsets == [jitter_offset(user, window) for user in range(1, 201)]
    assert all(timedelta(0) <= offset < window for offset in offsets)
    assert len(set(offsets)) > 180, "consecutive ids do not bunch up"
    assert jitter_offset(7, timedelta(0)) == timedelta(0)


def test_conninfo_is_libpq_form_of_the_store_url() -> None:
    conninfo = postgres_conninfo(
        "postgresql+psycopg://ada:p%40ss word@db.example:5433/timebridge?sslmode=require"
    )
    assert psycopg.conninfo.conninfo_to_dict(conninfo) == {
        "host": "db.example",
        "port": "5433",
        "user": "ada",
        "password": "p@ss word",
        "dbname": "timebridge",
        "sslmode": "require",
    }
    socket = postgres_conninfo("postgresql:///timebridge?host=/var/run/postgresql")
    assert psycopg.conninfo.conninfo_to_dict(socket) == {
        "host": "/var/run/postgresql",
        "dbname": "timebridge",
    }
    with pytest.raises(ValueError, match="PostgreSQL"):
        postgres_conninfo("sqlite+aiosqlite:///tmp/timebridge.db")


def test_the_app_schedules_cycles_recovery_and_cleanup(settings: Settings) -> None:
    options = EngineOptions(heartbeat_interval=1, stalled_after=5)
    app = build_app(settings, options)
    schedules = {
        (periodic.task.name, periodic.cron)
        for periodic in app.periodic_registry.periodic_tasks.values()
    }
    assert schedules == {
        (FAN_OUT_TASK, settings.sync_cron),
        (RECOVER_TASK, "* * * * * */5"),
        (CLEANUP_TASK, "17 4 * * *"),
    }


def test_engine_options_refuse_a_stall_timeout_shorter_than_the_heartbeat() -> None:
    with pytest.raises(ValueError, match="stalled_after"):
        EngineOptions(heartbeat_interval=10, stalled_after=5)
    assert EngineOptions().recovery_cron == "* * * * * */30"
    assert EngineOptions(heartbeat_interval=20, stalled_after=90).recovery_cron == "* * * * *"


async def test_schema_setup_is_idempotent_and_safe_to_race(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.create_database()
    assert not await schema_exists(url)
    created = await asyncio.gather(apply_schema(url), apply_schema(url), apply_schema(url))
    assert sorted(created) == [False, False, True]
    assert await schema_exists(url)
    assert await apply_schema(url) is False


async def test_worker_refuses_to_start_without_the_queue_schema(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    url = postgres_server.create_database()
    settings = Settings(database_url=url, auto_migrate=False, data_dir=tmp_path)
    with pytest.raises(QueueSchemaMissing, match="timebridge db upgrade"):
        await run_worker(settings, wait=False, install_signal_handlers=False)


# --- the scheduled cycle, crashes, dead workers ------------------------------------------------


async def test_a_scheduled_cycle_is_one_fan_out_job_that_queues_every_connected_user(
    world: LiveWorld,
    queue: App,
    settings: Settings,
    clean_database: QueueDatabase,
) -> None:
    users = await world.connect_many(5, prefix="cycle")
    [cycle] = [
        periodic
        for periodic in queue.periodic_registry.periodic_tasks.values()
        if periodic.task.name == FAN_OUT_TASK
    ]
    assert cycle.cron == settings.sync_cron
    # What the periodic deferrer does at a cron time, done by hand (the cron never fires here).
    await queue.configure_task(FAN_OUT_TASK).defer_async(timestamp=int(time.time()))
    assert clean_database.sync_jobs_by_status() == {}

    await queue.configure_task(CLEANUP_TASK).defer_async(timestamp=int(time.time()))
    await run_worker(settings, concurrency=1, wait=False, install_signal_handlers=False)
    assert clean_database.sync_jobs_by_status().keys() <= {"todo", "doing"}, "queued by the job"
    assert not list(await queue.job_manager.list_jobs_async(status="failed"))
    await drain_in_process(settings, clean_database)
    for user in users:
        assert len(await world.runs(user)) == 1, world.names[user]
        assert await world.mismatches(user) == []


async def test_a_sync_that_raises_is_queued_again_and_never_strands_the_user(
    world: LiveWorld,
    queue: App,
    settings: Settings,
    clean_database: QueueDatabase,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user = await world.connect("crashy")
    real_sync_user = Bridge.sync
    calls = 0

    async def raise_once(
        service: Bridge, user_id: int, kind: RunKind = RunKind.SYNC
    ) -> RunReport | Skipped:
        nonlocal calls
        calls += 1
        if calls == 1:
            # A fan-out queued the user meanwhile: the very case where Procrastinate's own
            # retry (back to "todo") would break on the queueing lock and strand the job.
            await fan_out(queue, [user_id])
            raise RuntimeError("the database went away")
        return await real_sync_user(service, user_id, kind)

    monkeypatch.setattr(Bridge, "sync", raise_once)
    await fan_out(queue, [user])
    options = EngineOptions(crash_retry_delay=timedelta(0))
    await run_worker(settings, options, concurrency=1, wait=False, install_signal_handlers=False)

    await drain_in_process(settings, clean_database, options=options)

    assert clean_database.sync_jobs_by_status() == {"failed": 1}, "only the crashed job is left"
    assert calls == 2, "the crash found the fan-out's job waiting and added none of its own"
    assert [run.outcome for run in await world.runs(user)] == ["succeeded"]
    assert await world.mismatches(user) == []


async def test_a_sync_that_raises_alone_gets_a_later_attempt(
    world: LiveWorld, queue: App, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await world.connect("alone")

    async def always_raise(
        service: Bridge, user_id: int, kind: RunKind = RunKind.SYNC
    ) -> RunReport | Skipped:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Bridge, "sync", always_raise)
    await fan_out(queue, [user])
    before = datetime.now(UTC)
    await run_worker(
        settings, EngineOptions(), concurrency=1, wait=False, install_signal_handlers=False
    )
    [retry] = await queue.job_manager.list_jobs_async(task=SYNC_USER_TASK, status="todo")
    assert retry.task_kwargs == {"user_id": user, "attempt": 1}
    assert retry.scheduled_at is not None
    assert retry.scheduled_at - before >= EngineOptions().crash_retry_delay


async def test_dead_workers_jobs_are_retried_superseded_or_given_up(
    world: LiveWorld, queue: App, clean_database: QueueDatabase
) -> None:
    retried, superseded, poisonous = await world.connect_many(3, prefix="dead")
    manager = queue.job_manager
    await fan_out(queue, [retried, superseded, poisonous])
    dead_worker = await manager.register_worker()
    taken = [await manager.fetch_job(queues=None, worker_id=dead_worker) for _ in range(3)]
    assert all(job is not None for job in taken)
    with psycopg.connect(clean_database.conninfo, autocommit=True) as connection:
        connection.execute(
            "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour'"
        )
        connection.execute(
            "UPDATE procrastinate_jobs SET attempts = 3 WHERE lock = %s", (user_lock(poisonous),)
        )
    # The user was queued again while their job's worker lay dead.
    await fan_out(queue, [superseded])

    report = await recover_stalled_jobs(queue, stalled_after=30, max_recoveries=3)
    assert report == RecoveryReport(retried=1, superseded=1, given_up=1)
    jobs = await manager.list_jobs_async(task=SYNC_USER_TASK)
    assert sorted((job.task_kwargs["user_id"], job.status) for job in jobs) == sorted(
        [
            (retried, "todo"),  # back in the queue
            (superseded, "failed"),  # its user's waiting job will sync them
            (superseded, "todo"),
            (poisonous, "failed"),  # killed its worker three times already
        ]
    )
    assert await recover_stalled_jobs(queue, stalled_after=30) == RecoveryReport()


def test_worker_command_refuses_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIMEBRIDGE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/t.db")
    result = CliRunner().invoke(worker_app, ["fan-out-now"])
    assert result.exit_code == 2
    assert "needs PostgreSQL" in result.output


# --- webhooks at scale --------------------------------------------------------------------------


async def test_a_webhook_soon_job_covers_later_events_and_brings_a_later_job_forward(
    world: LiveWorld, queue: App, clean_database: QueueDatabase
) -> None:
    user = await world.connect("soon")
    now = datetime.now(UTC)
    # The user's job of the hourly cycle waits for its slot, an hour away.
    await schedule_sync(queue, user, not_before=now + timedelta(hours=1), hold_back=False)

    first = await sync_soon(queue, user, at=now + timedelta(seconds=3))
    again = await sync_soon(queue, user, at=now + timedelta(seconds=4))

    assert first.placement is Placement.QUEUED
    assert again.placement is Placement.ALREADY_QUEUED and again.job_id == first.job_id
    [waiting] = await queue.job_manager.list_jobs_async(task=SYNC_USER_TASK, status="todo")
    assert waiting.id == first.job_id
    assert waiting.scheduled_at is not None and waiting.scheduled_at <= now + timedelta(seconds=3)


async def test_webhook_events_at_scale_queue_one_job_that_a_worker_runs(
    world: LiveWorld, settings: Settings, queue: App, clean_database: QueueDatabase
) -> None:
    sock = free_socket()
    served = settings.model_copy(
        update={
            "public_url": f"http://127.0.0.1:{sock.getsockname()[1]}",
            "webhook_coalesce_seconds": 0.5,
        }
    )
    user = await world.connect("hooked")
    toggl_user = world.toggl_users[user]
    bridge = Bridge.from_settings(world.store, served)
    app = create_app(served, run_scheduler=False)  # `serve --no-scheduler` beside workers
    with serve_app(app, sock):
        await bridge.webhooks.turn_on(user)
        for minutes in (10, 20, 30):
            world.toggl_sim.add_time_entry(
                toggl_user,
                start=world.clock.now() - timedelta(hours=2, minutes=minutes),
                duration=300,
            )
        world.toggl_sim.webhooks.drain()

        async def queued() -> list[Any]:
            return list(await queue.job_manager.list_jobs_async(task=SYNC_USER_TASK, status="todo"))

        async def one_queued() -> bool:
            return len(await queued()) > 0

        await wait_for(one_queued, within=10, what="a job queued by the webhook")
        await asyncio.sleep(1.0)  # the later events' turn to (not) queue more
        jobs = await queued()
        assert len(jobs) == 1, "three events, one job"
        assert jobs[0].queueing_lock == queueing_lock(user) and jobs[0].lock == user_lock(user)

        await drain_in_process(settings, clean_database)

    assert await world.mismatches(user) == []
    assert len(await world.runs(user)) == 1
