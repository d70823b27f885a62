"""`timebridge demo`: simulators, a connected demo account, a first sync, then the service.

Only typer and the standard library are imported here: the demo's machinery (uvicorn, the
simulators, the store, metrics) loads when the command runs, so `timebridge --version` never
pays for it.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:  # the types only: loading these modules waits until the demo runs
    import uvicorn

    from timebridge.config import Settings
    from timebridge.demo import DemoRequests, DemoServers, ExistTable

#: The exit code of a demo stopped by Ctrl+C (or SIGTERM) before it was serving: 128 + SIGINT.
EXIT_INTERRUPTED = 130
#: The service's schedule unless TIMEBRIDGE_SYNC_CRON says otherwise, in words.
_DEFAULT_CRON = ("40 * * * *", "every hour at :40")


@dataclass(frozen=True)
class _Options:
    """What the command line asked for, once the ports are known to be usable."""

    toggl_port: int
    exist_port: int
    data_dir: Path | None
    keep: bool
    once: bool


@contextlib.contextmanager
def _sigterm_stops() -> Iterator[None]:
    """SIGTERM (`kill`, a service manager) stops the demo as Ctrl+C does, so that the
    temporary directory is removed then too. Only the main thread can handle signals; in any
    other (an embedding runner) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _stop(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def demo(
    port: int = typer.Option(8000, help="Port of the Timebridge service (0: any free port)."),
    toggl_port: int = typer.Option(
        8181, help="Port of the Toggl Track simulator (0: any free port)."
    ),
    exist_port: int = typer.Option(8282, help="Port of the Exist simulator (0: any free port)."),
    free_ports: bool = typer.Option(
        False, "--free-ports", help="Pick free ports for the service and both simulators."
    ),
    data_dir: Path | None = typer.Option(
        None,
        help="Where the demo keeps its SQLite file and key (default: a new temporary "
        "directory, removed when the demo ends).",
    ),
    keep: bool = typer.Option(
        False, "--keep", help="Keep the temporary data directory when the demo ends."
    ),
    once: bool = typer.Option(
        False, "--once", help="Stop after the first sync instead of serving."
    ),
) -> None:
    """Run the bridge on embedded defaults against the simulators: nothing to set up."""
    from timebridge.cli._output import ExitCode, console, fail
    from timebridge.demo import DemoPort, PortUnavailable, claim_ports

    if free_ports:
        port = toggl_port = exist_port = 0
    try:
        listener = claim_ports(
            DemoPort("the Timebridge service", "--port", port),
            [
                DemoPort("the Toggl Track simulator", "--toggl-port", toggl_port),
                DemoPort("the Exist simulator", "--exist-port", exist_port),
            ],
        )
    except PortUnavailable as exc:
        fail(str(exc), ExitCode.USAGE)
    serving = False

    def now_serving() -> None:
        nonlocal serving
        serving = True

    options = _Options(toggl_port, exist_port, data_dir, keep, once)
    with contextlib.closing(listener), _sigterm_stops():
        try:
            _run(listener, options, now_serving)
        except PortUnavailable as exc:  # a simulator's port was taken since it was checked
            fail(str(exc), ExitCode.USAGE)
        except KeyboardInterrupt:
            console.print("Stopped.")
            # Ctrl+C is how a serving demo is meant to end; earlier, it cut the demo short.
            raise typer.Exit(0 if serving else EXIT_INTERRUPTED) from None


def _run(listener: socket.socket, options: _Options, now_serving: Callable[[], None]) -> None:
    """The demo, its ports checked: `listener` is the service's socket, bound."""
    import asyncio
    import logging

    from timebridge.cli._output import ExitCode, console, fail
    from timebridge.demo import (
        DEMO_EXIST_TOKEN,
        DEMO_TOGGL_TOKEN,
        demo_attributes,
        demo_directory,
        demo_requests,
        demo_simulators,
        exist_table,
        first_sync,
        requests_sent,
    )
    from timebridge.logs import configure_logging
    from timebridge.sync.runner import RunReport

    configure_logging(log_format="console", level=logging.WARNING)
    with demo_directory(options.data_dir, keep=options.keep) as directory:
        try:
            with demo_simulators(options.toggl_port, options.exist_port) as servers:
                console.print(
                    f"Toggl Track simulator: {servers.toggl_api} (API token {DEMO_TOGGL_TOKEN})"
                )
                console.print(
                    f"Exist simulator:       {servers.exist_api} (token {DEMO_EXIST_TOKEN})"
                )
                fate = ""
                if directory.temporary:
                    fate = (
                        " (kept when the demo ends)"
                        if options.keep
                        else " (removed when the demo ends; --keep keeps it)"
                    )
                console.print(f"Data directory:        {directory.path}{fate}")
                start = requests_sent()
                run = asyncio.run(first_sync(directory.path, servers))
                synced = requests_sent()
                result = run.result
                if not isinstance(result, RunReport):
                    fail(f"the demo account could not sync: {result.reason}", ExitCode.OTHER)
                console.print(
                    f"First sync: {result.outcome}; "
                    f"{result.values_written} values written to Exist."
                )
                table = asyncio.run(exist_table(servers, demo_attributes(run)))
                requests = demo_requests(
                    run, first_sync=synced - start, read_back=requests_sent() - synced
                )
                _show(table, requests)
                if not options.once:
                    _serve(listener, directory.path, servers, now_serving, run.account_id)
        finally:
            if directory.temporary and options.keep:
                console.print(f"Kept the demo's data directory: {directory.path}")


def _show(table: ExistTable, requests: DemoRequests) -> None:
    """What Exist holds, today marked, and the requests the demo made until now."""
    from timebridge.cli._output import console, print_table

    columns = [
        f"{day:%a %Y-%m-%d}" + (" (today)" if day == table.today else "") for day in table.days
    ]
    rows = [
        [attribute, *(per_day.get(day) for day in table.days)]
        for attribute, per_day in table.values.items()
    ]
    print_table("What Exist holds now (minutes)", ["Attribute", *columns], rows)
    console.print(
        f"Today is {table.today:%A %Y-%m-%d} in {table.time_zone} (the Exist user's time "
        "zone); today's values grow as the day goes on. A blank cell: Exist holds no value."
    )
    total = requests.total
    console.print(
        f"Requests to the simulators so far: Toggl {total.toggl}, Exist {total.exist} "
        "(what /metrics counts as timebridge_upstream_requests_total):"
    )
    for phase, count in requests.phases:
        console.print(f"  {phase}: Toggl {count.toggl}, Exist {count.exist}")


def _serve(
    listener: socket.socket,
    directory: Path,
    servers: DemoServers,
    now_serving: Callable[[], None],
    account_id: int,
) -> None:
    """The service on `listener` until Ctrl+C, with personal mode usable beside it, and a
    sign-in link to the demo account's pages."""
    import asyncio

    import uvicorn

    from timebridge.cli._output import ExitCode, console, fail
    from timebridge.demo import demo_config_toml, demo_settings, sign_in_link
    from timebridge.web import create_app

    config = directory / "timebridge.toml"
    config.write_text(demo_config_toml(servers))
    console.print(
        "While the demo runs, personal mode works as from cron: "
        f"TIMEBRIDGE_DATA_DIR={directory} timebridge sync --config {config}"
    )
    host, port = listener.getsockname()[:2]
    site = f"http://{host}:{port}"
    settings = demo_settings(directory, servers, public_url=site)
    schedule = _DEFAULT_CRON[1] if settings.sync_cron == _DEFAULT_CRON[0] else settings.sync_cron
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_config=None, lifespan="on"))
    link = asyncio.run(sign_in_link(settings, account_id))
    # Listening before "serving" is printed: a browser (or script) that connects at once waits
    # in the backlog for the server instead of being refused.
    listener.listen(128)
    console.print(
        f"Timebridge is serving on {site} (the pages, /api/v1, /healthz, /metrics; syncs "
        f"{schedule}). Ctrl+C stops everything."
    )
    console.print(f"Sign in as the demo user (once, within 10 minutes): {link}", markup=False)
    console.print(
        f'Or open {site}/signin and choose "Sign in with Exist" (the demo user is "demo").',
        markup=False,
    )
    now_serving()
    _open_when_a_browser_is_at_hand(link)
    _webhooks_once_serving(server, settings, servers, directory, account_id)
    server.run(sockets=[listener])
    if not server.started:
        fail("the service did not start (see the log above)", ExitCode.OTHER)


