"""How `timebridge._http` turns an API request into an HTTP one."""

from __future__ import annotations

import httpx
import pytest

from timebridge._http import ApiRequest, AsyncDriver, _build
from timebridge.retry import RetryPolicy
from timebridge.toggl.errors import TogglErrors


@pytest.fixture
def http() -> httpx.Client:
    return httpx.Client(
        base_url="https://api.example.test/api/v9",
        headers={"User-Agent": "timebridge-test"},
        timeout=httpx.Timeout(7.0),
    )


def test_a_relative_path_joins_the_base_url_and_its_query_is_encoded(http: httpx.Client) -> None:
    request = _build(
        http,
        ApiRequest(
            "GET",
            "/me/time_entries",
            params={"start_date": "2026-11-23T00:00:00+01:00", "meta": True, "skip": None},
        ),
    )
    assert request.url == httpx.URL(
        "https://api.example.test/api/v9/me/time_entries"
        "?start_date=2026-11-23T00%3A00%3A00%2B01%3A00&meta=true"
    )
    assert request.url.params["start_date"] == "2026-11-23T00:00:00+01:00"
    assert request.headers["User-Agent"] == "timebridge-test"
    assert request.extensions["timeout"]["read"] == 7.0


def test_it_builds_what_httpx_would(http: httpx.Client) -> None:
    api_request = ApiRequest("POST", "workspaces/1/tags", params={"a": "x y/é"}, json={"n": 1})
    ours = _build(http, api_request)
    theirs = http.build_request("POST", "workspaces/1/tags", params={"a": "x y/é"}, json={"n": 1})
    assert (ours.method, ours.url, ours.content) == (theirs.method, theirs.url, theirs.content)
    assert dict(ours.headers) == dict(theirs.headers)


def test_an_absolute_url_is_kept_and_a_form_is_sent_as_one(http: httpx.Client) -> None:
    request = _build(
        http,
        ApiRequest("POST", "https://exist.test/oauth2/access_token", form={"code": "a b"}),
    )
    assert request.url == httpx.URL("https://exist.test/oauth2/access_token")
    assert request.content == b"code=a+b"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_a_query_in_the_path_keeps_its_parameters(http: httpx.Client) -> None:
    request = _build(http, ApiRequest("GET", "me/projects?active=true", params={"page": 2}))
    assert dict(request.url.params) == {"active": "true", "page": "2"}


async def test_a_closed_driver_opens_no_new_client() -> None:
    opened: list[httpx.AsyncClient] = []

    def open_http() -> httpx.AsyncClient:
        opened.append(httpx.AsyncClient())
        return opened[-1]

    driver = AsyncDriver(open_http, TogglErrors(), RetryPolicy())
    await driver.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await driver.send(ApiRequest("GET", "https://api.example.test/me"))
    assert opened == []


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("https://api.example.test/api/v9", "https://api.example.test/webhooks/api/v1/x/1"),
        ("http://127.0.0.1:8181/api/v9/", "http://127.0.0.1:8181/webhooks/api/v1/x/1"),
        (
            "https://tb.example/toggl-track/api/v9/",
            "https://tb.example/toggl-track/webhooks/api/v1/x/1",
        ),
        (
            "https://tb.example/behind/a/proxy/toggl-track/api/v9",
            "https://tb.example/behind/a/proxy/toggl-track/webhooks/api/v1/x/1",
        ),
    ],
)
def test_leading_dot_dot_segments_climb_the_base_urls_path(base_url: str, expected: str) -> None:
    with httpx.Client(base_url=base_url) as http:
        request = _build(
            http, ApiRequest("GET", "../../webhooks/api/v1/x/1", params={"offset": 50})
        )
    assert request.url == httpx.URL(f"{expected}?offset=50")


def test_climbing_above_the_base_urls_path_is_refused(http: httpx.Client) -> None:
    with pytest.raises(ValueError, match="climbs above"):
        _build(http, ApiRequest("GET", "../../../webhooks"))
    with pytest.raises(ValueError, match=r"leading '\.\./'"):
        _build(http, ApiRequest("GET", ".././webhooks"))
    # Dot segments anywhere else are left to the URL parser, as before.
    assert _build(http, ApiRequest("GET", "me/../me")).url.path == "/api/v9/me"
