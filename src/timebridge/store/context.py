"""`SyncContext`: what the store holds for one account's sync run, loaded in one read.

The `Bridge` turns it into a run (clients from its origins and secrets, the engine's settings).
`load_sync_contexts` reads each account's zone
override, its default Toggl connection, its Exist connection, its project mapping and, when a
run will happen, its ledger and entry snapshot in one read transaction, so they are also one
consistent snapshot. It reads many accounts at once, four statements for all of them:
`Store.sync_context` gathers the runs that start together into one such read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from pydantic import SecretStr
from sqlalchemy import BindParameter, bindparam, select

from timebridge.entries import EntrySnapshot
from timebridge.exist.models import ExistTokens
from timebridge.origins import EXIST_ORIGIN, TOGGL_ORIGIN
from timebridge.records import AttributeDate, LoadedState, Settled
from timebridge.store.crypto import SecretBox
from timebridge.store.database import Database
from timebridge.store.ledger import read_ledgers, read_snapshots
from timebridge.store.models import (
    AccountRow,
    ConnectionStatus,
    ExistConnectionRow,
    MappingRow,
    TogglConnectionRow,
)


@dataclass(frozen=True)
class TogglState:
    """The user's default Toggl connection, as a run sees it (without the token)."""

    connection_id: str
    status: ConnectionStatus
    #: Where the token is sent (`timebridge.origins`).
    origin: str = TOGGL_ORIGIN


@dataclass(frozen=True)
class ExistState:
    """The user's Exist connection, as a run sees it (without the tokens)."""

    status: ConnectionStatus
    #: The zone Exist uses for the user's days, and when it was read.
    time_zone: str | None
    time_zone_checked_at: datetime | None
    #: Where the tokens are sent (`timebridge.origins`).
    origin: str = EXIST_ORIGIN


@dataclass(frozen=True)
class RunSecrets:
    """The decrypted credentials of one run; never in a repr."""

    toggl_token: SecretStr = field(repr=False)
    exist_tokens: ExistTokens = field(repr=False)


@dataclass(frozen=True)
class SyncContext:
    """What one sync run of a user needs, as one snapshot.

    `secrets` (and `mapping`) are loaded only when a run will happen: the default Toggl
    connection and the Exist connection both ACTIVE, and a Toggl token given. A skipped user
    costs no decryption, and the secret of a connection that is not used cannot fail the skip.
    """

    account_id: int
    #: The user's own zone override, if any.
    zone_override: str | None = None
    #: None when the user has no Toggl connection (or no account).
    toggl: TogglState | None = None
    #: None when the user never connected Exist.
    exist: ExistState | None = None
    secrets: RunSecrets | None = None
    #: Toggl project id -> Exist attribute.
    mapping: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))
    #: The ledger and entry snapshot as the run starts (loaded with `secrets`), for
    #: `SyncRunner(loaded=…)`, so the run does not read them again.
    state: LoadedState | None = None


#: Built once: the compiled-statement cache then serves every run's SQL. Each reads many
#: accounts at once (`load_sync_contexts`).
_ACCOUNT_IDS: BindParameter[int] = bindparam("account_ids", expanding=True)
_CONTEXT_QUERY = (
    select(
        AccountRow.id,
        AccountRow.time_zone,
        TogglConnectionRow.id,
        TogglConnectionRow.status,
        TogglConnectionRow.token_encrypted,
        ExistConnectionRow.status,
        ExistConnectionRow.access_token_encrypted,
        ExistConnectionRow.refresh_token_encrypted,
        ExistConnectionRow.expires_at,
        ExistConnectionRow.scopes,
        ExistConnectionRow.time_zone,
        ExistConnectionRow.time_zone_checked_at,
        TogglConnectionRow.origin,
        ExistConnectionRow.origin,
    )
    .outerjoin(
        TogglConnectionRow,
        (TogglConnectionRow.account_id == AccountRow.id) & TogglConnectionRow.is_default,
    )
    .outerjoin(ExistConnectionRow, ExistConnectionRow.account_id == AccountRow.id)
    .where(AccountRow.id.in_(_ACCOUNT_IDS))
)
_MAPPING_QUERY = select(MappingRow.account_id, MappingRow.project_id, MappingRow.attribute).where(
    MappingRow.account_id.in_(_ACCOUNT_IDS)
)
_ACTIVE = ConnectionStatus.ACTIVE.value


async def load_sync_contexts(
    database: Database, box: SecretBox, account_ids: Sequence[int]
) -> list[SyncContext | BaseException]:
    """The `SyncContext` of each account, in order, all read in one transaction (Core: a run's
    hot path). An account whose secrets cannot be decrypted gets the error instead, alone."""
    params = {"account_ids": sorted(set(account_ids))}
    async with database.read_connection() as connection:
        rows = {row[0]: row[1:] for row in await connection.execute(_CONTEXT_QUERY, params)}
        # Set only when a run will happen, and then it has a token to decrypt.
        running = sorted(
            account
            for account, (_, _, toggl_status, token, exist_status, *_) in rows.items()
            if token is not None and toggl_status == exist_status == _ACTIVE
        )
        mappings: dict[int, dict[int, str]] = {account: {} for account in running}
        ledgers: dict[int, dict[AttributeDate, int]] = {}
        snapshots: dict[int, tuple[EntrySnapshot, Settled | None]] = {}
        if running:
            params = {"account_ids": running}
            for account, project, attribute in await connection.execute(_MAPPING_QUERY, params):
                mappings[account][project] = attribute
            ledgers = await read_ledgers(connection, running)
            snapshots = await read_snapshots(connection, running)
    contexts: list[SyncContext | BaseException] = []
    for account in account_ids:
        row = rows.get(account)
        try:
            if row is None:
                contexts.append(SyncContext(account))
            elif account not in mappings:
                contexts.append(_context(account, row, box))
            else:
                snapshot, settled = snapshots.get(account, (None, None))
                # Each its own ledger: a run changes the one it is given.
                state = LoadedState(dict(ledgers.get(account, {})), snapshot, settled)
                contexts.append(_context(account, row, box, mappings[account], state))
        except Exception as exc:
            contexts.append(exc)
    return contexts


def _context(
    account_id: int,
    row: Sequence[Any],
    box: SecretBox,
    mapping: dict[int, str] | None = None,
    state: LoadedState | None = None,
) -> SyncContext:
    """The context of one account's row; `mapping` and `state` given when a run will happen."""
    (
        zone_override,
        toggl_id,
        toggl_status,
        toggl_ciphertext,
        exist_status,
        access_ciphertext,
        refresh_ciphertext,
        expires_at,
        scopes,
        exist_zone,
        exist_zone_checked_at,
        toggl_origin,
        exist_origin,
    ) = row
    secrets = None
    if mapping is not None:
        secrets = RunSecrets(
            toggl_token=box.decrypt(toggl_ciphertext),
            exist_tokens=ExistTokens(
                access_token=box.decrypt(access_ciphertext),
                refresh_token=(
                    box.decrypt(refresh_ciphertext) if refresh_ciphertext is not None else None
                ),
                expires_at=expires_at,
                scope=scopes,
            ),
        )
    return SyncContext(
        account_id,
        zone_override=zone_override,
        toggl=(
            TogglState(toggl_id, ConnectionStatus(toggl_status), toggl_origin)
            if toggl_id is not None
            else None
        ),
        exist=(
            ExistState(
                ConnectionStatus(exist_status), exist_zone, exist_zone_checked_at, exist_origin
            )
            if exist_status is not None
            else None
        ),
        secrets=secrets,
        mapping=MappingProxyType(mapping or {}),
        state=state,
    )
