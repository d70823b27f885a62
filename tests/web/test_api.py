"""The JSON API `/api/v1`, in-process, against both simulators over real HTTP, on SQLite and
PostgreSQL: every endpoint's answer and errors, sessions and CSRF, one account never seeing
another's objects, and the whole flow (connect → map → sync → days) equal to the oracle."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI

from tests.sync.oracle import truth
from timebridge.bridge import Skipped
from timebridge.clock import FakeClock
from timebridge.config import Settings
from timebridge.fakes.exist import ExistSimulator, SimClient
from timebridge.fakes.toggl import SimUser, TogglSimulator
from timebridge.jobs import EmbeddedScheduler
from timebridge.retry import RetryPolicy
from timebridge.store import AccountNotFound, Store
from timebridge.sync.runner import RunReport
from timebridge.web import SyncScheduler, create_app, service_state

BERLIN = ZoneInfo("Europe/Berlin")
API = "/api/v1"

#: Every operation of the API, with a body that passes validation where it needs one.
OPERATIONS: list[tuple[str, str, Any]] = [
    ("GET", "/me", None),
    ("PATCH", "/me", {"time_zone": "Europe/Paris"}),
    ("GET", "/overview", None),
    ("GET", "/connections", None),
    ("GET", "/connections/toggl/some-id", None),
    ("POST", "/connections/toggl", {"api_token": "tok-someone-1234567890"}),
    ("DELETE", "/connections/toggl", None),
    ("POST", "/connections/exist", {"token": "exist-token"}),
    ("DELETE", "/connections/exist", None),
    ("GET", "/projects", None),
    ("GET", "/mapping", None),
    ("PUT", "/mapping", []),
    ("GET", "/takeovers", None),
    ("GET", "/days", None),
    ("GET", "/days/tv_min/2026-03-10", None),
    ("GET", "/runs", None),
    ("POST", "/sync", None),
    ("POST", "/zero-out", None),
    ("POST", "/repair", None),
    ("POST", "/plan", None),
    ("GET", "/webhooks", None),
    ("PUT", "/webhooks", {"enabled": True}),
    ("POST", "/webhooks/check", None),
    ("DELETE", "/account", None),
]
WRITES = [operation for operation in OPERATIONS if operation[0] != "GET"]


@dataclass
class Session:
    """A signed-in API client: its cookie jar holds the session, `csrf` its token."""

    client: httpx.AsyncClient
    account_id: int
    csrf: str

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(f"{API}{path}", params=params)

    async def write(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return await self.client.request(
            method, f"{API}{path}", json=body, headers={"X-CSRF-Token": self.csrf}
        )


class Site:
    """The app started, with as many browsers (cookie jars) as a test wants."""

    def __init__(self, app: FastAPI, store: Store) -> None:
        self.app = app
        self.store = store
        self._clients: list[httpx.AsyncClient] = []

    def client(self) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://timebridge.test"
        )
        self._clients.append(client)
        return client

    async def sign_in(self, account_id: int) -> Session:
        client = self.client()
        secret, _ = await self.store.login_links.create(account_id)
        response = await client.get(f"/signin/link/{secret}", follow_redirects=False)
        assert response.status_code == 303, response.text
        me = await client.get(f"{API}/me")
        assert me.status_code == 200, me.text
        return Session(client, account_id, me.json()["csrf_token"])

    async def new_account(self, name: str) -> Session:
        account = await self.store.accounts.create(f"{name}@example.com", display_name=name)
        return await self.sign_in(account.id)

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()


@dataclass
class People:
    """A person's Toggl user (with projects and entries) and Exist user on the simulators."""

    toggl: SimUser
    exist_username: str
    exist_token: str
    series: int
    work: int
    games: int


