"""Timebridge's own Toggl client, pointed at this gateway with a key instead of a token, works
as it does against Toggl: reads, writes, the connection header, and the gateway's errors."""

from __future__ import annotations

import pytest

from tests.gateway.conftest import World
from timebridge import toggl
from timebridge.fakes.toggl import SimUser
from timebridge.gateway.keys import PROXY_READ
from timebridge.retry import RetryPolicy
from timebridge.toggl import TogglClient


def test_the_client_through_the_gateway(
    world: World, gateway: str, alice: SimUser, bob: SimUser
) -> None:
    account = world.account("a@example.com")
    world.connection(account, alice)
    bobs = world.connection(account, bob)
    key = world.key(account)
    with TogglClient.through_gateway(gateway, key) as client:
        assert client.me().id == alice.id
        tag = client.create_tag(alice.default_workspace_id, "via the client")
        assert [t.name for t in client.tags(alice.default_workspace_id)] == [tag.name]
    with TogglClient.through_gateway(gateway, key, connection=bobs) as client:
        assert client.me().id == bob.id
    read_only = world.key(account, (PROXY_READ,))
    with (
        TogglClient.through_gateway(gateway, read_only, retry=RetryPolicy.testing()) as client,
        pytest.raises(toggl.AuthenticationError) as refused,
    ):
        client.create_tag(alice.default_workspace_id, "no")
    assert refused.value.gateway_code == "forbidden"
