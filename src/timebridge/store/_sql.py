"""Small SQL helpers shared by the repositories: dialect-aware upserts and row locks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert

from timebridge.store.errors import AccountNotFound
from timebridge.store.models import AccountRow


def upsert(
    session: AsyncSession, table: Table, keys: Sequence[str], update: Sequence[str]
) -> Insert:
    """INSERT … ON CONFLICT (keys) DO UPDATE SET update = excluded.update, for either database.

    Executed with a list of rows it is one executemany, all inside the caller's transaction.
    """
    if session.get_bind().dialect.name == "postgresql":
        pg = postgresql.insert(table)
        return pg.on_conflict_do_update(
            index_elements=list(keys), set_={name: pg.excluded[name] for name in update}
        )
    lite = sqlite.insert(table)
    return lite.on_conflict_do_update(
        index_elements=list(keys), set_={name: lite.excluded[name] for name in update}
    )


def rowcount(result: Result[Any]) -> int:
    """Rows a DML statement touched."""
    assert isinstance(result, CursorResult)
    return max(result.rowcount, 0)


async def lock_account(session: AsyncSession, account_id: int) -> None:
    """Take the account's row lock for the rest of the transaction, or raise AccountNotFound.

    Changes that must see each other (a claim against a mapping, two connections both wanting to
    be the default) lock the owner's account row first, so they run one after the other. On
    SQLite every write transaction already holds the database lock (BEGIN IMMEDIATE), so FOR
    UPDATE is left out there.
    """
    # FOR NO KEY UPDATE: lockers queue behind each other, while inserts that merely reference
    # the account (ledger rows, run records: their foreign key check) are not held up.
    found = await session.scalar(
        select(AccountRow.id).where(AccountRow.id == account_id).with_for_update(key_share=True)
    )
    if found is None:
        raise AccountNotFound(f"no account {account_id}")
