"""Alembic's environment: runs migrations on the connection `timebridge.store.migrations` hands
over (see `upgrade`), so the same code serves SQLite and PostgreSQL, sync or inside a loop.

Each step applied (stamps aside) is recorded in the list the caller handed over, if any, for
the caller to log once the steps are committed."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo
from alembic.script import Script
from sqlalchemy.engine import Connection

from timebridge.store.migrations import APPLIED, AppliedRevision
from timebridge.store.models import Base


def _joined(revisions: tuple[str, ...]) -> str | None:
    return ", ".join(revisions) or None


def _recorder(
    applied: list[AppliedRevision],
) -> Callable[[MigrationContext, MigrationInfo, Collection[Any], Mapping[str, Any]], None]:
    """Alembic's `on_version_apply` hook, appending each applied step to `applied`."""

    def on_version_apply(
        ctx: MigrationContext,
        step: MigrationInfo,
        heads: Collection[Any],
        run_args: Mapping[str, Any],
    ) -> None:
        if step.is_stamp:
            return
        script = step.up_revision
        doc = script.doc.strip() if isinstance(script, Script) and script.doc else ""
        applied.append(
            AppliedRevision(
                source=_joined(step.source_revision_ids),
                destination=_joined(step.destination_revision_ids),
                upgrade=step.is_upgrade,
                description=doc.splitlines()[0] if doc else "",
            )
        )

    return on_version_apply


def _run(connection: Connection) -> None:
    applied = context.config.attributes.get(APPLIED)
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite alters tables by copying them; later revisions get that for free.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        on_version_apply=_recorder(applied) if isinstance(applied, list) else None,
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
