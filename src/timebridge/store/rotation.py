"""Re-encrypting every stored secret with the first key (`timebridge secrets rotate`).

Every ciphertext column (marked in the models) is walked in primary-key order, a chunk per
transaction, each chunk's rows locked while they are rewritten: a token refreshed by a running
sync in the meantime is never overwritten with its older value. A crash half-way is harmless:
the old keys still decrypt what was not rewritten yet, and running it again finishes the job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, Table, bindparam, select

from timebridge.store.crypto import SecretBox
from timebridge.store.database import Database
from timebridge.store.errors import UndecryptableSecret
from timebridge.store.models import Base, encrypted_columns

#: Rows rewritten per transaction.
CHUNK_SIZE = 500


@dataclass(frozen=True)
class RotationReport:
    """How many secrets were re-encrypted, per "table.column"; never any value."""

    rotated: Mapping[str, int] = field(default_factory=dict)
    #: Secrets no configured key can decrypt (left as they are; their owners must reconnect).
    unreadable: Mapping[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rotated.values())

    @property
    def total_unreadable(self) -> int:
        return sum(self.unreadable.values())


def _key_column(table: Table) -> Column[Any]:
    keys = list(table.primary_key.columns)
    if len(keys) != 1:
        raise NotImplementedError(f"{table.name}: rotation walks single-column primary keys")
    return keys[0]


async def rotate_secrets(
    database: Database, box: SecretBox, *, chunk_size: int = CHUNK_SIZE
) -> RotationReport:
    """Re-encrypt every stored secret with the box's first key."""
    rotated: dict[str, int] = {}
    unreadable: dict[str, int] = {}
    for table_name, column_name in encrypted_columns():
        table = Base.metadata.tables[table_name]
        key, column = _key_column(table), table.c[column_name]
        label = f"{table_name}.{column_name}"
        rotated[label] = unreadable[label] = 0
        after: Any = None
        while True:
            query = select(key, column).where(column.is_not(None))
            if after is not None:
                query = query.where(key > after)
            query = query.order_by(key).limit(chunk_size).with_for_update()
            async with database.transaction() as session:
                rows = (await session.execute(query)).all()
                if not rows:
                    break
                after = rows[-1][0]
                changes: list[dict[str, Any]] = []
                for row_key, ciphertext in rows:
                    try:
                        changes.append({"b_key": row_key, "b_value": box.rotate(ciphertext)})
                    except UndecryptableSecret:
                        unreadable[label] += 1
                if changes:
                    await session.execute(
                        table.update()
                        .where(key == bindparam("b_key"))
                        .values({column_name: bindparam("b_value")}),
                        changes,
                    )
                rotated[label] += len(changes)
    return RotationReport(rotated=rotated, unreadable=unreadable)


async def count_stale_secrets(database: Database, box: SecretBox) -> int:
    """Secrets the box's first key alone cannot decrypt: zero means older keys can go."""
    stale = 0
    for table_name, column_name in encrypted_columns():
        column = Base.metadata.tables[table_name].c[column_name]
        async with database.read() as session:
            for ciphertext in await session.scalars(select(column).where(column.is_not(None))):
                if not box.is_primary(ciphertext):
                    stale += 1
    return stale
