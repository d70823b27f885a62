"""Browser tests: Debian's Chromium, driven by Playwright, through the real site on real sockets.

Every test gets its own world: both simulators on loopback ports, the Timebridge app served by
uvicorn in a thread (its lifespan running: store, bridge, embedded scheduler) on a port bound
before the app starts (so `public_url`, which Exist's OAuth redirect is built on, is right), and
a fresh browser context (no cookies shared between tests or users). One Chromium per module.

The clock is the suite's `FakeClock`, shared by the app and both simulators: the embedded
scheduler never fires during a test (the next cron time is always minutes away on a clock that
only moves when a test moves it), and what a page shows is the same on every run.

Chromium is Debian's, at `/usr/bin/chromium` (`.ci/run` installs the `chromium` package when it
is absent). No browser is ever downloaded; without it these tests fail, they do not skip.

Screenshots go to `artifacts/screenshots/` (git-ignored); `docs/` holds three committed ones.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    Request,
    expect,
    sync_playwright,
)
from pydantic import SecretStr

from timebridge.clock import FakeClock
from timebridge.config import Settings
from timebridge.fakes import RunningServer
from timebridge.fakes.exist import ExistSimulator
from timebridge.fakes.toggl import SimUser, TogglSimulator
from timebridge.retry import RetryPolicy
from timebridge.store import Store
from timebridge.web import create_app, service_state

T = TypeVar("T")

CHROMIUM = Path("/usr/bin/chromium")
#: What Chromium needs on these machines (root, no GPU, no network but loopback).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: How long a Playwright action or assertion waits before failing (ms): pages answer in
#: milliseconds here, and a stuck test should fail well inside the suite's budget.
TIMEOUT_MS = 10_000
expect.set_options(timeout=TIMEOUT_MS)

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "artifacts" / "screenshots"

EXIST_CLIENT_ID = "timebridge-e2e"
EXIST_CLIENT_SECRET = "timebridge-e2e-secret"

#: Alice: on Toggl with a token, on Exist as "alice"; both in Berlin.
ALICE_TOGGL_TOKEN = "tok-alice-e2e-0123456789"
BOB_TOGGL_TOKEN = "tok-bob-e2e-9876543210"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "e2e: browser tests (Playwright driving /usr/bin/chromium) of the whole site"
    )


# --- the app on a real socket ---------------------------------------------------------------------


class _AppServer(uvicorn.Server):
    """uvicorn in a thread, remembering its event loop (the store lives on it)."""

    loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets)


@dataclass
class RunningApp:
    """The Timebridge app served on 127.0.0.1, and a way into its store."""

    url: str
    app: FastAPI
    settings: Settings
    loop: asyncio.AbstractEventLoop

    @property
    def store(self) -> Store:
        store = service_state(self.app).store
        assert store is not None, "the app has no store (not started?)"
        return store

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run `coroutine` on the app's event loop (where its store's connections live)."""
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout)

    def login_link(self, account_id: int) -> str:
        """A one-time sign-in link, as `timebridge login-link` prints it."""
        secret, _ = self.run(self.store.login_links.create(account_id))
        return f"{self.url}/signin/link/{secret}"

    def new_account(self, email: str, display_name: str) -> int:
        account = self.run(self.store.accounts.create(email, display_name=display_name))
        return account.id


