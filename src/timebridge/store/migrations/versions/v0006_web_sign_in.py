"""Signing in on the web: sessions, one-time login links, and the Exist identity of an account.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30

`web_sessions` and `login_links` keep only SHA-256 digests of what the browser or the link
holds; `accounts.exist_username` is the Exist user an account signs in as.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INSTANT = sa.DateTime(timezone=True)
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("accounts") as table:
        table.add_column(sa.Column("exist_username", sa.String(length=150), nullable=True))
        table.create_unique_constraint("uq_accounts_exist_username", ["exist_username"])
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account_id", _ID, nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", _INSTANT, nullable=False),
        sa.Column("last_seen_at", _INSTANT, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name="fk_web_sessions_account_id_accounts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_web_sessions"),
    )
    op.create_index("ix_web_sessions_account_id", "web_sessions", ["account_id"])
    op.create_table(
        "login_links",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("account_id", _ID, nullable=False),
        sa.Column("created_at", _INSTANT, nullable=False),
        sa.Column("expires_at", _INSTANT, nullable=False),
        sa.Column("used_at", _INSTANT, nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name="fk_login_links_account_id_accounts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_login_links"),
    )
    op.create_index("ix_login_links_account_id", "login_links", ["account_id"])


def downgrade() -> None:
    op.drop_index("ix_login_links_account_id", table_name="login_links")
    op.drop_table("login_links")
    op.drop_index("ix_web_sessions_account_id", table_name="web_sessions")
    op.drop_table("web_sessions")
    with op.batch_alter_table("accounts") as table:
        table.drop_constraint("uq_accounts_exist_username", type_="unique")
        table.drop_column("exist_username")
