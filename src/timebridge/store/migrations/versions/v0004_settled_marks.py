"""The settled mark beside each entry snapshot: when a run may skip planning.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

Three nullable columns on `entry_snapshots` (`timebridge.sync.settled`): the digest of the
inputs of a run that found nothing to do, when that was, and until when it holds. Existing rows
get none, so each user's next run plans as before and leaves a mark.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INSTANT = sa.DateTime(timezone=True)
_COLUMNS = ("settled_digest", "settled_at", "settled_until")


def upgrade() -> None:
    with op.batch_alter_table("entry_snapshots") as table:
        table.add_column(sa.Column("settled_digest", sa.String(length=32), nullable=True))
        table.add_column(sa.Column("settled_at", _INSTANT, nullable=True))
        table.add_column(sa.Column("settled_until", _INSTANT, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("entry_snapshots") as table:
        for column in _COLUMNS:
            table.drop_column(column)
