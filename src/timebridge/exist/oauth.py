"""The browser half of Exist's OAuth2 flow: where to send the user, and how to read the answer.

The token half (code exchange, refresh) is a call like any other and lives with the client.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

from timebridge.exist.models import BRIDGE_SCOPES

DEFAULT_OAUTH_BASE_URL = "https://exist.io/oauth2/"


def _base(oauth_base_url: str) -> str:
    return oauth_base_url if oauth_base_url.endswith("/") else oauth_base_url + "/"


def token_url(oauth_base_url: str = DEFAULT_OAUTH_BASE_URL) -> str:
    """`POST` here for codes and refreshes (outside `/api/2/`)."""
    return _base(oauth_base_url) + "access_token"


def new_state() -> str:
    """An unguessable `state` value that ties the callback to the request that started it."""
    return secrets.token_urlsafe(24)


def authorize_url(
    client_id: str,
    redirect_uri: str | None = None,
    *,
    state: str | None = None,
    scopes: Iterable[str] = BRIDGE_SCOPES,
    oauth_base_url: str = DEFAULT_OAUTH_BASE_URL,
) -> str:
    """The page where the user approves the client; scopes are joined by spaces (sent as `+`).

    Without `redirect_uri`, Exist sends the user back to the client's registered redirect URI
    (a production client, existintegrations2, relies on that); then exchange the code without
    one too."""
    if not client_id.strip():
        raise ValueError("client_id is empty")
    if redirect_uri is not None and not redirect_uri.strip():
        raise ValueError("redirect_uri is empty (leave it out with None)")
    scope_list = [scope.strip() for scope in scopes]
    if not scope_list or not all(scope_list):
        raise ValueError("ask for at least one scope")
    query = {"response_type": "code", "client_id": client_id}
    if redirect_uri is not None:
        query["redirect_uri"] = redirect_uri
    query["scope"] = " ".join(scope_list)
    if state is not None:
        query["state"] = state
    return f"{_base(oauth_base_url)}authorize?{urlencode(query)}"


class AuthorizationDenied(Exception):
    """The user refused the client, or Exist refused the request (`error=` on the callback)."""

    def __init__(self, error: str) -> None:
        super().__init__(f"Exist did not authorise the client: {error}")
        self.error = error


@dataclass(frozen=True)
class Callback:
    """What Exist sent to the redirect URI."""

    #: Short-lived, but a credential all the same: kept out of the repr.
    code: str = field(repr=False)

    @classmethod
    def parse(cls, query: Mapping[str, str], *, expected_state: str | None) -> Callback:
        """Read the redirect's query; refuses a mismatched `state` (a forged callback)."""
        if expected_state is not None and query.get("state") != expected_state:
            raise AuthorizationDenied("state mismatch (the callback was not for this request)")
        error = query.get("error")
        if error:
            raise AuthorizationDenied(error)
        code = query.get("code")
        if not code:
            raise AuthorizationDenied("no code in the callback")
        return cls(code=code)
