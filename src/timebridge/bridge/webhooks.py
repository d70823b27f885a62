"""Toggl webhooks of an account: turning them on and off, and keeping Toggl's side as it should
be (`bridge.webhooks`).

Turning them on gives the account's default Toggl connection an endpoint — an unguessable
callback path (`/hooks/toggl/<token>` under `TIMEBRIDGE_PUBLIC_URL`) and a signing secret of our
own, both kept encrypted — and makes one subscription per workspace of the user for time entries
created, updated and deleted. Making a subscription is how Toggl first calls the callback (it
probes the URL inside the create call), so the receiver (`timebridge.webhooks`) must already
answer. A workspace whose plan allows no more webhooks is recorded as such and keeps being
synced on the schedule; so is one whose callback Toggl could not reach.

Reconciling is idempotent and runs when webhooks are turned on and daily (`check_all`): a
subscription Toggl lost is made again, a disabled one enabled, an unvalidated one pinged (the
receiver answers the validation), stale ones of ours (an old callback URL) deleted, and failed
deliveries counted for the page. Webhooks only ever trigger a sync; the scheduled runs stay.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from pydantic import SecretStr

from timebridge.bridge.clients import Upstreams
from timebridge.store import (
    ConnectionStatus,
    Store,
    TogglConnection,
    WebhookEndpoint,
    WebhookState,
    WebhookSubscription,
)
from timebridge.toggl import (
    AsyncTogglClient,
    AuthenticationError,
    CallbackUnreachable,
    NotFound,
    TogglError,
    WebhookEventFilter,
    WebhookLimitReached,
    WebhookSubscriptionCreate,
    Workspace,
)
from timebridge.toggl import WebhookSubscription as TogglSubscription

logger = logging.getLogger(__name__)

#: Where Toggl delivers an endpoint's events, under the public URL.
CALLBACK_PATH = "/hooks/toggl/"
#: The actions subscribed to: every change of a time entry (3 events fit even Toggl's Free plan).
ACTIONS = ("created", "updated", "deleted")
#: How long event ids are remembered to drop repeated deliveries.
EVENTS_KEPT = timedelta(days=1)
_SECRET_ALPHABET = string.ascii_letters + string.digits
_NO_TOGGL = "Connect Toggl Track first: webhooks watch its entries."


class WebhooksUnavailable(Exception):
    """Webhooks cannot be turned on here; the message says why and what to do."""


def description_for(toggl_user_id: int | None) -> str:
    """The subscription's description: unique in a workspace per Toggl user, as Toggl wants,
    and how a subscription of ours is recognised when its URL changed."""
    return f"Timebridge sync to Exist (Toggl user {toggl_user_id or 'unknown'})"


def _is_local(host: str) -> bool:
    if host in ("localhost", "") or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


def unavailable_reason(public_url: str | None, toggl_origin: str) -> str | None:
    """Why Toggl could not call this service back at `public_url`, or None when it can.

    None for `public_url` means `TIMEBRIDGE_PUBLIC_URL` is not set. A loopback or private
    address is fine when Toggl is the simulator on this machine, never for Toggl itself."""
    if public_url is None:
        return (
            "Webhooks need TIMEBRIDGE_PUBLIC_URL: the address where Toggl Track can reach this "
            "service (for example https://timebridge.example.com). Until it is set, Timebridge "
            "syncs on its schedule."
        )
    public_host = urlsplit(public_url).hostname or ""
    toggl_host = urlsplit(toggl_origin).hostname or ""
    if _is_local(public_host) and not _is_local(toggl_host):
        return (
            f"TIMEBRIDGE_PUBLIC_URL is {public_url}, which Toggl Track cannot reach from the "
            "internet: set it to this service's public address to use webhooks."
        )
    return None


@dataclass(frozen=True)
class WebhookStatus:
    """What the page shows: whether webhooks can be used, and the endpoint if they are on."""

    #: Why they cannot be turned on, or None.
    unavailable: str | None
    endpoint: WebhookEndpoint | None

    @property
    def on(self) -> bool:
        return self.endpoint is not None


@dataclass(frozen=True)
class CheckReport:
    """What the daily check did."""

    checked: int = 0
    failed: int = 0
    skipped: int = 0


class Webhooks:
    """An account's Toggl webhooks (see the module docstring)."""

    def __init__(self, store: Store, upstreams: Upstreams, public_url: str | None) -> None:
        self.store = store
        self.upstreams = upstreams
        #: Where Toggl calls back (`TIMEBRIDGE_PUBLIC_URL`), None when not configured.
        self.public_url = public_url.rstrip("/") if public_url else None
        self._forget_listeners: list[Callable[[int], None]] = []

    def on_forget(self, listener: Callable[[int], None]) -> None:
        """Call `listener(endpoint_id)` when an endpoint is forgotten here (turned off,
        disconnected): the receiver drops what it remembers of it at once."""
        self._forget_listeners.append(listener)

    async def status(self, account_id: int) -> WebhookStatus:
        """The account's webhooks as stored (no upstream request)."""
        connection = await self.store.toggl_connections.default(account_id)
        if connection is None or connection.status is not ConnectionStatus.ACTIVE:
            return WebhookStatus(_NO_TOGGL, None)
        endpoint = await self.store.webhooks.for_connection(connection.id)
        return WebhookStatus(unavailable_reason(self.public_url, connection.origin), endpoint)

    async def turn_on(self, account_id: int) -> WebhookEndpoint:
        """Subscribe the account's default Toggl connection in each of its workspaces (or
        bring existing subscriptions back in order). Raises `WebhooksUnavailable` when the
        service cannot be called back or no active Toggl connection exists; Toggl's refusals
        of a workspace are recorded on it, not raised."""
        connection = await self.store.toggl_connections.default(account_id)
        if connection is None or connection.status is not ConnectionStatus.ACTIVE:
            raise WebhooksUnavailable(_NO_TOGGL)
        reason = unavailable_reason(self.public_url, connection.origin)
        if reason is not None:
            raise WebhooksUnavailable(reason)
        existed = await self.store.webhooks.for_connection(connection.id)
        endpoint = existed or await self.store.webhooks.create(
            account_id,
            connection.id,
            token=secrets.token_urlsafe(32),
            secret="".join(secrets.choice(_SECRET_ALPHABET) for _ in range(32)),
        )
        try:
            done = await self._reconcile(endpoint, connection, deliveries=False)
        except BaseException:
            if existed is None:  # nothing was made at Toggl: webhooks stay off
                await self.store.webhooks.delete(endpoint.id)
            raise
        logger.info("webhooks turned on", extra={"user_id": account_id})
        return done

    async def turn_off(self, account_id: int, *, strict: bool = True) -> int:
        """Delete the account's subscriptions at Toggl and forget its endpoints; the number of
        endpoints removed. `strict`: a Toggl failure is raised and the endpoint kept (so it can
        be tried again); otherwise (disconnecting) logged and the endpoint forgotten anyway."""
        removed = 0
        for endpoint in await self.store.webhooks.of_account(account_id):
            await self._remove(endpoint, strict=strict)
            removed += 1
        if removed:
            logger.info("webhooks turned off", extra={"user_id": account_id})
        return removed

    async def forget_connection(self, account_id: int, connection_id: str) -> None:
        """Before one Toggl connection of the account is deleted: its subscriptions at Toggl
        go (as far as Toggl can be reached) and its endpoint is forgotten."""
        endpoint = await self.store.webhooks.for_connection(connection_id)
        if endpoint is not None and endpoint.account_id == account_id:
            await self._remove(endpoint, strict=False)

    async def _remove(self, endpoint: WebhookEndpoint, *, strict: bool) -> None:
        try:
            await self._unsubscribe(endpoint)
        except Exception as exc:
            if strict:
                raise
            logger.warning(
                "could not delete the Toggl webhooks: %s",
                type(exc).__name__,
                extra={"user_id": endpoint.account_id},
            )
        await self.store.webhooks.delete(endpoint.id)
        for listener in self._forget_listeners:
            listener(endpoint.id)

    async def check(self, endpoint_id: int) -> WebhookEndpoint | None:
        """Reconcile one endpoint with Toggl, counting failed deliveries (the daily check).
        None when there is nothing to check (gone, its connection not active, or no public
        URL configured)."""
        endpoint = await self.store.webhooks.get(endpoint_id)
        if endpoint is None or self.public_url is None:
            return None  # gone, or no address to give Toggl (`status` says why)
        connection = await self.store.toggl_connections.get(
            endpoint.account_id, endpoint.connection_id
        )
        if connection.status is not ConnectionStatus.ACTIVE:
            return None
        return await self._reconcile(endpoint, connection, deliveries=True)

    async def check_account(self, account_id: int) -> list[WebhookEndpoint]:
        """`check` for each endpoint of the account (the page's, the API's and the CLI's "check
        now"); the endpoints checked, none when webhooks are off."""
        checked = []
        for endpoint in await self.store.webhooks.of_account(account_id):
            found = await self.check(endpoint.id)
            if found is not None:
                checked.append(found)
        return checked

    async def check_all(self) -> CheckReport:
        """The daily check of every endpoint; one failing never stops the others. Event ids
        older than a day are forgotten too."""
        checked = failed = skipped = 0
        for endpoint_id in await self.store.webhooks.ids():
            try:
                result = await self.check(endpoint_id)
            except Exception as exc:
                failed += 1
                logger.warning(
                    "webhook check failed: %s", type(exc).__name__, extra={"endpoint": endpoint_id}
                )
            else:
                if result is None:
                    skipped += 1
                else:
                    checked += 1
        await self.store.webhooks.purge_events(self.upstreams.clock.now() - EVENTS_KEPT)
        logger.info("webhook check: %d checked, %d failed, %d skipped", checked, failed, skipped)
        return CheckReport(checked, failed, skipped)

    # --- Toggl's side ---------------------------------------------------------------------------

    async def _toggl(self, endpoint: WebhookEndpoint, origin: str) -> AsyncTogglClient:
        token = await self.store.toggl_connections.token(
            endpoint.account_id, endpoint.connection_id
        )
        return self.upstreams.toggl(token, origin)

    async def _reconcile(
        self, endpoint: WebhookEndpoint, connection: TogglConnection, *, deliveries: bool
    ) -> WebhookEndpoint:
        callback_token, secret = await self.store.webhooks.credentials(endpoint.id)
        if self.public_url is None:
            raise WebhooksUnavailable(unavailable_reason(None, connection.origin) or "")
        callback = f"{self.public_url}{CALLBACK_PATH}{callback_token.get_secret_value()}"
        description = description_for(connection.toggl_user_id)
        async with await self._toggl(endpoint, connection.origin) as toggl:
            workspaces = await toggl.workspaces()
            states = [
                await _ensure(toggl, workspace, callback, secret, description, deliveries)
                for workspace in workspaces
            ]
        await self.store.webhooks.save_subscriptions(endpoint, states)
        found = await self.store.webhooks.get(endpoint.id)
        assert found is not None
        return found

    async def _unsubscribe(self, endpoint: WebhookEndpoint) -> None:
        made = [item for item in endpoint.subscriptions if item.subscription_id is not None]
        if not made:
            return
        connection = await self.store.toggl_connections.get(
            endpoint.account_id, endpoint.connection_id
        )
        async with await self._toggl(endpoint, connection.origin) as toggl:
            for item in made:
                assert item.subscription_id is not None
                # Already gone at Toggl is what was wanted.
                with contextlib.suppress(NotFound):
                    await toggl.delete_webhook_subscription(item.workspace_id, item.subscription_id)


