"""Alembic migrations of the store, callable from code.

`upgrade(database_url)` brings a database to the newest revision. The embedded default calls it
on every start (it is cheap when there is nothing to do); at scale `timebridge db upgrade` runs
it once per deploy. There is no alembic.ini: the configuration is built here, and env.py runs on
the connection handed to it.

Safeguards around every run:
- on PostgreSQL an advisory lock, so two processes starting at once migrate one after the other
  (on SQLite the write lock taken by `BEGIN IMMEDIATE` does the same);
- within one process, one run at a time per event loop: Alembic keeps its running context in
  module globals, so two interleaved runs would trample each other;
- on SQLite foreign keys are off while migrating (SQLite alters a table by copying and dropping
  it, and a dropped parent would cascade its deletes), then checked before the commit.

Logging: Alembic's own records (its "Context impl SQLiteImpl." on every run, say) are left to
the application's configuration (`timebridge.logs` lets only their warnings through). `upgrade`
logs one INFO line per revision it applied, once they are committed, and nothing when there was
nothing to do.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import URL, Connection

from timebridge.store.database import create_engine

#: Any constant works; it only has to be the same for every Timebridge process.
_PG_LOCK_ID = 0x7469_6D65_6272_6964 & 0x7FFF_FFFF_FFFF_FFFF  # "timebrid"


logger = logging.getLogger(__name__)

#: The key under which `alembic_config` hands env.py the list it records applied steps in.
APPLIED = "timebridge_applied"


@dataclass(frozen=True)
class AppliedRevision:
    """One migration step a run applied."""

    #: Where the database was before the step (None: empty) and where the step took it.
    source: str | None
    destination: str | None
    upgrade: bool
    #: The revision's description (the first line of its docstring).
    description: str


_RUN_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _run_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _RUN_LOCKS.get(loop)
    if lock is None:
        lock = _RUN_LOCKS[loop] = asyncio.Lock()
    return lock


def alembic_config(
    connection: Connection | None = None, applied: list[AppliedRevision] | None = None
) -> Config:
    """The Alembic configuration of the store, optionally bound to a connection; the steps a
    run applies are appended to `applied` when it is given."""
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    if connection is not None:
        config.attributes["connection"] = connection
    if applied is not None:
        config.attributes[APPLIED] = applied
    return config


def _log_applied(applied: list[AppliedRevision]) -> None:
    for step in applied:
        logger.info(
            "migrated the database %s from %s to %s",
            "up" if step.upgrade else "down",
            step.source or "empty",
            step.destination or "empty",
            extra={
                "from_revision": step.source,
                "revision": step.destination,
                "migration": step.description,
            },
        )


def head_revision() -> str | None:
    """The newest revision in the code."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection, revision: str) -> str | None:
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _PG_LOCK_ID})
        connection.commit()
    try:
        applied: list[AppliedRevision] = []
        # One transaction for the whole upgrade, begun here so that Alembic joins it rather
        # than committing revision by revision: the foreign key check below can still undo it.
        with connection.begin():
            command.upgrade(alembic_config(connection, applied), revision)
            if connection.dialect.name == "sqlite":
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left {len(broken)} rows with dangling keys")
        _log_applied(applied)
        return _current(connection)
    finally:
        if postgres:
            connection.rollback()
            connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _PG_LOCK_ID})
            connection.commit()


async def upgrade(database_url: str | URL, revision: str = "head") -> str | None:
    """Migrate the database to `revision` (the newest by default); returns where it now is."""
    async with _run_lock():
        engine = create_engine(database_url, foreign_keys=False)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(_upgrade, revision)
        finally:
            await engine.dispose()


async def current_revision(database_url: str | URL) -> str | None:
    """The revision the database is at; None for an empty database."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_current)
    finally:
        await engine.dispose()


def _autogenerate(connection: Connection, message: str) -> None:
    command.revision(alembic_config(connection), message=message, autogenerate=True)


async def make_revision(database_url: str | URL, message: str) -> None:
    """For developers: write a new revision file from the difference between the models and a
    database at head (review it before committing)."""
    async with _run_lock():
        engine = create_engine(database_url)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(_autogenerate, message)
        finally:
            await engine.dispose()
