"""`timebridge webhooks on|off|status|check`: Toggl Track's webhooks for an account, so that a
change in Toggl reaches Exist within seconds instead of at the next scheduled sync.

Toggl calls the service back at `TIMEBRIDGE_PUBLIC_URL` (`/hooks/toggl/…`), so turning webhooks
on needs that address set and `timebridge serve` answering there: Toggl probes it while the
subscription is made. The scheduled syncs stay either way. Exit codes: 0 done (every workspace's
webhook active, for `on` and `check`), 1 a workspace's webhook is not working (the states say
why), 2 no public URL (or one Toggl cannot reach), 3 Toggl refused the stored token, 4 Toggl's
quota is spent, 5 no such account or no Toggl connection, 6 Toggl or the database unreachable.

The store, the bridge and the Toggl client load when a command runs, not when the CLI starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from timebridge.cli._output import ExitCode, console, fail, note, print_json, print_table

if TYPE_CHECKING:
    from timebridge.bridge import Bridge
    from timebridge.config import Settings
    from timebridge.store import Store, WebhookEndpoint

T = TypeVar("T")

webhooks_app = typer.Typer(
    help="Toggl Track webhooks: a change in Toggl reaches Exist within seconds "
    "(on, off, status, check). Needs TIMEBRIDGE_PUBLIC_URL and `timebridge serve` there.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

_ACCOUNT = typer.Option(
    None, "--account", "-a", help="The account (its id); optional when there is only one."
)
_JSON = typer.Option(False, "--json", help="Print JSON instead of tables.")


def _run(settings: Settings, action: Callable[[Store, Bridge], Awaitable[T]]) -> T:
    """`action` with the store and a bridge built as the service builds it; a database or
    Toggl failure becomes one line and its exit code."""
    from timebridge.bridge import Bridge
    from timebridge.cli.db import database_errors
    from timebridge.store import open_store

    async def go() -> T:
        async with await open_store(settings) as store:
            return await action(store, Bridge.from_settings(store, settings))

    with database_errors(settings), _toggl_errors():
        return asyncio.run(go())


@contextmanager
def _toggl_errors() -> Iterator[None]:
    from datetime import UTC

    from timebridge.cli._toggl_session import describe
    from timebridge.toggl import AuthenticationError, TogglError

    try:
        yield
    except AuthenticationError as exc:
        fail(
            f"Toggl Track refused the account's stored token ({exc.message}); connect Toggl "
            "again (the connect page, or `timebridge init --force`)",
            ExitCode.AUTHENTICATION,
        )
    except TogglError as exc:
        message, code = describe(exc, datetime.now(UTC))
        fail(f"Toggl Track: {message}", code)


async def _account(store: Store, account: int | None) -> int:
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
    if not ids:
        fail(
            "there is no account yet: set one up with `timebridge init`, or sign in on the "
            "service's pages",
            ExitCode.NOT_FOUND,
        )
    return ids[0]


async def _toggl_connected(store: Store, account_id: int) -> None:
    """Exit 5 (none) or 3 (refused) unless the account's Toggl connection is active."""
    from timebridge.store import ConnectionStatus

    connection = await store.toggl_connections.default(account_id)
    if connection is None:
        fail(
            f"account {account_id} has no Toggl Track connection: connect Toggl first "
            "(`timebridge init`, or the connect page); webhooks watch its entries",
            ExitCode.NOT_FOUND,
        )
    if connection.status is not ConnectionStatus.ACTIVE:
        why = f" ({connection.failure_reason})" if connection.failure_reason else ""
        fail(
            f"account {account_id}'s Toggl Track connection is {connection.status.value.lower()}"
            f"{why}: connect Toggl again first",
            ExitCode.AUTHENTICATION,
        )


def _public_url(settings: Settings) -> str:
    """The address Toggl calls back, or exit 2 saying how to set it."""
    from timebridge.bridge.webhooks import unavailable_reason

    if settings.callback_url is None:
        reason = unavailable_reason(None, settings.toggl_base_url)
        assert reason is not None
        fail(reason, ExitCode.USAGE)
    return settings.callback_url


