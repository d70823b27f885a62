"""Shared CLI plumbing: output as Rich tables or JSON, and errors as one line plus an exit code."""

from __future__ import annotations

import contextlib
import enum
import json
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from timebridge.errors import UpstreamError

console = Console(highlight=False, soft_wrap=True)
error_console = Console(stderr=True, highlight=False, soft_wrap=True)


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


def to_jsonable(value: Any) -> Any:
    """Models become plain JSON; secrets (SecretStr) are dropped rather than masked."""
    if isinstance(value, BaseModel):
        data = value.model_dump(mode="json")
        for name, field_value in value:
            if type(field_value).__name__ == "SecretStr":
                data.pop(name, None)
        return data
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: to_jsonable(item) for key, item in value.items()}
    return value


def print_json(value: Any) -> None:
    console.print_json(json.dumps(to_jsonable(value)), highlight=False)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(table)


def confirm_or_abort(description: str, *, assume_yes: bool) -> None:
    """Show what a write will do; ask unless `--yes` was given."""
    error_console.print(f"About to {description}.")
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
    try:
        yield
    except UpstreamError as exc:
        for error_type, code in exit_codes.items():
            if isinstance(exc, error_type):
                fail(f"{service}: {exc}", code)
        fail(f"{service}: {exc}", ExitCode.OTHER)
    except ValueError as exc:
        fail(str(exc).splitlines()[0] if str(exc) else "invalid value", ExitCode.USAGE)
