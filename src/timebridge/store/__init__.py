"""The store: accounts, connections, mappings, attribute claims, the ledger and run records in
SQLite (the embedded default) or PostgreSQL, with secrets encrypted at rest.

    async with await open_store() as store:
        account = await store.accounts.create("ada@example.com")
        connection = await store.toggl_connections.create(account.id, "toggl-api-token")
        runner = SyncRunner(settings, store.ledger)

Import from here; the modules behind it are free to move.
"""

from timebridge.store._store import Store, open_store
from timebridge.store.api_keys import (
    ApiKey,
    ApiKeyNotFound,
    ApiKeyRepository,
    AuditRecord,
    ProxyGrant,
)
from timebridge.store.context import ExistState, RunSecrets, SyncContext, TogglState
from timebridge.store.crypto import SecretBox, new_key
from timebridge.store.database import Database, create_engine
from timebridge.store.errors import (
    AccountNotFound,
    AttributeClaimed,
    AttributeStillMapped,
    ConnectionNotFound,
    ConnectionPending,
    DuplicateAccount,
    InvalidMapping,
    NotFound,
    SecretKeyError,
    StoreError,
    UndecryptableSecret,
)
from timebridge.store.gateway_limits import GatewayLimitRepository
from timebridge.store.ledger import PurgeCounts, SqlLedgerStore
from timebridge.store.migrations import current_revision, head_revision, upgrade
from timebridge.store.models import ConnectionStatus, Integration
from timebridge.store.repositories import (
    Account,
    AccountRepository,
    ClaimRepository,
    DisconnectReport,
    ExistConnection,
    ExistConnectionRepository,
    MappingRepository,
    ProjectMapping,
    RunSummary,
    SyncRun,
    SyncRunRepository,
    TogglConnection,
    TogglConnectionRepository,
    ZoneReading,
    disconnect_toggl,
)
from timebridge.store.rotation import RotationReport, count_stale_secrets, rotate_secrets
from timebridge.store.sign_in import LoginLinkRepository, SessionRepository, WebSession
from timebridge.store.webhooks import (
    CallbackTarget,
    WebhookEndpoint,
    WebhookRepository,
    WebhookState,
    WebhookSubscription,
)

__all__ = [
    "Account",
    "AccountNotFound",
    "AccountRepository",
    "ApiKey",
    "ApiKeyNotFound",
    "ApiKeyRepository",
    "AttributeClaimed",
    "AttributeStillMapped",
    "AuditRecord",
    "CallbackTarget",
    "ClaimRepository",
    "ConnectionNotFound",
    "ConnectionPending",
    "ConnectionStatus",
    "Database",
    "DisconnectReport",
    "DuplicateAccount",
    "ExistConnection",
    "ExistConnectionRepository",
    "ExistState",
    "GatewayLimitRepository",
    "Integration",
    "InvalidMapping",
    "LoginLinkRepository",
    "MappingRepository",
    "NotFound",
    "ProjectMapping",
    "ProxyGrant",
    "PurgeCounts",
    "RotationReport",
    "RunSecrets",
    "RunSummary",
    "SecretBox",
    "SecretKeyError",
    "SessionRepository",
    "SqlLedgerStore",
    "Store",
    "StoreError",
    "SyncContext",
    "SyncRun",
    "SyncRunRepository",
    "TogglConnection",
    "TogglConnectionRepository",
    "TogglState",
    "UndecryptableSecret",
    "WebSession",
    "WebhookEndpoint",
    "WebhookRepository",
    "WebhookState",
    "WebhookSubscription",
    "ZoneReading",
    "count_stale_secrets",
    "create_engine",
    "current_revision",
    "disconnect_toggl",
    "head_revision",
    "new_key",
    "open_store",
    "rotate_secrets",
    "upgrade",
]
