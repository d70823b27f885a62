"""The CLI's config file: TOML in the user's config directory, readable by its owner only.

Tokens saved here are the user's own credentials for personal use of the CLI; the service keeps
its secrets encrypted in its database instead.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import platformdirs
import tomli_w

CONFIG_ENV = "TIMEBRIDGE_CONFIG"


def config_path() -> Path:
    override = os.environ.get(CONFIG_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir("timebridge")) / "config.toml"


class ConfigError(Exception):
    """The config file exists but cannot be read."""


def load_config(path: Path | None = None) -> dict[str, Any]:
    path = path or config_path()
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc


def config_value(section: str, key: str, path: Path | None = None) -> str | None:
    value = load_config(path).get(section, {}).get(key)
    return str(value) if value is not None else None


def save_section(section: str, values: dict[str, Any], path: Path | None = None) -> Path:
    """Merge `values` into `[section]` and write the file with mode 0600, atomically."""
    path = path or config_path()
    data = load_config(path)
    merged = {**data.get(section, {}), **{k: v for k, v in values.items() if v is not None}}
    data[section] = merged
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        tomli_w.dump(data, handle)
    os.replace(temporary, path)
    return path
