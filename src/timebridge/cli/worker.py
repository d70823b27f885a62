"""`timebridge worker`: run the distributed engine's workers, or trigger a cycle by hand.

Run as many workers as needed, on as many machines as needed, all pointed at the same
PostgreSQL (`TIMEBRIDGE_DATABASE_URL`) with the same `TIMEBRIDGE_SECRET_KEYS`. Each one syncs
users, and between them they run each cycle's fan-out once (`TIMEBRIDGE_SYNC_CRON`) and put back
the jobs of workers that died. SIGINT or SIGTERM lets running syncs finish, then exits. The
engine (Procrastinate, psycopg) loads when a command runs, not when the CLI starts.

    timebridge worker --concurrency 16
    timebridge worker --queue sync          # only users' syncs, no fan-outs or recovery
    timebridge worker fan-out-now           # queue every connected user now
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING

import typer

from timebridge.cli._output import ExitCode, console, fail
from timebridge.cli.db import database_errors, load_settings

if TYPE_CHECKING:
    from timebridge.config import Settings
    from timebridge.jobs.distributed import EngineOptions

#: The engine's queue names (`timebridge.jobs.distributed`), for the help text: importing the
#: engine loads Procrastinate and psycopg, which the CLI loads only when a worker starts.
SYNC_QUEUE = "sync"
SCHEDULE_QUEUE = "schedule"

worker_app = typer.Typer(
    help="Run workers of the distributed engine (PostgreSQL), or trigger a sync cycle.",
    invoke_without_command=True,
    no_args_is_help=False,
)


def _options(
    settings: Settings,
    *,
    jitter: float | None,
    heartbeat: float | None = None,
    stalled_after: float | None = None,
) -> EngineOptions:
    from timebridge.jobs.distributed import EngineOptions

    defaults = EngineOptions.from_settings(settings)
    try:
        return EngineOptions(
            jitter=timedelta(seconds=jitter) if jitter is not None else defaults.jitter,
            heartbeat_interval=heartbeat if heartbeat is not None else defaults.heartbeat_interval,
            stalled_after=stalled_after if stalled_after is not None else defaults.stalled_after,
        )
    except ValueError as exc:
        fail(str(exc), ExitCode.USAGE)


def _require_postgres(settings: Settings) -> None:
    if settings.is_sqlite:
        fail(
            "the distributed engine needs PostgreSQL: set TIMEBRIDGE_DATABASE_URL "
            "(the embedded scheduler in `timebridge serve` covers SQLite)",
            ExitCode.USAGE,
        )


@worker_app.callback(invoke_without_command=True)
def worker(
    context: typer.Context,
    concurrency: int = typer.Option(
        8, "--concurrency", "-c", min=1, max=256, help="Users synced at once by this worker."
    ),
    queues: list[str] | None = typer.Option(
        None,
        "--queue",
        "--queues",
        "-q",
        help=f"Only these queues ({SYNC_QUEUE!r}: users' syncs; {SCHEDULE_QUEUE!r}: fan-outs "
        "and recovery). Repeatable; default all.",
    ),
    name: str | None = typer.Option(None, help="Worker name, for the logs."),
    jitter: float | None = typer.Option(
        None,
        min=0,
        help="Spread each cycle's syncs over this many seconds (default: the settings', or 0).",
    ),
    heartbeat: float | None = typer.Option(
        None, min=0.1, help="Seconds between this worker's heartbeats (default 10)."
    ),
    stalled_after: float | None = typer.Option(
        None,
        min=0.5,
        help="A worker silent this many seconds is taken for dead and its jobs rerun "
        "(default 30; keep it several heartbeats long).",
    ),
    log_level: str = typer.Option("INFO", help="Logging level."),
) -> None:
    """Run a worker until SIGINT/SIGTERM (running syncs finish first)."""
    if context.invoked_subcommand is not None:
        return
    import asyncio

    from timebridge.jobs.distributed import run_worker
    from timebridge.logs import configure_logging

    settings = load_settings()
    _require_postgres(settings)
    options = _options(settings, jitter=jitter, heartbeat=heartbeat, stalled_after=stalled_after)
    configure_logging(level=log_level.upper())
    with _queue_errors(settings):
        asyncio.run(
            run_worker(settings, options, concurrency=concurrency, queues=queues, name=name)
        )


@worker_app.command("fan-out-now")
def fan_out_now_command(
    jitter: float | None = typer.Option(
        None,
        min=0,
        help="Spread the syncs over this many seconds from now (default: the settings', or 0).",
    ),
) -> None:
    """Queue a sync of every connected user now, as a scheduled cycle would."""
    import asyncio

    from timebridge.jobs.distributed import fan_out_now

    settings = load_settings()
    _require_postgres(settings)
    options = _options(settings, jitter=jitter)
    with _queue_errors(settings):
        report = asyncio.run(fan_out_now(settings, options))
    console.print(
        f"{report.users} users: {report.queued} syncs queued, "
        f"{report.already_queued} already queued."
    )


@contextlib.contextmanager
def _queue_errors(settings: Settings) -> Iterator[None]:
    """Database and queue failures as one line naming the (masked) URL, never a traceback."""
    import psycopg
    from procrastinate.exceptions import ConnectorException

    from timebridge.jobs.distributed import QueueSchemaMissing

    try:
        with database_errors(settings):
            yield
    except QueueSchemaMissing as exc:
        fail(str(exc), ExitCode.UNAVAILABLE)
    except (psycopg.Error, ConnectorException) as exc:
        cause = exc.__cause__ if isinstance(exc, ConnectorException) and exc.__cause__ else exc
        text = str(cause).strip()
        reason = text.splitlines()[0] if text else type(cause).__name__
        fail(f"database {settings.display_database_url}: {reason}", ExitCode.UNAVAILABLE)


if __name__ == "__main__":  # `python -m timebridge.cli.worker`: the test harness's workers
    worker_app()
