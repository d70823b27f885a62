"""Several `serve` processes on one PostgreSQL database share the gateway's limits (DESIGN.md,
"The gateway", "Scale"): a spent Toggl quota one of them sees is refused by all (and by one
started later), and a key's rate limit holds for the sum of them, within the documented bound
(`timebridge.gateway.limits`).

Each app is served by uvicorn in a thread of its own, with its own store, event loop and
listener, exactly as separate processes would hold them. PostgreSQL is required: these tests
fail (never skip) when it cannot be reached.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from tests.gateway.conftest import Counting, World, _ThreadServer
from tests.store.fixtures import PostgresServer, run_blocking
from timebridge.config import Settings
from timebridge.fakes import Fault, serve_in_thread
from timebridge.fakes.toggl import SimUser, TogglSimulator
from timebridge.gateway.limits import QuotaGuard, SharedRateLimiter, lease_size
from timebridge.gateway.state import GatewayState
from timebridge.store import new_key, upgrade
from timebridge.web import create_app

RESETS_IN = 600


@pytest.fixture(scope="module")
def shared_database(postgres_server: PostgresServer) -> str:
    url = postgres_server.create_database()
    run_blocking(upgrade(url))
    return url


@pytest.fixture
def pg_world(
    shared_database: str,
    postgres_server: PostgresServer,
    toggl_sim: TogglSimulator,
    tmp_path: Path,
) -> Iterator[World]:
    postgres_server.truncate(shared_database)
    counting = Counting(toggl_sim.asgi_app)
    with serve_in_thread(counting) as server:
        settings = Settings(
            database_url=shared_database,
            secret_keys=SecretStr(new_key()),
            auto_migrate=False,
            data_dir=tmp_path / "data",
            toggl_base_url=f"{server.url}/api/v9",
            gateway_rate_limit=1000,
            public_url="http://timebridge.test",
        )
        yield World(settings, toggl_sim, counting, server.url)


@contextmanager
def served(settings: Settings, **overrides: object) -> Iterator[tuple[str, FastAPI]]:
    """One `serve` process: the app's base URL and the app (to look at its gateway state)."""
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
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=5)


def guard_of(app: FastAPI) -> QuotaGuard:
    gateway = app.state.gateway
    assert isinstance(gateway, GatewayState)
    return gateway.guard


def wait_until_blocked(app: FastAPI, spender: str, scope: str = "user") -> float:
    """Seconds until the app's guard lets the spender's scope through again, once it holds it
    (polled in memory: nothing is sent through the app meanwhile)."""
    deadline = time.monotonic() + 5
    while (left := guard_of(app).blocked(spender, scope)) is None:
        assert time.monotonic() < deadline, "the other process never learned the spent quota"
        time.sleep(0.01)
    return left


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def quota_fault() -> Fault:
    return Fault(
        path="/api/v9/me",
        status=402,
        body='"You have hit your hourly limit"',
        headers={"X-Toggl-Quota-Resets-In": str(RESETS_IN), "X-Toggl-Quota-Remaining": "0"},
        times=1,
    )


def set_up(world: World, alice: SimUser) -> tuple[int, str, str]:
    """Alice's account, a key of hers and her Toggl quota's spender."""
    account = world.account("alice@example.com")
    key = world.key(account)
    world.connection(account, alice)
    return account, key, f"{world.origin} user:{alice.id}"


def assert_refused_locally(answer: httpx.Response) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.json()["error"]["code"] == "quota_exhausted"
    assert RESETS_IN - 30 <= int(answer.headers["Retry-After"]) <= RESETS_IN


def test_a_402_seen_by_one_process_is_refused_by_the_other_without_asking_toggl(
    pg_world: World, alice: SimUser
) -> None:
    _, key, spender = set_up(pg_world, alice)
    with (
        served(pg_world.settings) as (url_a, _),
        served(pg_world.settings) as (url_b, app_b),
    ):
        assert httpx.get(f"{url_b}/toggl-track/api/v9/me", headers=bearer(key)).status_code == 200
        pg_world.sim.faults.add(quota_fault())
        spent = httpx.get(f"{url_a}/toggl-track/api/v9/me", headers=bearer(key))
        assert spent.status_code == 402
        before = pg_world.upstream_count()

        assert wait_until_blocked(app_b, spender) > RESETS_IN - 30
        for url in (url_b, url_a, url_b):
            assert_refused_locally(httpx.get(f"{url}/toggl-track/api/v9/me", headers=bearer(key)))
        assert pg_world.upstream_count() == before, "nothing reached Toggl"


