"""Fixtures of the jobs tests: users connected in the store and on both simulators."""

from __future__ import annotations

import pytest

from tests.jobs.test_tasks import World, make_world
from timebridge.clock import FakeClock
from timebridge.fakes.exist import ExistSimulator, SimClient
from timebridge.fakes.toggl import TogglSimulator
from timebridge.store import Store


@pytest.fixture
def world(
    store: Store,
    clock: FakeClock,
    toggl_sim: TogglSimulator,
    toggl_url: str,
    exist_sim: ExistSimulator,
    exist_api_url: str,
    exist_oauth_url: str,
    exist_oauth_client: SimClient,
) -> World:
    return make_world(
        store, clock, toggl_sim, toggl_url, exist_sim, exist_api_url, exist_oauth_url,
        exist_oauth_client,
    )  # fmt: skip
