"""`timebridge login-link`: a one-time sign-in link, for a self-hoster without an Exist OAuth
client (the Exist connection is then made on the connect page with a personal token)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING

import typer

from timebridge.cli._output import ExitCode, console, fail

if TYPE_CHECKING:
    from timebridge.config import Settings


def login_link(
    account: int | None = typer.Option(
        None, "--account", "-a", help="The account to sign in to (its id); see below."
    ),
) -> None:
    """Print a link that signs a browser in once, within 10 minutes.

    Without --account: the only account there is, or a new one when there is none. With
    several accounts, say which (`timebridge sync --user` uses the same ids).
    """
    from timebridge.cli.db import database_errors, load_settings
    from timebridge.web.auth import login_link_url

    settings = load_settings()
    with database_errors(settings):
        secret, expires_at, account_id = asyncio.run(_create(settings, account))
    url = login_link_url(settings.public_url, secret)
    console.print(url, markup=False, soft_wrap=True)
    console.print(
        f"Signs in to account {account_id} once, until {_local(expires_at)}; "
        f"open it where {settings.public_url} is served (`timebridge serve`).",
        markup=False,
    )


async def _create(settings: Settings, account: int | None) -> tuple[str, datetime, int]:
    from timebridge.store import AccountNotFound, open_store

    async with await open_store(settings) as store:
        if account is None:
            ids = await store.accounts.ids()
            if len(ids) > 1:
                listed = ", ".join(str(i) for i in ids[:20])
                fail(
                    f"there are {len(ids)} accounts ({listed}); choose one with --account ID",
                    ExitCode.USAGE,
                )
            if ids:
                account = ids[0]
            else:
                account = (await store.accounts.create("owner@timebridge.invalid")).id
        else:
            try:
                await store.accounts.get(account)
            except AccountNotFound:
                fail(f"no account {account}; leave --account out to create one", ExitCode.NOT_FOUND)
        secret, expires_at = await store.login_links.create(account)
        return secret, expires_at, account


def _local(moment: datetime) -> str:
    return moment.astimezone().strftime("%H:%M")


__all__ = ["login_link"]
