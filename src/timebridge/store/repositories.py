"""Typed repositories: each method is one transaction and returns plain frozen records.

A method that only reads uses a read transaction (`Database.read()`), which on SQLite does not
wait for the write lock; one that may write uses `Database.transaction()`.

Records are dataclasses, not ORM objects, so nothing lazy escapes a closed session and nothing
secret rides along: a connection record says whether it has a token, and the token itself is
only handed out, decrypted and wrapped in `SecretStr`, by an explicit `token()`/`tokens()` call.
Every lookup of a connection is scoped to its owner; another owner's id is simply not found.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import SecretStr
from sqlalchemy import Table, bindparam, delete, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from timebridge.clock import Clock
from timebridge.exist.models import ExistTokens
from timebridge.origins import EXIST_ORIGIN, TOGGL_ORIGIN, exist_origin, toggl_origin
from timebridge.store._batching import Batcher
from timebridge.store._sql import lock_account, rowcount, upsert
from timebridge.store.crypto import SecretBox
from timebridge.store.database import Database
from timebridge.store.errors import (
    AccountNotFound,
    AttributeClaimed,
    AttributeStillMapped,
    ConnectionNotFound,
    ConnectionPending,
    DuplicateAccount,
    InvalidMapping,
)
from timebridge.store.ledger import delete_entries, delete_ledger
from timebridge.store.models import (
    ATTRIBUTE_LENGTH,
    AccountRow,
    AttributeClaimRow,
    Base,
    ConnectionStatus,
    ExistConnectionRow,
    Integration,
    MappingRow,
    SyncRunRow,
    TogglConnectionRow,
)

#: Longest error message a run record keeps (a status line, not a log).
RUN_ERROR_LENGTH = 2000


def _zone(name: str | None) -> str | None:
    """An IANA zone name, checked; None stays None."""
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"not a time zone: {name!r}") from None
    return name


def _secret(value: str | SecretStr) -> SecretStr:
    return value if isinstance(value, SecretStr) else SecretStr(value)


# --- accounts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """A person using Timebridge."""

    id: int
    email: str
    display_name: str | None
    #: The user's own zone override, if any.
    time_zone: str | None
    created_at: datetime
    #: The Exist user this account signs in as, once it has.
    exist_username: str | None = None

    @classmethod
    def of(cls, row: AccountRow) -> Account:
        return cls(
            row.id, row.email, row.display_name, row.time_zone, row.created_at, row.exist_username
        )


class AccountRepository:
    """Accounts: created at sign-up; deleting one deletes everything of it."""

    def __init__(self, database: Database, clock: Clock) -> None:
        self._db = database
        self._clock = clock

    async def create(
        self, email: str, *, display_name: str | None = None, time_zone: str | None = None
    ) -> Account:
        row = AccountRow(
            email=email.strip().lower(),
            display_name=display_name,
            time_zone=_zone(time_zone),
            created_at=self._clock.now(),
        )
        try:
            async with self._db.transaction() as session:
                session.add(row)
        except IntegrityError:
            raise DuplicateAccount(f"an account with email {row.email!r} exists") from None
        return Account.of(row)

    async def get(self, account_id: int) -> Account:
        async with self._db.read() as session:
            row = await session.get(AccountRow, account_id)
            if row is None:
                raise AccountNotFound(f"no account {account_id}")
            return Account.of(row)

    async def ids(self) -> list[int]:
        """Every account's id, in order."""
        async with self._db.read() as session:
            return list(await session.scalars(select(AccountRow.id).order_by(AccountRow.id)))

    async def by_exist_username(self, username: str) -> Account | None:
        """The account that signs in as this Exist user, if any."""
        async with self._db.read() as session:
            row = await session.scalar(
                select(AccountRow).where(AccountRow.exist_username == username)
            )
            return Account.of(row) if row is not None else None

    async def by_toggl_user(self, toggl_user_id: int) -> Account | None:
        """The account holding a connection to this Toggl user (the oldest, should several)."""
        async with self._db.read() as session:
            row = await session.scalar(
                select(AccountRow)
                .join(TogglConnectionRow, TogglConnectionRow.account_id == AccountRow.id)
                .where(TogglConnectionRow.toggl_user_id == toggl_user_id)
                .order_by(AccountRow.id)
                .limit(1)
            )
            return Account.of(row) if row is not None else None

    async def set_exist_username(self, account_id: int, username: str) -> None:
        """Make this Exist user the account's identity (at its first sign-in with Exist)."""
        try:
            async with self._db.transaction() as session:
                result = await session.execute(
                    update(AccountRow)
                    .where(AccountRow.id == account_id)
                    .values(exist_username=username)
                )
                if rowcount(result) == 0:
                    raise AccountNotFound(f"no account {account_id}")
        except IntegrityError:
            raise DuplicateAccount(
                f"the Exist user {username!r} signs in to another account"
            ) from None

    async def by_email(self, email: str) -> Account | None:
        async with self._db.read() as session:
            row = await session.scalar(
                select(AccountRow).where(AccountRow.email == email.strip().lower())
            )
            return Account.of(row) if row is not None else None

    async def set_time_zone(self, account_id: int, time_zone: str | None) -> None:
        """Override (or, with None, stop overriding) the zone Exist says the user lives in."""
        zone = _zone(time_zone)
        async with self._db.transaction() as session:
            result = await session.execute(
                update(AccountRow).where(AccountRow.id == account_id).values(time_zone=zone)
            )
            if rowcount(result) == 0:
                raise AccountNotFound(f"no account {account_id}")

    async def ready_to_sync(self) -> list[int]:
        """Accounts a scheduled sync should run for: an active default Toggl connection and an
        active Exist connection (a broken one waits for the user to reconnect)."""
        active = ConnectionStatus.ACTIVE.value
        query = (
            select(AccountRow.id)
            .join(
                TogglConnectionRow,
                (TogglConnectionRow.account_id == AccountRow.id)
                & TogglConnectionRow.is_default.is_(True)
                & (TogglConnectionRow.status == active),
            )
            .join(
                ExistConnectionRow,
                (ExistConnectionRow.account_id == AccountRow.id)
                & (ExistConnectionRow.status == active),
            )
            .order_by(AccountRow.id)
        )
        async with self._db.read() as session:
            return list((await session.execute(query)).scalars())

    async def delete(self, account_id: int) -> bool:
        """Delete the account and, by cascade, everything of it; False if there was none."""
        async with self._db.transaction() as session:
            result = await session.execute(delete(AccountRow).where(AccountRow.id == account_id))
            return rowcount(result) > 0