def _when(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M") if moment is not None else "—"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _endpoint_json(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "account": endpoint.account_id,
        "connection_id": endpoint.connection_id,
        "created_at": _iso(endpoint.created_at),
        "last_event_at": _iso(endpoint.last_event_at),
        "checked_at": _iso(endpoint.checked_at),
        "workspaces": [
            {
                "workspace_id": item.workspace_id,
                "workspace_name": item.workspace_name,
                "subscription_id": item.subscription_id,
                "state": item.state.value,
                "problem": item.problem,
                "validated_at": _iso(item.validated_at),
                "failed_deliveries": item.failed_deliveries,
            }
            for item in endpoint.subscriptions
        ],
    }


def _show_endpoint(endpoint: WebhookEndpoint) -> None:
    """The endpoint's workspaces as a table, then when it last heard from Toggl."""
    print_table(
        f"Toggl webhooks of account {endpoint.account_id}",
        ["workspace", "state", "validated", "failed deliveries", "problem"],
        [
            [
                f"{item.workspace_name or ''} ({item.workspace_id})".strip(),
                item.state.value,
                _when(item.validated_at),
                item.failed_deliveries,
                item.problem or "",
            ]
            for item in endpoint.subscriptions
        ],
    )
    console.print(
        f"Last event: {_when(endpoint.last_event_at)}; last check: {_when(endpoint.checked_at)}; "
        f"on since {_when(endpoint.created_at)}.",
        markup=False,
    )


def _all_active(endpoint: WebhookEndpoint) -> bool:
    from timebridge.store import WebhookState

    return bool(endpoint.subscriptions) and all(
        item.state is WebhookState.ACTIVE for item in endpoint.subscriptions
    )


def _advice(endpoint: WebhookEndpoint, public_url: str) -> str:
    """What to do about the workspaces whose webhook does not work, in one remark."""
    from timebridge.store import WebhookState

    states = {item.state for item in endpoint.subscriptions}
    if not endpoint.subscriptions:
        return "Toggl Track shows no workspace for this account; nothing to subscribe."
    steps: list[str] = []
    if states & {WebhookState.FAILING, WebhookState.UNVALIDATED, WebhookState.DISABLED}:
        steps.append(
            f"Toggl Track must reach the service at {public_url}: start it there "
            "(`timebridge serve`, with the same TIMEBRIDGE_PUBLIC_URL), then run "
            "`timebridge webhooks check` (the daily check retries too)."
        )
    if WebhookState.LIMITED in states:
        steps.append(
            "A workspace's plan allows no more webhooks: remove one of its others "
            "(`timebridge toggl webhooks list`), then run `timebridge webhooks check`."
        )
    return " ".join(steps) + " Until then those workspaces are synced on the schedule."


def _report(endpoint: WebhookEndpoint, public_url: str, *, as_json: bool, headline: str) -> None:
    """Print where each workspace stands; exit 1 unless every one is active."""
    if as_json:
        print_json({"on": True, **_endpoint_json(endpoint)})
    else:
        console.print(headline, markup=False)
        _show_endpoint(endpoint)
    if _all_active(endpoint):
        note(
            "A change in Toggl Track now reaches Exist within seconds; the hourly sync stays, "
            "as the fallback."
        )
        return
    note(_advice(endpoint, public_url))
    raise typer.Exit(int(ExitCode.OTHER))


@webhooks_app.command("on")
def turn_on(account: int | None = _ACCOUNT, as_json: bool = _JSON) -> None:
    """Subscribe to the account's time entries in each of its Toggl workspaces.

    Toggl probes TIMEBRIDGE_PUBLIC_URL while subscribing: `timebridge serve` must be running
    there. Running it again brings the subscriptions back in order."""
    from timebridge.bridge import WebhooksUnavailable
    from timebridge.cli.db import load_settings

    settings = load_settings()

    async def action(store: Store, bridge: Bridge) -> WebhookEndpoint:
        account_id = await _account(store, account)
        await _toggl_connected(store, account_id)
        _public_url(settings)
        try:
            return await bridge.webhooks.turn_on(account_id)
        except WebhooksUnavailable as exc:
            fail(str(exc), ExitCode.USAGE)

    endpoint = _run(settings, action)
    _report(
        endpoint,
        _public_url(settings),
        as_json=as_json,
        headline=f"Webhooks are on for account {endpoint.account_id}.",
    )


