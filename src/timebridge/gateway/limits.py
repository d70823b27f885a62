"""The gateway's limits, in memory (one `serve` process): the per-key rate limit and the
quota guard.

- **Rate limit**: a token bucket per key, `rate` requests per second with a burst of as many.
- **Quota guard**: once Toggl answered 402 with `X-Toggl-Quota-Resets-In` for a connection's
  quota scope (the user's, or a workspace's), later calls in that scope are refused locally
  until the reset, so a client looping on a 402 spends nothing upstream.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from timebridge.store import TogglConnection

#: Buckets and guards not touched for this long are forgotten.
_FORGET_AFTER = 3600.0
#: The longest a guard holds a scope (Toggl's quotas are hourly).
_MAX_GUARD = 3600.0


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """`rate` requests per second per key, bursts of up to `rate` (at least 1)."""

    def __init__(self, rate: float, *, now: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._now = now
        self._buckets: dict[int, _Bucket] = {}
        self._lock = threading.Lock()
        self._swept = now()

    def take(self, key: int) -> float | None:
        """None if the key may make a request now; else the seconds until it may."""
        now = self._now()
        with self._lock:
            self._sweep(now)
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(self.capacity, now)
            bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return None
            return (1.0 - bucket.tokens) / self.rate

    def _sweep(self, now: float) -> None:
        if now - self._swept < _FORGET_AFTER:
            return
        self._swept = now
        for key in [k for k, b in self._buckets.items() if now - b.at > _FORGET_AFTER]:
            del self._buckets[key]


class QuotaGuard:
    """Scopes whose Toggl quota is spent, until Toggl said it resets."""

    def __init__(self, *, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._until: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def blocked(self, spender: str, scope: str) -> float | None:
        """Seconds until the spender's quota of `scope` resets, or None if calls may go
        upstream. `spender`: whose quota (a Toggl user at an origin, or a connection)."""
        now = self._now()
        with self._lock:
            until = self._until.get((spender, scope))
            if until is None:
                return None
            if until <= now:
                del self._until[(spender, scope)]
                return None
            return until - now

    def spent(self, spender: str, scope: str, resets_in: str | None) -> None:
        """Toggl answered 402 for this scope; `resets_in` is its `X-Toggl-Quota-Resets-In`."""
        try:
            seconds = float(resets_in) if resets_in is not None else math.nan
        except ValueError:
            return
        if not math.isfinite(seconds) or seconds <= 0:
            return
        with self._lock:
            self._until[(spender, scope)] = self._now() + min(seconds, _MAX_GUARD)

    def forget(self, spender: str) -> None:
        with self._lock:
            for key in [k for k in self._until if k[0] == spender]:
                del self._until[key]


def quota_spender(connection: TogglConnection) -> str:
    """Whose quota a connection's requests spend: Toggl counts per Toggl user (and
    organization), so every connection to one Toggl user shares it."""
    if connection.toggl_user_id is not None:
        return f"{connection.origin} user:{connection.toggl_user_id}"
    return f"connection:{connection.id}"


def retry_after(seconds: float) -> str:
    """A `Retry-After` value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(seconds)))


__all__ = ["QuotaGuard", "RateLimiter", "quota_spender", "retry_after"]