def error_of(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    return dict(body["error"])


@pytest.fixture
def settings(tmp_path: Path, toggl_url: str, exist_api_url: str) -> Settings:
    return Settings(data_dir=tmp_path, toggl_base_url=toggl_url, exist_base_url=exist_api_url)


@pytest.fixture
def open_site(
    settings: Settings, store: Store, clock: FakeClock
) -> Callable[[], AbstractAsyncContextManager[Site]]:
    @asynccontextmanager
    async def started() -> AsyncIterator[Site]:
        app = create_app(
            settings, store=store, run_scheduler=False, clock=clock, retry=RetryPolicy.testing()
        )
        site = Site(app, store)
        async with app.router.lifespan_context(app):
            try:
                yield site
            finally:
                await site.aclose()

    return started


@pytest.fixture
async def site(open_site: Callable[[], AbstractAsyncContextManager[Site]]) -> AsyncIterator[Site]:
    async with open_site() as started:
        yield started


@pytest.fixture
def people(
    toggl_sim: TogglSimulator,
    exist_sim: ExistSimulator,
    exist_oauth_client: SimClient,
    clock: FakeClock,
) -> Callable[[str], People]:
    """Makes a person with a week of tracked time, some of it across midnight."""

    def make(name: str) -> People:
        user = toggl_sim.add_user(
            api_token=f"toggl-{name}-0123456789",
            fullname=name.title(),
            timezone="Europe/Berlin",
            plan="premium",
        )
        workspace = user.default_workspace_id
        client = toggl_sim.add_client(workspace, "Home")
        series = toggl_sim.add_project(workspace, "Series", client_id=client.id).id
        work = toggl_sim.add_project(workspace, "Work").id
        games = toggl_sim.add_project(workspace, "Games").id
        now = clock.now()
        # 2026-03-08 22:30 Berlin: three hours across midnight into the 9th.
        late = datetime(2026, 3, 8, 22, 30, tzinfo=BERLIN)
        for start, seconds, project in [
            (late, 3 * 3600 + 29, series),
            (now - timedelta(hours=30), 3000 + 30, work),
            (now - timedelta(days=3, hours=2), 5430, work),
            (now - timedelta(hours=3), 2 * 3600 + 31, series),
            (now - timedelta(days=5), 1800, games),
        ]:
            toggl_sim.add_time_entry(user, start=start, duration=seconds, project_id=project)
        exist_sim.add_user(name, timezone="Europe/Berlin")
        token = exist_sim.issue_personal_token(name, exist_oauth_client.client_id)
        return People(user, name, token, series, work, games)

    return make


async def connected(session: Session, person: People) -> None:
    """Both connections made through the API."""
    toggl = await session.write("POST", "/connections/toggl", {"api_token": person.toggl.api_token})
    assert toggl.status_code == 201, toggl.text
    exist = await session.write("POST", "/connections/exist", {"token": person.exist_token})
    assert exist.status_code == 201, exist.text


def mapping_body(person: People, **attributes: str | None) -> list[dict[str, Any]]:
    workspace = person.toggl.default_workspace_id
    ids = {"Series": person.series, "Work": person.work, "Games": person.games}
    return [
        {
            "project_id": ids[name],
            "workspace_id": workspace,
            "project_name": name,
            "attribute": attribute,
        }
        for name, attribute in attributes.items()
    ]


async def mapped(session: Session, person: People) -> None:
    await connected(session, person)
    saved = await session.write(
        "PUT", "/mapping", mapping_body(person, Series="tv_min", Work="productive_min")
    )
    assert saved.status_code == 200, saved.text


def expected(
    toggl_sim: TogglSimulator, person: People, mapping: dict[int, str], now: datetime
) -> dict[tuple[str, date], int]:
    entries = toggl_sim.world.entries_of(person.toggl.id, include_deleted=True)
    return truth(entries, mapping, BERLIN, now)


# --- signing in, CSRF ---------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), OPERATIONS)
async def test_every_operation_is_401_signed_out(
    site: Site, method: str, path: str, body: Any
) -> None:
    response = await site.client().request(method, f"{API}{path}", json=body)
    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"


async def test_an_unknown_session_cookie_is_401(site: Site) -> None:
    client = site.client()
    client.cookies.set("tb_session", "not-a-session")
    response = await client.get(f"{API}/me")
    assert response.status_code == 401


async def test_every_write_without_the_csrf_token_is_403_and_changes_nothing(site: Site) -> None:
    alice = await site.new_account("alice")
    for method, path, body in WRITES:
        for headers in ({}, {"X-CSRF-Token": "not-the-token"}):
            response = await alice.client.request(
                method, f"{API}{path}", json=body, headers=headers
            )
            assert response.status_code == 403, (method, path, response.text)
            assert error_of(response)["code"] == "csrf_failed"
    account = await site.store.accounts.get(alice.account_id)
    assert account.time_zone is None
    assert await site.store.toggl_connections.list(alice.account_id) == []


async def test_another_sessions_csrf_token_is_refused(site: Site) -> None:
    alice = await site.new_account("alice")
    bob = await site.new_account("bob")
    response = await alice.client.patch(
        f"{API}/me", json={"time_zone": "Europe/Paris"}, headers={"X-CSRF-Token": bob.csrf}
    )
    assert response.status_code == 403


# --- me -----------------------------------------------------------------------------------------


async def test_me_tells_the_account_and_its_sessions_csrf_token(site: Site) -> None:
    alice = await site.new_account("alice")
    response = await alice.get("/me")
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "id": alice.account_id,
        "email": "alice@example.com",
        "display_name": "alice",
        "exist_username": None,
        "time_zone": None,
        "effective_time_zone": "UTC",
        "csrf_token": alice.csrf,
    }
    other = await site.sign_in(alice.account_id)
    assert other.csrf != alice.csrf, "each session has its own token"


async def test_patch_me_sets_and_clears_the_time_zone(site: Site) -> None:
    alice = await site.new_account("alice")
    response = await alice.write("PATCH", "/me", {"time_zone": "America/New_York"})
    assert response.status_code == 200
    assert response.json()["time_zone"] == "America/New_York"
    assert response.json()["effective_time_zone"] == "America/New_York"
    assert (await site.store.accounts.get(alice.account_id)).time_zone == "America/New_York"

    unchanged = await alice.write("PATCH", "/me", {})
    assert unchanged.json()["time_zone"] == "America/New_York"

    cleared = await alice.write("PATCH", "/me", {"time_zone": None})
    assert cleared.json()["time_zone"] is None
    assert (await site.store.accounts.get(alice.account_id)).time_zone is None


