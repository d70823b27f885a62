"""`Bridge`: one account turned into a run — plan, sync, Zero Out, Repair, mapping, disconnect.

Every caller goes through here: the embedded scheduler and the distributed workers
(`timebridge.jobs`), personal mode (`timebridge.bridge.personal`), the CLI, and the web pages,
the gateway and webhooks after them. An operation reads what the store holds of the account
(`Store.sync_context`: one read), builds the account's clients from its connections' tokens and
origins (`Upstreams`), runs the engine (`timebridge.sync.runner.SyncRunner`) and carries out what
the run's outcome asks (DESIGN.md, "Failures"):
- DISCONNECTED: Toggl refused the token twice, so everything of the Toggl integration goes;
- EXIST_BROKEN: Exist refused even a refreshed token, so syncing stops until a reconnect;
- any outcome: the run is recorded for the status page and, in the same write, a zone newly
  read from Exist is kept.

A steady-state sync (nothing changed in Toggl) costs two short transactions: the context (with
the ledger and the entry snapshot) and the run record.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from timebridge import metrics
from timebridge._pool import ConnectionPool
from timebridge.bridge.clients import Upstreams
from timebridge.bridge.results import (
    MappingSaved,
    PlannedWrite,
    Skipped,
    SkipReason,
    SyncNotPossible,
    SyncPreview,
)
from timebridge.bridge.views import ProjectListing, ProjectView, Views
from timebridge.bridge.webhooks import CheckReport, Webhooks
from timebridge.clock import Clock
from timebridge.config import Settings
from timebridge.exist import AsyncExistClient, ExistTokens, Profile
from timebridge.retry import RetryPolicy
from timebridge.store import (
    Account,
    AttributeClaimed,
    ConnectionStatus,
    DisconnectReport,
    DuplicateAccount,
    ExistConnection,
    ExistState,
    Integration,
    ProjectMapping,
    PurgeCounts,
    Store,
    SyncContext,
    TogglConnection,
    ZoneReading,
)
from timebridge.sync.attributes import other_owners, release_attributes, save_mapping
from timebridge.sync.runner import RunKind, RunOutcome, RunReport, SyncRunner, UserSyncSettings
from timebridge.toggl import AsyncTogglClient, Me

logger = logging.getLogger(__name__)


class Bridge:
    """The application layer over one store: every operation on an account goes through it."""

    def __init__(
        self,
        store: Store,
        upstreams: Upstreams,
        *,
        run_history: timedelta = timedelta(days=90),
        public_url: str | None = None,
    ) -> None:
        self.store = store
        self.upstreams = upstreams
        self._run_history = run_history
        #: What the pages and the API show of an account (no upstream request).
        self.views = Views(store, upstreams.clock)
        #: The account's Toggl webhooks, calling back under `public_url` (None: not set).
        self.webhooks = Webhooks(store, upstreams, public_url)
        self._locks: dict[int, _AccountLock] = {}
        self._quota_listeners: list[QuotaListener] = []

    @classmethod
    def from_settings(
        cls,
        store: Store,
        settings: Settings,
        *,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        pool: ConnectionPool | None = None,
    ) -> Bridge:
        """A bridge with the service's Exist OAuth client, clock, retries and pool."""
        upstreams = Upstreams.from_settings(settings, clock=clock, retry=retry, pool=pool)
        return cls(
            store,
            upstreams,
            run_history=timedelta(days=settings.run_history_days),
            public_url=settings.callback_url,
        )

    def on_quota_spent(self, listener: QuotaListener) -> None:
        """Call `listener(connection, seconds)` when a run finds the Toggl quota of the
        account's default connection spent, with the seconds until Toggl said it resets (the
        gateway's quota guard listens: the bridge's requests and the gateway's share a quota)."""
        self._quota_listeners.append(listener)

    # --- runs ---------------------------------------------------------------------------------

    async def users_to_sync(self) -> list[int]:
        """Every account with both connections active and something mapped."""
        return await self.store.accounts.ready_to_sync()

    async def sync(self, account_id: int, kind: RunKind = RunKind.SYNC) -> RunReport | Skipped:
        """One run of `kind` for one account, recorded; never raises for an upstream failure.

        Runs of one account never overlap in this process (a Zero Out from a page waits for
        the scheduled sync it meets); across workers, the job engine's per-user lock does it."""
        held = self._locks.setdefault(account_id, _AccountLock())
        held.users += 1
        try:
            async with held.lock:
                return await self._sync(account_id, kind)
        finally:
            held.users -= 1
            if held.users == 0:
                del self._locks[account_id]

    async def _sync(self, account_id: int, kind: RunKind) -> RunReport | Skipped:
        context = await self.store.sync_context(account_id)
        reason = _not_ready(context)
        if reason is not None:
            return Skipped(account_id, reason)
        assert context.exist is not None
        async with self._clients(context) as (toggl, exist):
            runner = SyncRunner(
                _settings(context, toggl, exist, self.upstreams.clock),
                self.store.ledger,
                loaded=context.state,
            )
            if kind is RunKind.ZERO_OUT:
                report = await runner.zero_out()
            elif kind is RunKind.REPAIR:
                report = await runner.repair()
            else:
                report = await runner.run()
        await self._after(report, context.exist)
        return report

    async def quota_wait(self, account_id: int) -> datetime | None:
        """When the account's last run said to sync again at the earliest (Toggl's quota was
        spent), if that is still ahead; a webhook's sync waits for it."""
        last = await self.store.sync_runs.recent(account_id, limit=1)
        after = last[0].next_sync_after if last else None
        return after if after is not None and after > self.upstreams.clock.now() else None

    async def zero_out(self, account_id: int) -> RunReport | Skipped:
        """Write 0 to every mapped attribute for the window, clear the ledger, then sync."""
        return await self.sync(account_id, RunKind.ZERO_OUT)

    async def repair(self, account_id: int) -> RunReport | Skipped:
        """Rewrite every window value Exist holds differently from Toggl's truth."""
        return await self.sync(account_id, RunKind.REPAIR)

    async def plan(self, account_id: int) -> SyncPreview:
        """The writes a sync of the account would make now, without making any (a dry run).

        Reads Toggl's entries and Exist's profile (so both ends are checked) and, for an
        attribute Timebridge has not written yet, its current values; never writes to Exist, the
        ledger or the run records. `SyncNotPossible` without both connections; upstream errors
        propagate as the clients raise them.
        """
        context = await self.store.sync_context(account_id)
        reason = _not_ready(context)
        if reason is not None:
            raise SyncNotPossible(account_id, reason)
        return await self.plan_context(context)

    async def plan_context(self, context: SyncContext) -> SyncPreview:
        """`plan` for a context given whole (personal mode previews a config never stored).

        The context's Exist zone is not trusted here: the profile is read, so a dry run
        checks that Exist answers."""
        if context.secrets is None or context.toggl is None or context.exist is None:
            raise SyncNotPossible(context.account_id, _not_ready(context) or SkipReason.NO_TOGGL)
        context = replace(context, exist=replace(context.exist, time_zone_checked_at=None))
        async with self._clients(context) as (toggl, exist):
            runner = SyncRunner(
                _settings(context, toggl, exist, self.upstreams.clock), self.store.ledger
            )
            plan = await runner.plan()
            toggl_requests, exist_requests = toggl.requests_sent, exist.requests_sent
        return SyncPreview(
            account_id=context.account_id or None,
            window=plan.window,
            writes=tuple(
                PlannedWrite(w.attribute, w.date, plan.current.get((w.attribute, w.date)), w.value)
                for w in plan.writes
            ),
            toggl_requests=toggl_requests,
            exist_requests=exist_requests,
        )

    # --- mapping and disconnecting ----------------------------------------------------------

    async def projects(self, account_id: int) -> ProjectListing:
        """Every project of the default Toggl connection's workspaces (archived ones too:
        their entries count), with the attribute each feeds. Asks Toggl (the workspaces, then
        per workspace the projects, and the clients when a project has one): only when the
        user asks, such as opening the mapping page. Remembers the projects' current names
        with the mapping. `SyncNotPossible` without a usable connection; upstream errors
        propagate."""
        store = self.store
        connection = await store.toggl_connections.default(account_id)
        if connection is None or not connection.has_token:
            raise SyncNotPossible(account_id, SkipReason.NO_TOGGL)
        token = await store.toggl_connections.token(account_id, connection.id)
        mapped = await store.mappings.project_map(account_id)
        found: list[ProjectView] = []
        async with self.upstreams.toggl(token, connection.origin) as toggl:
            for workspace in await toggl.workspaces():
                listed = [
                    project
                    async for project in toggl.iter_projects(workspace.id, active="both")
                    if project.server_deleted_at is None
                ]
                clients: dict[int, str] = {}
                if any(project.client_id is not None for project in listed):
                    clients = {
                        c.id: c.name for c in await toggl.clients(workspace.id, status="both")
                    }
                found.extend(
                    ProjectView(
                        workspace_id=workspace.id,
                        workspace_name=workspace.name,
                        project_id=project.id,
                        name=project.name,
                        client_id=project.client_id,
                        client_name=clients.get(project.client_id)
                        if project.client_id is not None
                        else None,
                        color=project.color,
                        active=project.active,
                        attribute=mapped.get(project.id),
                    )
                    for project in listed
                )
            requests = toggl.requests_sent
        await store.mappings.rename(
            account_id, {p.project_id: p.name for p in found if p.project_id in mapped}
        )
        return ProjectListing(connection.id, tuple(found), requests)

    async def set_time_zone(self, account_id: int, time_zone: str | None) -> None:
        """The account's own zone (an IANA name), or None to follow Exist's. The next run
        plans in it; `ValueError` for a name that is not a time zone."""
        await self.store.accounts.set_time_zone(account_id, time_zone)

    async def takeovers(self, account_id: int, attributes: Iterable[str]) -> dict[str, str]:
        """Which of `attributes` another service feeds in Exist now, with its name: what the
        mapping page warns about before saving takes them over."""
        async with self._exist(account_id) as exist:
            return await other_owners(exist, attributes)

    async def save_mapping(
        self, account_id: int, projects: Sequence[ProjectMapping]
    ) -> MappingSaved:
        """Make `projects` the account's whole mapping: acquire what it maps to in Exist,
        release what is no longer mapped (once our values there are back to zero), store it.

        A project whose attribute Exist refused is left out (`refused` says why). The store
        refuses an attribute another integration of the user holds (`AttributeClaimed`).
        """
        store = self.store
        requested = {project.project_id: project.attribute for project in projects}
        # Refused before Exist is asked: acquiring first would leave an attribute ours there
        # that the store then refuses to map.
        holders = await store.claims.holders(account_id)
        for attribute in sorted(set(requested.values())):
            holder = holders.get(attribute)
            if holder is not None and holder != Integration.TOGGL.value:
                raise AttributeClaimed(attribute, holder)
        previous = await store.mappings.project_map(account_id)
        async with self._exist(account_id) as exist:
            taken_over = await other_owners(exist, requested.values())
            change = await save_mapping(
                exist, store.ledger, account_id, previous=previous, requested=requested
            )
            exist_requests = exist.requests_sent
        await store.mappings.replace(
            account_id,
            [
                replace(project, attribute=change.mapping[project.project_id])
                for project in projects
                if project.project_id in change.mapping
            ],
        )
        refused = dict(change.claims.refused)
        return MappingSaved(
            mapping=dict(change.mapping),
            refused=refused,
            taken_over={k: v for k, v in taken_over.items() if k not in refused},
            released=change.released.released,
            exist_requests=exist_requests,
        )

    async def disconnect_toggl(self, account_id: int) -> DisconnectReport:
        """Remove the account's Toggl tokens, mapping, ledger and entries, and give the
        attributes back to Exist. Nothing of the Toggl integration is left behind; if Exist
        cannot be reached, the attributes stay ours there (the data is deleted regardless)."""
        ledger = await self.store.ledger.load(account_id)
        # Toggl would otherwise go on calling a callback that no longer knows the user.
        await self.webhooks.turn_off(account_id, strict=False)
        report = await self.store.disconnect_toggl(account_id)
        names = set(report.attributes) | {attribute for attribute, _ in ledger}
        exist_connection = await self.store.exist_connections.get(account_id)
        if names and exist_connection is not None:
            try:
                async with self._exist(account_id) as exist:
                    await release_attributes(exist, names)
            except Exception as exc:
                logger.warning(
                    "could not release attributes after disconnecting Toggl: %s",
                    type(exc).__name__,
                    extra={"user_id": account_id},
                )
        return report

    async def delete_toggl_connection(self, account_id: int, connection_id: str) -> None:
        """Delete one Toggl connection of the account (the gateway's `DELETE /connections`):
        the last one is a disconnect (`disconnect_toggl`); another takes its webhooks with it."""
        remaining = await self.store.toggl_connections.list(account_id)
        if len(remaining) <= 1:
            await self.disconnect_toggl(account_id)
            return
        await self.webhooks.forget_connection(account_id, connection_id)
        await self.store.toggl_connections.delete(account_id, connection_id)

    # --- signing in and connecting -------------------------------------------------------------

    async def sign_in_with_toggl(self, token: SecretStr, origin: str) -> Account:
        """The account of the Toggl user a token belongs to (checked with `/me` at `origin`),
        created on first sign-in, with the token stored as a connection: for people who come
        for the gateway and have no Exist account. Upstream errors propagate."""
        async with self.upstreams.toggl(token, origin) as toggl:
            me = await toggl.me()
        account = await self.store.accounts.by_toggl_user(me.id)
        if account is None:
            account = await self._new_account(me.email, me.fullname or None)
        await self._keep_toggl(account.id, token, origin, me)
        return account

    async def sign_in_with_exist(
        self, code: str, redirect_uri: str, origin: str, *, signed_in: int | None = None
    ) -> Account:
        """Finish "Sign in with Exist": trade the callback's code for tokens at `origin`, read
        the profile, and return the account of that Exist user (created on first sign-in) with
        its Exist connection saved. `signed_in`: the account of a browser already signed in
        (with a Toggl token, say), which the Exist user joins unless another account has it.
        Upstream errors propagate."""
        async with self.upstreams.exist(None, origin) as exist:
            tokens = await exist.exchange_code(code, redirect_uri)
            profile = await exist.profile()
            tokens = exist.tokens or tokens
        account = await self.store.accounts.by_exist_username(profile.username)
        if account is None and signed_in is not None:
            await self.store.accounts.set_exist_username(signed_in, profile.username)
            account = await self.store.accounts.get(signed_in)
        if account is None:
            name = " ".join(filter(None, [profile.first_name, profile.last_name])) or None
            account = await self._new_account(f"{profile.username}@exist.invalid", name)
            await self.store.accounts.set_exist_username(account.id, profile.username)
        await self.store.exist_connections.save(
            account.id, tokens, time_zone=profile.timezone, origin=origin
        )
        return account

    async def connect_toggl(
        self, account_id: int, token: SecretStr, origin: str
    ) -> tuple[TogglConnection, Me]:
        """Check a Toggl API token with `/me` at `origin` and store it (encrypted) as the
        account's default connection, with the Toggl user it belongs to (a token of a Toggl
        user the account holds already replaces that connection's). Upstream errors propagate
        (a bad token is `toggl.AuthenticationError`) and nothing is stored."""
        async with self.upstreams.toggl(token, origin) as toggl:
            me = await toggl.me()
        return await self._keep_toggl(account_id, token, origin, me), me

    async def _keep_toggl(
        self, account_id: int, token: SecretStr, origin: str, me: Me
    ) -> TogglConnection:
        store = self.store
        for existing in await store.toggl_connections.list(account_id):
            if existing.toggl_user_id == me.id:
                connection = await store.toggl_connections.set_token(
                    account_id, existing.id, token, toggl_user_id=me.id, origin=origin
                )
                if not connection.is_default:
                    connection = await store.toggl_connections.set_default(account_id, existing.id)
                return connection
        return await store.toggl_connections.create(
            account_id,
            token,
            label=me.fullname or me.email,
            toggl_user_id=me.id,
            make_default=True,
            origin=origin,
        )

    async def _new_account(self, email: str, display_name: str | None) -> Account:
        try:
            return await self.store.accounts.create(email, display_name=display_name)
        except DuplicateAccount:
            # The address is another account's: this one gets a unique, unreachable one.
            unique = f"{secrets.token_hex(8)}@timebridge.invalid"
            return await self.store.accounts.create(unique, display_name=display_name)

    async def connect_exist(
        self, account_id: int, tokens: ExistTokens, origin: str
    ) -> tuple[ExistConnection, Profile]:
        """Check Exist tokens with the profile at `origin` and store them (encrypted), with the
        zone Exist uses for the user's days. Upstream errors propagate; nothing is stored."""
        async with self.upstreams.exist(tokens, origin) as exist:
            profile = await exist.profile()
            tokens = exist.tokens or tokens
        connection = await self.store.exist_connections.save(
            account_id, tokens, time_zone=profile.timezone, origin=origin
        )
        return connection, profile

    async def disconnect_exist(self, account_id: int) -> None:
        """Give the attributes back to Exist and forget the Exist connection and the ledger
        (which describes that Exist account); the mapping stays for a reconnect, which reads
        Exist's values afresh."""
        names = set((await self.store.mappings.project_map(account_id)).values())
        names |= {attribute for attribute, _ in await self.store.ledger.load(account_id)}
        connection = await self.store.exist_connections.get(account_id)
        if names and connection is not None and connection.status is ConnectionStatus.ACTIVE:
            try:
                async with self._exist(account_id) as exist:
                    await release_attributes(exist, names)
            except Exception as exc:
                logger.warning(
                    "could not release attributes when disconnecting Exist: %s",
                    type(exc).__name__,
                    extra={"user_id": account_id},
                )
        await self.store.ledger.clear(account_id)
        await self.store.exist_connections.delete(account_id)

    async def delete_account(self, account_id: int) -> None:
        """Everything of the account goes: attributes given back to Exist, then every row."""
        await self.disconnect_toggl(account_id)
        await self.disconnect_exist(account_id)
        await self.store.accounts.delete(account_id)

    async def purge(self) -> PurgeCounts:
        """The store-wide purge (daily): ledger and entry rows older than 21 days for every
        account, syncing or not, run records older than the configured history, idle sessions
        and used or expired login links."""
        counts = await self.store.ledger.purge_expired()
        runs = await self.store.sync_runs.purge(self.upstreams.clock.now() - self._run_history)
        await self.store.sessions.purge()
        await self.store.login_links.purge()
        logger.info(
            "purge: %d ledger rows, %d entry snapshots, %d run records",
            counts.ledger_rows,
            counts.snapshots,
            runs,
        )
        return counts

    async def daily_upkeep(self) -> tuple[PurgeCounts, CheckReport]:
        """What runs once a day beside the syncs, in either engine: the purge, then the check
        of every Toggl webhook."""
        return await self.purge(), await self.webhooks.check_all()

    # --- the parts -----------------------------------------------------------------------------

    @asynccontextmanager
    async def _clients(
        self, context: SyncContext
    ) -> AsyncIterator[tuple[AsyncTogglClient, AsyncExistClient]]:
        """The account's two clients, each bound to its connection's origin."""
        assert context.secrets is not None and context.toggl and context.exist
        secrets = context.secrets
        on_tokens = self._keep_tokens(context.account_id) if context.account_id else None
        async with (
            self.upstreams.toggl(secrets.toggl_token, context.toggl.origin) as toggl,
            self.upstreams.exist(
                secrets.exist_tokens, context.exist.origin, on_tokens=on_tokens
            ) as exist,
        ):
            yield toggl, exist

    @asynccontextmanager
    async def _exist(self, account_id: int) -> AsyncIterator[AsyncExistClient]:
        """The account's Exist client alone (mapping pages need no Toggl token)."""
        connection = await self.store.exist_connections.get(account_id)
        if connection is None or connection.status is not ConnectionStatus.ACTIVE:
            raise SyncNotPossible(account_id, SkipReason.NO_EXIST)
        tokens = await self.store.exist_connections.tokens(account_id)
        async with self.upstreams.exist(
            tokens, connection.origin, on_tokens=self._keep_tokens(account_id)
        ) as exist:
            yield exist

    def _keep_tokens(self, account_id: int) -> _KeepTokens:
        return _KeepTokens(self.store, account_id)

    async def _tell_quota_spent(self, account_id: int, resets_at: datetime) -> None:
        if not self._quota_listeners:
            return
        connection = await self.store.toggl_connections.default(account_id)
        seconds = (resets_at - self.upstreams.clock.now()).total_seconds()
        if connection is None or seconds <= 0:
            return
        for listener in self._quota_listeners:
            listener(connection, seconds)

    async def _after(self, report: RunReport, exist_connection: ExistState) -> None:
        store, user_id = self.store, report.user_id
        if report.outcome is RunOutcome.DISCONNECTED:
            logger.warning("user %s: Toggl refused the token twice; disconnecting Toggl", user_id)
            await store.disconnect_toggl(user_id)
        elif report.outcome is RunOutcome.EXIST_BROKEN:
            logger.warning("user %s: Exist refused the token after a refresh", user_id)
            await store.exist_connections.mark_broken(user_id)
        elif report.outcome is RunOutcome.QUOTA_EXCEEDED and report.next_sync_after is not None:
            await self._tell_quota_spent(user_id, report.next_sync_after)
        # One write for the record and, only if the run read a different one, the zone.
        zone = None
        if report.zone is not None and report.zone_checked_at is not None:
            known = (exist_connection.time_zone, exist_connection.time_zone_checked_at)
            if (report.zone, report.zone_checked_at) != known:
                zone = ZoneReading(report.zone, report.zone_checked_at)
        await store.sync_runs.record(report, exist_zone=zone)
        metrics.record_run(
            report.kind, report.outcome, report.duration.total_seconds(), report.values_written
        )


