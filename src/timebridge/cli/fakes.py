"""`timebridge fakes toggl|exist|both`: run the simulators in the foreground, seeded with demo data.

Each command binds its ports before anything else, so a port already in use is one line naming
the option that picks another, not a traceback. Ctrl+C (or SIGTERM) stops every simulator the
command started. uvicorn and the simulators load when a command runs.
"""

from __future__ import annotations

import contextlib
import errno
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import typer

from timebridge.cli._output import ExitCode, console, fail

if TYPE_CHECKING:
    import socket

fakes_app = typer.Typer(
    help="Run the Toggl Track and Exist simulators on local ports (Ctrl+C stops them).",
    no_args_is_help=True,
)

HOST_OPTION = typer.Option("127.0.0.1", "--host", help="Interface to bind.")
DEMO_OPTION = typer.Option(
    True, "--demo/--no-demo", help="Seed a demo account (projects, entries, attributes)."
)
TOGGL_PORT_HELP = "Port of the Toggl Track simulator (0 picks a free one)."
EXIST_PORT_HELP = "Port of the Exist simulator (0 picks a free one)."


@dataclass(frozen=True)
class _Running:
    """A simulator about to serve: its ASGI app, its bound socket and what to tell the user."""

    label: str
    api_path: str
    reset_path: str
    app: Any
    listener: socket.socket
    lines: Sequence[str]

    @property
    def origin(self) -> str:
        host, port = self.listener.getsockname()[:2]
        return f"http://{host}:{port}"


def _listen(host: str, port: int, option: str) -> socket.socket:
    """A listening socket, or one line saying the port is taken and how to choose another."""
    import socket

    try:
        return socket.create_server((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            fail(
                f"port {port} on {host} is already in use (a simulator started earlier may "
                f"still be running); stop it, or choose another port with {option} PORT",
                ExitCode.USAGE,
            )
        fail(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
            f"choose another address with --host or {option}",
            ExitCode.USAGE,
        )


def _toggl(host: str, port: int, demo: bool, option: str) -> _Running:
    listener = _listen(host, port, option)
    from timebridge.fakes.toggl import TogglSimulator

    simulator = TogglSimulator()
    lines = simulator.seed_demo() if demo else []
    return _Running(
        "Toggl Track simulator", "/api/v9", "/_admin/quotas", simulator.asgi_app, listener, lines
    )


def _exist(host: str, port: int, demo: bool, option: str) -> _Running:
    listener = _listen(host, port, option)
    from timebridge.fakes.exist import ExistSimulator

    simulator = ExistSimulator()
    lines = simulator.seed_demo() if demo else []
    return _Running(
        "Exist simulator", "/api/2", "/_admin/rate-limits", simulator.asgi_app, listener, lines
    )


def _announce(simulators: Sequence[_Running]) -> None:
    for running in simulators:
        console.print(f"{running.label}: {running.origin}{running.api_path}", markup=False)
        for line in running.lines:
            console.print(f"  {line}", markup=False)
    for running in simulators:
        console.print(
            f"Reset the {running.label}'s hourly limits: "
            f"curl -X DELETE {running.origin}{running.reset_path}",
            markup=False,
        )
    console.print("Ctrl+C stops " + ("both." if len(simulators) > 1 else "it."))
    sys.stdout.flush()  # the addresses matter to whoever reads a pipe, before the first request


@contextlib.contextmanager
def _closing(simulators: Sequence[_Running]) -> Iterator[None]:
    try:
        yield
    finally:
        for running in simulators:
            running.listener.close()


def _serve(simulators: Sequence[_Running]) -> None:
    """Serve every simulator in one event loop until SIGINT or SIGTERM, then stop them all."""
    import asyncio
    import signal

    import uvicorn

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # one handler below stops every server, not just the last one started

    servers = [
        _Server(uvicorn.Config(running.app, log_level="warning", access_log=False, lifespan="off"))
        for running in simulators
    ]

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def stop() -> None:
            for server in servers:
                server.should_exit = True

        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # Windows: KeyboardInterrupt below
                loop.add_signal_handler(signum, stop)
        await asyncio.gather(
            *(
                server.serve(sockets=[running.listener])
                for server, running in zip(servers, simulators, strict=True)
            )
        )

    with _closing(simulators), contextlib.suppress(KeyboardInterrupt):
        _announce(simulators)
        asyncio.run(main())
    console.print("Stopped.")


@fakes_app.command("toggl")
def toggl(
    port: int = typer.Option(8181, "--port", help=TOGGL_PORT_HELP),
    host: str = HOST_OPTION,
    demo: bool = DEMO_OPTION,
) -> None:
    """Run the Toggl Track simulator (API under /api/v9, admin API under /_admin).

    Like Toggl Track, it allows 30 user-scoped requests an hour (and 30 to 600 per workspace,
    by plan), then answers 402 with X-Toggl-Quota-Remaining and X-Toggl-Quota-Resets-In. To
    start afresh without waiting an hour: curl -X DELETE http://127.0.0.1:8181/_admin/quotas
    """
    _serve([_toggl(host, port, demo, "--port")])


@fakes_app.command("exist")
def exist(
    port: int = typer.Option(8282, "--port", help=EXIST_PORT_HELP),
    host: str = HOST_OPTION,
    demo: bool = DEMO_OPTION,
) -> None:
    """Run the Exist simulator (API under /api/2, OAuth under /oauth2, admin under /_admin).

    Like Exist, it allows 300 requests an hour per user and client, then answers 429 with
    Retry-After. To start afresh: curl -X DELETE http://127.0.0.1:8282/_admin/rate-limits
    """
    _serve([_exist(host, port, demo, "--port")])


@fakes_app.command("both")
def both(
    toggl_port: int = typer.Option(8181, "--toggl-port", help=TOGGL_PORT_HELP),
    exist_port: int = typer.Option(8282, "--exist-port", help=EXIST_PORT_HELP),
    host: str = HOST_OPTION,
    demo: bool = DEMO_OPTION,
) -> None:
    """Run both simulators in this one process, until Ctrl+C stops them both.

    Their hourly limits reset with curl -X DELETE on /_admin/quotas (Toggl Track) and
    /_admin/rate-limits (Exist).
    """
    if toggl_port == exist_port != 0:
        fail(f"--toggl-port and --exist-port are both {toggl_port}; give two ports", ExitCode.USAGE)
    toggl_simulator = _toggl(host, toggl_port, demo, "--toggl-port")
    try:
        exist_simulator = _exist(host, exist_port, demo, "--exist-port")
    except BaseException:
        toggl_simulator.listener.close()
        raise
    _serve([toggl_simulator, exist_simulator])
