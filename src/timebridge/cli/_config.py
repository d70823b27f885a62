"""The CLI's files: config (TOML) and cache (JSON) in the user's config directory, owner-only.

Tokens saved in the config are the user's own credentials for personal use of the CLI; the
service keeps its secrets encrypted in its database instead. The cache beside it holds what the
CLI learnt from the APIs and may forget at any time (never a token). The TOML and platformdirs
modules load when a file is first found, read or written, not when the CLI starts.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

CONFIG_ENV = "TIMEBRIDGE_CONFIG"
APP_NAME = "timebridge"


def config_dir() -> Path:
    """The user's config directory for Timebridge (e.g. ~/.config/timebridge)."""
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME))


def config_path() -> Path:
    override = os.environ.get(CONFIG_ENV)
    if override:
        return Path(override).expanduser()
    return config_dir() / "config.toml"


def cache_path(name: str) -> Path:
    """A cache file next to the config file (so `TIMEBRIDGE_CONFIG` moves both)."""
    return config_path().with_name(f"{name}-cache.json")


class ConfigError(Exception):
    """The config file exists but cannot be read."""


def load_config(path: Path | None = None) -> dict[str, Any]:
    import tomllib

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
    return str(value) if value not in (None, "") else None


def write_private(path: Path, content: bytes) -> None:
    """Write `content` to `path` with mode 0600, atomically (a temp file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def save_section(section: str, values: dict[str, Any], path: Path | None = None) -> Path:
    """Merge `values` into `[section]` and write the file with mode 0600, atomically."""
    import tomli_w

    path = path or config_path()
    data = load_config(path)
    merged = {**data.get(section, {}), **{k: v for k, v in values.items() if v is not None}}
    data[section] = merged
    write_private(path, tomli_w.dumps(data).encode())
    return path


def load_cache(name: str) -> dict[str, Any]:
    """The cache's content; an unreadable or missing cache is an empty one."""
    try:
        data = json.loads(cache_path(name).read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_cache(name: str, data: dict[str, Any]) -> None:
    """Replace the cache (mode 0600). A cache that cannot be written is not an error."""
    with contextlib.suppress(OSError):
        write_private(cache_path(name), json.dumps(data, sort_keys=True).encode())
