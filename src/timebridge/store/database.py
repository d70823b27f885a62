"""The async engine and sessions, for SQLite (aiosqlite) and PostgreSQL (psycopg 3).

SQLite needs three things to behave like a database the bridge can trust:
- `foreign_keys=ON`, or cascades and the claim/mapping keys are silently ignored;
- WAL, so the web pages can read while a sync writes;
- transactions we begin ourselves: Python's sqlite3 otherwise starts them lazily at the first
  write, so a read-then-write could see a stale read. A transaction that may write begins with
  `BEGIN IMMEDIATE`, taking the write lock at once: a deferred transaction that upgrades to a
  write lock fails at once instead of waiting its turn. A read-only one (`Database.read()`)
  begins with a plain, deferred `BEGIN`: under WAL it reads one consistent snapshot and neither
  waits for the writer nor holds it up, so loads never queue behind other users' writes.

A SQLite file is connected through `_sqlite.OneTripConnection`: aiosqlite, with each statement
one trip to the connection's thread instead of four.

The file holds every user's mapping, ledger and (encrypted) tokens, so what the engine creates
is private to the user running Timebridge: missing directories are made mode 0700 and a new
database file 0600 (SQLite gives its -wal, -shm and -journal files the database file's mode).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

from timebridge.store._sqlite import one_trip_connector

#: How long a SQLite connection waits for another's write lock before giving up (ms).
SQLITE_BUSY_TIMEOUT_MS = 10_000
#: SQLite connections kept open, and never more. Each is a thread of its own (aiosqlite), and
#: SQLite runs one writer at a time anyway: SQLAlchemy's default (5, plus 10 opened and closed
#: again as load comes and goes) made a busy cycle open a connection, its thread and its
#: PRAGMAs every few runs, and contend for the GIL with up to 15 threads. Three leave room for a
#: read while a write transaction is open in the same task (see `Database.read`).
SQLITE_POOL_SIZE = 3
#: The execution option that marks the engine of `Database.read()` sessions.
READ_ONLY = "timebridge_read_only"
#: The mode of the directories the store creates: only their owner may list or enter them.
PRIVATE_DIRECTORY_MODE = 0o700
#: The mode of a SQLite file the store creates: only its owner may read or write it.
PRIVATE_FILE_MODE = 0o600


def make_private_directory(path: Path) -> None:
    """Create `path` and its missing parents, each mode 0700 whatever the umask; directories
    that already exist are left as they are."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIRECTORY_MODE)
        except FileExistsError:
            continue  # made by another process just now: theirs to set up
        # mkdir's mode passes through the umask, which may take bits away but never adds any.
        os.chmod(directory, PRIVATE_DIRECTORY_MODE)


def create_private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 (whatever the umask), unless it exists. An empty file
    is an empty SQLite database, so SQLite opens it as if it had created it."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(descriptor, PRIVATE_FILE_MODE)
    finally:
        os.close(descriptor)


def async_url(database_url: str | URL) -> URL:
    """The URL with an async driver: plain `postgresql://` and `sqlite://` URLs are accepted."""
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "postgresql" and url.get_driver_name() != "psycopg":
        url = url.set(drivername="postgresql+psycopg")
    elif backend == "sqlite" and url.get_driver_name() != "aiosqlite":
        url = url.set(drivername="sqlite+aiosqlite")
    elif backend not in ("postgresql", "sqlite"):
        raise ValueError(f"unsupported database {backend!r}: use SQLite or PostgreSQL")
    return url


def create_engine(
    database_url: str | URL, *, echo: bool = False, foreign_keys: bool = True
) -> AsyncEngine:
    """An async engine for `database_url`, with the SQLite settings above applied.

    A SQLite file that does not exist yet is created here, private to the user (see above),
    with any missing directory on its path. `foreign_keys=False` is for migrations only (see
    `timebridge.store.migrations`).
    """
    url = async_url(database_url)
    if url.get_backend_name() == "sqlite":
        options: dict[str, Any] = {}
        if url.database and url.database != ":memory:":
            if not url.query.get("uri"):  # a `file:` URI may say how to open it: left to SQLite
                path = Path(url.database)
                make_private_directory(path.parent)
                create_private_file(path)
            # Connected with the arguments SQLAlchemy would use, one trip a statement.
            args, kwargs = url.get_dialect()().create_connect_args(url)
            options["async_creator"] = one_trip_connector(*args, **kwargs)
            options.update(pool_size=SQLITE_POOL_SIZE, max_overflow=0)
        engine = create_async_engine(url, echo=echo, **options)
        _configure_sqlite(engine, foreign_keys=foreign_keys)
        return engine
    return create_async_engine(url, echo=echo, pool_pre_ping=True)


def _configure_sqlite(engine: AsyncEngine, *, foreign_keys: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Hand transaction control to SQLAlchemy (see `_on_begin`).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit (repositories return plain records)."""
    return async_sessionmaker(engine, expire_on_commit=False)


class Database:
    """One engine and its sessions: every repository call is one `transaction()` if it may
    write, one `read()` if it only reads."""

    def __init__(self, database_url: str | URL, *, echo: bool = False) -> None:
        self.engine = create_engine(database_url, echo=echo)
        self.sessions = session_factory(self.engine)
        # Same pool, marked so that SQLite begins its transactions deferred (see `_on_begin`).
        self.read_engine = self.engine.execution_options(**{READ_ONLY: True})
        self.read_sessions = session_factory(self.read_engine)

    def __repr__(self) -> str:
        return f"Database({self.engine.url.render_as_string(hide_password=True)!r})"

    @property
    def dialect(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self.engine.dialect.name

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction that may write: committed on exit, rolled back on any
        exception. On SQLite it holds the write lock from its start."""
        async with self.sessions() as session, session.begin():
            yield session

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction that only reads.

        On SQLite it takes no lock the writer needs and waits for none: its queries read one
        snapshot (WAL), taken at the first. It must not write: a deferred transaction that
        upgrades to a write fails at once instead of waiting its turn. On PostgreSQL it is an
        ordinary transaction. What was loaded stays readable after it ends.
        """
        async with self.read_sessions() as session, session.begin():
            yield session

    @contextlib.asynccontextmanager
    async def write_connection(self) -> AsyncIterator[AsyncConnection]:
        """`transaction()` without the ORM: a Core connection in one transaction that may
        write, for the hot paths of a run (no session, identity map or flush to pay for)."""
        async with self.engine.connect() as connection, connection.begin():
            yield connection

    @contextlib.asynccontextmanager
    async def read_connection(self) -> AsyncIterator[AsyncConnection]:
        """`read()` without the ORM: a Core connection in one read-only transaction (on
        SQLite begun deferred, like `read()`)."""
        async with self.read_engine.connect() as connection, connection.begin():
            yield connection

    async def dispose(self) -> None:
        await self.engine.dispose()