#: Told which connection's Toggl quota a run found spent, and the seconds until it resets.
QuotaListener = Callable[[TogglConnection, float], None]


class _AccountLock:
    """One account's run lock, and how many runs hold or wait for it."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class _KeepTokens:
    """Stores a refreshed Exist pair: a refresh invalidates the old one, so losing the new pair
    would break the connection."""

    def __init__(self, store: Store, account_id: int) -> None:
        self._store = store
        self._account_id = account_id

    async def __call__(self, tokens: ExistTokens) -> None:
        await self._store.exist_connections.rotate(self._account_id, tokens)


def _not_ready(context: SyncContext) -> SkipReason | None:
    if context.toggl is None or context.toggl.status is not ConnectionStatus.ACTIVE:
        return SkipReason.NO_TOGGL
    if context.exist is None or context.exist.status is not ConnectionStatus.ACTIVE:
        return SkipReason.NO_EXIST
    if context.secrets is None:
        return SkipReason.NO_TOGGL  # a pending connection: no token pasted yet
    return None


def _zone(name: str | None) -> ZoneInfo | None:
    return ZoneInfo(name) if name else None


def _settings(
    context: SyncContext, toggl: AsyncTogglClient, exist: AsyncExistClient, clock: Clock
) -> UserSyncSettings:
    """The engine's view of one account."""
    assert context.exist is not None
    return UserSyncSettings(
        user_id=context.account_id,
        toggl=toggl,
        exist=exist,
        mapping=context.mapping,
        clock=clock,
        zone_override=_zone(context.zone_override),
        exist_zone=_zone(context.exist.time_zone),
        exist_zone_checked_at=context.exist.time_zone_checked_at,
    )


__all__ = ["Bridge"]
