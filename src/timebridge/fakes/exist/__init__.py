"""The Exist API v2 simulator (API, OAuth2 and an admin API), for tests and the demo."""

from timebridge.fakes.exist.simulator import (
    RATE_LIMIT,
    TOKEN_LIFETIME,
    ExistSimulator,
    RecordedRequest,
)
from timebridge.fakes.exist.state import (
    EmptyDays,
    ExistWorld,
    ForcedFailure,
    SimAttribute,
    SimClient,
    SimService,
    SimUser,
)

__all__ = [
    "RATE_LIMIT",
    "TOKEN_LIFETIME",
    "EmptyDays",
    "ExistSimulator",
    "ExistWorld",
    "ForcedFailure",
    "RecordedRequest",
    "SimAttribute",
    "SimClient",
    "SimService",
    "SimUser",
]
