"""`TransactionLog`: every transaction a `Database` runs while it listens, and what each did.

Tests that promise "at most N transactions, one of them a write" count them here, through the
engine's own events, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, ExecutionContext

from timebridge.store import Database
from timebridge.store.database import READ_ONLY

_WRITES = ("INSERT", "UPDATE", "DELETE")


@dataclass
class Transaction:
    """One transaction: whether it was begun as a read, and its statements in order."""

    read_only: bool
    statements: list[str] = field(default_factory=list)
    #: (table, bound parameters) of every INSERT, UPDATE or DELETE.
    writes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def writes_or_locks(self) -> bool:
        """It wrote, or it was begun as a writer (on SQLite: took the write lock)."""
        return not self.read_only or bool(self.writes)

    def rows_written(self, table: str) -> list[dict[str, Any]]:
        return [parameters for name, parameters in self.writes if name == table]


@dataclass
class TransactionLog:
    transactions: list[Transaction] = field(default_factory=list)

    @property
    def writers(self) -> list[Transaction]:
        return [transaction for transaction in self.transactions if transaction.writes_or_locks]

    def rows_written(self, table: str) -> list[dict[str, Any]]:
        return [row for t in self.transactions for row in t.rows_written(table)]

    def clear(self) -> None:
        self.transactions.clear()


def _table_of(context: ExecutionContext) -> str | None:
    compiled = context.compiled
    table = getattr(getattr(compiled, "statement", None), "table", None)
    return getattr(table, "name", None)


@contextmanager
def transaction_log(database: Database) -> Iterator[TransactionLog]:
    """Log the transactions of `database` until the block ends."""
    log = TransactionLog()
    current: dict[int, Transaction] = {}
    # Connections whose transaction was opened by the BEGIN statement the store's own "begin"
    # listener runs on SQLite (the listeners' order is not ours to choose).
    begun_by_statement: set[int] = set()
    engine = database.engine.sync_engine

    def start(connection: Connection) -> Transaction:
        read_only = bool(connection.get_execution_options().get(READ_ONLY))
        transaction = current[id(connection)] = Transaction(read_only)
        log.transactions.append(transaction)
        return transaction

    def on_begin(connection: Connection) -> None:
        if id(connection) in begun_by_statement:
            begun_by_statement.discard(id(connection))
        else:
            start(connection)

    def on_execute(
        connection: Connection,
        _cursor: Any,
        statement: str,
        _parameters: Any,
        context: ExecutionContext | None,
        _executemany: bool,
    ) -> None:
        verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else ""
        if verb == "BEGIN":
            transaction = start(connection)
            begun_by_statement.add(id(connection))
        else:
            found = current.get(id(connection))
            if found is None:
                return
            transaction = found
        transaction.statements.append(statement)
        if verb in _WRITES and context is not None:
            table = _table_of(context) or "?"
            for parameters in getattr(context, "compiled_parameters", None) or [{}]:
                entry = (table, dict(parameters))
                if entry not in transaction.writes:
                    transaction.writes.append(entry)

    event.listen(engine, "begin", on_begin)
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield log
    finally:
        event.remove(engine, "begin", on_begin)
        event.remove(engine, "before_cursor_execute", on_execute)