@pytest.mark.parametrize("zone", ["Mars/Olympus", "America", "", "../etc", "Europe/Berlin\x00"])
async def test_patch_me_refuses_a_zone_that_is_not_one(site: Site, zone: str) -> None:
    alice = await site.new_account("alice")
    response = await alice.write("PATCH", "/me", {"time_zone": zone})
    assert response.status_code == 422
    assert error_of(response)["code"] == "invalid_request"
    assert (await site.store.accounts.get(alice.account_id)).time_zone is None


async def test_patch_me_refuses_unknown_fields(site: Site) -> None:
    alice = await site.new_account("alice")
    response = await alice.write("PATCH", "/me", {"email": "mallory@example.com"})
    assert response.status_code == 422
    assert (await site.store.accounts.get(alice.account_id)).email == "alice@example.com"


# --- connections --------------------------------------------------------------------------------


async def test_connecting_toggl_checks_the_token_and_never_shows_it(
    site: Site, people: Callable[[str], People], toggl_url: str
) -> None:
    person = people("alice")
    alice = await site.new_account("alice")
    response = await alice.write(
        "POST", "/connections/toggl", {"api_token": f"  {person.toggl.api_token} "}
    )
    assert response.status_code == 201
    body = response.json()
    assert body["toggl_user"]["id"] == person.toggl.id
    assert body["toggl_user"]["default_workspace_id"] == person.toggl.default_workspace_id
    connection = body["connection"]
    assert connection["status"] == "ACTIVE"
    assert connection["is_default"] is True
    assert connection["toggl_user_id"] == person.toggl.id
    assert toggl_url.startswith(connection["origin"])

    listed = await alice.get("/connections")
    assert listed.status_code == 200
    assert listed.json() == {"toggl": [connection], "exist": None}
    one = await alice.get(f"/connections/toggl/{connection['id']}")
    assert one.json() == connection
    for answer in (response, listed, one):
        assert person.toggl.api_token not in answer.text
    stored = await site.store.toggl_connections.token(alice.account_id, connection["id"])
    assert stored.get_secret_value() == person.toggl.api_token


async def test_a_toggl_token_toggl_refuses_is_400_and_nothing_is_stored(site: Site) -> None:
    alice = await site.new_account("alice")
    response = await alice.write("POST", "/connections/toggl", {"api_token": "wrong-token-123"})
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "toggl_token_refused"
    assert "Toggl Track" in error["message"]
    assert await site.store.toggl_connections.list(alice.account_id) == []


@pytest.mark.parametrize(
    "body",
    [{}, {"api_token": ""}, {"api_token": "   "}, {"api_token": "two words"}, {"token": "x"}],
)
async def test_a_malformed_toggl_token_is_422(site: Site, body: dict[str, str]) -> None:
    alice = await site.new_account("alice")
    response = await alice.write("POST", "/connections/toggl", body)
    assert response.status_code == 422
    assert error_of(response)["code"] == "invalid_request"


async def test_connecting_toggl_while_toggl_is_down_is_502_naming_toggl(
    site: Site, people: Callable[[str], People], toggl_sim: TogglSimulator
) -> None:
    person = people("alice")
    alice = await site.new_account("alice")
    toggl_sim.faults.add(status=503, path="/api/v9/*")
    response = await alice.write(
        "POST", "/connections/toggl", {"api_token": person.toggl.api_token}
    )
    assert response.status_code == 502
    error = error_of(response)
    assert error["code"] == "toggl_unavailable"
    assert "Toggl Track" in error["message"]
    assert await site.store.toggl_connections.list(alice.account_id) == []


async def test_toggls_spent_quota_is_503_with_retry_after(
    site: Site, people: Callable[[str], People], toggl_sim: TogglSimulator
) -> None:
    person = people("alice")
    alice = await site.new_account("alice")
    toggl_sim.faults.add(status=402, path="/api/v9/*", headers={"X-Toggl-Quota-Resets-In": "1200"})
    response = await alice.write(
        "POST", "/connections/toggl", {"api_token": person.toggl.api_token}
    )
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1200"
    assert error_of(response)["code"] == "toggl_quota_exceeded"


async def test_connecting_exist_checks_the_token_and_keeps_its_zone(
    site: Site, people: Callable[[str], People]
) -> None:
    person = people("alice")
    alice = await site.new_account("alice")
    refused = await alice.write("POST", "/connections/exist", {"token": "not-a-token"})
    assert refused.status_code == 400
    assert error_of(refused)["code"] == "exist_token_refused"
    assert await site.store.exist_connections.get(alice.account_id) is None

    response = await alice.write("POST", "/connections/exist", {"token": person.exist_token})
    assert response.status_code == 201
    body = response.json()
    assert body["username"] == "alice"
    assert body["connection"]["status"] == "ACTIVE"
    assert body["connection"]["time_zone"] == "Europe/Berlin"
    assert person.exist_token not in response.text
    listed = await alice.get("/connections")
    assert listed.json()["exist"] == body["connection"]
    assert person.exist_token not in listed.text
    me = await alice.get("/me")
    assert me.json()["effective_time_zone"] == "Europe/Berlin"


