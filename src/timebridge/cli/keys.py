"""`timebridge keys create|list|revoke|audit`: the gateway's API keys from the command line.

A key is printed once, when it is created; only its SHA-256 and its prefix are stored.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Any

import typer

from timebridge.cli._output import ExitCode, console, fail, note, print_json, print_table

if TYPE_CHECKING:
    from timebridge.store import Store

keys_app = typer.Typer(
    help="The gateway's API keys: create (shown once), list, revoke, and the audit trail.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

_ACCOUNT = typer.Option(
    None, "--account", "-a", help="The account (its id); optional when there is only one."
)
_JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")


def _run(action: Any) -> Any:
    from timebridge.cli.db import database_errors, load_settings
    from timebridge.store import open_store

    settings = load_settings()

    async def go() -> Any:
        async with await open_store(settings) as store:
            return await action(store)

    with database_errors(settings):
        return asyncio.run(go())


async def _account(store: Store, account: int | None, *, create: bool = False) -> int:
    from timebridge.store import AccountNotFound

    if account is not None:
        try:
            await store.accounts.get(account)
        except AccountNotFound:
            fail(f"no account {account}", ExitCode.NOT_FOUND)
        return account
    ids = await store.accounts.ids()
    if len(ids) > 1:
        listed = ", ".join(str(i) for i in ids[:20])
        fail(
            f"there are {len(ids)} accounts ({listed}); choose one with --account ID",
            ExitCode.USAGE,
        )
    if ids:
        return ids[0]
    if not create:
        fail("there is no account yet", ExitCode.NOT_FOUND)
    return (await store.accounts.create("owner@timebridge.invalid")).id


def _when(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M") if moment is not None else "—"


@keys_app.command("create")
def create(
    scope: list[str] = typer.Option(
        ["proxy:read", "proxy:write", "connections:read", "connections:write"],
        "--scope",
        "-s",
        help="A scope to grant (repeat): proxy:read, proxy:write, connections:read, "
        "connections:write. Default: all four.",
    ),
    name: str | None = typer.Option(None, "--name", "-n", help="What the key is for."),
    expires_in_days: int | None = typer.Option(
        None, "--expires-in-days", min=1, max=3650, help="Expire after this many days."
    ),
    account: int | None = _ACCOUNT,
    as_json: bool = _JSON,
) -> None:
    """Create an API key and print it, once: keep it now, it cannot be shown again."""
    from datetime import UTC, timedelta

    from timebridge.gateway.keys import new_key, parse_scopes

    try:
        scopes = parse_scopes(scope)
    except ValueError as exc:
        fail(str(exc), ExitCode.USAGE)
    made = new_key()

    async def action(store: Store) -> tuple[int, Any]:
        owner = await _account(store, account, create=True)
        expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
        stored = await store.api_keys.create(
            owner, made.secret, prefix=made.prefix, scopes=scopes, name=name, expires_at=expires
        )
        return owner, stored

    owner, stored = _run(action)
    if as_json:
        print_json(
            {
                "key": made.secret,
                "id": stored.id,
                "account": owner,
                "prefix": stored.prefix,
                "scopes": sorted(stored.scopes),
                "expires_at": stored.expires_at.isoformat() if stored.expires_at else None,
            }
        )
    else:
        console.print(made.secret, markup=False)
    note(
        f"Key {stored.id} ({stored.prefix}…) of account {owner}: "
        f"{' '.join(sorted(stored.scopes))}. It is shown only now."
    )


@keys_app.command("list")
def list_keys(account: int | None = _ACCOUNT, as_json: bool = _JSON) -> None:
    """The account's keys (prefix, scopes, created, last used, expiry, revoked)."""

    async def action(store: Store) -> Any:
        return await store.api_keys.list(await _account(store, account))

    keys = _run(action)
    if as_json:
        print_json(
            [
                {
                    "id": k.id,
                    "prefix": k.prefix,
                    "name": k.name,
                    "scopes": sorted(k.scopes),
                    "created_at": k.created_at.isoformat(),
                    "last_used_at": k.last_used_at.isoformat() if k.last_used_at else None,
                    "expires_at": k.expires_at.isoformat() if k.expires_at else None,
                    "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
                }
                for k in keys
            ]
        )
        return
    print_table(
        "API keys",
        ["id", "prefix", "name", "scopes", "created", "last used", "expires", "revoked"],
        [
            [
                k.id,
                f"{k.prefix}…",
                k.name or "",
                " ".join(sorted(k.scopes)),
                _when(k.created_at),
                _when(k.last_used_at),
                _when(k.expires_at),
                _when(k.revoked_at),
            ]
            for k in keys
        ],
    )


@keys_app.command("revoke")
def revoke(
    key: str = typer.Argument(help="The key's id, or its prefix (tb_…)."),
    account: int | None = _ACCOUNT,
) -> None:
    """Revoke a key: every later request with it is a 401."""
    from timebridge.store import ApiKeyNotFound

    async def action(store: Store) -> Any:
        if key.isdigit():
            owner = await _account(store, account)
            return await store.api_keys.revoke(owner, int(key))
        matches = await store.api_keys.accounts_of_prefix(key.rstrip("…"))
        if account is not None:
            matches = [m for m in matches if m.account_id == account]
        if len(matches) != 1:
            fail(
                f"{len(matches)} keys have the prefix {key!r}; give the key's id instead",
                ExitCode.NOT_FOUND if not matches else ExitCode.USAGE,
            )
        return await store.api_keys.revoke(matches[0].account_id, matches[0].id)

    try:
        revoked = _run(action)
    except ApiKeyNotFound:
        fail(f"no API key {key}", ExitCode.NOT_FOUND)
    console.print(f"Revoked key {revoked.id} ({revoked.prefix}…).", markup=False)


@keys_app.command("audit")
def audit(
    account: int | None = _ACCOUNT,
    limit: int = typer.Option(50, "--limit", min=1, max=200, help="How many, newest first."),
    as_json: bool = _JSON,
) -> None:
    """Writes made through the gateway: when, key, connection, method, path, status, duration."""

    async def action(store: Store) -> Any:
        return await store.api_keys.audit(await _account(store, account), limit=limit)

    records = _run(action)
    if as_json:
        print_json(
            [
                {
                    "at": r.at.isoformat(),
                    "key_prefix": r.key_prefix,
                    "connection_id": r.connection_id,
                    "method": r.method,
                    "path": r.path,
                    "status": r.status,
                    "duration_ms": r.duration_ms,
                }
                for r in records
            ]
        )
        return
    print_table(
        "Gateway writes",
        ["at", "key", "connection", "method", "path", "status", "ms"],
        [
            [
                _when(r.at),
                f"{r.key_prefix}…",
                r.connection_id or "",
                r.method,
                r.path,
                r.status,
                r.duration_ms,
            ]
            for r in records
        ],
    )


__all__ = ["keys_app"]
