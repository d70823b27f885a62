"""Migrations create exactly the models' schema, on SQLite and PostgreSQL, and the embedded
default migrates itself and makes its key on first start."""

from __future__ import annotations

import asyncio
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect, text
from sqlalchemy.engine import Connection

from tests.store.fixtures import PostgresServer
from timebridge.config import Settings
from timebridge.entries import EntrySnapshot, KeptEntry, encode_entries
from timebridge.store import (
    Database,
    SecretKeyError,
    Store,
    create_engine,
    current_revision,
    head_revision,
    new_key,
    open_store,
    upgrade,
)
from timebridge.store.crypto import SecretBox
from timebridge.store.migrations import alembic_config
from timebridge.store.models import AccountRow, Base


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_upgrade_creates_the_schema_of_the_models(empty_database_url: str) -> None:
    assert await current_revision(empty_database_url) is None

    assert await upgrade(empty_database_url) == head_revision()

    engine = create_engine(empty_database_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
            tables = await connection.run_sync(_tables)
    finally:
        await engine.dispose()
    assert tables == {*Base.metadata.tables, "alembic_version"}
    assert await current_revision(empty_database_url) == head_revision()


async def test_upgrading_again_changes_nothing(empty_database_url: str) -> None:
    first = await upgrade(empty_database_url)
    assert await upgrade(empty_database_url) == first


def test_processes_starting_together_migrate_one_after_the_other(
    empty_database_url: str,
) -> None:
    script = (
        "import asyncio, sys\n"
        "from timebridge.store import upgrade\n"
        "print(asyncio.run(upgrade(sys.argv[1])))\n"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, empty_database_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [process.communicate(timeout=60) for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], results
    assert [out.strip() for out, _ in results] == [head_revision()] * 3


async def test_runs_in_one_process_take_turns(empty_database_url: str) -> None:
    revisions = await asyncio.gather(*(upgrade(empty_database_url) for _ in range(3)))
    assert revisions == [head_revision()] * 3


async def test_the_embedded_default_migrates_and_makes_its_key_on_first_start(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    assert settings.is_sqlite and settings.migrate_on_start

    async with await open_store(settings) as store:
        account = await store.accounts.create("ada@example.com")
        connection = await store.toggl_connections.create(account.id, "tok-first-start")

    key_file = settings.key_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert await current_revision(settings.database_url) == head_revision()
    # A second start reuses the same key: what the first start encrypted still decrypts.
    async with await open_store(settings) as again:
        token = await again.toggl_connections.token(account.id, connection.id)
    assert token.get_secret_value() == "tok-first-start"


def test_a_shared_database_without_keys_refuses_to_invent_one(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    settings = Settings(database_url=postgres_server.admin_url, data_dir=tmp_path)
    assert not settings.migrate_on_start
    with pytest.raises(SecretKeyError, match="TIMEBRIDGE_SECRET_KEYS"):
        SecretBox.from_settings(settings)
    assert not settings.key_file.exists()


async def test_an_upgrade_that_fails_leaves_the_database_as_it_was(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_upgrade = command.upgrade

    def upgrade_then_fail(config: Config, revision: str) -> None:
        real_upgrade(config, revision)
        raise RuntimeError("the machine went away")

    monkeypatch.setattr(command, "upgrade", upgrade_then_fail)
    with pytest.raises(RuntimeError, match="went away"):
        await upgrade(empty_database_url)
    monkeypatch.undo()

    assert await current_revision(empty_database_url) is None
    engine = create_engine(empty_database_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_tables) == set()
    finally:
        await engine.dispose()
    assert await upgrade(empty_database_url) == head_revision()


async def test_upgrading_a_0001_database_with_data_keeps_it_and_refetches_its_entries(
    empty_database_url: str,
) -> None:
    assert await upgrade(empty_database_url, "0001") == "0001"
    start = datetime(2026, 3, 9, 8, 0, tzinfo=UTC)
    engine = create_engine(empty_database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                insert(AccountRow).values(id=1, email="ada@example.com", created_at=start)
            )
            await connection.execute(
                text(
                    "INSERT INTO kept_entries (account_id, entry_id, project_id, start) "
                    "VALUES (1, 1, 10, :start)"
                ),
                {"start": start},
            )
    finally:
        await engine.dispose()

    assert await upgrade(empty_database_url) == head_revision()

    store = Store(Database(empty_database_url), SecretBox([new_key()]))
    try:
        assert (await store.accounts.get(1)).email == "ada@example.com"
        # Kept entries are a copy of Toggl's: not carried over, so the user's next run fetches
        # the whole window, as a first run does.
        assert await store.ledger.load_with_snapshot(1) == ({}, None, None)
        snapshot = EntrySnapshot.of(
            [KeptEntry.of(1, 10, start, None, None)], (start, start + timedelta(days=1)), start
        )
        await store.ledger.keep_snapshot(1, snapshot)
        assert await store.ledger.entries(1) == [KeptEntry.of(1, 10, start, None, None)]
    finally:
        await store.close()


async def test_0003_downgrades_to_the_kept_entry_tables_and_back(empty_database_url: str) -> None:
    assert await upgrade(empty_database_url) == head_revision()
    engine = create_engine(empty_database_url, foreign_keys=False)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(lambda sync: command.downgrade(alembic_config(sync), "0002"))
            tables = await connection.run_sync(_tables)
    finally:
        await engine.dispose()
    assert {"kept_entries", "kept_entry_digests"} <= tables
    assert "entry_snapshots" not in tables

    assert await upgrade(empty_database_url) == head_revision()
    engine = create_engine(empty_database_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
    finally:
        await engine.dispose()


async def test_0004_keeps_every_snapshot_without_a_mark_and_downgrades_cleanly(
    empty_database_url: str,
) -> None:
    assert await upgrade(empty_database_url, "0003") == "0003"
    start = datetime(2026, 3, 9, 8, 0, tzinfo=UTC)
    engine = create_engine(empty_database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                insert(AccountRow).values(id=1, email="ada@example.com", created_at=start)
            )
            await connection.execute(
                text(
                    "INSERT INTO entry_snapshots (account_id, covered_from, covered_to, "
                    "fetched_at, entries) VALUES (1, :start, :end, :start, :entries)"
                ),
                {
                    "start": start,
                    "end": start + timedelta(days=1),
                    "entries": encode_entries([KeptEntry.of(1, 10, start, None, None)]),
                },
            )
    finally:
        await engine.dispose()

    assert await upgrade(empty_database_url) == head_revision()
    store = Store(Database(empty_database_url), SecretBox([new_key()]))
    try:
        _, snapshot, settled = await store.ledger.load_with_snapshot(1)
        assert snapshot is not None and snapshot.sorted_entries() == [
            KeptEntry.of(1, 10, start, None, None)
        ]
        # No mark yet: the user's next run plans, and leaves one.
        assert settled is None
    finally:
        await store.close()

    engine = create_engine(empty_database_url, foreign_keys=False)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(lambda sync: command.downgrade(alembic_config(sync), "0003"))
    finally:
        await engine.dispose()
    assert await upgrade(empty_database_url) == head_revision()
    engine = create_engine(empty_database_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
    finally:
        await engine.dispose()