@webhooks_app.command("off")
def turn_off(account: int | None = _ACCOUNT, as_json: bool = _JSON) -> None:
    """Delete the account's webhooks at Toggl; it is synced on the schedule only."""
    from timebridge.cli.db import load_settings

    settings = load_settings()

    async def action(store: Store, bridge: Bridge) -> tuple[int, int]:
        account_id = await _account(store, account)
        return account_id, await bridge.webhooks.turn_off(account_id)

    account_id, removed = _run(settings, action)
    if as_json:
        print_json({"account": account_id, "on": False, "removed": removed})
        return
    if removed:
        console.print(
            f"Webhooks are off for account {account_id}: its subscriptions at Toggl Track are "
            "deleted. It is synced on the schedule.",
            markup=False,
        )
    else:
        console.print(
            f"Webhooks were not on for account {account_id}; nothing changed.", markup=False
        )


@webhooks_app.command("status")
def status(account: int | None = _ACCOUNT, as_json: bool = _JSON) -> None:
    """Whether webhooks are on and each workspace's state, as last seen (asks Toggl nothing)."""
    from timebridge.cli.db import load_settings
    from timebridge.store import ConnectionStatus

    settings = load_settings()

    async def action(store: Store, bridge: Bridge) -> tuple[int, Any, str | None]:
        account_id = await _account(store, account)
        connection = await store.toggl_connections.default(account_id)
        problem = None
        if connection is None:
            problem = "No Toggl Track connection: connect Toggl first."
        elif connection.status is not ConnectionStatus.ACTIVE:
            problem = (
                f"The Toggl Track connection is {connection.status.value.lower()}: "
                "connect Toggl again."
            )
        return account_id, await bridge.webhooks.status(account_id), problem

    account_id, found, connection_problem = _run(settings, action)
    # Without a connection, Toggl's origin is unknown: the missing connection is the reason.
    unavailable: str | None = connection_problem or found.unavailable
    endpoint: WebhookEndpoint | None = found.endpoint
    if as_json:
        print_json(
            {"account": account_id, "on": False, "unavailable": unavailable}
            if endpoint is None
            else {"on": True, "unavailable": unavailable, **_endpoint_json(endpoint)}
        )
        return
    if endpoint is None:
        console.print(
            f"Webhooks are off for account {account_id}: it is synced on the schedule.",
            markup=False,
        )
        console.print(
            unavailable
            if unavailable is not None
            else "Turn them on with `timebridge webhooks on` (with `timebridge serve` running).",
            markup=False,
        )
        return
    console.print(f"Webhooks are on for account {account_id}.", markup=False)
    _show_endpoint(endpoint)
    if unavailable is not None:
        console.print(unavailable, markup=False)


@webhooks_app.command("check")
def check(account: int | None = _ACCOUNT, as_json: bool = _JSON) -> None:
    """The daily check, now: each subscription made again, enabled or validated where needed,
    and failed deliveries counted. Every account's, or --account's only."""
    from timebridge.cli.db import load_settings

    settings = load_settings()
    public_url = _public_url(settings)

    async def one(store: Store, bridge: Bridge) -> list[WebhookEndpoint]:
        assert account is not None
        account_id = await _account(store, account)
        await _toggl_connected(store, account_id)
        checked = await bridge.webhooks.check_account(account_id)
        if not checked:
            fail(
                f"webhooks are not on for account {account_id}: `timebridge webhooks on`",
                ExitCode.NOT_FOUND,
            )
        return checked

    async def every(store: Store, bridge: Bridge) -> tuple[Any, list[WebhookEndpoint]]:
        report = await bridge.webhooks.check_all()
        endpoints = [await store.webhooks.get(item) for item in await store.webhooks.ids()]
        return report, [endpoint for endpoint in endpoints if endpoint is not None]

    if account is not None:
        endpoints = _run(settings, one)
        failed = 0
    else:
        report, endpoints = _run(settings, every)
        failed = report.failed
        if not as_json:
            console.print(
                f"Checked {report.checked} webhook endpoints ({report.failed} failed, "
                f"{report.skipped} skipped: their Toggl connection is not active).",
                markup=False,
            )
    if as_json:
        print_json({"failed": failed, "endpoints": [_endpoint_json(e) for e in endpoints]})
    else:
        for endpoint in endpoints:
            _show_endpoint(endpoint)
    broken = [endpoint for endpoint in endpoints if not _all_active(endpoint)]
    if failed:
        note("Some checks failed (Toggl unreachable or its quota spent); the log says which.")
    for endpoint in broken:
        note(f"Account {endpoint.account_id}: {_advice(endpoint, public_url)}")
    if failed or broken:
        raise typer.Exit(int(ExitCode.OTHER))


__all__ = ["webhooks_app"]
