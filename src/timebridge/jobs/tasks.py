"""`SyncService.sync_user`: the one task both engines run, from the store to a recorded run.

The embedded scheduler calls it in-process; the distributed engine calls it from a worker. Either
way it loads the user's connections and mapping from the store (one read), runs one `SyncRunner`
pass and then carries out what the run's outcome asks of the caller (DESIGN.md, "Failures"):
- DISCONNECTED: Toggl refused the token twice, so everything of the Toggl integration goes;
- EXIST_BROKEN: Exist refused even a refreshed token, so syncing stops until a reconnect;
- any outcome: the run is recorded for the status page and, in the same write, a zone newly
  read from Exist is kept.

A steady-state run (nothing changed in Toggl) costs two short transactions: this context (with
the ledger and the entry snapshot) and the run record.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import httpx

from timebridge import metrics
from timebridge._pool import ConnectionPool
from timebridge.clock import Clock, SystemClock
from timebridge.config import Settings
from timebridge.exist import AsyncExistClient, ExistTokens, OAuthApp
from timebridge.retry import RetryPolicy
from timebridge.store import ConnectionPending, ConnectionStatus, ExistState, Store, ZoneReading
from timebridge.sync.runner import RunKind, RunOutcome, RunReport, SyncRunner, UserSyncSettings
from timebridge.toggl import AsyncTogglClient

logger = logging.getLogger(__name__)


class SkipReason(enum.StrEnum):
    """Why a user was not synced at all."""

    NO_TOGGL = "no active Toggl connection"
    NO_EXIST = "no active Exist connection"


@dataclass(frozen=True)
class Skipped:
    """A sync that did not run; the scheduler treats it like a run with nothing to wait for."""

    user_id: int
    reason: SkipReason
    next_sync_after: None = None


class SyncService:
    """Builds a user's runner from the store, runs it, and records what happened."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
        pool: ConnectionPool | None = None,
    ) -> None:
        """`pool`: keep-alive connections shared by every run's clients (a long-lived engine
        opens one and closes it when it stops); without one, each run's clients connect anew."""
        self._store = store
        self._pool = pool
        self._settings = settings
        self._clock = clock or SystemClock()
        self._retry = retry or RetryPolicy()
        secret = settings.exist_client_secret
        self._exist_app = (
            OAuthApp(client_id=settings.exist_client_id, client_secret=secret)
            if settings.exist_client_id and secret is not None
            else None
        )

    async def users_to_sync(self) -> list[int]:
        return await self._store.accounts.ready_to_sync()

    async def sync_user(self, user_id: int, kind: RunKind = RunKind.SYNC) -> RunReport | Skipped:
        """One run of `kind` for one user; never raises for an upstream failure."""
        store = self._store
        context = await store.sync_context(user_id)
        toggl_connection, exist_connection = context.toggl, context.exist
        if toggl_connection is None or toggl_connection.status is not ConnectionStatus.ACTIVE:
            return Skipped(user_id, SkipReason.NO_TOGGL)
        if exist_connection is None or exist_connection.status is not ConnectionStatus.ACTIVE:
            return Skipped(user_id, SkipReason.NO_EXIST)
        secrets = context.secrets
        if secrets is None:
            raise ConnectionPending(f"connection {toggl_connection.connection_id} has no token yet")

        async def keep_rotated_tokens(new_tokens: ExistTokens) -> None:
            await store.exist_connections.rotate(user_id, new_tokens)

        async with (
            AsyncTogglClient(
                secrets.toggl_token.get_secret_value(),
                base_url=self._settings.toggl_base_url,
                retry=self._retry,
                clock=self._clock,
                transport=self._lend(),
            ) as toggl,
            AsyncExistClient(
                secrets.exist_tokens,
                app=self._exist_app,
                on_tokens=keep_rotated_tokens,
                base_url=self._settings.exist_base_url,
                oauth_base_url=self._settings.exist_oauth_base_url,
                retry=self._retry,
                clock=self._clock,
                transport=self._lend(),
            ) as exist,
        ):
            runner = SyncRunner(
                UserSyncSettings(
                    user_id=user_id,
                    toggl=toggl,
                    exist=exist,
                    mapping=context.mapping,
                    clock=self._clock,
                    zone_override=_zone(context.zone_override),
                    exist_zone=_zone(exist_connection.time_zone),
                    exist_zone_checked_at=exist_connection.time_zone_checked_at,
                ),
                store.ledger,
                loaded=context.state,
            )
            if kind is RunKind.ZERO_OUT:
                report = await runner.zero_out()
            elif kind is RunKind.REPAIR:
                report = await runner.repair()
            else:
                report = await runner.run()
        await self._after(report, exist_connection)
        return report

    def _lend(self) -> httpx.AsyncBaseTransport | None:
        return self._pool.lend() if self._pool is not None else None

    async def _after(self, report: RunReport, exist_connection: ExistState) -> None:
        store, user_id = self._store, report.user_id
        if report.outcome is RunOutcome.DISCONNECTED:
            logger.warning("user %s: Toggl refused the token twice; disconnecting Toggl", user_id)
            await store.disconnect_toggl(user_id)
        elif report.outcome is RunOutcome.EXIST_BROKEN:
            logger.warning("user %s: Exist refused the token after a refresh", user_id)
            await store.exist_connections.mark_broken(user_id)
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


def _zone(name: str | None) -> ZoneInfo | None:
    return ZoneInfo(name) if name else None