async def test_connecting_exist_while_exist_is_down_is_502_naming_exist(
    site: Site, people: Callable[[str], People], exist_sim: ExistSimulator
) -> None:
    person = people("alice")
    alice = await site.new_account("alice")
    exist_sim.faults.add(status=500, path="/api/2/*")
    response = await alice.write("POST", "/connections/exist", {"token": person.exist_token})
    assert response.status_code == 502
    error = error_of(response)
    assert error["code"] == "exist_unavailable"
    assert "Exist" in error["message"]
    assert await site.store.exist_connections.get(alice.account_id) is None


async def test_disconnecting_toggl_deletes_its_data_and_releases_the_attributes(
    site: Site, people: Callable[[str], People], exist_sim: ExistSimulator
) -> None:
    person = people("alice")
    alice = await site.new_account("alice")
    await mapped(alice, person)
    assert (await alice.write("POST", "/sync")).json()["outcome"] == "succeeded"

    response = await alice.write("DELETE", "/connections/toggl")
    assert response.status_code == 204
    assert response.content == b""
    assert (await alice.get("/connections")).json()["toggl"] == []
    assert (await alice.get("/mapping")).json() == []
    assert await site.store.ledger.load(alice.account_id) == {}
    assert exist_sim.attribute("alice", "tv_min").service is None, "given back to Exist"
    again = await alice.write("DELETE", "/connections/toggl")
    assert again.status_code == 404
    assert error_of(again)["code"] == "not_found"


async def test_disconnecting_exist_keeps_the_mapping(
    site: Site, people: Callable[[str], People]
) -> None:
    person = people("alice")
    alice = await site.new_account("alice")
    await mapped(alice, person)
    response = await alice.write("DELETE", "/connections/exist")
    assert response.status_code == 204
    assert (await alice.get("/connections")).json()["exist"] is None
    assert len((await alice.get("/mapping")).json()) == 2
    assert (await alice.write("DELETE", "/connections/exist")).status_code == 404
    not_ready = await alice.write("POST", "/sync")
    assert not_ready.status_code == 409
    assert error_of(not_ready)["code"] == "exist_not_connected"


# --- projects, mapping, takeovers ---------------------------------------------------------------


async def test_projects_list_the_toggl_projects_with_their_attributes(
    site: Site, people: Callable[[str], People]
) -> None:
    person = people("alice")
    alice = await site.new_account("alice")
    await mapped(alice, person)
    response = await alice.get("/projects")
    assert response.status_code == 200
    body = response.json()
    assert body["toggl_requests"] >= 2
    by_name = {project["name"]: project for project in body["projects"]}
    assert set(by_name) == {"Series", "Work", "Games"}
    assert by_name["Series"]["attribute"] == "tv_min"
    assert by_name["Series"]["client_name"] == "Home"
    assert by_name["Work"]["attribute"] == "productive_min"
    assert by_name["Games"]["attribute"] is None
    assert by_name["Games"]["exist_attribute"] is None
    assert {project["workspace_id"] for project in body["projects"]} == {
        person.toggl.default_workspace_id
    }


async def test_projects_without_toggl_are_409(site: Site) -> None:
    alice = await site.new_account("alice")
    response = await alice.get("/projects")
    assert response.status_code == 409
    assert error_of(response)["code"] == "toggl_not_connected"


async def test_projects_when_toggl_fails_are_502(
    site: Site, people: Callable[[str], People], toggl_sim: TogglSimulator
) -> None:
    person = people("alice")
    alice = await site.new_account("alice")
    await connected(alice, person)
    toggl_sim.faults.add(status=500, path="/api/v9/*")
    response = await alice.get("/projects")
    assert response.status_code == 502
    assert error_of(response)["code"] == "toggl_unavailable"


async def test_put_mapping_acquires_releases_and_stores_the_whole_mapping(
    site: Site, people: Callable[[str], People], exist_sim: ExistSimulator
) -> None:
    person = people("alice")
    alice = await site.new_account("alice")
    await connected(alice, person)
    response = await alice.write(
        "PUT",
        "/mapping",
        mapping_body(person, Series="tv_min", Work="productive_min", Games=None),
    )
    assert response.status_code == 200
    body = response.json()
    assert body["refused"] == [] and body["taken_over"] == [] and body["released"] == []
    stored = sorted((item["project_name"], item["attribute"]) for item in body["mapping"])
    assert stored == [("Series", "tv_min"), ("Work", "productive_min")]
    assert (await alice.get("/mapping")).json() == body["mapping"]
    assert exist_sim.attribute("alice", "tv_min").service is not None

    narrowed = await alice.write("PUT", "/mapping", mapping_body(person, Series="tv_min"))
    assert narrowed.status_code == 200
    assert narrowed.json()["released"] == ["productive_min"], "nothing of ours was written"
    assert [item["project_name"] for item in narrowed.json()["mapping"]] == ["Series"]


