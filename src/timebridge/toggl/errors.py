"""Exceptions of the Toggl Track client, grouped by what the caller can do about them.

`error_for_response` and `error_for_transport` are the only places that map HTTP outcomes to
these classes.
"""

from __future__ import annotations

import httpx

from timebridge.errors import UpstreamError, header_seconds, transport_retry_reason
from timebridge.retry import RetryReason

QUOTA_REMAINING_HEADER = "X-Toggl-Quota-Remaining"
QUOTA_RESETS_IN_HEADER = "X-Toggl-Quota-Resets-In"


class TogglError(UpstreamError):
    """Any failure talking to Toggl Track."""


class AuthenticationError(TogglError):
    """401/403: the API token is wrong, revoked, or lacks access to the resource."""


class QuotaExceeded(TogglError):
    """402: the hourly request quota is spent. Never retried; wait `resets_in` seconds."""

    def __init__(self, message: str, *, status_code: int = 402, resets_in: float | None) -> None:
        super().__init__(message, status_code=status_code)
        #: Seconds until the quota window frees a request, from X-Toggl-Quota-Resets-In.
        self.resets_in = resets_in


class RateLimited(TogglError):
    """429: too many requests in a short time; retry after `retry_after` seconds."""

    retry_reason = RetryReason.RATE_LIMITED


class NotFound(TogglError):
    """404: no such resource (or not visible to this token)."""


class InvalidRequest(TogglError):
    """400 and other 4xx: Toggl refused the request; `message` is Toggl's own explanation."""


class ServerError(TogglError):
    """5xx: Toggl failed. Retried for requests that are safe to repeat."""

    retry_reason = RetryReason.SERVER_ERROR


class TransportError(TogglError):
    """No usable answer: connection refused, dropped, or timed out."""

    def __init__(self, message: str, *, reason: RetryReason) -> None:
        super().__init__(message)
        self.retry_reason = reason


def _message(response: httpx.Response) -> str:
    """Toggl's error bodies are plain text or a JSON string; keep them short and single-line."""
    text = response.text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    text = " ".join(text.split())
    if not text:
        text = response.reason_phrase or f"HTTP {response.status_code}"
    return text[:300]


def error_for_response(response: httpx.Response) -> TogglError | None:
    """The exception a Toggl response stands for, or None if it is a success."""
    status = response.status_code
    if status < 400:
        return None
    message = _message(response)
    if status in (401, 403):
        return AuthenticationError(message, status_code=status)
    if status == 402:
        resets_in = header_seconds(response.headers.get(QUOTA_RESETS_IN_HEADER))
        return QuotaExceeded(
            f"hourly API quota exhausted ({message})", status_code=status, resets_in=resets_in
        )
    if status == 404:
        return NotFound(message, status_code=status)
    if status == 429:
        return RateLimited(
            message,
            status_code=status,
            retry_after=header_seconds(response.headers.get("Retry-After")),
        )
    if status >= 500:
        return ServerError(message, status_code=status)
    return InvalidRequest(message, status_code=status)


def error_for_transport(error: httpx.TransportError) -> TogglError:
    """The exception for a request that got no usable response."""
    reason = transport_retry_reason(error)
    kind = type(error).__name__
    return TransportError(f"no answer from Toggl Track ({kind}: {error})", reason=reason)


class TogglErrors:
    """The `ErrorTranslator` for Toggl Track."""

    service = "toggl"

    def for_response(self, response: httpx.Response) -> TogglError | None:
        return error_for_response(response)

    def for_transport(self, error: httpx.TransportError) -> TogglError:
        return error_for_transport(error)
