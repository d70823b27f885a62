"""A connection's origin: what a URL names, and what cannot be one."""

from __future__ import annotations

import pytest

from timebridge.origins import (
    OriginError,
    exist_api_url,
    exist_oauth_url,
    exist_origin,
    toggl_api_url,
    toggl_origin,
)


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://api.track.toggl.com/api/v9/", "https://api.track.toggl.com"),
        ("https://api.track.toggl.com/api/v9", "https://api.track.toggl.com"),
        ("https://api.track.toggl.com", "https://api.track.toggl.com"),
        ("http://127.0.0.1:8181/api/v9", "http://127.0.0.1:8181"),
        ("  https://proxy.example.com/toggl/api/v9 ", "https://proxy.example.com/toggl"),
        ("http://[::1]:8181/api/v9", "http://[::1]:8181"),
    ],
)
def test_a_toggl_url_names_its_origin(url: str, origin: str) -> None:
    assert toggl_origin(url) == origin
    assert toggl_api_url(origin).endswith("/api/v9/")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://api.track.toggl.com/api/v8", "names another API version"),
        ("api.track.toggl.com/api/v9", "is not an http(s) URL"),
        ("ftp://api.track.toggl.com", "is not an http(s) URL"),
        ("https://user:pw@api.track.toggl.com/api/v9", "must not carry"),
        ("https://api.track.toggl.com/api/v9?x=1", "must not carry"),
    ],
)
def test_a_url_that_cannot_be_toggls_origin_says_what_to_write(url: str, problem: str) -> None:
    with pytest.raises(OriginError, match="Toggl Track") as raised:
        toggl_origin(url)
    assert problem in str(raised.value)
    assert "https://api.track.toggl.com/api/v9" in str(raised.value)


@pytest.mark.parametrize(
    "url", ["https://exist.io/api/2/", "https://exist.io", "https://exist.io/oauth2/"]
)
def test_exists_api_and_oauth_live_under_one_origin(url: str) -> None:
    origin = exist_origin(url)
    assert origin == "https://exist.io"
    assert exist_api_url(origin) == "https://exist.io/api/2/"
    assert exist_oauth_url(origin) == "https://exist.io/oauth2/"


def test_an_old_exist_api_version_is_refused() -> None:
    with pytest.raises(OriginError, match="another API version"):
        exist_origin("https://exist.io/api/1/")
