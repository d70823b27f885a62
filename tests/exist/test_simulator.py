"""The Exist simulator itself: admin API, faults, clock, demo seed, OAuth edge cases."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from timebridge.clock import FakeClock
from timebridge.exist import ExistClient, NotFound
from timebridge.fakes import RunningServer, serve_in_thread
from timebridge.fakes.exist import ExistSimulator
from timebridge.retry import RetryPolicy

from .conftest import CLIENT_ID


@pytest.fixture
def admin(exist_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{exist_server.url}/_admin") as client:
        yield client


def test_everything_can_be_seeded_and_read_back_over_the_admin_api(
    admin: httpx.Client, api_url: str
) -> None:
    assert admin.post("/users", json={"username": "bob", "timezone": "America/New_York"}).is_success
    created = admin.post("/clients", json={"name": "Bridge", "client_id": "bridge"}).json()
    assert created["service"] == "bridge"
    token = admin.post("/tokens", json={"username": "bob", "client_id": "bridge"}).json()[
        "access_token"
    ]
    assert admin.post("/services", json={"name": "rescuetime", "label": "RescueTime"}).is_success
    attribute = admin.post(
        "/attributes", json={"username": "bob", "template": "productive_min", "owner": "rescuetime"}
    ).json()
    assert attribute["service"]["name"] == "rescuetime"
    assert admin.post(
        "/owners", json={"username": "bob", "attribute": "productive_min", "service": "bridge"}
    ).is_success
    assert admin.put(
        "/values",
        json={"username": "bob", "attribute": "productive_min", "date": "2026-03-09", "value": 42},
    ).is_success
    assert admin.post("/refusals", json={"username": "bob", "template": "movies_min"}).is_success

    with ExistClient(token, base_url=api_url, retry=RetryPolicy.never()) as client:
        assert client.profile().timezone == "America/New_York"
        [owned] = client.all_owned_attributes()
        assert owned.name == "productive_min"
    values = admin.get("/values", params={"username": "bob", "attribute": "productive_min"})
    assert values.json() == [{"date": "2026-03-09", "value": 42}]
    state = admin.get("/state").json()
    bob = state["users"]["bob"]
    assert bob["refused_templates"] == ["movies_min"]
    assert bob["attributes"]["productive_min"]["service"]["name"] == "bridge"
    assert bob["attributes"]["productive_min"]["values"] == [{"date": "2026-03-09", "value": 42}]
    listed = admin.get("/attributes", params={"username": "bob"}).json()
    assert [a["name"] for a in listed] == ["productive_min"]


def test_admin_mints_codes_and_moves_the_clock(
    admin: httpx.Client,
    exist_sim: ExistSimulator,
    oauth_client: object,
    user: object,
    api_url: str,
    oauth_url: str,
    clock: FakeClock,
) -> None:
    code = admin.post(
        "/codes",
        json={
            "username": "alice",
            "client_id": CLIENT_ID,
            "redirect_uri": "http://127.0.0.1/cb",
            "scope": "media_read media_write",
        },
    ).json()["code"]
    answer = httpx.post(
        f"{oauth_url}access_token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": CLIENT_ID,
            "client_secret": "timebridge-test-secret",
            "redirect_uri": "http://127.0.0.1/cb",
        },
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 31535999
    assert body["scope"] == "media_read media_write"
    before = clock.now()
    moved = admin.post("/clock", json={"advance": 31536000}).json()
    assert moved["now"] != before.isoformat()
    expired = httpx.get(
        f"{api_url}accounts/profile/", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert expired.status_code == 401
    assert expired.json() == {"detail": "Token has expired."}


def test_the_clock_cannot_be_moved_on_a_real_clock() -> None:
    simulator = ExistSimulator()
    with serve_in_thread(simulator.asgi_app) as server:
        answer = httpx.post(f"{server.url}/_admin/clock", json={"advance": 10})
    assert answer.status_code == 409


def test_faults_hit_the_api_but_never_the_admin_api(
    admin: httpx.Client, exist: ExistClient, api_url: str
) -> None:
    fault = {"path": "/api/2/accounts/profile/", "status": 500, "body": '{"detail": "boom"}'}
    assert admin.post("/faults", json={**fault, "path": "/*"}).is_success
    assert admin.get("/faults").json()[0]["status"] == 500
    assert admin.get("/state").is_success
    raw = httpx.get(f"{api_url}accounts/profile/")
    assert raw.status_code == 500
    assert admin.delete("/faults").is_success
    assert exist.profile().username == "alice"
    log = admin.get("/requests").json()
    assert [(r["path"], r["status"], r["username"]) for r in log] == [
        ("/api/2/accounts/profile/", 200, "alice")
    ]


def test_missing_or_malformed_auth_is_a_401_with_a_detail(api_url: str, user: object) -> None:
    missing = httpx.get(f"{api_url}attributes/")
    assert missing.status_code == 401
    assert missing.json() == {"detail": "Authentication credentials were not provided."}
    wrong = httpx.get(f"{api_url}attributes/", headers={"Authorization": "Bearer nope"})
    assert wrong.json() == {"detail": "Invalid token."}


def test_authorize_refuses_unknown_clients_and_plain_http_redirects(
    oauth_url: str, oauth_client: object
) -> None:
    unknown = httpx.get(
        f"{oauth_url}authorize",
        params={
            "client_id": "nope",
            "redirect_uri": "https://x.example/",
            "response_type": "code",
            "scope": "media_write",
        },
    )
    assert unknown.status_code == 400
    plain = httpx.get(
        f"{oauth_url}authorize",
        params={
            "client_id": CLIENT_ID,
            "redirect_uri": "http://x.example/",
            "response_type": "code",
            "scope": "media_write",
        },
    )
    assert plain.status_code == 400
    assert "HTTPS" in plain.text


def test_token_endpoint_refuses_unknown_grants(oauth_url: str, oauth_client: object) -> None:
    answer = httpx.post(
        f"{oauth_url}access_token",
        data={
            "grant_type": "password",
            "client_id": CLIENT_ID,
            "client_secret": "timebridge-test-secret",
        },
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "unsupported_grant_type"


def test_demo_seed_prints_working_credentials(clock: FakeClock) -> None:
    simulator = ExistSimulator(clock)
    lines = simulator.seed_demo()
    text = "\n".join(lines)
    assert "demo-exist-token" in text
    assert "timebridge-demo" in text
    with (
        serve_in_thread(simulator.asgi_app) as server,
        ExistClient("demo-exist-token", base_url=f"{server.url}/api/2/") as client,
    ):
        names = [a.name for a in client.all_attributes()]
        assert "productive_min" in names
        values = client.values("productive_min", limit=14)
        assert all(v.value is not None for v in values.results)


def test_pages_past_the_end_are_404(exist: ExistClient) -> None:
    with pytest.raises(NotFound):
        exist.templates(page=99)


def test_the_per_test_switches_can_be_set_over_the_admin_api(
    admin: httpx.Client, exist_sim: ExistSimulator
) -> None:
    assert admin.get("/settings").json() == {"empty_days": "null", "retry_after_on_429": True}
    changed = admin.post("/settings", json={"empty_days": "zero", "retry_after_on_429": False})
    assert changed.json() == {"empty_days": "zero", "retry_after_on_429": False}
    assert (exist_sim.empty_days, exist_sim.retry_after_on_429) == ("zero", False)
    refused = admin.post("/settings", json={"empty_days": "nothing"})
    assert refused.status_code == 400
    assert exist_sim.empty_days == "zero"


def test_manual_false_leaves_manual_attributes_out_of_lists(
    exist: ExistClient, exist_sim: ExistSimulator, api_url: str, personal_token: str
) -> None:
    # reference/attributes.md: `manual` "set to true to only show manual attributes or false to
    # exclude".
    exist_sim.add_attribute("alice", template="mood", manual=True)
    exist_sim.add_attribute("alice", template="steps")

    def names(manual: str | None) -> list[str]:
        params = {} if manual is None else {"manual": manual}
        answer = httpx.get(
            f"{api_url}attributes/",
            params=params,
            headers={"Authorization": f"Bearer {personal_token}"},
        )
        return [a["name"] for a in answer.json()["results"]]

    assert names(None) == ["steps", "mood"]
    assert names("true") == ["mood"]
    assert names("false") == ["steps"]
