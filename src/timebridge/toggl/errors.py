"""Exceptions of the Toggl Track client, grouped by what the caller can do about them.

`error_for_response` and `error_for_transport` are the only places that map HTTP outcomes to
these classes. Toggl's error bodies are JSON strings (reference/toggl.md §3), sometimes empty
(a 401); the client reads any body it may meet: a JSON string, a JSON object with a message
(as a gateway sends), plain text, or nothing at all.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, date, datetime, timedelta

import httpx

from timebridge.clock import Clock, SystemClock
from timebridge.errors import UpstreamError, header_seconds, transport_retry_reason
from timebridge.retry import RetryReason

QUOTA_REMAINING_HEADER = "X-Toggl-Quota-Remaining"
QUOTA_RESETS_IN_HEADER = "X-Toggl-Quota-Resets-In"
#: The code of a Timebridge gateway's 429 for a connection whose Toggl quota is spent (its quota
#: guard answers for Toggl until the reset, `Retry-After` saying when).
GATEWAY_QUOTA_GUARD_CODE = "quota_exhausted"
#: Toggl's mark on a 401 that carried no credentials at all (recorded, reference/toggl.md §3).
AUTHORIZATION_MISSING_HEADER = "X-Authorization-Missing"

_START_DATE_FLOOR = re.compile(r"start_date must not be earlier than\s+(\d{4}-\d{2}-\d{2})?")
#: Toggl's 400s about a workspace's webhook allowance (reference/toggl.md §5): too many enabled
#: subscriptions, or too many events in one subscription for the plan.
_WEBHOOK_LIMIT = re.compile(
    r"already reached the limit of (?P<subs>\d+) enabled subscriptions"
    r"|plan allows up to (?P<events>\d+) events",
    re.IGNORECASE,
)
#: Toggl's 400s when the probe of a subscription's callback (on create or enable) failed.
_CALLBACK_UNREACHABLE = re.compile(
    r"^URL endpoint (?P<url>\S+) (?:responded with status (?P<status>\d+) instead of 200"
    r"|request failed with error)",
    re.IGNORECASE,
)


class TogglError(UpstreamError):
    """Any failure talking to Toggl Track."""

    #: The `code` of a Timebridge gateway's own JSON error (`{"error": {"code", "message"}}`):
    #: set when the gateway answered for itself (a refused key, a missing scope, an unreachable
    #: Toggl), None when the answer is Toggl's, passed through, or no gateway is in between.
    gateway_code: str | None = None


class AuthenticationError(TogglError):
    """401/403: the API token is wrong, revoked, or lacks access to the resource."""


class CredentialsMissing(TogglError):
    """401 marked `X-Authorization-Missing`: the request reached Toggl without credentials.

    Not an `AuthenticationError`: nothing is known about the token, which was never sent (a
    misconfigured auth or proxy dropped it), so it is no reason to think the token revoked.
    """


class QuotaExceeded(TogglError):
    """402: the hourly request quota is spent. Never retried; wait `resets_in` seconds.

    Toggl's 402 body is not a reliable explanation (it has been seen talking about "Premium
    functionality" on Premium workspaces), so the message is always ours: "hourly API quota
    used up, resets at HH:MM UTC", the time being the client's clock plus
    X-Toggl-Quota-Resets-In, rounded up to the minute and given in UTC (a message may be stored
    and shown to someone in another zone); "resets within the hour" without that header. What
    Toggl said is kept in `toggl_message`, for logs.
    """

    def __init__(
        self,
        *,
        resets_in: float | None,
        now: datetime,
        status_code: int = 402,
        toggl_message: str = "",
    ) -> None:
        #: Seconds until the quota window ends, from X-Toggl-Quota-Resets-In.
        self.resets_in = resets_in
        #: When the quota comes back (aware), if Toggl said.
        self.resets_at = _after(now, resets_in)
        #: The body of Toggl's answer, as it was.
        self.toggl_message = toggl_message
        super().__init__(quota_message(self.resets_at), status_code=status_code)


def _after(now: datetime, seconds: float | None) -> datetime | None:
    if seconds is None or not math.isfinite(seconds):
        return None
    try:
        return now + timedelta(seconds=seconds)
    except OverflowError:
        return None


def quota_message(resets_at: datetime | None) -> str:
    """What every message about a spent Toggl quota says."""
    if resets_at is None:
        return "hourly API quota used up, resets within the hour"
    instant = resets_at.astimezone(UTC)
    if instant.second or instant.microsecond:
        instant = instant.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return f"hourly API quota used up, resets at {instant:%H:%M} UTC"


class RateLimited(TogglError):
    """429: too many requests in a short time; retry after `retry_after` seconds."""

    retry_reason = RetryReason.RATE_LIMITED


class NotFound(TogglError):
    """404: no such resource (or not visible to this token)."""


class InvalidRequest(TogglError):
    """400 and other 4xx: Toggl refused the request; `message` is Toggl's own explanation."""


