"""Each user's kept entries as one snapshot row with the range it covers and when it was fetched.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

Replaces `kept_entries` (a row per entry) and `kept_entry_digests`. Kept entries are a copy of
what Toggl holds, so they are not carried over: a user without a snapshot has their next run
fetch the whole window, as a new user's first run does. The downgrade likewise brings the old
tables back empty.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_INSTANT = sa.DateTime(timezone=True)


def _account_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["account_id"],
        ["accounts.id"],
        name=op.f(f"fk_{table}_account_id_accounts"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "entry_snapshots",
        sa.Column("account_id", _ID, nullable=False),
        sa.Column("covered_from", _INSTANT, nullable=False),
        sa.Column("covered_to", _INSTANT, nullable=False),
        sa.Column("fetched_at", _INSTANT, nullable=False),
        sa.Column("entries", sa.Text(), nullable=False),
        _account_fk("entry_snapshots"),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_entry_snapshots")),
    )
    op.create_index(op.f("ix_entry_snapshots_covered_to"), "entry_snapshots", ["covered_to"])
    op.drop_table("kept_entry_digests")
    op.drop_index(op.f("ix_kept_entries_start"), table_name="kept_entries")
    op.drop_table("kept_entries")


def downgrade() -> None:
    op.create_table(
        "kept_entries",
        sa.Column("account_id", _ID, nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("project_id", sa.BigInteger(), nullable=True),
        sa.Column("start", _INSTANT, nullable=False),
        sa.Column("stop", _INSTANT, nullable=True),
        sa.Column("updated_at", _INSTANT, nullable=True),
        _account_fk("kept_entries"),
        sa.PrimaryKeyConstraint("account_id", "entry_id", name=op.f("pk_kept_entries")),
    )
    op.create_index(op.f("ix_kept_entries_start"), "kept_entries", ["start"])
    op.create_table(
        "kept_entry_digests",
        sa.Column("account_id", _ID, nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        _account_fk("kept_entry_digests"),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_kept_entry_digests")),
    )
    op.drop_index(op.f("ix_entry_snapshots_covered_to"), table_name="entry_snapshots")
    op.drop_table("entry_snapshots")