def _webhooks_once_serving(
    server: uvicorn.Server,
    settings: Settings,
    servers: DemoServers,
    directory: Path,
    account_id: int,
) -> None:
    """Turn Toggl webhooks on for the demo user as soon as the service answers (the Toggl
    simulator probes it while subscribing), then say so and how to see a change arrive. In a
    thread of its own: the service runs in this one. A failure leaves the demo syncing on its
    schedule, and says so."""
    import asyncio
    import threading
    import time

    from timebridge.cli._output import console
    from timebridge.demo import requests_sent, turn_on_webhooks, webhook_try_lines
    from timebridge.store import WebhookState

    def turn_on() -> None:
        deadline = time.monotonic() + 60
        while not server.started:
            if server.should_exit or time.monotonic() > deadline:
                return
            time.sleep(0.02)
        before = requests_sent()
        try:
            endpoint = asyncio.run(turn_on_webhooks(settings, account_id))
        except Exception as exc:  # the demo goes on without them
            console.print(
                f"Webhooks could not be turned on ({type(exc).__name__}: {exc}); the demo "
                "syncs on its schedule.",
                markup=False,
            )
            return
        cost = requests_sent() - before
        broken = [s for s in endpoint.subscriptions if s.state is not WebhookState.ACTIVE]
        if broken or not endpoint.subscriptions:
            problems = "; ".join(f"{s.workspace_name}: {s.state} ({s.problem})" for s in broken)
            console.print(
                f"Webhooks are not working for the demo user: {problems or 'no workspace'}. "
                "The demo syncs on its schedule.",
                markup=False,
            )
            return
        site = settings.public_url
        console.print(
            f"Webhooks are on (subscribing took Toggl {cost.toggl}, Exist {cost.exist} "
            f"requests): Toggl Track calls {site}/hooks/toggl/… when a time entry changes, and "
            "the change is in Exist within seconds; the scheduled sync stays. Try it in "
            "another terminal:",
            markup=False,
        )
        for line in webhook_try_lines(servers, directory, site):
            console.print(line, markup=False)

    threading.Thread(target=turn_on, name="demo-webhooks", daemon=True).start()


def _open_when_a_browser_is_at_hand(url: str) -> None:
    """Open the sign-in link in the user's browser: only on a desktop (a display on Linux, or
    macOS/Windows), never in a terminal session without one, and silently if none is found."""
    import os
    import sys
    import threading
    import webbrowser

    desktop = sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )
    if desktop and not os.environ.get("TIMEBRIDGE_NO_BROWSER"):
        # After the server starts listening (the link must answer); never blocks the demo.
        threading.Timer(1.0, lambda: webbrowser.open(url, new=2)).start()
