"""A digest of each user's kept entries, so an unchanged fetch rewrites nothing.

Revision ID: 0002
Revises: 0001
Create Date: 2026-03-12

No backfill: a user without a digest has their next fetch compared with the kept rows
themselves, and gets a digest then.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "kept_entry_digests",
        sa.Column("account_id", _ID, nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_kept_entry_digests_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_kept_entry_digests")),
    )


def downgrade() -> None:
    op.drop_table("kept_entry_digests")
