"""`Store`: the repositories over one database and one set of keys, and how to open it."""

from __future__ import annotations

from types import TracebackType

from timebridge.clock import Clock, SystemClock
from timebridge.config import Settings
from timebridge.store._batching import Batcher
from timebridge.store.api_keys import ApiKeyRepository
from timebridge.store.context import SyncContext, load_sync_contexts
from timebridge.store.crypto import SecretBox
from timebridge.store.database import Database
from timebridge.store.gateway_limits import GatewayLimitRepository
from timebridge.store.ledger import SqlLedgerStore
from timebridge.store.migrations import upgrade
from timebridge.store.repositories import (
    AccountRepository,
    ClaimRepository,
    DisconnectReport,
    ExistConnectionRepository,
    MappingRepository,
    SyncRunRepository,
    TogglConnectionRepository,
    disconnect_toggl,
)
from timebridge.store.rotation import RotationReport, rotate_secrets
from timebridge.store.sign_in import LoginLinkRepository, SessionRepository
from timebridge.store.webhooks import WebhookRepository


class Store:
    """Everything the service keeps, one repository per concern."""

    def __init__(self, database: Database, box: SecretBox, clock: Clock | None = None) -> None:
        clock = clock or SystemClock()
        self.database = database
        self.box = box
        self.accounts = AccountRepository(database, clock)
        self.toggl_connections = TogglConnectionRepository(database, box, clock)
        self.exist_connections = ExistConnectionRepository(database, box, clock)
        self.claims = ClaimRepository(database, clock)
        self.mappings = MappingRepository(database, clock)
        self.sync_runs = SyncRunRepository(database)
        self.ledger = SqlLedgerStore(database, clock)
        self.sessions = SessionRepository(database, clock)
        self.login_links = LoginLinkRepository(database, clock)
        #: Gateway API keys and the audit trail of writes made through the gateway.
        self.api_keys = ApiKeyRepository(database, clock, box)
        #: Toggl webhook endpoints (callback token, signing secret), subscriptions, events seen.
        self.webhooks = WebhookRepository(database, box, clock)
        self.gateway_limits = GatewayLimitRepository(database)  # shared gateway limits (PostgreSQL)
        self._contexts: Batcher[int, SyncContext] = Batcher(self._load_contexts)

    def __repr__(self) -> str:
        return f"Store({self.database!r}, {self.box!r})"

    async def sync_context(self, account_id: int) -> SyncContext:
        """Everything a sync run of the user needs, in one read (see `SyncContext`); runs
        starting at the same time share the read (`Batcher`)."""
        return await self._contexts.submit(account_id)

    async def _load_contexts(self, account_ids: list[int]) -> list[SyncContext | BaseException]:
        return await load_sync_contexts(self.database, self.box, account_ids)

    async def disconnect_toggl(self, account_id: int) -> DisconnectReport:
        """Delete everything of the user's Toggl integration (see `disconnect_toggl`)."""
        return await disconnect_toggl(self.database, account_id)

    async def rotate_secrets(self) -> RotationReport:
        """Re-encrypt every stored secret with the first key."""
        return await rotate_secrets(self.database, self.box)

    async def close(self) -> None:
        # Reads and records already asked for are served before the connections go.
        await self._contexts.wait_idle()
        await self.sync_runs.wait_idle()
        await self.database.dispose()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


async def open_store(settings: Settings | None = None, *, clock: Clock | None = None) -> Store:
    """The store these settings describe, ready to use.

    The embedded default needs no setup: its key file is generated and its SQLite file migrated
    here, on start. At scale (PostgreSQL) keys must be configured and migrations are run by
    `timebridge db upgrade` unless `TIMEBRIDGE_AUTO_MIGRATE` says otherwise.
    """
    settings = settings or Settings()
    box = SecretBox.from_settings(settings)
    if settings.migrate_on_start:
        await upgrade(settings.database_url)
    return Store(Database(settings.database_url), box, clock)
