"""Fixtures for the Exist client, simulator and CLI: the simulator served over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from timebridge.clock import FakeClock
from timebridge.exist import (
    BRIDGE_SCOPES,
    AsyncExistClient,
    ExistClient,
    ExistTokens,
    OAuthApp,
    authorize_url,
)
from timebridge.fakes import RunningServer, serve_in_thread
from timebridge.fakes.exist import ExistSimulator, SimClient, SimUser
from timebridge.retry import RetryPolicy

CLIENT_ID = "timebridge-test"
CLIENT_SECRET = "timebridge-test-secret"
REDIRECT_URI = "http://127.0.0.1:8765/callback"
USERNAME = "alice"


@pytest.fixture
def exist_sim(clock: FakeClock) -> ExistSimulator:
    return ExistSimulator(clock)


@pytest.fixture
def exist_server(exist_sim: ExistSimulator) -> Iterator[RunningServer]:
    with serve_in_thread(exist_sim.asgi_app) as server:
        yield server


@pytest.fixture
def api_url(exist_server: RunningServer) -> str:
    return f"{exist_server.url}/api/2/"


@pytest.fixture
def oauth_url(exist_server: RunningServer) -> str:
    return f"{exist_server.url}/oauth2/"


@pytest.fixture
def user(exist_sim: ExistSimulator) -> SimUser:
    return exist_sim.add_user(USERNAME, timezone="Europe/Berlin", first_name="Alice")


@pytest.fixture
def oauth_client(exist_sim: ExistSimulator) -> SimClient:
    return exist_sim.add_client(
        "Timebridge", client_id=CLIENT_ID, client_secret=CLIENT_SECRET, service="timebridge"
    )


@pytest.fixture
def app() -> OAuthApp:
    return OAuthApp(client_id=CLIENT_ID, client_secret=SecretStr(CLIENT_SECRET))


@pytest.fixture
def personal_token(exist_sim: ExistSimulator, user: SimUser, oauth_client: SimClient) -> str:
    return exist_sim.issue_personal_token(user.username, oauth_client.client_id)


@pytest.fixture
def exist(
    personal_token: str, api_url: str, oauth_url: str, clock: FakeClock
) -> Iterator[ExistClient]:
    with ExistClient(
        personal_token,
        base_url=api_url,
        oauth_base_url=oauth_url,
        retry=RetryPolicy.testing(),
        clock=clock,
    ) as client:
        yield client


@pytest.fixture
async def aexist(
    personal_token: str, api_url: str, oauth_url: str, clock: FakeClock
) -> AsyncIterator[AsyncExistClient]:
    async with AsyncExistClient(
        personal_token,
        base_url=api_url,
        oauth_base_url=oauth_url,
        retry=RetryPolicy.testing(),
        clock=clock,
    ) as client:
        yield client


Approve = Callable[..., str]


@pytest.fixture
def approve(
    exist_server: RunningServer, oauth_url: str, user: SimUser, oauth_client: SimClient
) -> Approve:
    """A browser: opens the authorize page, clicks a button, returns the redirect's Location."""

    def run(
        url: str | None = None,
        *,
        decision: str = "allow",
        client_id: str = CLIENT_ID,
        scopes: tuple[str, ...] = BRIDGE_SCOPES,
        state: str = "state-123",
    ) -> str:
        url = url or authorize_url(
            client_id, REDIRECT_URI, state=state, scopes=scopes, oauth_base_url=oauth_url
        )
        with httpx.Client(follow_redirects=False) as browser:
            page = browser.get(url)
            assert page.status_code == 200, page.text
            assert 'value="allow"' in page.text
            form = {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}
            answer = browser.post(
                f"{exist_server.url}/oauth2/authorize",
                data={**form, "username": user.username, "decision": decision},
            )
        assert answer.status_code == 302, answer.text
        return answer.headers["location"]

    return run


@pytest.fixture
def oauth_tokens(
    approve: Approve, app: OAuthApp, api_url: str, oauth_url: str, clock: FakeClock
) -> Callable[..., ExistTokens]:
    """A fresh token pair from the whole authorization-code flow."""

    def run(scopes: tuple[str, ...] = BRIDGE_SCOPES) -> ExistTokens:
        location = approve(scopes=scopes)
        code = parse_qs(urlsplit(location).query)["code"][0]
        with ExistClient(
            app=app, base_url=api_url, oauth_base_url=oauth_url, clock=clock
        ) as client:
            return client.exchange_code(code, REDIRECT_URI)

    return run
