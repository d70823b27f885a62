"""The gateway's limits: the per-key rate limit and the quota guard, kept in memory and, on
PostgreSQL, shared by every `serve` process of the database (`timebridge.store.gateway_limits`).

- **Rate limit**: a token bucket per key, `rate` requests per second with a burst of as many.
  Shared (`SharedRateLimiter`): the bucket is in the database and each process leases a few
  tokens at a time (`lease_size`), answering from its lease. The sum over any window of T
  seconds stays within `capacity + rate * T` plus what the processes held leased (or were being
  granted) when it began: at most `lease_size` per process (a fifth of the burst, at least 1).
  In the long run the sum is exactly `rate`.
- **Quota guard**: once Toggl answered 402 with `X-Toggl-Quota-Resets-In` for a connection's
  quota scope (the user's, or a workspace's), later calls in that scope are refused locally
  until the reset, so a client looping on a 402 spends nothing upstream. Shared: `publish` tells
  the other processes (recorded, and `NOTIFY`), who `learn` it; no request reads the database.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from timebridge.store import TogglConnection

logger = logging.getLogger(__name__)

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

    #: Whether `take` is the whole limit (False: the proxy awaits `acquire`, which is shared).
    local = True

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

    async def acquire(self, key: int, account_id: int) -> float | None:
        """`take`, for callers that may wait for the shared bucket."""
        del account_id
        return self.take(key)

    def _sweep(self, now: float) -> None:
        if now - self._swept < _FORGET_AFTER:
            return
        self._swept = now
        for key in [k for k, b in self._buckets.items() if now - b.at > _FORGET_AFTER]:
            del self._buckets[key]


#: `lease(key, account_id, want)` → (tokens granted, tokens left in the shared bucket).
Lease = Callable[[int, int, int], Awaitable[tuple[int, float]]]


def lease_size(rate: float) -> int:
    """How many tokens a process leases at a time: a fifth of the burst, at least one."""
    return max(1, math.floor(max(1.0, rate) / 5))


@dataclass
class _Held:
    """A key's lease in this process."""

    tokens: int = 0
    #: Until when (monotonic) the shared bucket has no whole token, as the last lease found.
    empty_until: float = 0.0
    #: The lease being asked for, which other requests of the key wait for.
    pending: asyncio.Future[None] | None = None
    at: float = 0.0


class SharedRateLimiter(RateLimiter):
    """`rate` requests per second per key summed over every process leasing from one shared
    bucket (see the module's doc for the bound). `take` (for callers that cannot wait) limits
    this process alone; the proxy awaits `acquire`. Should the shared bucket fail, `acquire`
    falls back to `take` (and logs it): each process then limits on its own."""

    local = False

    def __init__(
        self, rate: float, lease: Lease, *, now: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(rate, now=now)
        self.lease_size = lease_size(rate)
        self._lease = lease
        self._held: dict[int, _Held] = {}

    async def acquire(self, key: int, account_id: int) -> float | None:
        while True:
            now = self._now()
            held = self._held.get(key)
            if held is None:
                if len(self._held) > 10_000:
                    self._forget_idle(now)
                held = self._held[key] = _Held(at=now)
            held.at = now
            if held.tokens >= 1:
                held.tokens -= 1
                return None
            if held.empty_until > now:
                return held.empty_until - now
            if held.pending is not None:
                await asyncio.shield(held.pending)
                continue
            return await self._lease_for(held, key, account_id)

    async def _lease_for(self, held: _Held, key: int, account_id: int) -> float | None:
        done = held.pending = asyncio.get_running_loop().create_future()
        try:
            granted, left = await self._lease(key, account_id, self.lease_size)
        except Exception:
            logger.exception("leasing from the shared rate limit failed; limiting locally")
            return self.take(key)
        finally:
            held.pending = None
            done.set_result(None)
        if granted >= 1:
            held.tokens += granted - 1
            return None
        wait = max(0.0, 1.0 - left) / self.rate if self.rate > 0 else 1.0
        held.empty_until = self._now() + wait
        return wait

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, h in self._held.items() if now - h.at > 60.0 and h.pending is None]:
            del self._held[key]


class QuotaGuard:
    """Scopes whose Toggl quota is spent, until Toggl said it resets."""

    def __init__(self, *, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._until: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        #: Told of what this guard learns itself (a spent quota: account, spender, scope,
        #: seconds; a forgotten spender: seconds None), to share it with other processes.
        self.publish: Callable[[int | None, str, str | None, float | None], None] | None = None

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

    def spent(
        self,
        spender: str,
        scope: str,
        resets_in: str | None,
        account_id: int | None = None,
    ) -> None:
        """Toggl answered 402 for this scope; `resets_in` is its `X-Toggl-Quota-Resets-In`.
        `account_id`: whose connection met it (shared with other processes only with it)."""
        try:
            seconds = float(resets_in) if resets_in is not None else math.nan
        except ValueError:
            return
        if not math.isfinite(seconds) or seconds <= 0:
            return
        seconds = min(seconds, _MAX_GUARD)
        self.learn(spender, scope, seconds)
        if self.publish is not None and account_id is not None:
            self.publish(account_id, spender, scope, seconds)

    def learn(self, spender: str, scope: str, seconds: float) -> None:
        """The spender's quota of `scope` resets in `seconds` (another process said so)."""
        if not math.isfinite(seconds) or seconds <= 0:
            return
        with self._lock:
            self._until[(spender, scope)] = self._now() + min(seconds, _MAX_GUARD)

    def forget(self, spender: str) -> None:
        self.unlearn(spender)
        if self.publish is not None:
            self.publish(None, spender, None, None)

    def unlearn(self, spender: str) -> None:
        """Forget the spender's spent quotas (another process said so)."""
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


__all__ = [
    "Lease",
    "QuotaGuard",
    "RateLimiter",
    "SharedRateLimiter",
    "lease_size",
    "quota_spender",
    "retry_after",
]
