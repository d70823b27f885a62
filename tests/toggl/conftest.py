from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from timebridge.clock import FakeClock
from timebridge.fakes.toggl import SimUser
from timebridge.retry import RetryPolicy
from timebridge.toggl import AsyncTogglClient, TogglClient


@pytest.fixture
def toggl(toggl_url: str, toggl_user: SimUser, clock: FakeClock) -> Iterator[TogglClient]:
    with TogglClient(
        toggl_user.api_token, base_url=toggl_url, retry=RetryPolicy.testing(), clock=clock
    ) as client:
        yield client


@pytest.fixture
async def atoggl(
    toggl_url: str, toggl_user: SimUser, clock: FakeClock
) -> AsyncIterator[AsyncTogglClient]:
    async with AsyncTogglClient(
        toggl_user.api_token, base_url=toggl_url, retry=RetryPolicy.testing(), clock=clock
    ) as client:
        yield client
