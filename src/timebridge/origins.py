"""Where a connection's service lives: the origin its token was checked against.

Every Toggl or Exist connection stores its origin (the real services by default, a simulator or
a reverse proxy otherwise), and every caller builds its client from that origin: a token is only
ever sent to the origin it was validated against. The API paths below it are fixed, so the
gateway and webhooks can reach `reports/api/v3/` or `webhooks/api/v1/` on the same origin.

An origin is `scheme://host[:port]` with an optional path prefix (a proxy's), never a query. A
URL given with the API path (`http://127.0.0.1:8181/api/v9`) names the same origin; a URL that
names another API version (`…/api/v8`) is refused with a message that says what to write.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

#: The real services.
TOGGL_ORIGIN = "https://api.track.toggl.com"
EXIST_ORIGIN = "https://exist.io"

TOGGL_API_PATH = "/api/v9"
EXIST_API_PATH = "/api/2"
EXIST_OAUTH_PATH = "/oauth2"

_OTHER_VERSION = re.compile(r"/api/v?\d+$")


class OriginError(ValueError):
    """A URL that cannot be a service's origin; the message says what to write instead."""


def _origin(url: str, service: str, api_path: str, example: str) -> str:
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OriginError(f"{service}: {json.dumps(text)} is not an http(s) URL (e.g. {example})")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise OriginError(
            f"{service}: {json.dumps(text)} must not carry a query, a fragment or credentials "
            f"(e.g. {example})"
        )
    path = parts.path.rstrip("/")
    for suffix in (api_path, EXIST_OAUTH_PATH if api_path == EXIST_API_PATH else None):
        if suffix and path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    else:
        if _OTHER_VERSION.search(path):
            raise OriginError(
                f"{service}: {json.dumps(text)} names another API version; Timebridge speaks "
                f"{api_path.removeprefix('/api/')} (e.g. {example})"
            )
    netloc = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    if ":" in parts.hostname:  # an IPv6 literal keeps its brackets
        netloc = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port is not None else "")
    return f"{parts.scheme}://{netloc}{path}"


def toggl_origin(url: str) -> str:
    """The Toggl origin a URL names: the origin itself or its `/api/v9` base URL."""
    return _origin(url, "Toggl Track", TOGGL_API_PATH, f"{TOGGL_ORIGIN}{TOGGL_API_PATH}")


def exist_origin(url: str) -> str:
    """The Exist origin a URL names: the origin itself, its `/api/2` or its `/oauth2` URL."""
    return _origin(url, "Exist", EXIST_API_PATH, f"{EXIST_ORIGIN}{EXIST_API_PATH}")


def toggl_api_url(origin: str) -> str:
    """The Toggl Track v9 API base URL under `origin`."""
    return f"{origin}{TOGGL_API_PATH}/"


def exist_api_url(origin: str) -> str:
    """Exist's API v2 base URL under `origin`."""
    return f"{origin}{EXIST_API_PATH}/"


def exist_oauth_url(origin: str) -> str:
    """Exist's OAuth2 endpoints under `origin`."""
    return f"{origin}{EXIST_OAUTH_PATH}/"


__all__ = [
    "EXIST_ORIGIN",
    "TOGGL_ORIGIN",
    "OriginError",
    "exist_api_url",
    "exist_oauth_url",
    "exist_origin",
    "toggl_api_url",
    "toggl_origin",
]
