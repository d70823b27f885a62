"""Fixtures for the runner's tests: the Exist simulator over real HTTP beside the Toggl one, and
a factory of users connected on both (see `runner_harness.Account`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.sync.runner_harness import AccountFactory
from timebridge.clock import FakeClock
from timebridge.fakes import RunningServer, serve_in_thread
from timebridge.fakes.exist import ExistSimulator, SimClient
from timebridge.fakes.toggl import TogglSimulator

EXIST_CLIENT_ID = "timebridge-sync-test"
EXIST_CLIENT_SECRET = "timebridge-sync-test-secret"


@pytest.fixture
def exist_sim(clock: FakeClock) -> ExistSimulator:
    return ExistSimulator(clock)


@pytest.fixture
def exist_server(exist_sim: ExistSimulator) -> Iterator[RunningServer]:
    with serve_in_thread(exist_sim.asgi_app) as server:
        yield server


@pytest.fixture
def exist_api_url(exist_server: RunningServer) -> str:
    return f"{exist_server.url}/api/2/"


@pytest.fixture
def exist_oauth_url(exist_server: RunningServer) -> str:
    return f"{exist_server.url}/oauth2/"


@pytest.fixture
def exist_oauth_client(exist_sim: ExistSimulator) -> SimClient:
    return exist_sim.add_client(
        "Timebridge",
        client_id=EXIST_CLIENT_ID,
        client_secret=EXIST_CLIENT_SECRET,
        service="timebridge",
    )


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
