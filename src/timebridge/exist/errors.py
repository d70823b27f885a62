"""Exceptions of the Exist client, grouped by what the caller can do about them.

`error_for_response` and `error_for_transport` are the only places that map HTTP outcomes to
these classes. Per-item failures of a write (a 202 answer) are not exceptions: they come back as
data in `WriteResult.failed`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import httpx

from timebridge.errors import UpstreamError, header_seconds, transport_retry_reason
from timebridge.retry import RetryReason

#: OAuth2 error codes (RFC 6749, 5.2) meaning the grant or the client credentials are dead.
_DEAD_GRANT_ERRORS = frozenset(
    {"invalid_grant", "invalid_client", "unauthorized_client", "invalid_token"}
)


class ExistError(UpstreamError):
    """Any failure talking to Exist."""


class AuthenticationError(ExistError):
    """401 (or a refused OAuth grant): the token is wrong, expired or revoked; reconnect."""


class RateLimited(ExistError):
    """429: over 300 requests an hour for this token; retry after `retry_after` seconds."""

    retry_reason = RetryReason.RATE_LIMITED


class NotFound(ExistError):
    """404: no such resource, or a page past the end of a list."""


class InvalidRequest(ExistError):
    """400 and other 4xx: Exist refused the whole request; `message` is Exist's explanation."""


class ServerError(ExistError):
    """5xx: Exist failed. Retried for requests that are safe to repeat."""

    retry_reason = RetryReason.SERVER_ERROR


class TransportError(ExistError):
    """No usable answer: connection refused, dropped, or timed out."""

    def __init__(self, message: str, *, reason: RetryReason) -> None:
        super().__init__(message)
        self.retry_reason = reason


def _message(response: httpx.Response) -> str:
    """Exist's own words: DRF's `detail`, OAuth's `error_description`/`error`, or the text."""
    text = ""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        for key in ("detail", "error_description", "error", "message"):
            value = payload.get(key)
            if isinstance(value, str) and value.strip():
                text = value
                break
    elif isinstance(payload, str):
        text = payload
    if not text:
        text = response.text
    text = " ".join(text.split())
    if not text:
        text = response.reason_phrase or f"HTTP {response.status_code}"
    return text[:300]


def _oauth_error(response: httpx.Response) -> str | None:
    try:
        payload = response.json()
    except ValueError:
        return None
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, str):
            return error
    return None


def error_for_response(response: httpx.Response) -> ExistError | None:
    """The exception an Exist response stands for, or None for a success (202 included)."""
    status = response.status_code
    if status < 400:
        return None
    message = _message(response)
    if status == 401 or (status == 400 and _oauth_error(response) in _DEAD_GRANT_ERRORS):
        return AuthenticationError(message, status_code=status)
    if status == 404:
        return NotFound(message, status_code=status)
    if status == 429:
        return RateLimited(
            f"rate limited ({message})",
            status_code=status,
            retry_after=header_seconds(response.headers.get("Retry-After")),
        )
    if status >= 500:
        return ServerError(message, status_code=status)
    return InvalidRequest(message, status_code=status)


def error_for_transport(error: httpx.TransportError) -> ExistError:
    """The exception for a request that got no usable response."""
    reason = transport_retry_reason(error)
    kind = type(error).__name__
    return TransportError(f"no answer from Exist ({kind}: {error})", reason=reason)


def _redact(error: ExistError, secrets: Iterable[str]) -> ExistError:
    for secret in secrets:
        if secret and secret in error.message:
            error.message = error.message.replace(secret, "<hidden>")
            error.args = (error.message,)
    return error


class ExistErrors:
    """The `ErrorTranslator` for Exist.

    `secrets` returns the credentials in use; should an upstream message ever echo one, it is
    masked before the exception exists anywhere else.
    """

    service = "exist"

    def __init__(self, secrets: Callable[[], Iterable[str]] = tuple) -> None:
        self._secrets = secrets

    def for_response(self, response: httpx.Response) -> ExistError | None:
        error = error_for_response(response)
        return None if error is None else _redact(error, self._secrets())

    def for_transport(self, error: httpx.TransportError) -> ExistError:
        return _redact(error_for_transport(error), self._secrets())
