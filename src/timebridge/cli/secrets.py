"""`timebridge secrets …`: re-encrypt stored secrets with a new key.

Rotation, step by step:
1. put a new key first (keep the old ones after it): in `TIMEBRIDGE_SECRET_KEYS` on every
   machine, or with `rotate --new-key` for the embedded default's key file;
2. `timebridge secrets rotate` re-encrypts every stored token with that first key;
3. remove the old keys (`--retire-old-keys` does it for the key file once nothing needs them).

A running service keeps the keys it started with: every machine must know the new key before
step 2 (for the embedded default, stop `timebridge serve` while rotating and start it again).

Output is counts only: no token, and no key except the one `new-key` is asked to print. The
store loads when a command runs, not when the CLI starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from timebridge.cli._output import ExitCode, console, error_console, fail, print_table
from timebridge.cli.db import database_errors, load_settings

if TYPE_CHECKING:
    from timebridge.config import Settings
    from timebridge.store import RotationReport, SecretBox

secrets_app = typer.Typer(help="Secrets at rest: rotate the encryption key.", no_args_is_help=True)


@secrets_app.command("new-key")
def new_key_command() -> None:
    """Print a fresh key, to put first in TIMEBRIDGE_SECRET_KEYS (comma-separated)."""
    from timebridge.store import new_key

    typer.echo(new_key())


async def _rotate(settings: Settings, box: SecretBox) -> tuple[RotationReport, int]:
    from timebridge.store import Database, count_stale_secrets, rotate_secrets

    database = Database(settings.database_url)
    try:
        report = await rotate_secrets(database, box)
        stale = await count_stale_secrets(database, box)
        return report, stale
    finally:
        await database.dispose()


@secrets_app.command("rotate")
def rotate_command(
    generate: bool = typer.Option(
        False,
        "--new-key",
        help="Key file only: generate a new key and put it first before re-encrypting.",
    ),
    retire_old_keys: bool = typer.Option(
        False,
        "--retire-old-keys",
        help="Key file only: afterwards keep just the new key, if nothing needs the old ones.",
    ),
) -> None:
    """Re-encrypt every stored secret with the first key; report counts, never values."""
    import asyncio

    from timebridge.store import SecretBox, SecretKeyError, new_key
    from timebridge.store.crypto import read_key_file, write_key_file

    settings = load_settings()
    from_file = settings.secret_keys is None
    if (generate or retire_old_keys) and not from_file:
        fail(
            "--new-key and --retire-old-keys manage the key file; with TIMEBRIDGE_SECRET_KEYS, "
            "edit the list on every machine (`timebridge secrets new-key` makes a key)",
            ExitCode.USAGE,
        )
    try:
        if from_file and not settings.key_file.exists():
            fail(f"no key file at {settings.key_file}: nothing is encrypted yet", ExitCode.USAGE)
        if generate:
            write_key_file(settings.key_file, [new_key(), *read_key_file(settings.key_file)])
            console.print(f"Added a new first key to {settings.key_file}.")
        box = SecretBox.from_settings(settings, create=False)
    except SecretKeyError as exc:
        fail(str(exc), ExitCode.USAGE)
    with database_errors(settings):
        report, stale = asyncio.run(_rotate(settings, box))
    print_table(
        "Secrets re-encrypted with the first key",
        ["Column", "Re-encrypted", "Unreadable"],
        [[name, count, report.unreadable.get(name, 0)] for name, count in report.rotated.items()],
    )
    console.print(f"{report.total} secrets re-encrypted with the first of {box.key_count} keys.")
    if report.total_unreadable:
        error_console.print(
            f"{report.total_unreadable} secrets could not be decrypted with any key and were "
            "left as they are: their owners must reconnect."
        )
        raise typer.Exit(int(ExitCode.OTHER))
    if stale:
        fail(f"{stale} secrets still need an older key; run rotate again", ExitCode.OTHER)
    if retire_old_keys and box.key_count > 1:
        write_key_file(settings.key_file, read_key_file(settings.key_file)[:1])
        console.print(f"Older keys removed from {settings.key_file}.")
    elif box.key_count > 1:
        console.print("Nothing needs the older keys any more: they can be removed.")
