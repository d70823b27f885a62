"""The root of every error raised for an upstream API (Toggl Track, Exist)."""

from __future__ import annotations

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
