"""The service's app: /healthz, /metrics, and the embedded scheduler keeping users in sync."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
import typer
import uvicorn
from fastapi import FastAPI
from typer.testing import CliRunner

from tests.jobs.test_tasks import World, make_world
from timebridge import __version__
from timebridge.bridge import Bridge
from timebridge.cli.service import serve, sync
from timebridge.clock import FakeClock
from timebridge.config import DATABASE_FILE_NAME, Settings
from timebridge.fakes.exist import ExistSimulator, SimClient
from timebridge.fakes.toggl import TogglSimulator
from timebridge.logs import forget_secrets
from timebridge.retry import RetryPolicy
from timebridge.store import Database, SecretBox, Store
from timebridge.web import build_scheduler, create_app, service_state

#: The commands as `timebridge` registers them.
cli = typer.Typer()
cli.command("serve")(serve)
cli.command("sync")(sync)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()
    forget_secrets()


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app started (lifespan) and a client talking to it in-process."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://timebridge.test"
        ) as client,
    ):
        yield client


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


class Ticks:
    """A scheduler's sleep that returns only when the test says so, moving the fake clock to
    the cron time it was waiting for: each `tick()` is one scheduled cycle."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self._queue: asyncio.Queue[None] = asyncio.Queue()

    async def sleep(self, seconds: float) -> None:
        await self._queue.get()
        self._clock.advance(seconds)

    def tick(self) -> None:
        self._queue.put_nowait(None)


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


# --- /healthz -------------------------------------------------------------------------------------


async def test_healthz_says_ok_with_the_database_reachable_and_no_scheduler(
    store: Store, tmp_path: Path
) -> None:
    app = create_app(Settings(data_dir=tmp_path), store=store, run_scheduler=False)
    async with running(app) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "status": "ok",
        "version": __version__,
        "database": {"reachable": True, "backend": store.database.dialect},
        "scheduler": {"enabled": False, "running": False, "cron": None, "next_cycle_at": None},
    }


async def test_healthz_is_503_when_the_database_is_unreachable(
    box: SecretBox, tmp_path: Path
) -> None:
    # Nothing listens on port 1: the connection is refused at once.
    unreachable = Store(Database("postgresql://timebridge:pw@127.0.0.1:1/nothing"), box)
    app = create_app(Settings(data_dir=tmp_path), store=unreachable, run_scheduler=False)
    try:
        async with running(app) as client:
            response = await client.get("/healthz")
    finally:
        await unreachable.close()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["database"] == {"reachable": False, "backend": "postgresql"}
    assert "pw" not in response.text


async def test_the_default_app_opens_its_store_and_runs_the_embedded_scheduler(
    tmp_path: Path, clock: FakeClock
) -> None:
    app = create_app(Settings(data_dir=tmp_path, sync_cron="40 * * * *"), clock=clock)
    state = service_state(app)
    async with running(app) as client:
        body = (await client.get("/healthz")).json()
        assert state.store is not None
        task = state.scheduler_task
    assert body["status"] == "ok"
    assert body["database"] == {"reachable": True, "backend": "sqlite"}
    assert body["scheduler"] == {
        "enabled": True,
        "running": True,
        "cron": "40 * * * *",
        "next_cycle_at": "2026-03-10T12:40:00Z",
    }
    assert (tmp_path / DATABASE_FILE_NAME).exists(), "migrated on start"
    assert state.store is None, "the store it opened is closed on shutdown"
    assert task is not None
    assert task.cancelled()


async def test_a_stopped_scheduler_makes_health_degraded(
    store: Store, tmp_path: Path, clock: FakeClock
) -> None:
    async def broken_sleep(_seconds: float) -> None:
        raise RuntimeError("the scheduler's loop broke")

    bridge = Bridge.from_settings(store, Settings(data_dir=tmp_path), clock=clock)
    scheduler = build_scheduler(bridge, Settings(), clock=clock, sleep=broken_sleep)
    app = create_app(Settings(data_dir=tmp_path), store=store, scheduler=scheduler, clock=clock)
    async with running(app) as client:
        task = service_state(app).scheduler_task
        assert task is not None
        await asyncio.wait([task], timeout=5)
        response = await client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["scheduler"]["running"] is False


# --- /metrics -------------------------------------------------------------------------------------


async def test_metrics_count_runs_failures_and_upstream_requests_with_latency(
    world: World, store: Store, tmp_path: Path
) -> None:
    alice = await world.connect("alice")
    await world.bridge.sync(alice)
    app = create_app(Settings(data_dir=tmp_path), store=store, run_scheduler=False)
    async with running(app) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    text = response.text
    assert 'timebridge_sync_runs_total{kind="sync",outcome="succeeded"}' in text
    assert 'timebridge_upstream_requests_total{service="toggl",status="200"}' in text
    assert 'timebridge_upstream_requests_total{service="exist",status="200"}' in text
    assert 'timebridge_upstream_request_seconds_bucket{le="0.5",service="toggl"}' in text
    assert "timebridge_exist_values_written_total" in text


# --- the scheduler inside the app -----------------------------------------------------------------


