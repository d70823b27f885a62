"""The gateway's limits, shared by every `serve` process of one PostgreSQL database.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

`gateway_quotas` keeps the Toggl quotas the gateway saw spent until they reset (a process
started later learns them); `gateway_rate_buckets` is each key's shared token bucket, leased
from in small batches. Both are used on PostgreSQL only (on SQLite the limits stay in memory).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INSTANT = sa.DateTime(timezone=True)
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "gateway_quotas",
        sa.Column("account_id", _ID, nullable=False),
        sa.Column("spender", sa.String(length=340), nullable=False),
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("resets_at", _INSTANT, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name="fk_gateway_quotas_account_id_accounts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "spender", "scope", name="pk_gateway_quotas"),
    )
    op.create_index("ix_gateway_quotas_resets_at", "gateway_quotas", ["resets_at"])
    op.create_table(
        "gateway_rate_buckets",
        sa.Column("key_id", _ID, nullable=False),
        sa.Column("account_id", _ID, nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("granted", sa.Integer(), nullable=False),
        sa.Column("at", _INSTANT, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name="fk_gateway_rate_buckets_account_id_accounts",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_keys.id"],
            name="fk_gateway_rate_buckets_key_id_api_keys",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("key_id", name="pk_gateway_rate_buckets"),
    )


def downgrade() -> None:
    op.drop_table("gateway_rate_buckets")
    op.drop_index("ix_gateway_quotas_resets_at", table_name="gateway_quotas")
    op.drop_table("gateway_quotas")
