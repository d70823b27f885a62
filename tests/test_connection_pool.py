"""`ConnectionPool`: the clients of many runs share keep-alive connections, never credentials."""

from __future__ import annotations

import httpx
import pytest

from timebridge._http import ConnectionPool
from timebridge.fakes.toggl import SimUser, TogglSimulator
from timebridge.retry import RetryPolicy
from timebridge.toggl import AsyncTogglClient, AuthenticationError


def open_connections(pool: ConnectionPool) -> int:
    # httpx keeps its pool private; the count is what this test is about.
    return sum(len(transport._pool.connections) for transport in pool.transports)


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
        assert open_connections(pool) == 1

        async with AsyncTogglClient(
            "not-a-token", base_url=toggl_url, retry=RetryPolicy.testing(), transport=pool.lend()
        ) as stranger:
            with pytest.raises(AuthenticationError):
                await stranger.me()
    finally:
        await pool.aclose()
    assert open_connections(pool) == 0


async def test_a_closed_pool_lends_nothing() -> None:
    pool = ConnectionPool()
    await pool.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        pool.lend()


async def test_each_service_gets_a_pool_of_its_own(toggl_url: str, exist_api_url: str) -> None:
    pool = ConnectionPool()
    try:
        for url in (toggl_url, exist_api_url, toggl_url, exist_api_url):
            async with httpx.AsyncClient(transport=pool.lend()) as client:
                await client.get(f"{url.rstrip('/')}/no-such-path")
        # A Toggl request's bookkeeping never walks the Exist connections, and the reverse.
        assert [len(transport._pool.connections) for transport in pool.transports] == [1, 1]
    finally:
        await pool.aclose()
    assert open_connections(pool) == 0
