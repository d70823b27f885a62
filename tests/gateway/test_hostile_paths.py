"""Paths that could leave the connection's origin (or reach something other than Toggl's API)
are refused with a 400 and no request upstream. Sent over a real socket with `http.client`,
which puts the path on the wire exactly as written (httpx would normalise some of them)."""

from __future__ import annotations

import http.client
import json
from urllib.parse import urlsplit

import pytest

from tests.gateway.conftest import World
from timebridge.fakes.toggl import SimUser
from timebridge.gateway.paths import PathRefused, checked_path

#: (what it tries, the path after /toggl-track/ as sent)
HOSTILE = [
    ("protocol-relative host", "//evil.example/api/v9/me"),
    ("protocol-relative in the middle", "api/v9//evil.example/me"),
    ("absolute http URL", "http://evil.example/api/v9/me"),
    ("absolute https URL", "https://evil.example/api/v9/me"),
    ("scheme after the prefix", "api/v9/http://evil.example/"),
    ("file scheme", "file:///etc/passwd"),
    ("dot-dot", "api/v9/../../admin"),
    ("dot-dot to the simulator's admin", "api/v9/../../_admin/requests"),
    ("single dot segment", "api/v9/./me"),
    ("trailing dot-dot", "api/v9/me/.."),
    ("encoded dot-dot", "api/v9/%2e%2e/%2e%2e/_admin"),
    ("encoded dot-dot, upper case", "api/v9/%2E%2E/me"),
    ("half-encoded dot-dot", "api/v9/.%2e/me"),
    ("double-encoded dot-dot", "api/v9/%252e%252e/%252e%252e/_admin"),
    ("encoded slash + dot-dot", "api/v9/me%2f..%2f..%2f_admin"),
    ("double-encoded slash + dot-dot", "api/v9/me%252f%252e%252e"),
    ("triple-encoded dot-dot", "api/v9/%25252e%25252e/me"),
    ("backslash", "api/v9/..\\..\\_admin"),
    ("encoded backslash", "api/v9/%5c..%5cme"),
    ("double-encoded backslash", "api/v9/%255cme"),
    ("userinfo @", "api/v9/me@evil.example"),
    ("encoded @", "api/v9/me%40evil.example"),
    ("double-encoded @", "api/v9/me%2540evil.example"),
    ("encoded NUL", "api/v9/me%00.json"),
    ("double-encoded NUL", "api/v9/me%2500"),
    ("encoded newline (header injection)", "api/v9/me%0d%0aX-Injected:%20yes"),
    ("encoded tab", "api/v9/me%09"),
    ("encoded DEL", "api/v9/me%7f"),
    ("unicode one-dot leader", "api/v9/%E2%80%A4%E2%80%A4/me"),
    ("unicode fullwidth full stop", "api/v9/%EF%BC%8E%EF%BC%8E/me"),
    ("unicode ideographic full stop", "api/v9/%E3%80%82%E3%80%82/me"),
    ("overlong UTF-8 dot", "api/v9/%C0%AE%C0%AE/me"),
    ("double-encoded unicode dot", "api/v9/%25EF%25BC%258E/me"),
    ("encoded colon (scheme)", "api/v9/http%3a%2f%2fevil.example"),
    ("not a Toggl API", "_admin/requests"),
    ("another API version", "api/v8/me"),
    ("empty", ""),
    ("prefix only when decoded", "api%2fv9%2fme"),
    ("overlong path", "api/v9/" + "a" * 5000),
]


@pytest.fixture
def key(world: World, alice: SimUser) -> str:
    account = world.account("a@example.com")
    world.connection(account, alice)
    return world.key(account)


def test_at_least_thirty_hostile_paths() -> None:
    assert len(HOSTILE) >= 30
    assert len({path for _, path in HOSTILE}) == len(HOSTILE)


def test_every_hostile_path_is_a_400_with_no_upstream_request(
    world: World, gateway: str, key: str
) -> None:
    address = urlsplit(gateway)
    assert address.hostname is not None and address.port is not None
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    wrong: list[str] = []
    for what, path in HOSTILE:
        for method in ("GET", "POST"):
            connection.putrequest(method, f"/toggl-track/{path}", skip_accept_encoding=True)
            connection.putheader("Authorization", f"Bearer {key}")
            connection.putheader("Content-Length", "0")
            connection.endheaders()
            answer = connection.getresponse()
            body = answer.read()
            if answer.status != 400:
                wrong.append(f"{what} ({method} {path[:60]}): {answer.status} {body[:100]!r}")
                continue
            error = json.loads(body)["error"]
            if error["code"] not in ("invalid_path", "bad_request"):
                wrong.append(f"{what}: {error}")
    connection.close()
    assert not wrong, "\n".join(wrong)
    assert world.upstream.seen == [], [s.raw_path for s in world.upstream.seen]


def test_a_raw_nul_or_space_never_reaches_toggl(world: World, gateway: str, key: str) -> None:
    """Bytes the HTTP server refuses itself (a raw NUL, a raw space) never get further."""
    address = urlsplit(gateway)
    assert address.hostname is not None and address.port is not None
    import socket

    for raw in (b"/toggl-track/api/v9/me\x00", b"/toggl-track/api/v9/m e"):
        with socket.create_connection((address.hostname, address.port), timeout=5) as sock:
            sock.sendall(
                b"GET "
                + raw
                + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                + key.encode()
                + b"\r\n\r\n"
            )
            status_line = sock.recv(4096).split(b"\r\n", 1)[0]
            assert b" 400 " in status_line + b" ", status_line
    assert world.upstream.seen == []


@pytest.mark.parametrize(
    "path",
    [
        "api/v9/me",
        "api/v9/me/time_entries",
        "api/v9/workspaces/123/projects/456",
        "reports/api/v3/workspace/123/search/time_entries",
        "webhooks/api/v1/subscriptions/123",
        "api/v9/workspaces/1/clients/2/archive",
        "api/v9/me/time_entries%3Fx",  # an encoded '?' stays part of the path
    ],
)
def test_native_paths_pass(path: str) -> None:
    assert checked_path(path) == path


def test_the_checks_hold_for_every_table_entry_without_a_server() -> None:
    passed = []
    for what, path in HOSTILE:
        try:
            checked_path(path)
        except PathRefused:
            continue
        passed.append(what)
    assert passed == []
