"""SQLite statements cost one trip to the connection's thread, and behave as before."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from timebridge.config import sqlite_url
from timebridge.store import Database
from timebridge.store._sqlite import OneTripConnection


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(sqlite_url(tmp_path / "trips.db"))
    async with database.transaction() as session:
        await session.execute(text("CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT)"))
    yield database
    await database.dispose()


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The calls sent to connections' threads while the test runs."""
    sent: list[str] = []
    real = OneTripConnection._execute

    async def counting(self: OneTripConnection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(getattr(fn, "__name__", "?"))
        return await real(self, fn, *args, **kwargs)

    monkeypatch.setattr(OneTripConnection, "_execute", counting)
    return sent


async def test_a_transaction_is_one_trip_per_statement_and_its_commit(
    sqlite: Database, trips: list[str]
) -> None:
    async with sqlite.read() as session:  # connect the pool's connection first
        await session.execute(text("SELECT 1"))
    trips.clear()

    async with sqlite.read() as session:
        rows = (await session.execute(text("SELECT 1 UNION ALL SELECT 2"))).all()
    assert [row[0] for row in rows] == [1, 2]
    # BEGIN, the SELECT, COMMIT; and no rollback when the pool gets the connection back.
    assert len(trips) == 3


async def test_a_failed_transaction_is_rolled_back_before_the_connection_is_reused(
    sqlite: Database,
) -> None:
    async def crash() -> None:
        async with sqlite.transaction() as session:
            await session.execute(text("INSERT INTO things (name) VALUES ('lost')"))
            raise RuntimeError("the run crashed")

    with pytest.raises(RuntimeError):
        await crash()

    async with sqlite.transaction() as session:
        await session.execute(text("INSERT INTO things (name) VALUES ('kept')"))
    async with sqlite.read() as session:
        names = (await session.execute(text("SELECT name FROM things"))).scalars().all()
    assert names == ["kept"]


async def test_row_counts_ids_and_streams_come_back(sqlite: Database) -> None:
    async with sqlite.transaction() as session:
        inserted = await session.execute(
            text("INSERT INTO things (name) VALUES (:name)"),
            [{"name": f"thing {n}"} for n in range(250)],
        )
        assert inserted.rowcount == 250  # type: ignore[attr-defined]
        one = await session.execute(text("INSERT INTO things (name) VALUES ('last')"))
        assert one.lastrowid == 251  # type: ignore[attr-defined]
        renamed = await session.execute(text("UPDATE things SET name = 'x' WHERE id <= 10"))
        assert renamed.rowcount == 10  # type: ignore[attr-defined]

    async with sqlite.engine.connect() as connection:
        stream = await connection.stream(text("SELECT id FROM things ORDER BY id"))
        ids = [row[0] async for row in stream]
    assert ids == list(range(1, 252))


async def test_an_error_is_the_drivers_error(sqlite: Database) -> None:
    async with sqlite.transaction() as session:
        await session.execute(text("INSERT INTO things (id, name) VALUES (1, 'one')"))
    with pytest.raises(IntegrityError):
        async with sqlite.transaction() as session:
            await session.execute(text("INSERT INTO things (id, name) VALUES (1, 'again')"))
