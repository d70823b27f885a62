"""`timebridge demo`: simulators, a connected demo account, a first sync, then the service."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path

import typer
import uvicorn

from timebridge.cli._output import ExitCode, console, fail, print_table
from timebridge.demo import (
    DEMO_EXIST_TOKEN,
    DEMO_TOGGL_TOKEN,
    demo_config_toml,
    demo_settings,
    demo_simulators,
    exist_values,
    first_sync,
)
from timebridge.jobs.tasks import Skipped
from timebridge.logs import configure_logging


def demo(
    port: int = typer.Option(8000, help="Port of the Timebridge service."),
    toggl_port: int = typer.Option(8181, help="Port of the Toggl Track simulator."),
    exist_port: int = typer.Option(8282, help="Port of the Exist simulator."),
    data_dir: Path | None = typer.Option(
        None, help="Where the demo keeps its SQLite file and key (default: a new temp dir)."
    ),
    once: bool = typer.Option(
        False, "--once", help="Stop after the first sync instead of serving."
    ),
) -> None:
    """Run the bridge on embedded defaults against the simulators: nothing to set up."""
    configure_logging(log_format="console", level=logging.WARNING)
    directory = data_dir or Path(tempfile.mkdtemp(prefix="timebridge-demo-"))
    with demo_simulators(toggl_port, exist_port) as servers:
        console.print(f"Toggl Track simulator: {servers.toggl_api} (API token {DEMO_TOGGL_TOKEN})")
        console.print(f"Exist simulator:       {servers.exist_api} (token {DEMO_EXIST_TOKEN})")
        console.print(f"Data directory:        {directory}")
        run = asyncio.run(first_sync(directory, servers))
        result = run.result
        if isinstance(result, Skipped):
            fail(f"the demo account could not sync: {result.reason}", ExitCode.OTHER)
        console.print(
            f"First sync: {result.outcome}; {result.values_written} values written to Exist "
            f"(Toggl: {result.toggl_requests} request, Exist: {result.exist_requests} requests)."
        )
        mapping = run.mapping_update.mapping if run.mapping_update else {}
        attributes = sorted(set(mapping.values()))
        values = asyncio.run(exist_values(servers, attributes))
        days = sorted({day for per_day in values.values() for day in per_day})
        rows = [
            [attribute, *(values[attribute].get(day) for day in days)] for attribute in attributes
        ]
        print_table("What Exist holds now (minutes)", ["Attribute", *map(str, days)], rows)
        if once:
            return
        config = directory / "timebridge.toml"
        config.write_text(demo_config_toml(servers))
        console.print(
            f"While the demo runs, personal mode works as from cron: "
            f"TIMEBRIDGE_DATA_DIR={directory} timebridge sync --config {config}"
        )
        from timebridge.web import create_app

        app = create_app(demo_settings(directory, servers))
        console.print(
            f"Timebridge is serving on http://127.0.0.1:{port} "
            f"(/healthz, /metrics; syncs every hour at :40). Ctrl+C stops everything."
        )
        uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
