"""Settings: zero-setup defaults for one person, two variables for a shared deployment."""

from __future__ import annotations

from pathlib import Path

import platformdirs
import pytest
from pydantic import ValidationError

from timebridge.config import Settings

ENV = (
    "TIMEBRIDGE_DATA_DIR",
    "TIMEBRIDGE_DATABASE_URL",
    "TIMEBRIDGE_SECRET_KEYS",
    "TIMEBRIDGE_SYNC_CRON",
    "TIMEBRIDGE_AUTO_MIGRATE",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def test_the_default_is_a_sqlite_file_in_the_users_data_directory() -> None:
    settings = Settings()
    data_dir = Path(platformdirs.user_data_dir("timebridge"))
    assert settings.data_dir == data_dir
    assert settings.database_url == f"sqlite+aiosqlite:///{data_dir / 'timebridge.db'}"
    assert settings.key_file == data_dir / "secret-keys"
    assert settings.secret_keys is None
    assert settings.sync_cron == "40 * * * *"
    assert settings.is_sqlite and settings.migrate_on_start


def test_a_shared_deployment_is_two_environment_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TIMEBRIDGE_DATABASE_URL", "postgresql://tb@db/timebridge")
    monkeypatch.setenv("TIMEBRIDGE_SECRET_KEYS", "k1,k2")
    monkeypatch.setenv("TIMEBRIDGE_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert settings.database_url == "postgresql://tb@db/timebridge"
    assert settings.secret_keys is not None
    assert settings.secret_keys.get_secret_value() == "k1,k2"
    assert settings.data_dir == tmp_path
    # Workers do not race to migrate: `timebridge db upgrade` runs once per deploy.
    assert not settings.is_sqlite and not settings.migrate_on_start
    monkeypatch.setenv("TIMEBRIDGE_AUTO_MIGRATE", "true")
    assert Settings().migrate_on_start


def test_a_bad_cron_expression_fails_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIMEBRIDGE_SYNC_CRON", "every hour")
    with pytest.raises(ValidationError, match="cron"):
        Settings()
    monkeypatch.setenv("TIMEBRIDGE_SYNC_CRON", " */15 * * * * ")
    assert Settings().sync_cron == "*/15 * * * *"


def test_a_bad_database_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(database_url="not a url with secret-password")
    assert "secret-password" not in str(refused.value)
