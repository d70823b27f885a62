"""Alembic's environment: runs migrations on the connection `timebridge.store.migrations` hands
over (see `upgrade`), so the same code serves SQLite and PostgreSQL, sync or inside a loop."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from timebridge.store.models import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite alters tables by copying them; later revisions get that for free.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


_connection = context.config.attributes.get("connection")
if not isinstance(_connection, Connection):
    raise RuntimeError(
        "run migrations with `timebridge db upgrade` (or timebridge.store.migrations.upgrade), "
        "not the alembic command"
    )
_run(_connection)