async def test_a_refused_movies_template_maps_to_the_custom_attribute(
    site: Site, people: Callable[[str], People], exist_sim: ExistSimulator
) -> None:
    person = people("alice")
    alice = await site.new_account("alice")
    await connected(alice, person)
    exist_sim.refuse_template("alice", "movies_min")
    response = await alice.write("PUT", "/mapping", mapping_body(person, Series="movies_min"))
    assert response.status_code == 200
    [item] = response.json()["mapping"]
    assert item["attribute"] == "movies_min"
    assert item["exist_attribute"] != "movies_min"
    # What GET answers can be PUT back as it is.
    round_trip = [
        {key: entry[key] for key in ("project_id", "workspace_id", "project_name", "attribute")}
        for entry in (await alice.get("/mapping")).json()
    ]
    again = await alice.write("PUT", "/mapping", round_trip)
    assert again.status_code == 200
    assert again.json()["mapping"] == response.json()["mapping"]


async def test_an_attribute_another_integration_holds_is_409_and_nothing_changes(
    site: Site, people: Callable[[str], People]
) -> None:
    person = people("alice")
    alice = await site.new_account("alice")
    await connected(alice, person)
    await site.store.claims.claim(alice.account_id, "tv_min", "trakt")
    response = await alice.write(
        "PUT", "/mapping", mapping_body(person, Series="tv_min", Work="productive_min")
    )
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "attribute_claimed"
    assert "trakt" in error["message"]
    assert (await alice.get("/mapping")).json() == []


@pytest.mark.parametrize(
    "body",
    [
        [{"project_id": 1, "workspace_id": 1, "project_name": "x", "attribute": "steps"}],
        [{"project_id": 0, "workspace_id": 1, "project_name": "x", "attribute": "tv_min"}],
        [{"project_id": 2**63, "workspace_id": 1, "project_name": "x", "attribute": "tv_min"}],
        [{"project_id": 1, "workspace_id": 1, "project_name": "a\x00b", "attribute": "tv_min"}],
        [{"project_id": 1, "workspace_id": 1, "project_name": "x" * 256, "attribute": None}],
        [
            {"project_id": 1, "workspace_id": 1, "project_name": "x", "attribute": "tv_min"},
            {"project_id": 1, "workspace_id": 1, "project_name": "x", "attribute": "gaming_min"},
        ],
        {"project_id": 1},
    ],
)
async def test_a_malformed_mapping_is_422(
    site: Site, people: Callable[[str], People], body: Any
) -> None:
    person = people("alice")
    alice = await site.new_account("alice")
    await connected(alice, person)
    response = await alice.write("PUT", "/mapping", body)
    assert response.status_code == 422, response.text
    assert error_of(response)["code"] == "invalid_request"
    assert (await alice.get("/mapping")).json() == []


async def test_mapping_without_exist_is_409(site: Site, people: Callable[[str], People]) -> None:
    person = people("alice")
    alice = await site.new_account("alice")
    response = await alice.write("PUT", "/mapping", mapping_body(person, Series="tv_min"))
    assert response.status_code == 409
    assert error_of(response)["code"] == "exist_not_connected"


async def test_mapping_while_exist_is_down_is_502(
    site: Site, people: Callable[[str], People], exist_sim: ExistSimulator
) -> None:
    person = people("alice")
    alice = await site.new_account("alice")
    await connected(alice, person)
    exist_sim.faults.add(status=503, path="/api/2/*")
    response = await alice.write("PUT", "/mapping", mapping_body(person, Series="tv_min"))
    assert response.status_code == 502
    assert error_of(response)["code"] == "exist_unavailable"
    assert (await alice.get("/mapping")).json() == []


async def test_takeovers_name_the_service_that_feeds_an_attribute(
    site: Site, people: Callable[[str], People], exist_sim: ExistSimulator
) -> None:
    person = people("alice")
    alice = await site.new_account("alice")
    await connected(alice, person)
    exist_sim.add_service("rescuetime", "RescueTime")
    exist_sim.add_attribute("alice", template="productive_min", owner="rescuetime")

    asked = await alice.get("/takeovers", attributes=["productive_min", "tv_min"])
    assert asked.status_code == 200
    assert asked.json() == {"takeovers": [{"attribute": "productive_min", "service": "RescueTime"}]}
    everything = await alice.get("/takeovers")
    assert everything.json() == asked.json()
    assert (await alice.get("/takeovers", attributes="tv_min")).json() == {"takeovers": []}
    bad = await alice.get("/takeovers", attributes="steps")
    assert bad.status_code == 422

    saved = await alice.write("PUT", "/mapping", mapping_body(person, Work="productive_min"))
    assert saved.json()["taken_over"] == [{"attribute": "productive_min", "service": "RescueTime"}]
    assert (await alice.get("/takeovers")).json() == {"takeovers": []}


async def test_takeovers_without_exist_are_409(site: Site) -> None:
    alice = await site.new_account("alice")
    response = await alice.get("/takeovers")
    assert response.status_code == 409
    assert error_of(response)["code"] == "exist_not_connected"


# --- the whole flow -------------------------------------------------------------------------------


