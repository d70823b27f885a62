"""Fixtures for the runner's tests: the Exist simulator over real HTTP beside the Toggl one, and
a factory of users connected on both (see `runner_harness.Account`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.sync.runner_harness import AccountFactory
from timebridge.clock import FakeClock
from timebridge.fakes.exist import ExistSimulator, SimClient
from timebridge.fakes.toggl import TogglSimulator


@pytest.fixture
async def accounts(
    clock: FakeClock,
    toggl_sim: TogglSimulator,
    toggl_url: str,
    exist_sim: ExistSimulator,
    exist_api_url: str,
    exist_oauth_url: str,
    exist_oauth_client: SimClient,
) -> AsyncIterator[AccountFactory]:
    factory = AccountFactory(
        clock=clock,
        toggl_sim=toggl_sim,
        toggl_url=toggl_url,
        exist_sim=exist_sim,
        exist_api_url=exist_api_url,
        exist_oauth_url=exist_oauth_url,
        exist_oauth_client=exist_oauth_client,
    )
    try:
        yield factory
    finally:
        await factory.aclose()
