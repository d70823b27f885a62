"""The Toggl client through a Timebridge gateway: what it sends, and how it reads the gateway's
own answers. A stand-in gateway (an `httpx.MockTransport`) records each request and answers as
the gateway's contract says (`shared/DESIGN.md`, "The gateway"); the real gateway in front of
the Toggl simulator is `test_gateway_end_to_end.py`'s."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from timebridge.clock import FakeClock
from timebridge.retry import RetryPolicy
from timebridge.toggl import (
    AsyncTogglClient,
    AuthenticationError,
    GatewayKeyAuth,
    NotFound,
    QuotaExceeded,
    RateLimited,
    ServerError,
    TogglClient,
    TogglError,
    TransportError,
    gateway_base_url,
)

KEY = "tb_4fJq9ZrX2mWb8KcT1nLp7YdVhE3sGa6UoQiR0zNe5BxC_k3x9"
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
ME = {
    "id": 7,
    "email": "alice@example.com",
    "fullname": "Alice",
    "timezone": "Europe/Berlin",
    "default_workspace_id": 70,
    "api_token": "[redacted]",
}

Handler = Callable[[httpx.Request], httpx.Response]


def gateway_error(status: int, code: str, message: str, **headers: str) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"code": code, "message": message}}, headers=headers
    )


class StandIn:
    """Records every request and answers with `answer` (GET /me's profile by default)."""

    def __init__(self, answer: Handler | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self._answer = answer or (lambda _request: httpx.Response(200, json=ME))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self._answer(request)

    def client(self, connection: str | None = None, **options: object) -> TogglClient:
        return TogglClient.through_gateway(
            "http://gateway.test",
            KEY,
            connection=connection,
            retry=RetryPolicy.testing(),
            clock=FakeClock(NOW),
            transport=httpx.MockTransport(self),
            **options,  # type: ignore[arg-type]
        )


# --- what is sent --------------------------------------------------------------------------------


def test_requests_go_to_the_gateways_toggl_path_with_the_key_as_bearer() -> None:
    gateway = StandIn()
    with gateway.client(connection="conn_42") as toggl:
        me = toggl.me()
    assert me.fullname == "Alice"
    (request,) = gateway.requests
    assert str(request.url) == "http://gateway.test/toggl-track/api/v9/me"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["Timebridge-Connection"] == "conn_42"
    assert request.headers["Accept"] == "application/json"


def test_without_a_connection_no_connection_header_is_sent() -> None:
    gateway = StandIn()
    with gateway.client() as toggl:
        toggl.me()
    assert "Timebridge-Connection" not in gateway.requests[0].headers
    assert "Maton-Connection" not in gateway.requests[0].headers


def test_writes_keep_their_method_query_and_body_through_the_gateway() -> None:
    entry = {
        "id": 1,
        "workspace_id": 70,
        "start": "2026-03-10T08:00:00+00:00",
        "stop": "2026-03-10T09:00:00+00:00",
        "duration": 3600,
        "description": "Report",
        "at": "2026-03-10T09:00:00+00:00",
    }

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/projects"):
            return httpx.Response(200, json=[])
        if request.url.path.endswith("/tags"):
            return httpx.Response(200, json={"id": 5, "workspace_id": 70, "name": "focus"})
        return httpx.Response(200, json=entry)

    gateway = StandIn(answer)
    with gateway.client(connection="conn_42") as toggl:
        toggl.stop_time_entry(70, 1)
        toggl.projects(70, active=True, page=2, per_page=50)
        toggl.create_tag(70, "focus")
    stop, projects, tag = gateway.requests
    assert (stop.method, stop.url.path) == (
        "PATCH",
        "/toggl-track/api/v9/workspaces/70/time_entries/1/stop",
    )
    assert projects.url.path == "/toggl-track/api/v9/workspaces/70/projects"
    assert dict(projects.url.params) == {"active": "true", "page": "2", "per_page": "50"}
    assert (tag.method, json.loads(tag.content)["name"]) == ("POST", "focus")
    for request in gateway.requests:
        assert request.headers["Authorization"] == f"Bearer {KEY}"
        assert request.headers["Timebridge-Connection"] == "conn_42"


async def test_the_async_client_sends_the_same_request() -> None:
    gateway = StandIn()
    async with AsyncTogglClient.through_gateway(
        "http://gateway.test/",
        KEY,
        connection="conn_42",
        retry=RetryPolicy.testing(),
        transport=httpx.MockTransport(gateway),
    ) as toggl:
        assert (await toggl.me()).id == 7
        assert toggl.connection == "conn_42"
    (request,) = gateway.requests
    assert str(request.url) == "http://gateway.test/toggl-track/api/v9/me"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["Timebridge-Connection"] == "conn_42"


def test_the_keyword_arguments_are_the_same_as_through_gateway() -> None:
    gateway = StandIn()
    with TogglClient(
        gateway="http://gateway.test",
        key=KEY,
        connection="conn_9",
        transport=httpx.MockTransport(gateway),
    ) as toggl:
        toggl.me()
    assert gateway.requests[0].headers["Timebridge-Connection"] == "conn_9"
    assert gateway.requests[0].headers["Authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize(
    ("given", "base_url"),
    [
        ("http://gateway.test", "http://gateway.test/toggl-track/api/v9/"),
        ("http://gateway.test/", "http://gateway.test/toggl-track/api/v9/"),
        ("http://gateway.test/toggl-track", "http://gateway.test/toggl-track/api/v9/"),
        ("http://gateway.test/toggl-track/api/v9/", "http://gateway.test/toggl-track/api/v9/"),
        ("https://example.org/tb", "https://example.org/tb/toggl-track/api/v9/"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000/toggl-track/api/v9/"),
        (" http://[::1]:8000/ ", "http://[::1]:8000/toggl-track/api/v9/"),
    ],
)
def test_the_gateway_url_may_be_given_with_or_without_its_toggl_path(
    given: str, base_url: str
) -> None:
    assert gateway_base_url(given) == base_url
    with TogglClient.through_gateway(given, KEY) as toggl:
        assert toggl.base_url == base_url


@pytest.mark.parametrize(
    "url", ["gateway.test", "ftp://gateway.test", "http://gateway.test/?x=1", "http://u:p@gw.test"]
)
def test_a_gateway_url_that_is_not_one_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="gateway URL"):
        TogglClient.through_gateway(url, KEY)


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        ({"gateway": "http://gw.test", "key": ""}, "key is empty"),
        ({"gateway": "http://gw.test", "key": "tb_a b"}, "spaces or control"),
        ({"gateway": "http://gw.test", "key": "tb_a\r\nX-Evil: 1"}, "spaces or control"),
        ({"gateway": "http://gw.test"}, "needs its API key"),
        ({"key": KEY}, "needs the gateway's URL"),
        ({"connection": "conn_1"}, "needs the gateway's URL"),
        ({"gateway": "http://gw.test", "key": KEY, "api_token": "tok"}, "not a Toggl token"),
        ({"gateway": "http://gw.test", "key": KEY, "connection": "a\nb"}, "not a connection"),
    ],
)
def test_gateway_arguments_that_cannot_work_are_refused_before_any_request(
    arguments: dict[str, str], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        TogglClient(**arguments)  # type: ignore[arg-type]


# --- the key stays secret ----------------------------------------------------------------------


def test_the_key_is_never_in_a_repr_or_a_log() -> None:
    # httpx's and httpcore's own records, caught at their loggers: whatever another test did to
    # the root logger's handlers, these still see every record the request makes.
    records: list[logging.LogRecord] = []

    class Catcher(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    catcher = Catcher(logging.DEBUG)
    watched = [logging.getLogger(name) for name in ("httpx", "httpcore", "timebridge")]
    levels = [logger.level for logger in watched]
    for logger in watched:
        logger.addHandler(catcher)
        logger.setLevel(logging.DEBUG)
    try:
        gateway = StandIn(
            lambda _request: gateway_error(401, "invalid_key", "the key is not valid")
        )
        with gateway.client(connection="conn_42") as toggl:
            assert KEY not in repr(toggl)
            assert "conn_42" in repr(toggl)
            with pytest.raises(AuthenticationError) as refused:
                toggl.me()
    finally:
        for logger, level in zip(watched, levels, strict=True):
            logger.removeHandler(catcher)
            logger.setLevel(level)
    assert KEY not in str(refused.value)
    assert KEY not in repr(refused.value)
    assert KEY not in repr(GatewayKeyAuth(KEY))
    assert records, "httpx logs each request at DEBUG/INFO"
    for record in records:
        assert KEY not in record.getMessage()
        assert KEY not in str(record.__dict__)


# --- the gateway's answers as the client's errors -------------------------------------------------


def raised_by(answer: httpx.Response) -> TogglError:
    gateway = StandIn(lambda _request: answer)
    with gateway.client() as toggl, pytest.raises(TogglError) as raised:
        toggl.me()
    return raised.value


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (401, "invalid_key", "the API key is missing, wrong, revoked or expired"),
        (403, "missing_scope", "this key lacks the proxy:write scope"),
    ],
)
def test_a_refused_key_or_scope_is_an_authentication_error_with_the_gateways_message(
    status: int, code: str, message: str
) -> None:
    error = raised_by(gateway_error(status, code, message))
    assert isinstance(error, AuthenticationError)
    assert error.status_code == status
    assert error.message == message
    assert error.gateway_code == code


