"""SQLite statements through the one-trip connection behave as the driver's own (the trips they
save are measured by `bench/throughput.py`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from timebridge.config import sqlite_url
from timebridge.store import Database


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(sqlite_url(tmp_path / "trips.db"))
    async with database.transaction() as session:
        await session.execute(text("CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT)"))
    yield database
    await database.dispose()


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
