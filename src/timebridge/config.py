"""Settings of the service, from `TIMEBRIDGE_*` environment variables.

One install serves one person with no setup at all (a SQLite file and a generated key in the
user's data directory) and, with `TIMEBRIDGE_DATABASE_URL` pointing at PostgreSQL and
`TIMEBRIDGE_SECRET_KEYS` set, many users across machines. Everything here has a default that
makes the first case work; the second is a matter of setting two variables.
"""

from __future__ import annotations

from pathlib import Path

import platformdirs
from croniter import croniter
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

APP_NAME = "timebridge"
#: The file, in the data directory, that holds the generated secret keys of the embedded default.
KEY_FILE_NAME = "secret-keys"
#: The SQLite file of the embedded default, in the data directory.
DATABASE_FILE_NAME = "timebridge.db"


def default_data_dir() -> Path:
    """Where the embedded default keeps its database and key file (per user, per platform)."""
    return platformdirs.user_data_path(APP_NAME)


def sqlite_url(path: Path) -> str:
    """The async SQLAlchemy URL of a SQLite file."""
    return f"sqlite+aiosqlite:///{path}"


class Settings(BaseSettings):
    """What the service needs to start; later issues add fields of their own."""

    # Inputs stay out of validation errors: they may be keys or URLs with passwords.
    model_config = SettingsConfigDict(
        env_prefix="TIMEBRIDGE_", extra="ignore", hide_input_in_errors=True
    )

    #: Holds the embedded default's SQLite file and generated key file.
    data_dir: Path = Field(default_factory=default_data_dir)
    #: SQLAlchemy URL; empty means the SQLite file in `data_dir`. `postgresql://…` URLs are
    #: served by psycopg 3. Kept out of reprs: it may carry a database password.
    database_url: str = Field(default="", repr=False)
    #: Fernet keys, comma-separated; the first encrypts, all decrypt (so keys can be rotated).
    #: Unset: the key file in `data_dir`, generated on first start of the embedded default.
    secret_keys: SecretStr | None = None
    #: Where the Toggl Track v9 API and Exist's API and OAuth endpoints are (the real services
    #: by default; the simulators in the demo and tests).
    toggl_base_url: str = "https://api.track.toggl.com/api/v9/"
    exist_base_url: str = "https://exist.io/api/2/"
    exist_oauth_base_url: str = "https://exist.io/oauth2/"
    #: The Exist OAuth client Timebridge acts as (needed to refresh users' tokens).
    exist_client_id: str | None = None
    exist_client_secret: SecretStr | None = None
    #: Where browsers reach this service (`http://127.0.0.1:8000` by default): sign-in links and
    #: Exist's OAuth redirect are built on it. `https://…` makes session cookies Secure.
    public_url: str = "http://127.0.0.1:8000"
    #: Toggl webhooks: how long the events of one user are gathered into one sync (seconds).
    webhook_coalesce_seconds: float = Field(default=3.0, ge=0, le=600)
    #: At scale, each user's sync is spread over this many seconds after the cycle's start (a
    #: stable per-user offset), so thousands of users do not hit Toggl and Exist at once.
    sync_jitter_seconds: int = Field(default=0, ge=0, le=86_400)
    #: How many users the embedded scheduler syncs at once.
    sync_concurrency: int = Field(default=8, ge=1, le=256)
    #: When syncs run (cron, in UTC); hourly at :40 by default.
    sync_cron: str = "40 * * * *"
    #: How long run records are kept (the daily purge deletes older ones).
    run_history_days: int = Field(default=90, ge=1, le=3650)
    #: Whether starting the service applies pending migrations. Unset: yes for SQLite (nobody
    #: else will), no for PostgreSQL, where `timebridge db upgrade` runs once per deploy rather
    #: than every worker racing to migrate.
    auto_migrate: bool | None = None
    #: The gateway: requests per second one API key may make (a burst of as many is allowed),
    #: upstream timeouts (connect → 504, read → 504) and the largest upstream answer passed on.
    gateway_rate_limit: float = Field(default=10.0, gt=0, le=100_000)
    gateway_connect_timeout: float = Field(default=5.0, gt=0, le=300)
    gateway_read_timeout: float = Field(default=30.0, gt=0, le=600)
    gateway_max_response_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"TIMEBRIDGE_PUBLIC_URL must be an http(s) URL, not {value!r}")
        return value

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("sync_cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        # Checked here so that a typo fails at start-up, not at the first scheduled run.
        value = value.strip()
        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValueError(f"not a five-field cron expression: {value!r}")
        return value

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if not self.database_url.strip():
            self.database_url = sqlite_url(self.data_dir / DATABASE_FILE_NAME)
        else:
            try:
                make_url(self.database_url)
            except ArgumentError:
                # The URL itself stays out of the message: it may hold a password.
                raise ValueError("TIMEBRIDGE_DATABASE_URL is not a database URL") from None
        return self

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded default (or any SQLite file)."""
        return make_url(self.database_url).get_backend_name() == "sqlite"

    @property
    def migrate_on_start(self) -> bool:
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate

    @property
    def callback_url(self) -> str | None:
        """`public_url` when it was set (`TIMEBRIDGE_PUBLIC_URL`), else None: Toggl's webhooks
        call this service back there, and the default address is nobody's but this machine's."""
        return self.public_url if "public_url" in self.model_fields_set else None

    @property
    def exist_sign_in(self) -> bool:
        """Whether "Sign in with Exist" is offered (an Exist OAuth client is configured)."""
        return bool(self.exist_client_id) and self.exist_client_secret is not None

    @property
    def key_file(self) -> Path:
        return self.data_dir / KEY_FILE_NAME

    @property
    def display_database_url(self) -> str:
        """The database URL with any password masked, for logs and CLI output."""
        return make_url(self.database_url).render_as_string(hide_password=True)
