"""The `timebridge` command line.

Building the app imports Typer and Rich's console and the command modules, which import their
heavy machinery (HTTP clients, the store, uvicorn, the job engine) only when a command runs: so
`timebridge --version` and `--help` answer at once. Help is plain text, flags without a type.
"""

from __future__ import annotations

import typer

from timebridge import __version__
from timebridge.cli.db import db_app
from timebridge.cli.demo import demo
from timebridge.cli.exist import exist_app
from timebridge.cli.fakes import fakes_app
from timebridge.cli.init import init as init_command  # `timebridge.cli.init` stays the module
from timebridge.cli.keys import keys_app
from timebridge.cli.login_link import login_link
from timebridge.cli.secrets import secrets_app
from timebridge.cli.service import serve, sync
from timebridge.cli.toggl import toggl_app
from timebridge.cli.webhooks import webhooks_app
from timebridge.cli.worker import worker_app

app = typer.Typer(
    name="timebridge",
    help="Toggl Track time into Exist.io; a Toggl Track gateway; a Toggl Track client.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain help: Rich's panels label every flag `<bool>`, and loading them costs startup time.
    rich_markup_mode=None,
)
app.command("demo")(demo)
app.command("init")(init_command)
app.add_typer(toggl_app, name="toggl")
app.add_typer(exist_app, name="exist")
app.add_typer(fakes_app, name="fakes")
app.add_typer(db_app, name="db")
app.add_typer(secrets_app, name="secrets")
app.command("serve")(serve)
app.command("sync")(sync)
app.command("login-link")(login_link)
app.add_typer(keys_app, name="keys")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(worker_app, name="worker")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"timebridge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Timebridge."""


def main() -> None:
    app()
