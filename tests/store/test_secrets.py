"""Secrets at rest: ciphertext only in the database, rotation to a new key, the generated key
file, and tokens that never show up in logs, reprs or exceptions."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select

from timebridge.clock import FakeClock
from timebridge.config import Settings
from timebridge.exist.models import ExistTokens
from timebridge.store import (
    AccountNotFound,
    Database,
    SecretBox,
    SecretKeyError,
    Store,
    UndecryptableSecret,
    count_stale_secrets,
    new_key,
    rotate_secrets,
)
from timebridge.store.crypto import ensure_key_file, parse_keys, read_key_file, write_key_file
from timebridge.store.models import ExistConnectionRow, TogglConnectionRow, WebhookEndpointRow

TOGGL_TOKEN = "tok-toggl-9f8e7d6c5b4a"
ACCESS_TOKEN = "exist-access-1a2b3c4d5e"
REFRESH_TOKEN = "exist-refresh-6f7a8b9c0d"
CALLBACK_TOKEN = "callback-path-3c4d5e6f7a"
SIGNING_SECRET = "webhook-secret-8b9c0d1e2f"
SECRETS = (TOGGL_TOKEN, ACCESS_TOKEN, REFRESH_TOKEN, CALLBACK_TOKEN, SIGNING_SECRET)


def exist_tokens() -> ExistTokens:
    return ExistTokens(access_token=SecretStr(ACCESS_TOKEN), refresh_token=SecretStr(REFRESH_TOKEN))


async def connect_everything(store: Store) -> tuple[int, str]:
    user = (await store.accounts.create("ada@example.com")).id
    connection = await store.toggl_connections.create(user, TOGGL_TOKEN)
    await store.exist_connections.save(user, exist_tokens())
    await store.webhooks.create(user, connection.id, CALLBACK_TOKEN, SIGNING_SECRET)
    return user, connection.id


async def toggl_token(store: Store, user: int, connection_id: str) -> str:
    return (await store.toggl_connections.token(user, connection_id)).get_secret_value()


async def raw_ciphertexts(database: Database) -> list[str]:
    async with database.transaction() as session:
        toggl = list(await session.scalars(select(TogglConnectionRow.token_encrypted)))
        exist = (
            await session.execute(
                select(
                    ExistConnectionRow.access_token_encrypted,
                    ExistConnectionRow.refresh_token_encrypted,
                )
            )
        ).one()
        hooks = (
            await session.execute(
                select(WebhookEndpointRow.token_encrypted, WebhookEndpointRow.secret_encrypted)
            )
        ).one()
    return [value for value in (*toggl, *exist, *hooks) if value is not None]


async def test_the_database_holds_ciphertext_only(store: Store, secret_key: str) -> None:
    await connect_everything(store)

    stored = await raw_ciphertexts(store.database)

    assert len(stored) == 5
    for value in stored:
        assert not any(secret in value for secret in SECRETS)
    fernet = Fernet(secret_key)
    assert sorted(fernet.decrypt(value.encode()).decode() for value in stored) == sorted(SECRETS)


async def test_rotation_moves_every_secret_to_the_new_key(
    database: Database, clock: FakeClock
) -> None:
    old, new = new_key(), new_key()
    user, connection_id = await connect_everything(Store(database, SecretBox([old]), clock))
    before = await raw_ciphertexts(database)

    # The new key goes first; the old one still decrypts what it encrypted.
    both = Store(database, SecretBox([new, old]), clock)
    assert (
        await both.toggl_connections.token(user, connection_id)
    ).get_secret_value() == TOGGL_TOKEN
    assert await count_stale_secrets(database, both.box) == 5

    report = await both.rotate_secrets()

    assert report.rotated == {
        "exist_connections.access_token_encrypted": 1,
        "exist_connections.refresh_token_encrypted": 1,
        "toggl_connections.token_encrypted": 1,
        "webhook_endpoints.token_encrypted": 1,
        "webhook_endpoints.secret_encrypted": 1,
    }
    assert report.total == 5 and report.total_unreadable == 0
    assert await count_stale_secrets(database, both.box) == 0
    assert set(await raw_ciphertexts(database)).isdisjoint(before)
    only_new = Store(database, SecretBox([new]), clock)
    assert (
        await only_new.toggl_connections.token(user, connection_id)
    ).get_secret_value() == TOGGL_TOKEN
    tokens = await only_new.exist_connections.tokens(user)
    assert tokens.access_token.get_secret_value() == ACCESS_TOKEN
    target = await only_new.webhooks.target(CALLBACK_TOKEN)
    assert target is not None and target.secret.get_secret_value() == SIGNING_SECRET
    only_old = Store(database, SecretBox([old]), clock)
    with pytest.raises(UndecryptableSecret):
        await only_old.toggl_connections.token(user, connection_id)


async def test_rotation_walks_many_rows_in_chunks(database: Database, clock: FakeClock) -> None:
    old, new = new_key(), new_key()
    store = Store(database, SecretBox([old]), clock)
    user = (await store.accounts.create("ada@example.com")).id
    ids = [(await store.toggl_connections.create(user, f"tok-{n}")).id for n in range(7)]

    report = await rotate_secrets(database, SecretBox([new, old]), chunk_size=3)

    assert report.rotated["toggl_connections.token_encrypted"] == 7
    only_new = Store(database, SecretBox([new]), clock)
    assert [await toggl_token(only_new, user, id_) for id_ in ids] == [f"tok-{n}" for n in range(7)]


async def test_a_secret_no_key_can_read_is_counted_and_left_alone(
    database: Database, clock: FakeClock
) -> None:
    lost, current = new_key(), new_key()
    await connect_everything(Store(database, SecretBox([lost]), clock))
    before = await raw_ciphertexts(database)

    report = await rotate_secrets(database, SecretBox([current]))

    assert report.total == 0 and report.total_unreadable == len(SECRETS)
    assert await raw_ciphertexts(database) == before


# --- keys -------------------------------------------------------------------------------------


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_the_key_file_is_created_private_and_reused(tmp_path: Path, permissive_umask: None) -> None:
    path = tmp_path / "data" / "secret-keys"

    keys = ensure_key_file(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(keys) == 1
    Fernet(keys[0])  # a valid key
    assert ensure_key_file(path) == keys
    assert [p.name for p in path.parent.iterdir()] == ["secret-keys"]  # nothing left aside


def test_rewriting_the_key_file_keeps_it_private(tmp_path: Path, permissive_umask: None) -> None:
    path = tmp_path / "secret-keys"
    first = ensure_key_file(path)
    write_key_file(path, [new_key(), *first])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_key_file(path)[1:] == first


def test_the_embedded_default_generates_a_key_but_configured_keys_win(tmp_path: Path) -> None:
    embedded = Settings(data_dir=tmp_path / "embedded")
    assert SecretBox.from_settings(embedded).key_count == 1
    assert embedded.key_file.exists()

    configured = Settings(
        data_dir=tmp_path / "configured", secret_keys=SecretStr(f"{new_key()}, {new_key()}")
    )
    assert SecretBox.from_settings(configured).key_count == 2
    assert not configured.key_file.exists()


def test_keys_are_read_from_lists_and_files_alike() -> None:
    one, two = new_key(), new_key()
    assert parse_keys(f" {one} ,{two},") == [one, two]
    assert parse_keys(f"# comment\n{one}\n\n{two}  # old\n") == [one, two]


def test_a_bad_key_is_named_by_position_never_shown() -> None:
    bad = "definitely-not-a-fernet-key"
    with pytest.raises(SecretKeyError) as refused:
        SecretBox([new_key(), bad])
    assert "#2" in str(refused.value)
    assert bad not in str(refused.value) and bad not in repr(refused.value)
    assert refused.value.__cause__ is None and refused.value.__suppress_context__
    with pytest.raises(SecretKeyError):
        SecretBox([])


# --- no leaks ---------------------------------------------------------------------------------


def _assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def _exception_text(error: BaseException) -> str:
    parts: list[str] = []
    current: BaseException | None = error
    while current is not None:
        parts += [str(current), repr(current), repr(current.args)]
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


async def test_tokens_never_reach_logs_reprs_or_exceptions(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # SQL statements and their parameters, as `echo=True` would print them.
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")

    user, connection_id = await connect_everything(store)
    connection = await store.toggl_connections.get(user, connection_id)
    token = await store.toggl_connections.token(user, connection_id)
    await store.toggl_connections.set_token(user, connection_id, TOGGL_TOKEN)
    await store.exist_connections.rotate(user, exist_tokens())
    tokens = await store.exist_connections.tokens(user)
    exist = await store.exist_connections.get(user)
    report = await store.rotate_secrets()
    shown = (store, store.box, connection, token, tokens, exist, report)
    logging.getLogger("timebridge.test").info("objects: %r", shown)

    with pytest.raises(AccountNotFound) as missing_owner:
        await store.toggl_connections.create(4242, TOGGL_TOKEN)
    with pytest.raises(UndecryptableSecret) as unreadable:
        await Store(store.database, SecretBox([new_key()])).toggl_connections.token(
            user, connection_id
        )

    assert "INSERT INTO toggl_connections" in caplog.text  # the SQL was logged, parameters too
    _assert_clean(caplog.text)
    for record in caplog.records:
        _assert_clean(repr(record.__dict__))
    for thing in shown:
        _assert_clean(repr(thing))
        _assert_clean(str(thing))
    _assert_clean(_exception_text(missing_owner.value))
    _assert_clean(_exception_text(unreadable.value))


def test_settings_never_show_keys_or_database_passwords(tmp_path: Path) -> None:
    key = new_key()
    settings = Settings(
        data_dir=tmp_path,
        secret_keys=SecretStr(key),
        database_url="postgresql://timebridge:hunter2@db.internal/timebridge",
    )
    assert key not in repr(settings) and key not in str(settings)
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in settings.display_database_url
    assert "hunter2" not in repr(Database(settings.database_url))