async def test_connect_map_sync_and_the_days_equal_the_oracle(
    site: Site,
    people: Callable[[str], People],
    toggl_sim: TogglSimulator,
    exist_sim: ExistSimulator,
    clock: FakeClock,
) -> None:
    person = people("alice")
    alice = await site.new_account("alice")
    await mapped(alice, person)
    mapping = {person.series: "tv_min", person.work: "productive_min"}
    want = expected(toggl_sim, person, mapping, clock.now())
    assert any(minutes for minutes in want.values())

    overview = (await alice.get("/overview")).json()
    assert overview["toggl"]["status"] == overview["exist"]["status"] == "ACTIVE"
    assert overview["mapped_projects"] == 2
    assert overview["last_run"] is None
    assert overview["zone"] == "Europe/Berlin"
    assert datetime.fromisoformat(overview["next_run_at"]) > clock.now()

    # A dry run says what a sync will write, and writes nothing.
    preview = await alice.write("POST", "/plan")
    assert preview.status_code == 200
    planned = {
        (w["attribute"], date.fromisoformat(w["date"])): w["value"]
        for w in preview.json()["writes"]
    }
    assert planned == {key: minutes for key, minutes in want.items() if minutes}
    assert exist_sim.stored_values("alice", "tv_min") == {}
    assert (await alice.get("/runs")).json() == []

    synced = await alice.write("POST", "/sync")
    assert synced.status_code == 200
    report = synced.json()
    assert report["kind"] == "sync"
    assert report["outcome"] == "succeeded"
    assert report["error"] is None
    assert report["values_written"] == len(planned) == len(report["written"])
    assert report["toggl_requests"] >= 1
    for attribute in ("tv_min", "productive_min"):
        stored = exist_sim.stored_values("alice", attribute)
        for (name, day), minutes in want.items():
            if name == attribute:
                assert (stored.get(day) or 0) == minutes, (attribute, day)

    days = (await alice.get("/days")).json()
    assert days["zone"] == "Europe/Berlin"
    assert len(days["window"]) == 14
    assert days["window"][-1] == "2026-03-10"
    assert days["fetched_at"] is not None
    assert [item["attribute"] for item in days["attributes"]] == ["productive_min", "tv_min"]
    for item in days["attributes"]:
        assert [day["date"] for day in item["days"]] == days["window"]
        for day in item["days"]:
            minutes = want[(item["attribute"], date.fromisoformat(day["date"]))]
            assert day["toggl_minutes"] == minutes
            assert day["exist"] == minutes
            assert day["in_sync"] is True

    # The drill-down: the entry that crossed midnight, on both of its days.
    before = (await alice.get("/days/tv_min/2026-03-08")).json()
    after = (await alice.get("/days/tv_min/2026-03-09")).json()
    [evening] = before["entries"]
    [morning] = after["entries"]
    assert evening["entry_id"] == morning["entry_id"]
    assert evening["project_name"] == "Series"
    assert (evening["cut_before"], evening["cut_after"]) == (False, True)
    assert (morning["cut_before"], morning["cut_after"]) == (True, False)
    assert evening["seconds"] == 90 * 60
    assert morning["seconds"] == 90 * 60 + 29
    assert datetime.fromisoformat(evening["start"]).utcoffset() == timedelta(hours=1)
    for detail in (before, after):
        assert detail["toggl_seconds"] == sum(part["seconds"] for part in detail["entries"])
        assert detail["toggl_minutes"] == want[("tv_min", date.fromisoformat(detail["date"]))]
        assert detail["exist"] == detail["toggl_minutes"]

    runs = (await alice.get("/runs")).json()
    assert [(run["kind"], run["outcome"]) for run in runs] == [("sync", "succeeded")]
    assert runs[0]["values_written"] == report["values_written"]
    assert (await alice.get("/overview")).json()["last_run"] == runs[0]

    # An entry edited in Toggl shows after the next sync.
    toggl_sim.add_time_entry(
        person.toggl, start=clock.now() - timedelta(hours=1), duration=600, project_id=person.work
    )
    again = (await alice.write("POST", "/sync")).json()
    assert again["values_written"] == 1
    today = (await alice.get("/days/productive_min/2026-03-10")).json()
    assert today["toggl_minutes"] == want[("productive_min", date(2026, 3, 10))] + 10
    assert today["exist"] == today["toggl_minutes"]


async def test_sync_now_goes_through_a_running_scheduler_one_run_at_a_time(
    settings: Settings, store: Store, clock: FakeClock, people: Callable[[str], People]
) -> None:
    person = people("alice")
    never = asyncio.Event()

    async def no_cron_time(seconds: float) -> None:
        await never.wait()

    asked = 0
    both_asked = asyncio.Event()

    async def sync_user(account_id: int) -> RunReport | Skipped:
        # The run waits until both requests have asked for it (at most a few seconds), so that
        # how fast a busy machine serves the first one cannot decide the test.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(both_asked.wait(), timeout=5)
        bridge = service_state(app).bridge
        assert bridge is not None
        return await bridge.sync(account_id)

    scheduler: SyncScheduler = EmbeddedScheduler(
        cron=settings.sync_cron,
        list_users=store.accounts.ready_to_sync,
        sync_user=sync_user,
        clock=clock,
        sleep=no_cron_time,
    )
    start_or_join = scheduler.sync_now

    def counting_sync_now(user: int) -> asyncio.Task[RunReport | Skipped]:
        nonlocal asked
        asked += 1
        if asked >= 2:
            both_asked.set()
        return start_or_join(user)

    scheduler.sync_now = counting_sync_now  # type: ignore[method-assign]
    app = create_app(
        settings, store=store, scheduler=scheduler, clock=clock, retry=RetryPolicy.testing()
    )
    site = Site(app, store)
    async with app.router.lifespan_context(app):
        try:
            alice = await site.new_account("alice")
            await mapped(alice, person)
            first, second = await asyncio.gather(
                alice.write("POST", "/sync"), alice.write("POST", "/sync")
            )
            assert first.status_code == second.status_code == 200
            assert first.json() == second.json(), "the same run answers both"
            assert first.json()["outcome"] == "succeeded"
            assert len((await alice.get("/runs")).json()) == 1
            overview = (await alice.get("/overview")).json()
            assert overview["next_run_at"] == "2026-03-10T12:40:00Z"
        finally:
            await site.aclose()