async def _ensure(
    toggl: AsyncTogglClient,
    workspace: Workspace,
    callback: str,
    secret: SecretStr,
    description: str,
    deliveries: bool,
) -> WebhookSubscription:
    """Make the workspace's subscription what it should be, and say where it stands."""

    def stands(
        state: WebhookState,
        problem: str | None = None,
        made: TogglSubscription | None = None,
        failed: int = 0,
    ) -> WebhookSubscription:
        return WebhookSubscription(
            workspace_id=workspace.id,
            workspace_name=workspace.name,
            subscription_id=made.subscription_id if made is not None else None,
            state=state,
            problem=problem,
            validated_at=made.validated_at if made is not None else None,
            failed_deliveries=failed,
        )

    try:
        ours: TogglSubscription | None = None
        for held in await toggl.webhook_subscriptions(workspace.id):
            mine = held.url_callback == callback
            stale = not mine and held.description == description
            if mine and held.secret is not None and held.secret != secret:
                stale = True  # ours, but signing with a secret we no longer hold
            if stale:
                await toggl.delete_webhook_subscription(workspace.id, held.subscription_id)
            elif mine:
                ours = held
        if ours is None:
            ours = await toggl.create_webhook_subscription(
                workspace.id,
                WebhookSubscriptionCreate(
                    url_callback=callback,
                    event_filters=[
                        WebhookEventFilter(entity="time_entry", action=action) for action in ACTIONS
                    ],
                    description=description,
                    enabled=True,
                    secret=secret.get_secret_value(),
                ),
            )
        elif not ours.enabled:
            ours = await toggl.set_webhook_subscription_enabled(
                workspace.id, ours.subscription_id, True
            )
        if ours.validated_at is None:
            # The PING carries the validation code; the receiver answers it.
            await toggl.ping_webhook_subscription(workspace.id, ours.subscription_id)
            return stands(
                WebhookState.UNVALIDATED,
                "Toggl Track has not seen the validation answered yet; it was asked again.",
                ours,
            )
        failed = 0
        last_error: str | None = None
        if deliveries:
            for record in await toggl.webhook_deliveries(workspace.id, ours.subscription_id):
                if record.status == "failed":
                    failed += 1
                    last_error = last_error or record.last_delivery_error
        if failed:
            return stands(
                WebhookState.FAILING,
                f"{failed} deliveries failed this week"
                + (f" (last error: {last_error})" if last_error else "")
                + "; the scheduled syncs made up for them.",
                ours,
                failed,
            )
        return stands(WebhookState.ACTIVE, None, ours)
    except WebhookLimitReached as exc:
        return stands(
            WebhookState.LIMITED,
            f"Toggl Track's plan for {workspace.name} allows no more webhooks ({exc.message}). "
            "Remove another webhook there, or keep the scheduled syncs.",
        )
    except CallbackUnreachable as exc:
        return stands(
            WebhookState.FAILING,
            f"Toggl Track could not reach this service ({exc.message}); check "
            "TIMEBRIDGE_PUBLIC_URL.",
        )
    except AuthenticationError:
        raise  # the token itself is refused: the connection is broken, not this workspace
    except TogglError as exc:
        if exc.status_code in (400, 403, 404):
            return stands(WebhookState.FAILING, f"Toggl Track refused: {exc.message}")
        # The quota, an outage: what was done stays done; the daily check tries again.
        return stands(
            WebhookState.FAILING,
            f"Toggl Track could not be asked ({exc.message}); the daily check tries again.",
        )


__all__ = [
    "ACTIONS",
    "CALLBACK_PATH",
    "CheckReport",
    "WebhookStatus",
    "Webhooks",
    "WebhooksUnavailable",
    "description_for",
    "unavailable_reason",
]
