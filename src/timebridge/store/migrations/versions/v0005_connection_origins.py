"""Each connection remembers the origin its token was checked against.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

`toggl_connections.origin` and `exist_connections.origin` (`timebridge.origins`): every caller
builds its client from them, so a token is only ever sent where it was validated. Existing rows
get the real services, where tokens went before unless the service was configured otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ORIGINS = {
    "toggl_connections": "https://api.track.toggl.com",
    "exist_connections": "https://exist.io",
}


def upgrade() -> None:
    for table_name, origin in _ORIGINS.items():
        with op.batch_alter_table(table_name) as table:
            table.add_column(
                sa.Column("origin", sa.String(length=300), nullable=False, server_default=origin)
            )


def downgrade() -> None:
    for table_name in _ORIGINS:
        with op.batch_alter_table(table_name) as table:
            table.drop_column("origin")
