"""The storage tests' fixtures live in `fixtures.py`, so other suites can import them too."""

from tests.store.fixtures import (
    box,
    database,
    database_url,
    empty_database_url,
    postgres_migrated_url,
    postgres_server,
    secret_key,
    sqlite_template,
    store,
)

__all__ = [
    "box",
    "database",
    "database_url",
    "empty_database_url",
    "postgres_migrated_url",
    "postgres_server",
    "secret_key",
    "sqlite_template",
    "store",
]