def _bound_socket() -> socket.socket:
    """A listening socket on a free loopback port, bound before the app is built."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


@pytest.fixture
def site(
    tmp_path: Path,
    clock: FakeClock,
    toggl_url: str,
    exist_sim: ExistSimulator,
    exist_server: RunningServer,
) -> Iterator[RunningApp]:
    """The Timebridge app on a real socket, against both simulators, with Exist sign-in."""
    sock = _bound_socket()
    port = sock.getsockname()[1]
    public_url = f"http://127.0.0.1:{port}"
    exist_sim.add_client(
        "Timebridge",
        client_id=EXIST_CLIENT_ID,
        client_secret=EXIST_CLIENT_SECRET,
        service="timebridge",
        redirect_uris=[f"{public_url}/signin/exist/callback"],
    )
    settings = Settings(
        data_dir=tmp_path / "timebridge",
        toggl_base_url=toggl_url,
        exist_base_url=f"{exist_server.url}/api/2/",
        exist_oauth_base_url=f"{exist_server.url}/oauth2/",
        exist_client_id=EXIST_CLIENT_ID,
        exist_client_secret=SecretStr(EXIST_CLIENT_SECRET),
        public_url=public_url,
    )
    app = create_app(settings, clock=clock, retry=RetryPolicy.testing())
    server = _AppServer(
        uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
    )
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="timebridge-e2e", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the Timebridge app did not start")
        time.sleep(0.005)
    assert server.loop is not None
    try:
        yield RunningApp(public_url, app, settings, server.loop)
    finally:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()


# --- people on both simulators --------------------------------------------------------------------


@pytest.fixture
def alice_toggl(toggl_sim: TogglSimulator) -> SimUser:
    return toggl_sim.add_user(
        api_token=ALICE_TOGGL_TOKEN,
        email="alice@example.com",
        fullname="Alice Liddell",
        timezone="Europe/Berlin",
        plan="premium",
        workspace_name="Alice's workspace",
    )


@pytest.fixture
def bob_toggl(toggl_sim: TogglSimulator) -> SimUser:
    return toggl_sim.add_user(
        api_token=BOB_TOGGL_TOKEN,
        email="bob@example.com",
        fullname="Bob Builder",
        timezone="Europe/Berlin",
        plan="premium",
        workspace_name="Bob's workspace",
    )


@pytest.fixture
def exist_people(exist_sim: ExistSimulator) -> list[str]:
    """Two Exist users; the approval page lists them in this order."""
    exist_sim.add_user("alice", timezone="Europe/Berlin", first_name="Alice", last_name="Liddell")
    exist_sim.add_user("bob", timezone="Europe/Berlin", first_name="Bob", last_name="Builder")
    return ["alice", "bob"]


# --- the browser ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless, with a fresh profile (Playwright's own temporary one)."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install "
            "chromium); .ci/run does. The browser tests never download a browser.",
            pytrace=False,
        )
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    try:
        yield browser
    finally:
        browser.close()


#: Where a page may load anything from: this machine (the app, and the simulators' pages).
_LOCAL = re.compile(r"^(https?://(127\.0\.0\.1|localhost)(:\d+)?/|data:|about:|blob:)")


class Browsing:
    """Fresh browser contexts (each its own cookie jar: one per person) on the site. Every
    request a page makes is watched: one that leaves this machine (a CDN, a font, analytics)
    fails the test when it ends."""

    def __init__(self, browser: Browser, site: RunningApp) -> None:
        self._browser = browser
        self._site = site
        self._contexts: list[BrowserContext] = []
        self.offsite: list[str] = []

    def new_page(self, *, viewport: tuple[int, int] = (1100, 800)) -> Page:
        context = self._browser.new_context(
            base_url=self._site.url,
            viewport={"width": viewport[0], "height": viewport[1]},
            locale="en-GB",
            timezone_id="Europe/Berlin",
        )
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        context.on("request", self._watch)
        self._contexts.append(context)
        return context.new_page()

    def _watch(self, request: Request) -> None:
        if not _LOCAL.match(request.url):
            self.offsite.append(request.url)

    def close(self) -> None:
        for context in self._contexts:
            context.close()


@pytest.fixture
def browsing(browser: Browser, site: RunningApp) -> Iterator[Browsing]:
    people = Browsing(browser, site)
    try:
        yield people
    finally:
        people.close()
    assert not people.offsite, f"pages loaded from outside the app: {people.offsite}"


@pytest.fixture
def page(browsing: Browsing) -> Page:
    """A page in a fresh browser context on the site."""
    return browsing.new_page()


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as `artifacts/screenshots/<name>.png`."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


__all__ = [
    "ALICE_TOGGL_TOKEN",
    "BOB_TOGGL_TOKEN",
    "Browsing",
    "RunningApp",
    "screenshot",
]
