"""The service served on a real socket whose address is its public URL, so that the Toggl
simulator's webhook deliveries reach it over real HTTP; users connected on both simulators."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from tests.jobs.test_tasks import World as TasksWorld
from tests.sync.oracle import truth
from timebridge.clock import FakeClock
from timebridge.config import Settings
from timebridge.fakes.exist import ExistSimulator, SimClient
from timebridge.fakes.toggl import TogglSimulator
from timebridge.fakes.toggl.webhooks import WebhookSettings
from timebridge.retry import RetryPolicy
from timebridge.store import Store, open_store
from timebridge.web import create_app

ZONE = ZoneInfo("Europe/Berlin")
#: Events are gathered this long here (3 s in service): tests stay quick.
WINDOW = 0.3


@pytest.fixture
def toggl_sim(clock: FakeClock) -> TogglSimulator:
    """The Toggl simulator, delivering webhooks with short retry delays."""
    return TogglSimulator(clock, webhook_settings=WebhookSettings.fast())


class _ThreadServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:
        return None


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclass
class Served:
    """A running `timebridge serve` app: its URL, settings and app."""

    url: str
    settings: Settings
    app: FastAPI


@contextlib.contextmanager
def serve_app(app: FastAPI, sock: socket.socket) -> Iterator[None]:
    server = _ThreadServer(uvicorn.Config(app, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the app did not start"
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class World(TasksWorld):
    """The jobs tests' world (users connected in a store of the test's own and on both
    simulators), with the socket of the served service, bound before it starts (its port is in
    the public URL)."""

    def __init__(
        self,
        store: Store,
        clock: FakeClock,
        toggl_sim: TogglSimulator,
        exist_sim: ExistSimulator,
        exist_client: SimClient,
        settings: Settings,
        sock: socket.socket,
    ) -> None:
        super().__init__(store, clock, toggl_sim, exist_sim, exist_client, settings)
        self.socket = sock

    def expected(self, account_id: int, mapping: dict[int, str]) -> dict[tuple[str, date], int]:
        user = self.toggl_users[account_id]
        return truth(
            self.toggl_sim.world.entries_of(user.id, include_deleted=True),
            mapping,
            ZONE,
            self.clock.now(),
        )

    async def exist_matches_toggl(self, account_id: int) -> bool:
        mapping = await self.store.mappings.project_map(account_id)
        name = self.names[account_id]
        for (attribute, day), minutes in self.expected(account_id, mapping).items():
            if (self.exist_sim.stored_values(name, attribute).get(day) or 0) != minutes:
                return False
        return True

    async def eventually(self, check: Callable[[], Any], within: float = 20.0) -> None:
        """Wait until `check()` (sync or async) is true, or fail after `within` seconds."""
        deadline = time.monotonic() + within
        while True:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            assert time.monotonic() < deadline, "not within the time"
            await asyncio.sleep(0.05)

    def exist_value(self, account_id: int, attribute: str, day: date) -> int:
        value = self.exist_sim.stored_values(self.names[account_id], attribute).get(day)
        return int(value or 0)


@pytest.fixture
async def world(
    tmp_path: Path,
    clock: FakeClock,
    toggl_sim: TogglSimulator,
    toggl_url: str,
    exist_sim: ExistSimulator,
    exist_api_url: str,
    exist_oauth_url: str,
    exist_oauth_client: SimClient,
) -> AsyncIterator[World]:
    """Settings of a service on a socket of its own (its public URL), not yet started."""
    sock = free_socket()
    port = sock.getsockname()[1]
    settings = Settings(
        data_dir=tmp_path,
        toggl_base_url=toggl_url,
        exist_base_url=exist_api_url,
        exist_oauth_base_url=exist_oauth_url,
        public_url=f"http://127.0.0.1:{port}",
        webhook_coalesce_seconds=WINDOW,
        # The cycle never comes during a test: runs here are the webhooks' own.
        sync_cron="0 0 1 1 *",
    )
    async with await open_store(settings, clock=clock) as store:
        yield World(store, clock, toggl_sim, exist_sim, exist_oauth_client, settings, sock)
    sock.close()


@pytest.fixture
def served(world: World) -> Iterator[Served]:
    """The service itself, serving on the world's public URL."""
    app = create_app(world.settings, clock=world.clock, retry=RetryPolicy.testing())
    with serve_app(app, world.socket):
        yield Served(world.settings.public_url, world.settings, app)


async def signed_in(world: World, served: Served, account: int, client: httpx.AsyncClient) -> str:
    """Signs `client` in to the account (a login link); the session's CSRF token."""
    secret, _ = await world.store.login_links.create(account)
    assert (await client.get(f"/signin/link/{secret}")).status_code in (200, 303)
    me = await client.get("/api/v1/me")
    assert me.status_code == 200, me.text
    return str(me.json()["csrf_token"])
