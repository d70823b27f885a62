"""`timebridge fakes toggl|exist`: run a simulator standalone, seeded with demo data."""

from __future__ import annotations

import typer
import uvicorn

from timebridge.cli._output import console

fakes_app = typer.Typer(help="Run the Toggl Track or Exist simulator on a local port.")


def _serve(app: object, host: str, port: int, lines: list[str]) -> None:
    for line in lines:
        console.print(line)
    console.print(f"Listening on http://{host}:{port} (Ctrl+C to stop)")
    uvicorn.run(app, host=host, port=port, log_level="warning")  # type: ignore[arg-type]


@fakes_app.command("toggl")
def toggl(
    port: int = typer.Option(8181, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    demo: bool = typer.Option(True, help="Seed a demo account with projects and entries."),
) -> None:
    """Run the Toggl Track simulator (API under /api/v9, admin API under /_admin)."""
    from timebridge.fakes.toggl import TogglSimulator

    simulator = TogglSimulator()
    lines = simulator.seed_demo() if demo else []
    _serve(simulator.asgi_app, host, port, lines)


@fakes_app.command("exist")
def exist(
    port: int = typer.Option(8282, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    demo: bool = typer.Option(True, help="Seed a demo user and OAuth client."),
) -> None:
    """Run the Exist simulator (API under /api/2, OAuth under /oauth2, admin under /_admin)."""
    from timebridge.fakes.exist import ExistSimulator

    simulator = ExistSimulator()
    lines = simulator.seed_demo() if demo else []
    _serve(simulator.asgi_app, host, port, lines)
