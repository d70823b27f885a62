"""What the store creates on disk is private to the user: directories 0700, the SQLite file and
its -wal/-shm/-journal companions 0600, whatever the umask."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from timebridge.store.database import Database


@pytest.fixture(params=[0o022, 0o000, 0o277], ids=["umask-022", "umask-000", "umask-277"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """The usual umask, one that takes nothing away (a shared machine's setting), and one that
    takes even the owner's write and search bits (the store's files must still work)."""
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def _write_and_keep_open(url: str, database_dir: Path) -> dict[str, int]:
    """Write through the store, and list the database's files while its connection is open
    (the -wal and -shm files exist only then)."""
    database = Database(url)
    try:
        async with database.transaction() as session:
            await session.execute(text("CREATE TABLE t (x INTEGER)"))
            await session.execute(text("INSERT INTO t VALUES (1)"))
        return await asyncio.to_thread(
            lambda: {path.name: mode(path) for path in database_dir.iterdir()}
        )
    finally:
        await database.dispose()


def test_a_new_database_and_its_directories_are_private(tmp_path: Path, umask: int) -> None:
    # tmp_path comes first: it is made before the umask changes.
    database_dir = tmp_path / "data" / "timebridge"
    url = f"sqlite+aiosqlite:///{database_dir / 'timebridge.db'}"
    files = asyncio.run(_write_and_keep_open(url, database_dir))
    assert {"timebridge.db", "timebridge.db-wal", "timebridge.db-shm"} <= set(files), files
    assert files == dict.fromkeys(files, 0o600)
    assert mode(database_dir) == 0o700
    assert mode(tmp_path / "data") == 0o700, "a missing parent is made private too"


def test_an_existing_directory_and_database_keep_their_modes(tmp_path: Path) -> None:
    """Only what the store creates is set: a directory and a file the user chose are theirs."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o750)
    database = shared / "timebridge.db"
    database.touch()
    database.chmod(0o640)
    asyncio.run(_write_and_keep_open(f"sqlite+aiosqlite:///{database}", shared))
    assert mode(shared) == 0o750
    assert mode(database) == 0o640


def test_the_embedded_default_makes_a_private_data_directory_and_key_file(
    tmp_path: Path, umask: int
) -> None:
    from timebridge.config import Settings
    from timebridge.store import open_store

    data_dir = tmp_path / "fresh"

    async def start() -> None:
        store = await open_store(Settings(data_dir=data_dir, database_url=""))
        await store.close()

    asyncio.run(start())
    assert mode(data_dir) == 0o700, "the key file comes first and must not make it 0755"
    assert mode(data_dir / "secret-keys") == 0o600
    assert mode(data_dir / "timebridge.db") == 0o600