def test_the_gateways_rate_limit_is_rate_limited_with_its_retry_after() -> None:
    answer = gateway_error(
        429, "rate_limited", "at most 10 requests a second", **{"Retry-After": "2"}
    )
    error = raised_by(answer)
    assert isinstance(error, RateLimited)
    assert error.retry_after == 2.0
    assert error.message == "at most 10 requests a second"
    assert error.gateway_code == "rate_limited"


def test_a_quota_guard_answer_longer_than_the_policy_waits_fails_at_once() -> None:
    gateway = StandIn(
        lambda _request: gateway_error(
            429, "quota_exceeded", "Toggl's quota is spent", **{"Retry-After": "1800"}
        )
    )
    with gateway.client() as toggl, pytest.raises(RateLimited) as raised:
        toggl.me()
    assert raised.value.retry_after == 1800
    assert len(gateway.requests) == 1, "a 30-minute Retry-After is not slept on"


def test_togglss_402_passed_through_is_quota_exceeded() -> None:
    answer = httpx.Response(
        402,
        json="You have hit your hourly limit for API calls.",
        headers={"X-Toggl-Quota-Resets-In": "600", "X-Toggl-Quota-Remaining": "0"},
    )
    error = raised_by(answer)
    assert isinstance(error, QuotaExceeded)
    assert error.resets_in == 600
    assert error.gateway_code is None, "Toggl's own answer, passed through"
    assert str(error) == "hourly API quota used up, resets at 12:10 UTC"


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (502, "upstream_unreachable", "Toggl Track could not be reached"),
        (504, "upstream_timeout", "Toggl Track did not answer within 30 s"),
    ],
)
def test_an_unreachable_or_silent_toggl_is_a_server_error_with_the_gateways_message(
    status: int, code: str, message: str
) -> None:
    gateway = StandIn(lambda _request: gateway_error(status, code, message))
    with gateway.client() as toggl, pytest.raises(ServerError) as raised:
        toggl.me()
    assert raised.value.message == message
    assert raised.value.status_code == status
    assert raised.value.gateway_code == code
    assert len(gateway.requests) == 3, "a GET is retried as after any 5xx"


def test_a_write_is_not_repeated_after_the_gateways_504() -> None:
    gateway = StandIn(lambda _request: gateway_error(504, "upstream_timeout", "no answer"))
    with gateway.client() as toggl, pytest.raises(ServerError):
        toggl.create_tag(70, "focus")
    assert len(gateway.requests) == 1


def test_togglss_own_errors_through_the_gateway_have_no_gateway_code() -> None:
    error = raised_by(httpx.Response(404, json="Time entry not found"))
    assert isinstance(error, NotFound)
    assert error.message == "Time entry not found"
    assert error.gateway_code is None


def test_a_gateway_that_does_not_answer_is_named_in_the_transport_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(TransportError) as raised:
        StandIn(refuse).client().me()
    assert "Timebridge gateway at http://gateway.test" in str(raised.value)
    assert "Toggl Track" not in str(raised.value)
