"""Fixtures shared by every test: simulators served over real HTTP on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from timebridge.clock import FakeClock
from timebridge.fakes import RunningServer, serve_in_thread
from timebridge.fakes.exist import ExistSimulator, SimClient
from timebridge.fakes.toggl import SimUser, TogglSimulator

pytest_plugins = ["tests.store.fixtures"]

# Rich sizes its consoles once, when the CLI is imported: make tables wide enough that tests
# reading them never see a label wrapped across lines.
os.environ["COLUMNS"] = "200"

EXIST_CLIENT_ID = "timebridge-sync-test"
EXIST_CLIENT_SECRET = "timebridge-sync-test-secret"

#: A fixed "now" for tests: a Tuesday, well clear of DST changes.
TEST_NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(TEST_NOW)


@pytest.fixture
def toggl_sim(clock: FakeClock) -> TogglSimulator:
    return TogglSimulator(clock)


@pytest.fixture
def toggl_server(toggl_sim: TogglSimulator) -> Iterator[RunningServer]:
    with serve_in_thread(toggl_sim.asgi_app) as server:
        yield server


@pytest.fixture
def toggl_url(toggl_server: RunningServer) -> str:
    return f"{toggl_server.url}/api/v9"


@pytest.fixture
def toggl_user(toggl_sim: TogglSimulator) -> SimUser:
    return toggl_sim.add_user(
        api_token="tok-alice-1234567890", fullname="Alice", timezone="Europe/Berlin", plan="premium"
    )


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