# --- Toggl connections ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TogglConnection:
    """A stored Toggl API token, as the bridge and the gateway see it (without the token)."""

    id: str
    account_id: int
    status: ConnectionStatus
    is_default: bool
    has_token: bool
    label: str | None
    toggl_user_id: int | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    #: Where the token was checked, and so the only place it is sent (`timebridge.origins`).
    origin: str = TOGGL_ORIGIN

    @classmethod
    def of(cls, row: TogglConnectionRow) -> TogglConnection:
        return cls(
            id=row.id,
            account_id=row.account_id,
            status=ConnectionStatus(row.status),
            is_default=row.is_default,
            has_token=row.token_encrypted is not None,
            label=row.label,
            toggl_user_id=row.toggl_user_id,
            failure_reason=row.failure_reason,
            created_at=row.created_at,
            updated_at=row.updated_at,
            origin=row.origin,
        )


class TogglConnectionRepository:
    """Toggl connections of an owner. Exactly one of an owner's connections is the default
    whenever they have any: the first one becomes it, and deleting it promotes the oldest
    remaining one."""

    def __init__(self, database: Database, box: SecretBox, clock: Clock) -> None:
        self._db = database
        self._box = box
        self._clock = clock

    async def create(
        self,
        owner: int,
        token: str | SecretStr | None = None,
        *,
        label: str | None = None,
        toggl_user_id: int | None = None,
        make_default: bool = False,
        origin: str = TOGGL_ORIGIN,
    ) -> TogglConnection:
        """A new connection: ACTIVE with a token, PENDING without (the user pastes it later).

        `origin`: where the token was (or will be) checked; it is only ever sent there."""
        now = self._clock.now()
        async with self._db.transaction() as session:
            await lock_account(session, owner)
            has_default = await session.scalar(
                select(
                    exists().where(
                        TogglConnectionRow.account_id == owner, TogglConnectionRow.is_default
                    )
                )
            )
            if make_default and has_default:
                await self._clear_default(session, owner)
            row = TogglConnectionRow(
                account_id=owner,
                token_encrypted=self._box.encrypt(_secret(token)) if token is not None else None,
                status=(ConnectionStatus.ACTIVE if token is not None else ConnectionStatus.PENDING),
                is_default=make_default or not has_default,
                label=label,
                toggl_user_id=toggl_user_id,
                origin=toggl_origin(origin),
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            await session.flush()
            return TogglConnection.of(row)

    async def list(
        self, owner: int, *, status: ConnectionStatus | None = None
    ) -> list[TogglConnection]:
        """The owner's connections, oldest first."""
        query = select(TogglConnectionRow).where(TogglConnectionRow.account_id == owner)
        if status is not None:
            query = query.where(TogglConnectionRow.status == status.value)
        async with self._db.read() as session:
            rows = await session.scalars(
                query.order_by(TogglConnectionRow.created_at, TogglConnectionRow.id)
            )
            return [TogglConnection.of(row) for row in rows]

    async def get(self, owner: int, connection_id: str) -> TogglConnection:
        async with self._db.read() as session:
            return TogglConnection.of(await self._row(session, owner, connection_id))

    async def default(self, owner: int) -> TogglConnection | None:
        """The connection used when none is named (the bridge's, and the gateway's fallback)."""
        async with self._db.read() as session:
            row = await session.scalar(
                select(TogglConnectionRow).where(
                    TogglConnectionRow.account_id == owner, TogglConnectionRow.is_default
                )
            )
            return TogglConnection.of(row) if row is not None else None

    async def set_default(self, owner: int, connection_id: str) -> TogglConnection:
        async with self._db.transaction() as session:
            await lock_account(session, owner)
            row = await self._row(session, owner, connection_id)
            if not row.is_default:
                await self._clear_default(session, owner)
                row.is_default = True
                row.updated_at = self._clock.now()
            return TogglConnection.of(row)

    async def token(self, owner: int, connection_id: str) -> SecretStr:
        """The decrypted token; `ConnectionPending` if none was given yet."""
        async with self._db.read() as session:
            row = await self._row(session, owner, connection_id)
            ciphertext = row.token_encrypted
        if ciphertext is None:
            raise ConnectionPending(f"connection {connection_id} has no token yet")
        return self._box.decrypt(ciphertext)

    async def set_token(
        self,
        owner: int,
        connection_id: str,
        token: str | SecretStr,
        *,
        toggl_user_id: int | None = None,
        label: str | None = None,
        origin: str | None = None,
    ) -> TogglConnection:
        """Give a pending (or failed) connection its token; it becomes ACTIVE. `origin`: where
        this token was checked, if not where the connection's was."""
        async with self._db.transaction() as session:
            row = await self._row(session, owner, connection_id)
            row.token_encrypted = self._box.encrypt(_secret(token))
            if origin is not None:
                row.origin = toggl_origin(origin)
            row.status = ConnectionStatus.ACTIVE.value
            row.failure_reason = None
            if toggl_user_id is not None:
                row.toggl_user_id = toggl_user_id
            if label is not None:
                row.label = label
            row.updated_at = self._clock.now()
            return TogglConnection.of(row)

    async def mark_failed(self, owner: int, connection_id: str, reason: str) -> TogglConnection:
        """Toggl refused the token: keep it (the user may fix it in Toggl) but stop using it."""
        async with self._db.transaction() as session:
            row = await self._row(session, owner, connection_id)
            row.status = ConnectionStatus.FAILED.value
            row.failure_reason = reason[:500]
            row.updated_at = self._clock.now()
            return TogglConnection.of(row)

    async def delete(self, owner: int, connection_id: str) -> None:
        async with self._db.transaction() as session:
            await lock_account(session, owner)
            row = await self._row(session, owner, connection_id)
            was_default = row.is_default
            await session.delete(row)
            await session.flush()
            if was_default:
                await self._promote_oldest(session, owner)

    async def _row(
        self, session: AsyncSession, owner: int, connection_id: str
    ) -> TogglConnectionRow:
        row = await session.scalar(
            select(TogglConnectionRow).where(
                TogglConnectionRow.id == connection_id, TogglConnectionRow.account_id == owner
            )
        )
        if row is None:
            raise ConnectionNotFound(f"no Toggl connection {connection_id}")
        return row

    async def _clear_default(self, session: AsyncSession, owner: int) -> None:
        # Executed at once, so it reaches the database before the new default is flushed: the
        # partial unique index allows one default per owner at every moment.
        await session.execute(
            update(TogglConnectionRow)
            .where(TogglConnectionRow.account_id == owner, TogglConnectionRow.is_default)
            .values(is_default=False)
        )

    async def _promote_oldest(self, session: AsyncSession, owner: int) -> None:
        heir = await session.scalar(
            select(TogglConnectionRow)
            .where(TogglConnectionRow.account_id == owner)
            .order_by(
                # Active ones first, then the oldest.
                (TogglConnectionRow.status != ConnectionStatus.ACTIVE.value),
                TogglConnectionRow.created_at,
                TogglConnectionRow.id,
            )
            .limit(1)
        )
        if heir is not None:
            heir.is_default = True
            heir.updated_at = self._clock.now()


# --- Exist connections ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExistConnection:
    """A user's Exist grant, as the service sees it (without the tokens)."""

    account_id: int
    status: ConnectionStatus
    expires_at: datetime | None
    scopes: str
    has_refresh_token: bool
    #: The zone Exist uses for the user's days, and when it was read.
    time_zone: str | None
    time_zone_checked_at: datetime | None
    created_at: datetime
    updated_at: datetime
    #: Where the tokens were granted, and so the only place they are sent.
    origin: str = EXIST_ORIGIN

    @classmethod
    def of(cls, row: ExistConnectionRow) -> ExistConnection:
        return cls(
            account_id=row.account_id,
            status=ConnectionStatus(row.status),
            expires_at=row.expires_at,
            scopes=row.scopes,
            has_refresh_token=row.refresh_token_encrypted is not None,
            time_zone=row.time_zone,
            time_zone_checked_at=row.time_zone_checked_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
            origin=row.origin,
        )


@dataclass(frozen=True)
class ZoneReading:
    """The zone read from the user's Exist profile, and when it was read."""

    time_zone: str
    checked_at: datetime


class ExistConnectionRepository:
    """One Exist connection per account. Exist rotates both tokens on refresh and invalidates
    the old pair, so a refreshed pair is saved with one statement: never half of each."""

    def __init__(self, database: Database, box: SecretBox, clock: Clock) -> None:
        self._db = database
        self._box = box
        self._clock = clock

    async def save(
        self,
        account_id: int,
        tokens: ExistTokens,
        *,
        time_zone: str | None = None,
        origin: str = EXIST_ORIGIN,
    ) -> ExistConnection:
        """Connect (or reconnect) Exist: store the grant and mark the connection ACTIVE.

        `origin`: where the grant was made; the tokens are only ever sent there."""
        now = self._clock.now()
        async with self._db.transaction() as session:
            await lock_account(session, account_id)
            row = await session.get(ExistConnectionRow, account_id)
            if row is None:
                row = ExistConnectionRow(account_id=account_id, created_at=now)
                session.add(row)
            self._put_tokens(row, tokens)
            row.origin = exist_origin(origin)
            row.status = ConnectionStatus.ACTIVE.value
            if time_zone is not None:
                row.time_zone = _zone(time_zone)
                row.time_zone_checked_at = now
            row.updated_at = now
            await session.flush()
            return ExistConnection.of(row)

    async def get(self, account_id: int) -> ExistConnection | None:
        async with self._db.read() as session:
            row = await session.get(ExistConnectionRow, account_id)
            return ExistConnection.of(row) if row is not None else None

    async def tokens(self, account_id: int) -> ExistTokens:
        """The decrypted grant, ready for `ExistClient`."""
        async with self._db.read() as session:
            row = await self._row(session, account_id)
            access, refresh = row.access_token_encrypted, row.refresh_token_encrypted
            expires_at, scopes = row.expires_at, row.scopes
        return ExistTokens(
            access_token=self._box.decrypt(access),
            refresh_token=self._box.decrypt(refresh) if refresh is not None else None,
            expires_at=expires_at,
            scope=scopes,
        )

    async def rotate(self, account_id: int, tokens: ExistTokens) -> None:
        """Replace the stored pair with a refreshed one, atomically (one UPDATE)."""
        refresh = tokens.refresh_token
        values = {
            "access_token_encrypted": self._box.encrypt(tokens.access_token),
            "refresh_token_encrypted": self._box.encrypt(refresh) if refresh is not None else None,
            "expires_at": tokens.expires_at,
            "scopes": tokens.scope,
            "status": ConnectionStatus.ACTIVE.value,
            "updated_at": self._clock.now(),
        }
        async with self._db.transaction() as session:
            result = await session.execute(
                update(ExistConnectionRow)
                .where(ExistConnectionRow.account_id == account_id)
                .values(**values)
            )
            if rowcount(result) == 0:
                raise ConnectionNotFound(f"no Exist connection for account {account_id}")

    async def set_time_zone(self, account_id: int, time_zone: str, checked_at: datetime) -> None:
        """Remember the zone read from Exist's profile (read again after a day)."""
        async with self._db.transaction() as session:
            row = await self._row(session, account_id)
            row.time_zone = _zone(time_zone)
            row.time_zone_checked_at = checked_at

    async def mark_broken(self, account_id: int) -> None:
        """Exist refused the token even after a refresh: stop syncing until reconnected."""
        async with self._db.transaction() as session:
            row = await self._row(session, account_id)
            row.status = ConnectionStatus.FAILED.value
            row.updated_at = self._clock.now()

    async def delete(self, account_id: int) -> bool:
        async with self._db.transaction() as session:
            result = await session.execute(
                delete(ExistConnectionRow).where(ExistConnectionRow.account_id == account_id)
            )
            return rowcount(result) > 0

    def _put_tokens(self, row: ExistConnectionRow, tokens: ExistTokens) -> None:
        row.access_token_encrypted = self._box.encrypt(tokens.access_token)
        refresh = tokens.refresh_token
        row.refresh_token_encrypted = self._box.encrypt(refresh) if refresh is not None else None
        row.expires_at = tokens.expires_at
        row.scopes = tokens.scope

    async def _row(self, session: AsyncSession, account_id: int) -> ExistConnectionRow:
        row = await session.get(ExistConnectionRow, account_id)
        if row is None:
            raise ConnectionNotFound(f"no Exist connection for account {account_id}")
        return row


# --- attribute claims -----------------------------------------------------------------------------


async def _claim(
    session: AsyncSession, clock: Clock, account_id: int, attribute: str, integration: str
) -> None:
    """Claim `attribute` for `integration` inside the caller's transaction (account locked)."""
    holder = await session.scalar(
        select(AttributeClaimRow.integration).where(
            AttributeClaimRow.account_id == account_id, AttributeClaimRow.attribute == attribute
        )
    )
    if holder == integration:
        return
    if holder is not None:
        raise AttributeClaimed(attribute, holder)
    session.add(
        AttributeClaimRow(
            account_id=account_id,
            attribute=attribute,
            integration=integration,
            created_at=clock.now(),
        )
    )
    await session.flush()


def _attribute(name: str) -> str:
    stripped = name.strip()
    if not stripped:
        raise InvalidMapping("an attribute name cannot be blank")
    if len(stripped) > ATTRIBUTE_LENGTH:
        raise InvalidMapping(f"an attribute name has at most {ATTRIBUTE_LENGTH} characters")
    return stripped


class ClaimRepository:
    """Which integration feeds which of a user's Exist attributes (one each, by the database).

    A Toggl claim is made by saving a mapping and outlives it: the attribute still holds Toggl's
    minutes until the runner has brought them to zero and released it, and only then is the
    claim released, so no other integration writes into it meanwhile.
    """

    def __init__(self, database: Database, clock: Clock) -> None:
        self._db = database
        self._clock = clock

    async def claim(self, account_id: int, attribute: str, integration: Integration | str) -> None:
        """Claim the attribute for the integration (idempotent); `AttributeClaimed` if another
        integration of the user holds it."""
        name = _attribute(attribute)
        try:
            async with self._db.transaction() as session:
                await lock_account(session, account_id)
                await _claim(session, self._clock, account_id, name, str(integration))
        except IntegrityError:
            # Only a writer that bypassed the account lock can get here; the database refused.
            raise AttributeClaimed(name, await self._holder(account_id, name)) from None

    async def release(
        self, account_id: int, attribute: str, integration: Integration | str
    ) -> bool:
        """Give the attribute up; False if the integration did not hold it.

        `AttributeStillMapped` while a Toggl project is still mapped to it.
        """
        try:
            async with self._db.transaction() as session:
                result = await session.execute(
                    delete(AttributeClaimRow).where(
                        AttributeClaimRow.account_id == account_id,
                        AttributeClaimRow.attribute == attribute,
                        AttributeClaimRow.integration == str(integration),
                    )
                )
                return rowcount(result) > 0
        except IntegrityError:
            raise AttributeStillMapped(
                f"{attribute!r} is still mapped to a Toggl project; unmap it first"
            ) from None

    async def holders(self, account_id: int) -> dict[str, str]:
        """attribute -> the integration holding it, for the user."""
        async with self._db.read() as session:
            rows = await session.execute(
                select(AttributeClaimRow.attribute, AttributeClaimRow.integration).where(
                    AttributeClaimRow.account_id == account_id
                )
            )
            return {row.attribute: row.integration for row in rows}

    async def retiring_toggl(self, account_id: int) -> set[str]:
        """Attributes Toggl still holds but no project maps to: to zero, release, then forget."""
        async with self._db.read() as session:
            rows = await session.scalars(
                select(AttributeClaimRow.attribute).where(
                    AttributeClaimRow.account_id == account_id,
                    AttributeClaimRow.integration == Integration.TOGGL.value,
                    ~exists().where(
                        MappingRow.account_id == AttributeClaimRow.account_id,
                        MappingRow.attribute == AttributeClaimRow.attribute,
                    ),
                )
            )
            return set(rows)

    async def _holder(self, account_id: int, attribute: str) -> str:
        holders = await self.holders(account_id)
        return holders.get(attribute, "other")


# --- mappings -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectMapping:
    """One Toggl project mapped to one Exist attribute."""

    workspace_id: int
    project_id: int
    #: The project's name when last seen (Toggl may have renamed it since).
    project_name: str
    attribute: str

    @classmethod
    def of(cls, row: MappingRow) -> ProjectMapping:
        return cls(row.workspace_id, row.project_id, row.project_name, row.attribute)


class MappingRepository:
    """Each user's Toggl project -> Exist attribute mapping.

    Saving a mapping claims its attribute for Toggl in the same transaction, and is refused with
    `AttributeClaimed` when another integration of the user holds the attribute: the store
    refuses it, not just the page (DESIGN.md, "Ownership").
    """

    def __init__(self, database: Database, clock: Clock) -> None:
        self._db = database
        self._clock = clock

    async def save(self, account_id: int, mapping: ProjectMapping) -> ProjectMapping:
        """Map one project (replacing what it mapped to before)."""
        await self._write(account_id, [mapping], replace_all=False)
        return mapping

    async def replace(self, account_id: int, mappings: Sequence[ProjectMapping]) -> None:
        """Make these the user's whole mapping, atomically: all of it is saved or none."""
        await self._write(account_id, mappings, replace_all=True)

    async def remove(self, account_id: int, project_id: int) -> bool:
        """Unmap a project; its attribute's claim stays until the runner releases it."""
        async with self._db.transaction() as session:
            result = await session.execute(
                delete(MappingRow).where(
                    MappingRow.account_id == account_id, MappingRow.project_id == project_id
                )
            )
            return rowcount(result) > 0

    async def for_account(self, account_id: int) -> list[ProjectMapping]:
        async with self._db.read() as session:
            rows = await session.scalars(
                select(MappingRow)
                .where(MappingRow.account_id == account_id)
                .order_by(MappingRow.workspace_id, MappingRow.project_id)
            )
            return [ProjectMapping.of(row) for row in rows]

    async def project_map(self, account_id: int) -> dict[int, str]:
        """project id -> attribute: what the runner's `UserSyncSettings.mapping` wants."""
        return {m.project_id: m.attribute for m in await self.for_account(account_id)}

    async def rename(self, account_id: int, names: Mapping[int, str]) -> None:
        """Remember projects' current names (from the last projects listing)."""
        if not names:
            return
        async with self._db.transaction() as session:
            for project_id, name in names.items():
                await session.execute(
                    update(MappingRow)
                    .where(MappingRow.account_id == account_id, MappingRow.project_id == project_id)
                    .values(project_name=name[:255])
                )

    async def _write(
        self, account_id: int, mappings: Sequence[ProjectMapping], *, replace_all: bool
    ) -> None:
        by_project: dict[int, ProjectMapping] = {}
        for mapping in mappings:
            cleaned = ProjectMapping(
                mapping.workspace_id,
                mapping.project_id,
                mapping.project_name[:255],
                _attribute(mapping.attribute),
            )
            earlier = by_project.get(mapping.project_id)
            if earlier is not None and earlier.attribute != cleaned.attribute:
                raise InvalidMapping(
                    f"project {mapping.project_id} cannot map to both {earlier.attribute!r} "
                    f"and {cleaned.attribute!r}"
                )
            by_project[mapping.project_id] = cleaned
        now = self._clock.now()
        async with self._db.transaction() as session:
            await lock_account(session, account_id)
            for attribute in sorted({m.attribute for m in by_project.values()}):
                await _claim(session, self._clock, account_id, attribute, Integration.TOGGL.value)
            if replace_all:
                stale = delete(MappingRow).where(MappingRow.account_id == account_id)
                if by_project:
                    stale = stale.where(MappingRow.project_id.not_in(list(by_project)))
                await session.execute(stale)
            if not by_project:
                return
            rows = [
                {
                    "account_id": account_id,
                    "workspace_id": m.workspace_id,
                    "project_id": m.project_id,
                    "project_name": m.project_name,
                    "attribute": m.attribute,
                    "integration": Integration.TOGGL.value,
                    "updated_at": now,
                }
                for m in by_project.values()
            ]
            statement = upsert(
                session,
                Base.metadata.tables[MappingRow.__tablename__],
                ["account_id", "project_id"],
                ["workspace_id", "project_name", "attribute", "updated_at"],
            )
            await session.execute(statement, rows)


# --- sync runs ------------------------------------------------------------------------------------


class RunSummary(Protocol):
    """What the store keeps of a run; `timebridge.sync.runner.RunReport` is one."""

    @property
    def user_id(self) -> int: ...
    @property
    def kind(self) -> str: ...
    @property
    def outcome(self) -> str: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def finished_at(self) -> datetime: ...
    @property
    def duration(self) -> timedelta: ...
    @property
    def toggl_requests(self) -> int: ...
    @property
    def exist_requests(self) -> int: ...
    @property
    def values_written(self) -> int: ...
    @property
    def error(self) -> str | None: ...
    @property
    def next_sync_after(self) -> datetime | None: ...


@dataclass(frozen=True)
class SyncRun:
    """One recorded run, for the status page."""

    id: int
    account_id: int
    kind: str
    outcome: str
    started_at: datetime
    finished_at: datetime
    duration: timedelta
    toggl_requests: int
    exist_requests: int
    values_written: int
    error: str | None
    next_sync_after: datetime | None

    @classmethod
    def of(cls, row: SyncRunRow) -> SyncRun:
        return cls(
            id=row.id,
            account_id=row.account_id,
            kind=row.kind,
            outcome=row.outcome,
            started_at=row.started_at,
            finished_at=row.finished_at,
            duration=timedelta(milliseconds=row.duration_ms),
            toggl_requests=row.toggl_requests,
            exist_requests=row.exist_requests,
            values_written=row.values_written,
            error=row.error,
            next_sync_after=row.next_sync_after,
        )


_SYNC_RUNS: Table = Base.metadata.tables[SyncRunRow.__tablename__]
_EXIST_CONNECTIONS: Table = Base.metadata.tables[ExistConnectionRow.__tablename__]
#: Built once: the compiled-statement cache then serves every run's SQL.
_INSERT_RUN = _SYNC_RUNS.insert()
#: Several runs at once, their ids in the order given (SQLAlchemy's "insertmanyvalues").
_INSERT_RUNS = _SYNC_RUNS.insert().returning(_SYNC_RUNS.c.id, sort_by_parameter_order=True)
_RECORD_ZONE = (
    _EXIST_CONNECTIONS.update()
    .where(_EXIST_CONNECTIONS.c.account_id == bindparam("b_account_id"))
    .values(
        time_zone=bindparam("time_zone"), time_zone_checked_at=bindparam("time_zone_checked_at")
    )
)


@dataclass(frozen=True)
class _PendingRun:
    """A run record on its way to the database: its row, and its zone update if any."""

    values: dict[str, Any]
    zone: dict[str, Any] | None


class SyncRunRepository:
    """Every run is recorded (start, end, outcome, requests, values written, error)."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self._records: Batcher[_PendingRun, int] = Batcher(self._write)

    async def record(self, report: RunSummary, *, exist_zone: ZoneReading | None = None) -> SyncRun:
        """Record the run and, in the same transaction, the zone it read from Exist (kept on
        the Exist connection, if the user still has one).

        Runs recorded at the same time share one transaction (`Batcher`); a run of an account
        that no longer exists fails alone, with `AccountNotFound`.
        """
        kind, outcome = str(report.kind), str(report.outcome)
        duration_ms = round(report.duration.total_seconds() * 1000)
        error = report.error[:RUN_ERROR_LENGTH] if report.error is not None else None
        values = {
            "account_id": report.user_id,
            "kind": kind,
            "outcome": outcome,
            "started_at": report.started_at,
            "finished_at": report.finished_at,
            "duration_ms": duration_ms,
            "toggl_requests": report.toggl_requests,
            "exist_requests": report.exist_requests,
            "values_written": report.values_written,
            "error": error,
            "next_sync_after": report.next_sync_after,
        }
        zone = None
        if exist_zone is not None:
            zone = {
                "b_account_id": report.user_id,
                "time_zone": _zone(exist_zone.time_zone),
                "time_zone_checked_at": exist_zone.checked_at,
            }
        run_id = await self._records.submit(_PendingRun(values, zone))
        return SyncRun(
            id=run_id,
            account_id=report.user_id,
            kind=kind,
            outcome=outcome,
            started_at=report.started_at,
            finished_at=report.finished_at,
            duration=timedelta(milliseconds=duration_ms),
            toggl_requests=report.toggl_requests,
            exist_requests=report.exist_requests,
            values_written=report.values_written,
            error=error,
            next_sync_after=report.next_sync_after,
        )

    async def wait_idle(self) -> None:
        """Return once every record submitted so far is written (or has failed)."""
        await self._records.wait_idle()

    async def _write(self, runs: list[_PendingRun]) -> list[int | BaseException]:
        try:
            return await self._insert(runs)
        except IntegrityError:
            if len(runs) == 1:
                return [AccountNotFound(f"no account {runs[0].values['account_id']}")]
        # An account in the batch is gone: each run on its own, so only its own fails.
        return [(await self._write([run]))[0] for run in runs]

    async def _insert(self, runs: list[_PendingRun]) -> list[int | BaseException]:
        zones = [run.zone for run in runs if run.zone is not None]
        async with self._db.write_connection() as connection:
            if zones:
                await connection.execute(_RECORD_ZONE, zones)
            if len(runs) == 1:
                key = (await connection.execute(_INSERT_RUN, runs[0].values)).inserted_primary_key
                assert key is not None
                return [int(key[0])]
            rows = await connection.execute(_INSERT_RUNS, [run.values for run in runs])
            return [int(run_id) for run_id in rows.scalars()]

    async def recent(self, account_id: int, limit: int = 20) -> list[SyncRun]:
        """The user's last runs, newest first."""
        async with self._db.read() as session:
            rows = await session.scalars(
                select(SyncRunRow)
                .where(SyncRunRow.account_id == account_id)
                .order_by(SyncRunRow.started_at.desc(), SyncRunRow.id.desc())
                .limit(limit)
            )
            return [SyncRun.of(row) for row in rows]

    async def count(self, account_id: int) -> int:
        async with self._db.read() as session:
            total = await session.scalar(
                select(func.count())
                .select_from(SyncRunRow)
                .where(SyncRunRow.account_id == account_id)
            )
            return total or 0

    async def purge(self, before: datetime) -> int:
        """Delete run records that started before `before`; returns how many."""
        async with self._db.transaction() as session:
            return rowcount(
                await session.execute(delete(SyncRunRow).where(SyncRunRow.started_at < before))
            )


# --- disconnect -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DisconnectReport:
    """What disconnecting Toggl deleted; `attributes` are the ones to release in Exist."""

    connections: int
    mappings: int
    ledger_rows: int
    entries: int
    attributes: frozenset[str]


async def disconnect_toggl(database: Database, account_id: int) -> DisconnectReport:
    """Delete everything of the user's Toggl integration, in one transaction: their Toggl
    connections (tokens), mappings, ledger, kept entries and Toggl attribute claims.

    Run records stay (they hold no Toggl data, and tell the user what happened); other
    integrations' claims and other users' rows are untouched. Releasing the attributes in Exist
    is the caller's job, with the names returned here.
    """
    async with database.transaction() as session:
        await lock_account(session, account_id)
        attributes = frozenset(
            await session.scalars(
                select(AttributeClaimRow.attribute).where(
                    AttributeClaimRow.account_id == account_id,
                    AttributeClaimRow.integration == Integration.TOGGL.value,
                )
            )
        )
        mappings = rowcount(
            await session.execute(delete(MappingRow).where(MappingRow.account_id == account_id))
        )
        await session.execute(
            delete(AttributeClaimRow).where(
                AttributeClaimRow.account_id == account_id,
                AttributeClaimRow.integration == Integration.TOGGL.value,
            )
        )
        ledger_rows = await delete_ledger(session, account_id)
        entries = await delete_entries(session, account_id)
        connections = rowcount(
            await session.execute(
                delete(TogglConnectionRow).where(TogglConnectionRow.account_id == account_id)
            )
        )
    return DisconnectReport(
        connections=connections,
        mappings=mappings,
        ledger_rows=ledger_rows,
        entries=entries,
        attributes=attributes,
    )


__all__ = [
    "Account",
    "AccountRepository",
    "ClaimRepository",
    "DisconnectReport",
    "ExistConnection",
    "ExistConnectionRepository",
    "MappingRepository",
    "ProjectMapping",
    "RunSummary",
    "SyncRun",
    "SyncRunRepository",
    "TogglConnection",
    "TogglConnectionRepository",
    "ZoneReading",
    "disconnect_toggl",
]