async def test_repair_rewrites_what_was_edited_in_exist(
    site: Site, people: Callable[[str], People], exist_sim: ExistSimulator
) -> None:
    person = people("alice")
    alice = await site.new_account("alice")
    await mapped(alice, person)
    await alice.write("POST", "/sync")
    correct = exist_sim.stored_values("alice", "tv_min")[date(2026, 3, 9)]
    exist_sim.set_value("alice", "tv_min", date(2026, 3, 9), 5)

    response = await alice.write("POST", "/repair")
    assert response.status_code == 200
    report = response.json()
    assert report["kind"] == "repair"
    assert report["outcome"] == "succeeded"
    assert report["repaired"] == [{"attribute": "tv_min", "date": "2026-03-09", "value": correct}]
    assert exist_sim.stored_values("alice", "tv_min")[date(2026, 3, 9)] == correct


async def test_zero_out_writes_zeros_then_syncs_again(
    site: Site, people: Callable[[str], People], exist_sim: ExistSimulator
) -> None:
    person = people("alice")
    alice = await site.new_account("alice")
    await mapped(alice, person)
    synced = (await alice.write("POST", "/sync")).json()
    exist_sim.clear_requests()
    response = await alice.write("POST", "/zero-out")
    assert response.status_code == 200
    report = response.json()
    assert report["kind"] == "zero_out"
    assert report["outcome"] == "succeeded"
    zeros = [w for w in report["written"] if w["value"] == 0]
    assert len(zeros) >= 2 * 14 - synced["values_written"]
    kinds = [run["kind"] for run in (await alice.get("/runs")).json()]
    assert kinds == ["zero_out", "sync"]
    days = (await alice.get("/days")).json()
    assert all(day["in_sync"] for item in days["attributes"] for day in item["days"])


async def test_actions_without_connections_are_409(site: Site) -> None:
    alice = await site.new_account("alice")
    for path in ("/sync", "/zero-out", "/repair", "/plan"):
        response = await alice.write("POST", path)
        assert response.status_code == 409, path
        assert error_of(response)["code"] == "toggl_not_connected"
    assert (await alice.get("/runs")).json() == []


async def test_a_sync_that_fails_upstream_is_a_recorded_failed_run(
    site: Site, people: Callable[[str], People], toggl_sim: TogglSimulator
) -> None:
    person = people("alice")
    alice = await site.new_account("alice")
    await mapped(alice, person)
    toggl_sim.faults.add(status=503, path="/api/v9/me/time_entries*")
    response = await alice.write("POST", "/sync")
    assert response.status_code == 200
    report = response.json()
    assert report["outcome"] == "failed"
    assert report["error"]
    [run] = (await alice.get("/runs")).json()
    assert run["outcome"] == "failed"
    assert run["error"] == report["error"]


async def test_a_dry_run_when_toggl_fails_is_502(
    site: Site, people: Callable[[str], People], toggl_sim: TogglSimulator
) -> None:
    person = people("alice")
    alice = await site.new_account("alice")
    await mapped(alice, person)
    toggl_sim.faults.add(status=500, path="/api/v9/*")
    response = await alice.write("POST", "/plan")
    assert response.status_code == 502
    assert "Toggl Track" in error_of(response)["message"]


# --- days and runs ------------------------------------------------------------------------------


async def test_days_of_an_account_never_synced_are_empty(site: Site) -> None:
    alice = await site.new_account("alice")
    days = (await alice.get("/days")).json()
    assert days["attributes"] == []
    assert days["fetched_at"] is None
    assert len(days["window"]) == 14


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/days/gaming_min/2026-03-09", 404),
        ("/days/tv_min/2026-02-01", 404),
        ("/days/tv_min/2026-03-11", 404),
        ("/days/tv_min/yesterday", 422),
        ("/days/tv_min/2026-02-30", 422),
    ],
)
async def test_a_day_not_in_the_window_or_not_mapped_is_not_found(
    site: Site, people: Callable[[str], People], path: str, status: int
) -> None:
    person = people("alice")
    alice = await site.new_account("alice")
    await mapped(alice, person)
    response = await alice.get(path)
    assert response.status_code == status
    error_of(response)


