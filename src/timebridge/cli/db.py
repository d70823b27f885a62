"""`timebridge db …`: bring the database's schema up to date.

The embedded default migrates itself on start; at scale run `timebridge db upgrade` once per
deploy, before starting the new version's workers. The database URL is shown with its password
masked.

The settings, SQLAlchemy and the store load when a command runs, not when the CLI starts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import typer

from timebridge.cli._output import ExitCode, console, fail

if TYPE_CHECKING:
    from timebridge.config import Settings

db_app = typer.Typer(
    help="The database: migrate the schema, show its revision.", no_args_is_help=True
)


def load_settings() -> Settings:
    """Settings from the environment, or one line and exit code 2 when they are wrong."""
    from pydantic import ValidationError

    from timebridge.config import Settings

    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"TIMEBRIDGE_{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            if error["loc"]
            else error["msg"]
            for error in exc.errors(include_input=False)
        )
        fail(f"invalid settings: {problems}", ExitCode.USAGE)


@contextlib.contextmanager
def database_errors(settings: Settings) -> Iterator[None]:
    """A database failure as one line naming the (masked) URL, never a traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        fail(f"database {settings.display_database_url}: {reason}", ExitCode.UNAVAILABLE)
    except OSError as exc:
        fail(f"database {settings.display_database_url}: {exc}", ExitCode.UNAVAILABLE)


@db_app.command("upgrade")
def upgrade_command(
    revision: str = typer.Option("head", help="Migrate to this revision instead of the newest."),
) -> None:
    """Apply pending migrations (safe to run any number of times, and from several machines)."""
    import asyncio

    from timebridge.store import upgrade

    settings = load_settings()
    with database_errors(settings):
        now_at = asyncio.run(upgrade(settings.database_url, revision))
        if not settings.is_sqlite:
            # The job queue of `timebridge worker` lives in the same PostgreSQL.
            from timebridge.jobs.distributed import apply_schema

            asyncio.run(apply_schema(settings.database_url))
    console.print(f"Database {settings.display_database_url} is at revision {now_at}.")


@db_app.command("current")
def current_command() -> None:
    """Show the database's revision and the newest one this version knows."""
    import asyncio

    from timebridge.store import current_revision, head_revision

    settings = load_settings()
    with database_errors(settings):
        now_at = asyncio.run(current_revision(settings.database_url))
    newest = head_revision()
    state = "up to date" if now_at == newest else "needs `timebridge db upgrade`"
    console.print(
        f"Database {settings.display_database_url}: revision {now_at or 'none'} "
        f"(newest {newest}; {state})."
    )
