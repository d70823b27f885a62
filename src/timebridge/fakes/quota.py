"""Request budgets for the simulators.

- `FixedWindowQuota`: a budget per key that opens with the key's first request and comes back
  whole when the window ends (Toggl's hourly quotas);
- `SlidingWindowQuota`: at most N requests within any window (the Exist simulator's throttle);
- `LeakyBucket`: a short-term throttle of about N requests per second.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta

from timebridge.clock import Clock


@dataclass(frozen=True)
class QuotaState:
    """What a budget looks like after a request was (or was not) admitted."""

    admitted: bool
    limit: int
    remaining: int
    #: Seconds until requests are freed: the window's end for `FixedWindowQuota` (0 while no
    #: window is open), the oldest counted request leaving it for `SlidingWindowQuota`.
    resets_in: int


class FixedWindowQuota:
    """At most `limit` requests per key in a window that starts with the key's first request.

    The first request opens a window of `window` (an hour); every request in it counts; when it
    ends the whole budget is back, and the next request opens a new window. Its end never moves:
    a request made late in a window frees nothing later than the others.
    """

    def __init__(self, clock: Clock, window: timedelta = timedelta(hours=1)) -> None:
        self._clock = clock
        self._window = window
        #: key -> (when its window opened, requests counted in it)
        self._windows: dict[Hashable, tuple[datetime, int]] = {}
        self._lock = threading.Lock()

    def _current(self, key: Hashable, now: datetime) -> tuple[datetime, int] | None:
        opened = self._windows.get(key)
        if opened is not None and now >= opened[0] + self._window:
            del self._windows[key]
            return None
        return opened

    def _state(
        self, opened: tuple[datetime, int] | None, limit: int, now: datetime, admitted: bool
    ) -> QuotaState:
        if opened is None:
            return QuotaState(admitted, limit, limit, 0)
        started, used = opened
        resets_in = math.ceil((started + self._window - now).total_seconds())
        return QuotaState(admitted, limit, max(0, limit - used), max(0, resets_in))

    def take(self, key: Hashable, limit: int) -> QuotaState:
        """Count one request against `key` if the budget allows it (opening a window if none)."""
        now = self._clock.now()
        with self._lock:
            opened = self._current(key, now)
            if opened is not None and opened[1] >= limit:
                return self._state(opened, limit, now, admitted=False)
            opened = (now, 1) if opened is None else (opened[0], opened[1] + 1)
            self._windows[key] = opened
            return self._state(opened, limit, now, admitted=True)

    def peek(self, key: Hashable, limit: int) -> QuotaState:
        """The budget of `key` as it stands, counting nothing."""
        now = self._clock.now()
        with self._lock:
            return self._state(self._current(key, now), limit, now, admitted=True)

    def reset(self) -> None:
        """Close every window: each key has its whole budget again."""
        with self._lock:
            self._windows.clear()


class SlidingWindowQuota:
    """At most `limit` requests per key within any `window` (an hour, for Toggl and Exist)."""

    def __init__(self, clock: Clock, window: timedelta = timedelta(hours=1)) -> None:
        self._clock = clock
        self._window = window
        self._seen: dict[Hashable, deque[datetime]] = {}
        self._lock = threading.Lock()

    def _trim(self, key: Hashable, now: datetime) -> deque[datetime]:
        seen = self._seen.setdefault(key, deque())
        while seen and seen[0] <= now - self._window:
            seen.popleft()
        return seen

    def _state(
        self, seen: deque[datetime], limit: int, now: datetime, admitted: bool
    ) -> QuotaState:
        resets_in = math.ceil((seen[0] + self._window - now).total_seconds()) if seen else 0
        return QuotaState(admitted, limit, max(0, limit - len(seen)), max(0, resets_in))

    def take(self, key: Hashable, limit: int) -> QuotaState:
        """Count one request against `key` if the budget allows it."""
        now = self._clock.now()
        with self._lock:
            seen = self._trim(key, now)
            if len(seen) >= limit:
                return self._state(seen, limit, now, admitted=False)
            seen.append(now)
            return self._state(seen, limit, now, admitted=True)

    def peek(self, key: Hashable, limit: int) -> QuotaState:
        now = self._clock.now()
        with self._lock:
            return self._state(self._trim(key, now), limit, now, admitted=True)

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()


class LeakyBucket:
    """A short-term throttle: about `rate` requests per second per key, bursts up to `burst`."""

    def __init__(self, clock: Clock, rate: float, burst: int = 1) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self._clock = clock
        self._rate = rate
        self._burst = burst
        self._levels: dict[Hashable, tuple[float, datetime]] = {}
        self._lock = threading.Lock()

    def take(self, key: Hashable) -> float | None:
        """Admit a request (None) or return the seconds to wait before the next one fits."""
        now = self._clock.now()
        with self._lock:
            level, last = self._levels.get(key, (0.0, now))
            level = max(0.0, level - (now - last).total_seconds() * self._rate)
            if level + 1 > self._burst:
                self._levels[key] = (level, now)
                return (level + 1 - self._burst) / self._rate
            self._levels[key] = (level + 1, now)
            return None