async def test_runs_are_the_last_ones_newest_first(
    site: Site, people: Callable[[str], People], clock: FakeClock
) -> None:
    person = people("alice")
    alice = await site.new_account("alice")
    await mapped(alice, person)
    for _ in range(3):
        await alice.write("POST", "/sync")
        clock.advance(60)
    runs = (await alice.get("/runs")).json()
    assert len(runs) == 3
    assert [run["started_at"] for run in runs] == sorted(
        (run["started_at"] for run in runs), reverse=True
    )
    assert len((await alice.get("/runs", limit=2)).json()) == 2
    for limit in (0, 51, "many"):
        response = await alice.get("/runs", limit=limit)
        assert response.status_code == 422
        assert error_of(response)["code"] == "invalid_request"


# --- accounts see only their own --------------------------------------------------------------


async def test_another_accounts_objects_are_not_found(
    site: Site, people: Callable[[str], People]
) -> None:
    alice_person, bob_person = people("alice"), people("bob")
    alice = await site.new_account("alice")
    bob = await site.new_account("bob")
    await mapped(alice, alice_person)
    await connected(bob, bob_person)
    bob_map = await bob.write("PUT", "/mapping", mapping_body(bob_person, Games="gaming_min"))
    assert bob_map.status_code == 200
    await alice.write("POST", "/sync")
    await bob.write("POST", "/sync")

    [bobs_connection] = (await bob.get("/connections")).json()["toggl"]
    response = await alice.get(f"/connections/toggl/{bobs_connection['id']}")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
    assert (await alice.get("/days/gaming_min/2026-03-05")).status_code == 404
    assert (await bob.get("/days/gaming_min/2026-03-05")).status_code == 200
    assert (await bob.get("/days/tv_min/2026-03-09")).status_code == 404

    alice_sees = [
        (await alice.get(path)).text
        for path in ("/me", "/overview", "/connections", "/mapping", "/days", "/runs", "/projects")
    ]
    for text in alice_sees:
        assert bobs_connection["id"] not in text
        assert "bob" not in text.lower()
        assert str(bob_person.games) not in text
    assert [item["attribute"] for item in (await bob.get("/days")).json()["attributes"]] == [
        "gaming_min"
    ]

    # Bob disconnecting and leaving touches nothing of Alice's.
    assert (await bob.write("DELETE", "/connections/toggl")).status_code == 204
    assert (await bob.write("DELETE", "/account")).status_code == 204
    assert len((await alice.get("/connections")).json()["toggl"]) == 1
    assert len((await alice.get("/mapping")).json()) == 2
    assert len((await alice.get("/runs")).json()) == 1


async def test_deleting_the_account_removes_everything_and_signs_out(
    site: Site, people: Callable[[str], People], exist_sim: ExistSimulator
) -> None:
    person = people("alice")
    alice = await site.new_account("alice")
    await mapped(alice, person)
    await alice.write("POST", "/sync")
    elsewhere = await site.sign_in(alice.account_id)

    response = await alice.write("DELETE", "/account")
    assert response.status_code == 204
    assert "tb_session" in response.headers.get("set-cookie", "")
    with pytest.raises(AccountNotFound):
        await site.store.accounts.get(alice.account_id)
    assert await site.store.toggl_connections.list(alice.account_id) == []
    assert await site.store.sync_runs.recent(alice.account_id) == []
    assert exist_sim.attribute("alice", "tv_min").service is None
    for session in (alice, elsewhere):
        assert (await session.get("/me")).status_code == 401


async def test_the_openapi_documents_the_api_its_errors_and_the_csrf_header(site: Site) -> None:
    spec = (await site.client().get("/openapi.json")).json()
    operations = {
        (method.upper(), path.removeprefix(API)): operation
        for path, item in spec["paths"].items()
        if path.startswith(API)
        for method, operation in item.items()
    }
    documented = {
        (method, path.replace("some-id", "{connection_id}")) for method, path, _ in OPERATIONS
    }
    documented = {
        (m, "/days/{attribute}/{day}" if p.startswith("/days/") else p) for m, p in documented
    }
    assert set(operations) == documented
    assert "session" in spec["components"]["securitySchemes"]
    for (method, _path), operation in operations.items():
        assert operation["summary"]
        responses = operation["responses"]
        assert responses["401"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"
        }
        assert "HTTPValidationError" not in str(responses)
        headers = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
        if method == "GET":
            assert headers == []
        else:
            assert headers == ["X-CSRF-Token"]
            assert "403" in responses
    me = spec["components"]["schemas"]["MeOut"]
    assert "csrf_token" in me["required"]


async def test_webhooks_without_a_public_url_are_unavailable_and_say_why(
    site: Site, people: Callable[[str], People]
) -> None:
    alice = await site.new_account("alice")
    await connected(alice, people("alice"))
    status = await alice.get("/webhooks")
    assert status.status_code == 200
    assert status.json()["available"] is False
    assert "TIMEBRIDGE_PUBLIC_URL" in status.json()["unavailable_reason"]
    refused = await alice.write("PUT", "/webhooks", {"enabled": True})
    assert refused.status_code == 409
    assert error_of(refused)["code"] == "webhooks_unavailable"
