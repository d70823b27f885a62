"""Retry decisions as one explicit, testable policy object.

The policy is pure: given why a call failed, how many attempts were made and whether the call is
safe to repeat, it returns how long to wait before the next attempt, or None to give up. The
clients own the sleeping, so a test policy (`RetryPolicy.testing()`) never sleeps and still makes
exactly the same decisions.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field


class RetryReason(enum.Enum):
    """Failures that a later attempt may not repeat."""

    #: 429: the upstream asked us to slow down. The request was not processed.
    RATE_LIMITED = "rate_limited"
    #: 5xx: the upstream failed; a write may or may not have happened.
    SERVER_ERROR = "server_error"
    #: No connection could be made; the request was never sent.
    CONNECT_FAILED = "connect_failed"
    #: The request was sent but no complete answer came back (timeout, dropped connection).
    NO_ANSWER = "no_answer"


#: Reasons after which the request certainly had no effect, so even a non-idempotent write may
#: be sent again.
_NOTHING_HAPPENED = frozenset({RetryReason.RATE_LIMITED, RetryReason.CONNECT_FAILED})


@dataclass(frozen=True)
class RetryPolicy:
    """How many times to try a call and how long to wait in between.

    `attempts` counts every try, the first one included. Waits grow exponentially from
    `initial_delay` up to `max_delay`, each multiplied by a random factor in
    [1 - jitter, 1 + jitter] so that many clients failing together do not retry together. A
    `Retry-After` the upstream sends is honoured as given, unless it is longer than
    `max_retry_after`, in which case the call fails at once rather than blocking for long. A 429
    without one (Exist documents no headers) waits the same jittered backoff as any other
    failure, within the same `attempts`, so a throttled client never hammers.
    """

    attempts: int = 4
    initial_delay: float = 0.5
    max_delay: float = 20.0
    multiplier: float = 2.0
    jitter: float = 0.25
    max_retry_after: float = 60.0
    #: False makes every wait zero (test mode); the decisions stay the same.
    wait: bool = True
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    @classmethod
    def testing(cls, attempts: int = 3) -> RetryPolicy:
        """A policy that never sleeps, for tests that assert exact attempt counts."""
        return cls(attempts=attempts, wait=False)

    @classmethod
    def never(cls) -> RetryPolicy:
        """Try exactly once."""
        return cls(attempts=1)

    def next_delay(
        self,
        reason: RetryReason | None,
        attempt: int,
        *,
        idempotent: bool,
        retry_after: float | None = None,
    ) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None to give up.

        `attempt` is the number of attempts already made (1 after the first failure).
        """
        if reason is None or attempt >= self.attempts:
            return None
        if not idempotent and reason not in _NOTHING_HAPPENED:
            return None
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            return max(0.0, retry_after) if self.wait else 0.0
        if not self.wait:
            return 0.0
        base = min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1))
        return base * self.rng.uniform(1 - self.jitter, 1 + self.jitter)
