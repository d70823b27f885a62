"""`ConnectionPool`: the clients of many runs share keep-alive connections, never credentials."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import Iterator

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from timebridge._pool import ConnectionPool
from timebridge.fakes.server import serve_in_thread
from timebridge.fakes.toggl import SimUser, TogglSimulator
from timebridge.retry import RetryPolicy
from timebridge.toggl import AsyncTogglClient, AuthenticationError


async def test_clients_of_different_users_reuse_one_connection_with_their_own_token(
    toggl_sim: TogglSimulator, toggl_url: str, toggl_user: SimUser
) -> None:
    bob = toggl_sim.add_user(api_token="tok-bob-0987654321", fullname="Bob")
    pool = ConnectionPool()
    try:
        names = []
        for token in [toggl_user.api_token, bob.api_token, toggl_user.api_token]:
            async with AsyncTogglClient(
                token, base_url=toggl_url, retry=RetryPolicy.testing(), transport=pool.lend()
            ) as client:
                names.append((await client.me()).fullname)
        assert names == ["Alice", "Bob", "Alice"]
        # Closing each client left the pool open, and the next client used the same socket.
        assert pool.connections_opened == 1

        async with AsyncTogglClient(
            "not-a-token", base_url=toggl_url, retry=RetryPolicy.testing(), transport=pool.lend()
        ) as stranger:
            with pytest.raises(AuthenticationError):
                await stranger.me()
    finally:
        await pool.aclose()
    assert pool.closed


async def test_a_closed_pool_lends_nothing() -> None:
    pool = ConnectionPool()
    await pool.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        pool.lend()


async def test_each_service_keeps_its_own_warm_connection(
    toggl_url: str, exist_api_url: str
) -> None:
    pool = ConnectionPool()
    try:
        for url in (toggl_url, exist_api_url, toggl_url, exist_api_url):
            async with httpx.AsyncClient(transport=pool.lend()) as client:
                answer = await client.get(f"{url.rstrip('/')}/no-such-path")
                assert answer.status_code == 404
        assert pool.connections_opened == 2
    finally:
        await pool.aclose()


async def _wire(scope: Scope, receive: Receive, send: Send) -> None:
    """A server with the awkward answers a pooled connection must pass on faithfully."""
    assert scope["type"] == "http"
    path = scope["path"]
    headers = dict(scope["headers"])
    if path == "/cookie":
        body, extra = headers.get(b"cookie", b"none"), [(b"set-cookie", b"session=alice; Path=/")]
    elif path == "/gzip":
        body, extra = gzip.compress(b'{"ok": true}'), [(b"content-encoding", b"gzip")]
    elif path == "/echo":
        message = await receive()
        body, extra = message.get("body", b""), []
    elif path == "/slow":
        await asyncio.sleep(2)
        body, extra = b"late", []
    else:  # /cut: promises 100 bytes, sends 4 and hangs up
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]}
        )
        await send({"type": "http.response.body", "body": b"cut!", "more_body": False})
        return
    start = [(b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": 200, "headers": start})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def wire_url() -> Iterator[str]:
    with serve_in_thread(_wire) as server:
        yield server.url


async def test_a_cookie_set_for_one_client_never_reaches_another(wire_url: str) -> None:
    pool = ConnectionPool()
    try:
        async with httpx.AsyncClient(base_url=wire_url, transport=pool.lend()) as alice:
            await alice.get("/cookie")
            # The client that was given the cookie keeps and sends it, as httpx always did...
            assert (await alice.get("/cookie")).text == "session=alice"
        async with httpx.AsyncClient(base_url=wire_url, transport=pool.lend()) as bob:
            # ...but the next user's client, on the very same connection, does not.
            assert (await bob.get("/cookie")).text == "none"
        assert pool.connections_opened == 1
    finally:
        await pool.aclose()


async def test_answers_and_bodies_cross_the_pool_unchanged(wire_url: str) -> None:
    pool = ConnectionPool()
    try:
        async with httpx.AsyncClient(base_url=wire_url, transport=pool.lend()) as client:
            packed = await client.get("/gzip")
            assert packed.json() == {"ok": True}
            assert packed.headers["content-encoding"] == "gzip"
            echoed = await client.post("/echo", json={"entries": [1, 2, 3]})
            assert echoed.json() == {"entries": [1, 2, 3]}
    finally:
        await pool.aclose()


async def test_failures_on_the_wire_are_httpx_transport_errors(wire_url: str) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    pool = ConnectionPool()
    try:
        async with httpx.AsyncClient(base_url=wire_url, transport=pool.lend()) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{closed_port}/")
            with pytest.raises(httpx.ReadTimeout):
                await client.get("/slow", timeout=httpx.Timeout(5, read=0.2))
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get("/cut")
            # None of that spoiled the pool for the next request.
            assert (await client.get("/cookie")).status_code == 200
    finally:
        await pool.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await pool.send(httpx.Request("GET", wire_url))
