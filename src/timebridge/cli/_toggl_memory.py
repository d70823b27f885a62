"""What the Toggl CLI remembers between commands, so it spends less of Toggl's hourly quota.

Toggl allows 30 user-scoped requests an hour. Without memory every workspace-scoped command
would first spend a `GET /me` to learn the default workspace, and every table of entries would
need the user's time zone and the names of projects. So the CLI keeps, per token and base URL
(a fingerprint of both, never the token itself; through a gateway, per key, gateway and
connection), the part of `/me` it needs and the project
names it has seen, in `toggl-cache.json` beside the config file (mode 0600). It is only a
cache: `timebridge toggl me` refreshes the profile, a remembered workspace that Toggl refuses
(403/404) is looked up again, and deleting the file costs one request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from timebridge.cli._config import load_cache, save_cache

CACHE_NAME = "toggl"


def gateway_memory_key(gateway_url: str, connection: str | None) -> str:
    """The memory key of an account reached through a gateway: its URL and the connection
    (each connection is a Toggl account of its own); with the key, it names the entry."""
    return f"gateway {gateway_url.strip().rstrip('/')} {connection or ''}".rstrip()


def fingerprint(token: str, base_url: str) -> str:
    """A stable key for one account at one Toggl (or gateway); the token cannot be read back."""
    material = f"{base_url.strip().rstrip('/')}\n{token.strip()}".encode()
    return hashlib.sha256(material).hexdigest()[:32]


@dataclass(frozen=True)
class RememberedProfile:
    """The part of `GET /me` the CLI needs."""

    user_id: int
    default_workspace_id: int | None
    timezone: str


class TogglMemory:
    """The cache entry of one token and base URL; `save()` writes changes back."""

    def __init__(self, token: str, base_url: str) -> None:
        self._key = fingerprint(token, base_url)
        entry = load_cache(CACHE_NAME).get(self._key)
        self._entry: dict[str, Any] = entry if isinstance(entry, dict) else {}
        self._changed = False

    @property
    def profile(self) -> RememberedProfile | None:
        raw = self._entry.get("me")
        if not isinstance(raw, dict):
            return None
        try:
            workspace = raw.get("default_workspace_id")
            return RememberedProfile(
                user_id=int(raw["user_id"]),
                default_workspace_id=int(workspace) if workspace is not None else None,
                timezone=str(raw["timezone"]),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def remember_profile(self, profile: RememberedProfile) -> None:
        if profile != self.profile:
            self._entry["me"] = {
                "user_id": profile.user_id,
                "default_workspace_id": profile.default_workspace_id,
                "timezone": profile.timezone,
            }
            self._changed = True

    def forget_profile(self) -> None:
        if self._entry.pop("me", None) is not None:
            self._changed = True

    def project_names(self, workspace_id: int) -> dict[int, str | None]:
        """Project id -> name as last seen (None: an id Toggl did not list, e.g. deleted)."""
        raw = self._entry.get("projects", {}).get(str(workspace_id), {})
        if not isinstance(raw, dict):
            return {}
        names: dict[int, str | None] = {}
        for key, name in raw.items():
            if key.isdigit() and (name is None or isinstance(name, str)):
                names[int(key)] = name
        return names

    def remember_projects(
        self,
        workspace_id: int,
        names: Mapping[int, str | None],
        *,
        missing: Iterable[int] = (),
    ) -> None:
        """Merge project names in; ids in `missing` are known not to be listed by Toggl."""
        known = self.project_names(workspace_id)
        merged = {**known, **dict.fromkeys(missing), **names}
        if merged != known:
            projects = self._entry.setdefault("projects", {})
            projects[str(workspace_id)] = {str(key): value for key, value in merged.items()}
            self._changed = True

    def save(self) -> None:
        if not self._changed:
            return
        cache = load_cache(CACHE_NAME)
        cache[self._key] = self._entry
        save_cache(CACHE_NAME, cache)
        self._changed = False