def test_a_quota_a_sync_found_spent_is_refused_by_every_process(
    pg_world: World, alice: SimUser
) -> None:
    account, key, spender = set_up(pg_world, alice)
    with (
        served(pg_world.settings) as (_, app_a),
        served(pg_world.settings) as (url_b, app_b),
    ):
        # What the bridge's `on_quota_spent` tells the guard of its process (from its thread).
        guard_of(app_a).spent(spender, "user", str(RESETS_IN), account)
        wait_until_blocked(app_b, spender)
        before = pg_world.upstream_count()
        assert_refused_locally(httpx.get(f"{url_b}/toggl-track/api/v9/me", headers=bearer(key)))
        assert pg_world.upstream_count() == before


def test_a_process_started_after_the_402_refuses_too(pg_world: World, alice: SimUser) -> None:
    _, key, spender = set_up(pg_world, alice)
    with served(pg_world.settings) as (url_a, _):
        pg_world.sim.faults.add(quota_fault())
        assert httpx.get(f"{url_a}/toggl-track/api/v9/me", headers=bearer(key)).status_code == 402
        deadline = time.monotonic() + 5
        while not pg_world.run(lambda store: store.gateway_limits.spent()):
            assert time.monotonic() < deadline, "the spent quota was never recorded"
            time.sleep(0.01)
    before = pg_world.upstream_count()
    with served(pg_world.settings) as (url_c, app_c):
        assert guard_of(app_c).blocked(spender, "user") is not None
        assert_refused_locally(httpx.get(f"{url_c}/toggl-track/api/v9/me", headers=bearer(key)))
    assert pg_world.upstream_count() == before


def test_a_keys_rate_limit_holds_for_the_sum_of_the_processes(
    pg_world: World, alice: SimUser
) -> None:
    rate = 5.0
    _, key, _ = set_up(pg_world, alice)
    other = pg_world.key(pg_world.account("bob@example.com"))
    statuses: list[int] = []
    lock = threading.Lock()

    def hammer(url: str, until: float) -> None:
        with httpx.Client(headers=bearer(key)) as client:
            while time.monotonic() < until:
                answer = client.get(f"{url}/toggl-track/api/v9/me")
                if answer.status_code == 429:
                    assert answer.json()["error"]["code"] == "rate_limited"
                    assert 1 <= int(answer.headers["Retry-After"]) <= 1
                with lock:
                    statuses.append(answer.status_code)

    with (
        served(pg_world.settings, gateway_rate_limit=rate) as (url_a, app_a),
        served(pg_world.settings, gateway_rate_limit=rate) as (url_b, _),
    ):
        assert isinstance(app_a.state.gateway.limiter, SharedRateLimiter)
        before = pg_world.upstream_count()
        started = time.monotonic()
        threads = [
            threading.Thread(target=hammer, args=(url, started + 2.0))
            for url in (url_a, url_b, url_a, url_b)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        elapsed = time.monotonic() - started
        passed = pg_world.upstream_count() - before
        # Another key has a bucket of its own.
        assert httpx.get(f"{url_b}/toggl-track/api/v9/me", headers=bearer(other)).status_code in (
            200,
            400,  # Bob has no connection: refused after the rate limit let him through
        )

    ok = statuses.count(200)
    refused = statuses.count(429)
    assert ok + refused == len(statuses), statuses
    assert ok == passed, "every 200 reached Toggl, nothing else did"
    # The burst, the refill over the run, and at most one lease held by each process.
    bound = rate + rate * elapsed + 2 * lease_size(rate)
    assert rate <= ok <= bound, (ok, refused, elapsed)
    assert refused > ok, "the hammering was refused most of the time"
