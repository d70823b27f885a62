"""Which paths the proxy forwards: native Toggl API paths, nothing that could leave the origin.

A path is checked as it arrived (still percent-encoded) and as it reads decoded once and twice:
at no layer may it hold `//`, a scheme or any `:`, `\\`, `@`, NUL or another control character, a
`.` or `..` segment, or anything outside ASCII (unicode dots and look-alikes). A path that still
decodes further after two rounds is refused too. What passes is appended, unchanged, to the
connection's origin: the upstream URL is never built by resolving the caller's text against it.
"""

from __future__ import annotations

import functools
import re
from urllib.parse import unquote

#: The Toggl APIs the gateway reaches, below a connection's origin.
ALLOWED_PREFIXES = ("api/v9/", "reports/api/v3/", "webhooks/api/v1/")
#: Longer paths are refused (no Toggl path comes near it).
MAX_PATH_LENGTH = 2048
_FORBIDDEN = ("//", "\\", "@", ":")


class PathRefused(ValueError):
    """Why a path is not forwarded (safe to show the caller)."""


_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]")


def _check_layer(text: str) -> None:
    for bad in _FORBIDDEN:
        if bad in text:
            raise PathRefused(f"the path must not contain {bad!r}")
    odd = _NOT_PRINTABLE.search(text)
    if odd is not None:
        if ord(odd[0]) < 0x20 or ord(odd[0]) == 0x7F:
            raise PathRefused("the path must not contain control characters")
        raise PathRefused("the path must be ASCII")
    if "." in text and any(segment in (".", "..") for segment in text.split("/")):
        raise PathRefused("the path must not contain '.' or '..' segments")


def _decode(text: str) -> str:
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise PathRefused("the path must be ASCII") from None


@functools.lru_cache(maxsize=4096)
def checked_path(raw: str) -> str:
    """`raw` (the part after `/toggl-track/`, as sent) if it may be forwarded; else
    `PathRefused`. (A path that passed is remembered: callers repeat their paths.)"""
    if len(raw) > MAX_PATH_LENGTH:
        raise PathRefused(f"the path is longer than {MAX_PATH_LENGTH} characters")
    layers = [raw]
    for _ in range(2):
        layers.append(_decode(layers[-1]))
    if _decode(layers[-1]) != layers[-1]:
        raise PathRefused("the path is percent-encoded more than twice")
    for layer in layers:
        _check_layer(layer)
    if not (raw.startswith(ALLOWED_PREFIXES) and layers[-1].startswith(ALLOWED_PREFIXES)):
        raise PathRefused(
            "the path must start with " + ", ".join(ALLOWED_PREFIXES) + " (a native Toggl path)"
        )
    return raw


@functools.lru_cache(maxsize=4096)
def quota_scope(path: str) -> str:
    """Which of Toggl's quotas a path spends: `user`, or `workspace:<id>`."""
    parts = _decode(_decode(path)).split("/")
    # api/v9/workspaces/{wid}/…, reports/api/v3/workspace/{wid}/…, webhooks/api/v1/…/{wid}
    for index, part in enumerate(parts[:-1]):
        if part in ("workspaces", "workspace") and parts[index + 1].isdigit():
            return f"workspace:{parts[index + 1]}"
    if parts[:3] == ["webhooks", "api", "v1"] and len(parts) > 4 and parts[4].isdigit():
        return f"workspace:{parts[4]}"
    return "user"


__all__ = ["ALLOWED_PREFIXES", "MAX_PATH_LENGTH", "PathRefused", "checked_path", "quota_scope"]
