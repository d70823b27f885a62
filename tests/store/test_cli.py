"""`timebridge db …` and `timebridge secrets …`: they work on both databases and print counts,
never a token."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from pydantic import SecretStr
from typer.testing import CliRunner, Result

from timebridge.cli.db import db_app
from timebridge.cli.secrets import secrets_app
from timebridge.config import Settings
from timebridge.store import Database, SecretBox, Store, head_revision, new_key, open_store
from timebridge.store.crypto import read_key_file

TOKEN = "tok-cli-0123456789abcdef"


def invoke(env: dict[str, str], *args: str) -> Result:
    app = typer.Typer()
    app.add_typer(db_app, name="db")
    app.add_typer(secrets_app, name="secrets")
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **env})


async def _store_a_token(settings: Settings) -> tuple[int, str]:
    async with await open_store(settings) as store:
        user = (await store.accounts.create("ada@example.com")).id
        return user, (await store.toggl_connections.create(user, TOKEN)).id


async def _read_token(database_url: str, keys: list[str], user: int, connection_id: str) -> str:
    database = Database(database_url)
    try:
        token = await Store(database, SecretBox(keys)).toggl_connections.token(user, connection_id)
        return token.get_secret_value()
    finally:
        await database.dispose()


def test_db_upgrade_migrates_and_says_where_the_database_is(
    empty_database_url: str, tmp_path: Path
) -> None:
    env = {"TIMEBRIDGE_DATABASE_URL": empty_database_url, "TIMEBRIDGE_DATA_DIR": str(tmp_path)}

    before = invoke(env, "db", "current")
    upgraded = invoke(env, "db", "upgrade")
    after = invoke(env, "db", "current")

    assert before.exit_code == 0 and "needs `timebridge db upgrade`" in before.output
    assert upgraded.exit_code == 0, upgraded.output
    assert f"revision {head_revision()}" in upgraded.output
    assert after.exit_code == 0 and "up to date" in after.output


def test_an_unreachable_database_is_one_line_with_the_password_masked(tmp_path: Path) -> None:
    url = "postgresql://timebridge:hunter2@127.0.0.1:9/nowhere"
    result = invoke(
        {"TIMEBRIDGE_DATABASE_URL": url, "TIMEBRIDGE_DATA_DIR": str(tmp_path)}, "db", "upgrade"
    )
    assert result.exit_code == 6
    assert "hunter2" not in result.output
    assert "***" in result.output and "Traceback" not in result.output


def test_rotating_the_key_file_moves_every_secret_to_a_new_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    env = {"TIMEBRIDGE_DATA_DIR": str(tmp_path)}
    user, connection_id = asyncio.run(_store_a_token(settings))
    [old_key] = read_key_file(settings.key_file)

    result = invoke(env, "secrets", "rotate", "--new-key", "--retire-old-keys")

    assert result.exit_code == 0, result.output
    assert "toggl_connections.token_encrypted" in result.output
    assert "1 secrets re-encrypted with the first of 2 keys" in result.output
    assert TOKEN not in result.output and old_key not in result.output
    [new_key_] = read_key_file(settings.key_file)
    assert new_key_ != old_key
    assert asyncio.run(_read_token(settings.database_url, [new_key_], user, connection_id)) == TOKEN


def test_rotating_configured_keys_on_a_shared_database(database_url: str, tmp_path: Path) -> None:
    old, new = new_key(), new_key()
    settings = Settings(database_url=database_url, data_dir=tmp_path, secret_keys=SecretStr(old))
    user, connection_id = asyncio.run(_store_a_token(settings))
    env = {
        "TIMEBRIDGE_DATABASE_URL": database_url,
        "TIMEBRIDGE_DATA_DIR": str(tmp_path),
        "TIMEBRIDGE_SECRET_KEYS": f"{new},{old}",
    }

    result = invoke(env, "secrets", "rotate")

    assert result.exit_code == 0, result.output
    assert "they can be removed" in result.output
    assert TOKEN not in result.output and new not in result.output and old not in result.output
    assert asyncio.run(_read_token(database_url, [new], user, connection_id)) == TOKEN


def test_the_key_file_options_refuse_configured_keys(tmp_path: Path) -> None:
    env = {"TIMEBRIDGE_DATA_DIR": str(tmp_path), "TIMEBRIDGE_SECRET_KEYS": new_key()}
    result = invoke(env, "secrets", "rotate", "--new-key")
    assert result.exit_code == 2
    assert "TIMEBRIDGE_SECRET_KEYS" in result.output


def test_new_key_prints_a_usable_key() -> None:
    result = invoke({}, "secrets", "new-key")
    assert result.exit_code == 0
    assert SecretBox([result.output.strip()]).key_count == 1


def test_bad_settings_are_one_line_and_exit_2(tmp_path: Path) -> None:
    env = {"TIMEBRIDGE_DATA_DIR": str(tmp_path)}
    cron = invoke({**env, "TIMEBRIDGE_SYNC_CRON": "hourly"}, "db", "upgrade")
    url = invoke({**env, "TIMEBRIDGE_DATABASE_URL": "no url, pass=hunter2"}, "db", "upgrade")

    assert (cron.exit_code, url.exit_code) == (2, 2)
    assert "TIMEBRIDGE_SYNC_CRON" in cron.output
    assert "TIMEBRIDGE_DATABASE_URL" in url.output and "hunter2" not in url.output
