"""Shared CLI plumbing: output as Rich tables or JSON, and errors as one line plus an exit code.

Importing this module loads Typer only: Rich's console is made on first use, and pydantic and
the upstream error types are imported by the functions that need them, so `timebridge
--version` stays fast.
"""

from __future__ import annotations

import contextlib
import enum
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, cast

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from timebridge.errors import UpstreamError


class _ConsoleOnFirstUse:
    """Stands for a Rich `Console` and makes it on first use (loading Rich takes a while)."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr, highlight=False, soft_wrap=True)
        return getattr(self._console, name)


console = cast("Console", _ConsoleOnFirstUse(stderr=False))
error_console = cast("Console", _ConsoleOnFirstUse(stderr=True))


class ExitCode(enum.IntEnum):
    """Distinct exit codes, so scripts can tell failures apart."""

    OK = 0
    OTHER = 1
    USAGE = 2
    AUTHENTICATION = 3
    QUOTA = 4
    NOT_FOUND = 5
    UNAVAILABLE = 6


def fail(message: str, code: ExitCode) -> NoReturn:
    error_console.print(f"[bold red]Error:[/] {message}", markup=True)
    raise typer.Exit(int(code))


def note(message: str) -> None:
    """A remark for the person at the terminal, on stderr (stdout stays clean for `--json`)."""
    error_console.print(message, markup=False)


def to_jsonable(value: Any) -> Any:
    """Models become plain JSON; secrets (SecretStr) are dropped rather than masked."""
    from pydantic import BaseModel  # loaded already by whatever made the model

    if isinstance(value, BaseModel):
        data = value.model_dump(mode="json")
        for name, field_value in value:
            if type(field_value).__name__ == "SecretStr":
                data.pop(name, None)
        return data
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    if isinstance(value, Mapping):
        return {key: to_jsonable(item) for key, item in value.items()}
    return value


def print_json(value: Any) -> None:
    console.print_json(json.dumps(to_jsonable(value)), highlight=False)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(table)


def confirm_or_abort(description: str, *, assume_yes: bool) -> None:
    """Show what a write will do; ask unless `--yes` was given."""
    error_console.print(f"About to {description}.", markup=False)
    if assume_yes:
        return
    if not typer.confirm("Proceed?", default=False, err=True):
        error_console.print("Aborted; nothing was changed.")
        raise typer.Exit(int(ExitCode.OTHER))


@contextlib.contextmanager
def upstream_errors(
    service: str, *, exit_codes: dict[type[UpstreamError], ExitCode]
) -> Iterator[None]:
    """Turn an upstream exception (or a bad argument) into one clear line and an exit code."""
    from timebridge.errors import UpstreamError

    try:
        yield
    except UpstreamError as exc:
        for error_type, code in exit_codes.items():
            if isinstance(exc, error_type):
                fail(f"{service}: {exc}", code)
        fail(f"{service}: {exc}", ExitCode.OTHER)
    except ValueError as exc:
        fail(str(exc).splitlines()[0] if str(exc) else "invalid value", ExitCode.USAGE)
