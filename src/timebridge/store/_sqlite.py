"""SQLite connections that cost one trip to their thread per statement, not four.

aiosqlite runs each SQLite connection on a thread of its own and sends it every call: through
SQLAlchemy's adapter a statement is four trips (make a cursor, execute, fetch, close), and the
pool's rollback of a connection it gets back one more, whether a transaction is open or not.
Each trip wakes two threads. At thousands of short transactions an hour that, not SQLite, was
most of the store's CPU time.

`OneTripConnection` is an aiosqlite connection whose cursors execute, fetch every row and close
in one trip (SQLAlchemy buffers every row of an aiosqlite result anyway; a streamed result is
buffered here too), and that rolls back only when a transaction may be open. SQLAlchemy sees an
ordinary aiosqlite connection: it gets one through `create_async_engine(..., async_creator=...)`.
It uses aiosqlite's `_execute` and `_conn`, as SQLAlchemy's own aiosqlite dialect uses its
internals.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from threading import Thread
from typing import Any

import aiosqlite
from aiosqlite.context import contextmanager

#: What one trip brings back: description, rows, rowcount, lastrowid, still in a transaction.
_Outcome = tuple[Any, list[Any], int, int | None, bool]


def _statement(
    connection: sqlite3.Connection, sql: str, parameters: Any, *, many: bool
) -> _Outcome:
    """On the connection's thread: the whole life of one cursor."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, () if parameters is None else parameters)
        description = cursor.description
        rows = cursor.fetchall() if description is not None else []
        return description, rows, cursor.rowcount, cursor.lastrowid, connection.in_transaction
    finally:
        cursor.close()


class OneTripCursor:
    """An aiosqlite-like cursor whose rows arrive with its execute."""

    arraysize = 1

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self._rows: deque[Any] = deque()
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None

    async def execute(self, sql: str, parameters: Any = None) -> OneTripCursor:
        await self._connection._run(self, sql, parameters, many=False)
        return self

    async def executemany(self, sql: str, parameters: Sequence[Any]) -> OneTripCursor:
        await self._connection._run(self, sql, parameters, many=True)
        return self

    def _take(self, outcome: _Outcome) -> None:
        self.description, rows, self.rowcount, self.lastrowid, _ = outcome
        self._rows = deque(rows)

    async def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = min(self.arraysize if size is None else size, len(self._rows))
        return [self._rows.popleft() for _ in range(count)]

    async def fetchall(self) -> list[Any]:
        rows = list(self._rows)
        self._rows.clear()
        return rows

    async def close(self) -> None:
        self._rows.clear()

    async def __aenter__(self) -> OneTripCursor:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()


class OneTripConnection(aiosqlite.Connection):
    """An aiosqlite connection with `OneTripCursor`s, that skips rolling back nothing."""

    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)
        # Whether a transaction may be open; known after every trip, assumed when in doubt.
        self._maybe_in_transaction = False

    @contextmanager
    async def cursor(self) -> OneTripCursor:  # type: ignore[override]
        return OneTripCursor(self)

    async def _run(self, cursor: OneTripCursor, sql: str, parameters: Any, *, many: bool) -> None:
        self._maybe_in_transaction = True
        # aiosqlite's own way to run a call on the connection's thread (untyped there).
        outcome: _Outcome = await self._execute(  # type: ignore[no-untyped-call]
            lambda: _statement(self._conn, sql, parameters, many=many)
        )
        self._maybe_in_transaction = outcome[4]
        cursor._take(outcome)

    async def commit(self) -> None:
        await super().commit()
        self._maybe_in_transaction = False

    async def rollback(self) -> None:
        # The pool rolls back every connection it gets back, nearly always after a commit.
        if self._maybe_in_transaction:
            await super().rollback()
            self._maybe_in_transaction = False


def one_trip_connector(*args: Any, **kwargs: Any) -> Callable[[], Awaitable[OneTripConnection]]:
    """An `async_creator` for `create_async_engine`: `sqlite3.connect(*args, **kwargs)`, each
    connection one `OneTripConnection`."""

    async def connect() -> OneTripConnection:
        connection = OneTripConnection(lambda: sqlite3.connect(*args, **kwargs))
        # As SQLAlchemy's own aiosqlite dialect does: a forgotten connection must not keep
        # the process alive.
        thread = connection if isinstance(connection, Thread) else connection._thread
        thread.daemon = True
        await connection
        return connection

    return connect
