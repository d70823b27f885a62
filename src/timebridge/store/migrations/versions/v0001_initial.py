"""The initial schema: accounts, connections, mappings, claims, the ledger, kept entries, runs.

Revision ID: 0001
Revises:
Create Date: 2026-03-10

Written out in full rather than derived from the models, so that changing a model later never
changes what this revision did; tests compare the migrated schema with the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
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
        "accounts",
        sa.Column("id", _ID, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=True),
        sa.Column("time_zone", sa.String(length=64), nullable=True),
        sa.Column("created_at", _INSTANT, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("email", name=op.f("uq_accounts_email")),
    )
    op.create_table(
        "toggl_connections",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", _ID, nullable=False),
        sa.Column("token_encrypted", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("toggl_user_id", sa.BigInteger(), nullable=True),
        sa.Column("failure_reason", sa.String(length=500), nullable=True),
        sa.Column("created_at", _INSTANT, nullable=False),
        sa.Column("updated_at", _INSTANT, nullable=False),
        _account_fk("toggl_connections"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_toggl_connections")),
    )
    op.create_index(op.f("ix_toggl_connections_account_id"), "toggl_connections", ["account_id"])
    op.create_index(
        "uq_toggl_connections_one_default",
        "toggl_connections",
        ["account_id"],
        unique=True,
        sqlite_where=sa.text("is_default"),
        postgresql_where=sa.text("is_default"),
    )
    op.create_table(
        "exist_connections",
        sa.Column("account_id", _ID, nullable=False),
        sa.Column("access_token_encrypted", sa.Text(), nullable=False),
        sa.Column("refresh_token_encrypted", sa.Text(), nullable=True),
        sa.Column("expires_at", _INSTANT, nullable=True),
        sa.Column("scopes", sa.String(length=500), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=True),
        sa.Column("time_zone_checked_at", _INSTANT, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", _INSTANT, nullable=False),
        sa.Column("updated_at", _INSTANT, nullable=False),
        _account_fk("exist_connections"),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_exist_connections")),
    )
    op.create_table(
        "attribute_claims",
        sa.Column("id", _ID, nullable=False),
        sa.Column("account_id", _ID, nullable=False),
        sa.Column("attribute", sa.String(length=100), nullable=False),
        sa.Column("integration", sa.String(length=32), nullable=False),
        sa.Column("created_at", _INSTANT, nullable=False),
        _account_fk("attribute_claims"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attribute_claims")),
        sa.UniqueConstraint(
            "account_id", "attribute", name=op.f("uq_attribute_claims_account_id_attribute")
        ),
        sa.UniqueConstraint(
            "account_id",
            "attribute",
            "integration",
            name=op.f("uq_attribute_claims_account_id_attribute_integration"),
        ),
    )
    op.create_table(
        "mappings",
        sa.Column("id", _ID, nullable=False),
        sa.Column("account_id", _ID, nullable=False),
        sa.Column("workspace_id", sa.BigInteger(), nullable=False),
        sa.Column("project_id", sa.BigInteger(), nullable=False),
        sa.Column("project_name", sa.String(length=255), nullable=False),
        sa.Column("attribute", sa.String(length=100), nullable=False),
        sa.Column("integration", sa.String(length=32), nullable=False),
        sa.Column("updated_at", _INSTANT, nullable=False),
        sa.CheckConstraint("integration = 'toggl'", name=op.f("ck_mappings_toggl_only")),
        sa.ForeignKeyConstraint(
            ["account_id", "attribute", "integration"],
            [
                "attribute_claims.account_id",
                "attribute_claims.attribute",
                "attribute_claims.integration",
            ],
            name=op.f("fk_mappings_account_id_attribute_integration_attribute_claims"),
        ),
        _account_fk("mappings"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mappings")),
        sa.UniqueConstraint(
            "account_id", "project_id", name=op.f("uq_mappings_account_id_project_id")
        ),
    )
    op.create_table(
        "ledger",
        sa.Column("account_id", _ID, nullable=False),
        sa.Column("attribute", sa.String(length=100), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("recorded_at", _INSTANT, nullable=False),
        _account_fk("ledger"),
        sa.PrimaryKeyConstraint("account_id", "attribute", "day", name=op.f("pk_ledger")),
    )
    op.create_index(op.f("ix_ledger_day"), "ledger", ["day"])
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
        "sync_runs",
        sa.Column("id", _ID, nullable=False),
        sa.Column("account_id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("started_at", _INSTANT, nullable=False),
        sa.Column("finished_at", _INSTANT, nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("toggl_requests", sa.Integer(), nullable=False),
        sa.Column("exist_requests", sa.Integer(), nullable=False),
        sa.Column("values_written", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("next_sync_after", _INSTANT, nullable=True),
        _account_fk("sync_runs"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_runs")),
    )
    op.create_index("ix_sync_runs_account_id_started_at", "sync_runs", ["account_id", "started_at"])


def downgrade() -> None:
    for table in (
        "sync_runs",
        "kept_entries",
        "ledger",
        "mappings",
        "attribute_claims",
        "exist_connections",
        "toggl_connections",
        "accounts",
    ):
        op.drop_table(table)
