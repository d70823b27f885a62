"""The root of every error raised for an upstream API (Toggl Track, Exist)."""

from __future__ import annotations

import httpx

from timebridge.retry import RetryReason


class UpstreamError(Exception):
    """An upstream API call failed; `retry_reason` says whether a retry may help."""

    #: Why a retry may succeed, or None when repeating the call cannot help.
    retry_reason: RetryReason | None = None

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        #: Seconds the upstream asked us to wait before trying again, when it said so.
        self.retry_after = retry_after


def header_seconds(value: str | None) -> float | None:
    """A non-negative number of seconds from a header such as Retry-After, else None."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def transport_retry_reason(error: httpx.TransportError) -> RetryReason:
    """Whether a request that got no answer was surely never sent (so any call may be resent)."""
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
        return RetryReason.CONNECT_FAILED
    return RetryReason.NO_ANSWER