class StartDateTooEarly(InvalidRequest):
    """400 "start_date must not be earlier than <date>": the range reaches back further than
    this account may (Toggl's floor depends on the account; about three months)."""

    def __init__(self, message: str, *, earliest: date | None, status_code: int = 400) -> None:
        super().__init__(message, status_code=status_code)
        #: The earliest `start_date` Toggl accepts, as its message names it (None if it did not).
        self.earliest = earliest


class WebhookLimitReached(InvalidRequest):
    """400 "User … already reached the limit of N enabled subscriptions for workspace W", or
    "… plan allows up to N events per subscription": the workspace's plan allows no more.

    `message` is Toggl's; `limit` the N it names, and `per` which limit it is: "subscriptions"
    (enabled ones in the workspace) or "events" (in one subscription).
    """

    def __init__(self, message: str, *, limit: int, per: str, status_code: int = 400) -> None:
        super().__init__(message, status_code=status_code)
        self.limit = limit
        self.per = per


class CallbackUnreachable(InvalidRequest):
    """400 "URL endpoint {url} responded with status X instead of 200" / "URL endpoint {url}
    request failed with error: …": creating or enabling a webhook subscription probes its
    callback at once, and the callback did not answer 200.

    `message` is Toggl's; `url` the callback it names, `callback_status` the status the callback
    answered (None when no answer came).
    """

    def __init__(
        self, message: str, *, url: str, callback_status: int | None, status_code: int = 400
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.url = url
        self.callback_status = callback_status


class ServerError(TogglError):
    """5xx: Toggl failed. Retried for requests that are safe to repeat."""

    retry_reason = RetryReason.SERVER_ERROR


class TransportError(TogglError):
    """No usable answer: connection refused, dropped, or timed out."""

    def __init__(self, message: str, *, reason: RetryReason) -> None:
        super().__init__(message)
        self.retry_reason = reason


def _said(parsed: object) -> str | None:
    """The message in a parsed JSON body: the string itself, or an object's message."""
    if isinstance(parsed, str):
        return parsed
    if isinstance(parsed, dict):
        for key in ("message", "error", "detail"):
            value = parsed.get(key)
            if isinstance(value, str):
                return value
            if isinstance(value, dict):
                inner = _said(value)
                if inner is not None:
                    return inner
    return None


def gateway_error(response: httpx.Response) -> tuple[str, str] | None:
    """The `(code, message)` of a Timebridge gateway's JSON error, or None for any other body.

    The gateway answers for itself with `{"error": {"code": "...", "message": "..."}}`; Toggl's
    own errors (JSON strings, plain text, empty bodies) never have that shape.
    """
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        parsed = json.loads(response.content)
    except ValueError:
        return None
    if not isinstance(parsed, dict) or not isinstance(error := parsed.get("error"), dict):
        return None
    code, message = error.get("code"), error.get("message")
    if not isinstance(code, str) or not code:
        return None
    return code, " ".join(message.split())[:300] if isinstance(message, str) else ""


def toggl_message(response: httpx.Response) -> str:
    """Toggl's explanation in a response, short and on one line; "" when there is none.

    An HTML page (a proxy's error page) says nothing worth repeating and counts as none.
    """
    text = response.text.strip()
    if not text or _is_html(response, text):
        return ""
    try:
        said = _said(json.loads(text))
    except ValueError:
        said = None
    return " ".join((said if said is not None else text).split())[:300]


def _is_html(response: httpx.Response, text: str) -> bool:
    if response.headers.get("content-type", "").startswith("text/html"):
        return True
    return text[:15].lower().startswith(("<!doctype html", "<html"))


def _status_words(response: httpx.Response) -> str:
    reason = response.reason_phrase
    return f"{response.status_code} {reason}" if reason else f"HTTP {response.status_code}"


def _earliest(message: str) -> date | None:
    match = _START_DATE_FLOOR.search(message)
    if match is None or match[1] is None:
        return None
    try:
        return date.fromisoformat(match[1])
    except ValueError:
        return None


def error_for_response(
    response: httpx.Response, *, clock: Clock | None = None
) -> TogglError | None:
    """The exception a Toggl response stands for, or None if it is a success.

    `clock` (the client's; the system clock if None) dates a quota's reset. A Timebridge
    gateway's own error maps by its status like Toggl's (401/403 a refused key or scope, 429 its
    rate limit or quota guard, 502/504 an unreachable or silent Toggl) and keeps its code in
    `gateway_code`.
    """
    status = response.status_code
    if status < 400:
        return None
    error = _error_for_status(response, status, clock)
    gateway = gateway_error(response)
    if gateway is not None:
        error.gateway_code = gateway[0]
    return error


def _error_for_status(response: httpx.Response, status: int, clock: Clock | None) -> TogglError:
    said = toggl_message(response)
    message = said or _status_words(response)
    if status == 401 and response.headers.get(AUTHORIZATION_MISSING_HEADER, "").lower() == "true":
        return CredentialsMissing(
            "no credentials reached Toggl Track (401, X-Authorization-Missing)", status_code=status
        )
    if status in (401, 403):
        return AuthenticationError(message, status_code=status)
    if status == 402:
        resets_in = header_seconds(response.headers.get(QUOTA_RESETS_IN_HEADER))
        if resets_in is not None and not math.isfinite(resets_in):
            resets_in = None
        return QuotaExceeded(
            resets_in=resets_in,
            now=(clock or SystemClock()).now(),
            status_code=status,
            toggl_message=said,
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
    if _START_DATE_FLOOR.search(said):
        return StartDateTooEarly(message, earliest=_earliest(said), status_code=status)
    if status == 400:
        webhook = _webhook_error(said, message)
        if webhook is not None:
            return webhook
    return InvalidRequest(message, status_code=status)


def _webhook_error(said: str, message: str) -> InvalidRequest | None:
    """The Webhooks API's refusals that a caller acts on, from Toggl's message (the one place
    they are recognised)."""
    if match := _WEBHOOK_LIMIT.search(said):
        subs, events = match["subs"], match["events"]
        return WebhookLimitReached(
            message,
            limit=int(subs or events),
            per="subscriptions" if subs is not None else "events",
        )
    if match := _CALLBACK_UNREACHABLE.search(said):
        status = match["status"]
        return CallbackUnreachable(
            message, url=match["url"], callback_status=None if status is None else int(status)
        )
    return None


def error_for_transport(error: httpx.TransportError, *, peer: str = "Toggl Track") -> TogglError:
    """The exception for a request that got no usable response from `peer` (Toggl itself, or
    the gateway in between)."""
    reason = transport_retry_reason(error)
    kind = type(error).__name__
    return TransportError(f"no answer from {peer} ({kind}: {error})", reason=reason)


class TogglErrors:
    """The `ErrorTranslator` for Toggl Track; `clock` dates quota resets (the system's if None).

    `peer` names who the client talks to, for messages about an answer that never came.
    """

    service = "toggl"

    def __init__(self, clock: Clock | None = None, *, peer: str = "Toggl Track") -> None:
        self._clock = clock
        self._peer = peer

    def for_response(self, response: httpx.Response) -> TogglError | None:
        return error_for_response(response, clock=self._clock)

    def for_transport(self, error: httpx.TransportError) -> TogglError:
        return error_for_transport(error, peer=self._peer)
