"""The gateway served on a real socket (uvicorn in a thread, its own store on a SQLite file),
in front of the Toggl simulator over real HTTP, with every request that reaches the simulator
seen by a counting layer (including those its routes would not record)."""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.store.fixtures import run_blocking
from timebridge.config import Settings
from timebridge.fakes import serve_in_thread
from timebridge.fakes.toggl import SimUser, TogglSimulator
from timebridge.gateway.keys import SCOPES, new_key
from timebridge.store import Store, open_store
from timebridge.web import create_app

T = TypeVar("T")


@dataclass
class Seen:
    """One request that reached the simulator: its raw path and headers."""

    method: str
    raw_path: str
    headers: dict[str, str]


@dataclass
class Counting:
    """An ASGI layer in front of the simulator that sees every request."""

    app: ASGIApp
    seen: list[Seen] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path") or scope["path"].encode()
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            self.seen.append(Seen(scope["method"], raw.decode("latin-1"), headers))
        await self.app(scope, receive, send)


@dataclass
class World:
    """The settings of a served gateway and the simulator behind it."""

    settings: Settings
    sim: TogglSimulator
    upstream: Counting
    origin: str

    def run(self, action: Callable[[Store], Awaitable[T]]) -> T:
        async def go() -> T:
            async with await open_store(self.settings) as store:
                return await action(store)

        return run_blocking(go())

    def account(self, email: str) -> int:
        async def create(store: Store) -> int:
            return (await store.accounts.create(email)).id

        return self.run(create)

    def key(
        self,
        account: int,
        scopes: tuple[str, ...] = SCOPES,
        *,
        expires_at: datetime | None = None,
    ) -> str:
        made = new_key()

        async def create(store: Store) -> None:
            await store.api_keys.create(
                account, made.secret, prefix=made.prefix, scopes=scopes, expires_at=expires_at
            )

        self.run(create)
        return made.secret

    def connection(self, account: int, user: SimUser | None, *, origin: str | None = None) -> str:
        async def create(store: Store) -> str:
            connection = await store.toggl_connections.create(
                account,
                user.api_token if user is not None else None,
                toggl_user_id=user.id if user is not None else None,
                origin=origin or self.origin,
            )
            return connection.id

        return self.run(create)

    def upstream_count(self) -> int:
        return len(self.upstream.seen)


class _ThreadServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:
        return None


@pytest.fixture
def toggl_sim() -> TogglSimulator:
    """The simulator on the real clock (the gateway's limits run on it too)."""
    return TogglSimulator()


@pytest.fixture
def world(tmp_path: Path, toggl_sim: TogglSimulator) -> Iterator[World]:
    counting = Counting(toggl_sim.asgi_app)
    with serve_in_thread(counting) as server:
        settings = Settings(
            data_dir=tmp_path,
            toggl_base_url=f"{server.url}/api/v9",
            gateway_rate_limit=1000,
            public_url="http://timebridge.test",
        )
        world = World(settings, toggl_sim, counting, server.url)
        world.run(_nothing)  # the key file and the migrated database, before the app starts
        yield world


async def _nothing(store: Store) -> None:
    return None


def serve(settings: Settings, **overrides: Any) -> Iterator[str]:
    app = create_app(settings.model_copy(update=overrides), run_scheduler=False)
    server = _ThreadServer(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the app did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


@pytest.fixture
def gateway(world: World) -> Iterator[str]:
    """The base URL of the served gateway."""
    yield from serve(world.settings)


@pytest.fixture
def alice(toggl_sim: TogglSimulator) -> SimUser:
    return toggl_sim.add_user(
        api_token="tok-alice-1234567890", fullname="Alice", timezone="Europe/Berlin", plan="premium"
    )


@pytest.fixture
def bob(toggl_sim: TogglSimulator) -> SimUser:
    return toggl_sim.add_user(api_token="tok-bob-0987654321", fullname="Bob", plan="premium")