async def test_the_served_scheduler_keeps_every_user_in_sync_on_schedule(
    world: World,
    store: Store,
    clock: FakeClock,
    toggl_sim: TogglSimulator,
    toggl_url: str,
    exist_api_url: str,
    tmp_path: Path,
) -> None:
    names = ["ann", "ben", "cai"]
    users = [await world.connect(name) for name in names]
    settings = Settings(data_dir=tmp_path, toggl_base_url=toggl_url, exist_base_url=exist_api_url)
    bridge = Bridge.from_settings(store, settings, clock=clock, retry=RetryPolicy.testing())
    ticks = Ticks(clock)
    scheduler = build_scheduler(bridge, settings, clock=clock, sleep=ticks.sleep)
    app = create_app(settings, store=store, scheduler=scheduler, clock=clock)

    async def runs_recorded(count: int) -> bool:
        return all([await store.sync_runs.count(user) >= count for user in users])

    async with running(app) as client:
        health = (await client.get("/healthz")).json()
        assert health["scheduler"]["running"] is True
        assert all([await store.sync_runs.count(user) == 0 for user in users])

        ticks.tick()  # 12:40, the first scheduled cycle
        await eventually(lambda: runs_recorded(1))
        for user, name in zip(users, names, strict=True):
            await world.assert_exist_matches_toggl(user, name)

        ben = users[1]
        toggl_sim.add_time_entry(
            world.toggl_users[ben],
            start=clock.now() - timedelta(minutes=30),
            duration=1500,
            project_id=next(iter(await store.mappings.project_map(ben))),
        )
        ticks.tick()  # 13:40, the next one
        await eventually(lambda: runs_recorded(2))
        for user, name in zip(users, names, strict=True):
            await world.assert_exist_matches_toggl(user, name)
        metrics = (await client.get("/metrics")).text
    assert 'timebridge_sync_runs_total{kind="sync",outcome="succeeded"}' in metrics


# --- timebridge serve -----------------------------------------------------------------------------


@pytest.fixture
def serve_env(tmp_path: Path) -> dict[str, str | None]:
    return {
        "TIMEBRIDGE_DATA_DIR": str(tmp_path / "data"),
        "TIMEBRIDGE_DATABASE_URL": None,
        "TIMEBRIDGE_SECRET_KEYS": None,
        "TIMEBRIDGE_LOG_FORMAT": "json",
        "TIMEBRIDGE_SYNC_CRON": None,
    }


def test_serve_runs_the_app_with_structured_logs_and_optionally_no_scheduler(
    serve_env: dict[str, str | None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[tuple[FastAPI, dict[str, Any]]] = []
    monkeypatch.setattr(
        "uvicorn.run",
        lambda app, **options: served.append((app, options)),
    )
    result = CliRunner().invoke(cli, ["serve", "--port", "8123", "--no-scheduler"], env=serve_env)
    assert result.exit_code == 0, result.output
    [(app, options)] = served
    assert options == {"host": "127.0.0.1", "port": 8123, "log_config": None, "lifespan": "on"}
    assert (tmp_path / "data" / DATABASE_FILE_NAME).exists(), "the store is checked first"

    async def health() -> dict[str, Any]:
        async with running(app) as client:
            body: dict[str, Any] = (await client.get("/healthz")).json()
            return body

    body = asyncio.run(health())
    assert body["status"] == "ok"
    assert body["scheduler"]["enabled"] is False


def test_serve_with_a_bad_secret_key_is_one_line_and_exit_2(
    serve_env: dict[str, str | None],
) -> None:
    result = CliRunner().invoke(
        cli, ["serve"], env={**serve_env, "TIMEBRIDGE_SECRET_KEYS": "not-a-fernet-key"}
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: ")
    assert "not-a-fernet-key" not in result.output


class _ThreadServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # not the main thread
        return None


@pytest.fixture
def served_app(tmp_path: Path) -> Iterator[str]:
    """The default app on a real socket, with its lifespan (store, scheduler) running."""
    app = create_app(Settings(data_dir=tmp_path))
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


def test_served_over_a_real_socket(served_app: str) -> None:
    health = httpx.get(f"{served_app}/healthz")
    assert health.status_code == 200
    assert health.json()["scheduler"]["running"] is True
    metrics = httpx.get(f"{served_app}/metrics")
    assert metrics.status_code == 200
    assert "# TYPE timebridge_sync_runs_total counter" in metrics.text


# --- /docs ------------------------------------------------------------------------------------


async def test_the_api_docs_load_nothing_from_outside_the_app(store: Store, tmp_path: Path) -> None:
    import re

    app = create_app(Settings(data_dir=tmp_path), store=store, run_scheduler=False)
    async with running(app) as client:
        docs = await client.get("/docs")
        assert docs.status_code == 200
        sources = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
        assert sources, "the page loads Swagger UI's files"
        for source in sources:
            assert source.startswith("/"), f"{source} is not served by the app"
            assert (await client.get(source)).status_code == 200, source
        assert (await client.get("/openapi.json")).json()["info"]["title"] == "Timebridge"
