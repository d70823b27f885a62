"""Database fixtures: every storage test runs on SQLite and on the machine's PostgreSQL.

- `database_url`: an empty, migrated database, parametrized over SQLite (a file in the test's
  tmp dir, copied from one migrated template) and PostgreSQL (one fresh database per test
  session, `timebridge_test_<random>`, emptied before each test and dropped at the end).
- `empty_database_url`: the same two, not migrated (for the migration tests).
- `database`, `store`: a `Database` / `Store` on `database_url`, disposed after the test.

PostgreSQL is found at `TIMEBRIDGE_TEST_POSTGRES_URL` (default
postgresql://postgres@127.0.0.1:5432/test, used only to create and drop databases). If it cannot
be reached the PostgreSQL half FAILS with a message saying so: a storage test that skips proves
nothing about the scale path.

Other test packages can use these by importing them into their conftest.py (or, suite-wide,
`pytest_plugins = ["tests.store.fixtures"]` in tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from timebridge.clock import FakeClock
from timebridge.config import sqlite_url
from timebridge.store import Database, SecretBox, Store, new_key, upgrade
from timebridge.store.models import Base

POSTGRES_ENV = "TIMEBRIDGE_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")

T = TypeVar("T")


def run_blocking(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even inside a running event loop (a sync
    session fixture first requested by an async test or fixture runs inside its loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


@dataclass
class PostgresServer:
    """Creates throwaway databases on the test PostgreSQL and drops them all at the end."""

    admin_url: str
    created: list[str] = field(default_factory=list)

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5)

    def create_database(self) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        name = f"timebridge_test_{secrets.token_hex(6)}"
        with self._admin() as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.created.append(name)
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self._admin() as admin:
            for name in self.created:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        self.created.clear()

    def truncate(self, url: str) -> None:
        """Empty every table of the store (keeping the migration version)."""
        tables = sql.SQL(", ").join(
            sql.Identifier(table.name) for table in Base.metadata.sorted_tables
        )
        conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(tables))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    admin_url = os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES_URL)
    masked = make_url(admin_url).render_as_string(hide_password=True)
    try:
        psycopg.connect(admin_url, connect_timeout=5).close()
    except psycopg.Error as exc:
        pytest.fail(
            f"PostgreSQL is required for the storage tests and is not reachable at {masked} "
            f"({exc.__class__.__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}). "
            f"Start it (.ci/run does) or point {POSTGRES_ENV} at one.",
            pytrace=False,
        )
    server = PostgresServer(admin_url)
    yield server
    server.drop_all()


@pytest.fixture(scope="session")
def postgres_migrated_url(postgres_server: PostgresServer) -> str:
    """This session's PostgreSQL database, migrated once."""
    url = postgres_server.create_database()
    run_blocking(upgrade(url))
    return url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies (faster than migrating every time)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    run_blocking(upgrade(sqlite_url(path)))
    return path


def migrated_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    """An empty migrated database of `backend` for the requesting test."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "store.db"
        shutil.copyfile(template, path)
        return sqlite_url(path)
    url: str = request.getfixturevalue("postgres_migrated_url")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    server.truncate(url)
    return url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return migrated_url(request, request.param, tmp_path)


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "empty.db")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    yield db
    await db.dispose()


@pytest.fixture(scope="session")
def secret_key() -> str:
    return new_key()


@pytest.fixture
def box(secret_key: str) -> SecretBox:
    return SecretBox([secret_key])


@pytest.fixture
def store(database: Database, box: SecretBox, clock: FakeClock) -> Store:
    return Store(database, box, clock)
