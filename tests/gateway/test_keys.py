"""Key format (offline checks) and the key store (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select

from timebridge.clock import FakeClock
from timebridge.gateway.keys import (
    KEY_LENGTH,
    SCOPES,
    checksum,
    new_key,
    parse_scopes,
    well_formed,
)
from timebridge.store import ApiKeyNotFound, Store
from timebridge.store.models import ApiKeyRow


def test_keys_are_random_prefixed_and_checksummed() -> None:
    keys = {new_key().secret for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert key.startswith("tb_") and len(key) == KEY_LENGTH
        assert well_formed(key)
        body, check = key[3:-6], key[-6:]
        assert len(body) == 43 and checksum(body) == check


def test_a_typo_is_caught_offline() -> None:
    key = new_key().secret
    for position in range(3, len(key)):
        changed = key[:position] + ("a" if key[position] != "a" else "b") + key[position + 1 :]
        assert not well_formed(changed), position
    for bad in ("", "tb_", key[:-1], key + "x", "xx" + key[2:], key.replace(key[5], "-")):
        assert not well_formed(bad)


def test_scopes_parse() -> None:
    assert parse_scopes("proxy:read, connections:read") == {"proxy:read", "connections:read"}
    assert parse_scopes(list(SCOPES)) == set(SCOPES)
    with pytest.raises(ValueError, match="unknown scope"):
        parse_scopes("proxy:admin")
    with pytest.raises(ValueError, match="at least one"):
        parse_scopes("")


async def test_only_a_digest_is_stored_last_use_throttled_revocation(
    store: Store, clock: FakeClock
) -> None:
    account = (await store.accounts.create("k@example.com")).id
    made = new_key()
    created = await store.api_keys.create(
        account, made.secret, prefix=made.prefix, scopes=["proxy:read"], name="script"
    )
    assert created.prefix == made.secret[:11] and created.last_used_at is None
    async with store.database.read() as session:
        row = await session.scalar(select(ApiKeyRow))
        assert row is not None
        assert row.digest == hashlib.sha256(made.secret.encode()).hexdigest()
        assert made.secret not in (row.digest, row.prefix, row.name, row.scopes)

    found = await store.api_keys.find(made.secret)
    assert found is not None and found.scopes == {"proxy:read"}
    (listed,) = await store.api_keys.list(account)
    first_use = listed.last_used_at
    assert first_use == clock.now()
    clock.advance(timedelta(seconds=30))
    await store.api_keys.find(made.secret)
    assert (await store.api_keys.list(account))[0].last_used_at == first_use  # not yet
    clock.advance(timedelta(seconds=31))
    await store.api_keys.find(made.secret)
    assert (await store.api_keys.list(account))[0].last_used_at == clock.now()

    assert await store.api_keys.find(new_key().secret) is None
    other = (await store.accounts.create("o@example.com")).id
    with pytest.raises(ApiKeyNotFound):
        await store.api_keys.revoke(other, created.id)
    revoked = await store.api_keys.revoke(account, created.id)
    assert revoked.revoked_at == clock.now()
    found = await store.api_keys.find(made.secret)
    assert found is not None and not found.usable(clock.now())


async def test_expiry(store: Store, clock: FakeClock) -> None:
    account = (await store.accounts.create("k@example.com")).id
    made = new_key()
    await store.api_keys.create(
        account,
        made.secret,
        prefix=made.prefix,
        scopes=SCOPES,
        expires_at=clock.now() + timedelta(hours=1),
    )
    found = await store.api_keys.find(made.secret)
    assert found is not None and found.usable(clock.now())
    clock.advance(timedelta(hours=1))
    assert not found.usable(clock.now())


async def test_one_read_grants_the_key_and_its_connection(store: Store, clock: FakeClock) -> None:
    owner = (await store.accounts.create("o@example.com")).id
    other = (await store.accounts.create("x@example.com")).id
    made = new_key()
    await store.api_keys.create(owner, made.secret, prefix=made.prefix, scopes=SCOPES)
    assert await store.api_keys.grant(new_key().secret, None) is None

    nothing = await store.api_keys.grant(made.secret, None)
    assert nothing is not None and nothing.key.account_id == owner
    assert nothing.connection is None and nothing.token is None

    pending = await store.toggl_connections.create(owner)  # the default, but PENDING
    clock.advance(timedelta(seconds=1))
    first = await store.toggl_connections.create(owner, "tok-first", toggl_user_id=1)
    clock.advance(timedelta(seconds=1))
    await store.toggl_connections.create(owner, "tok-second", toggl_user_id=2)
    foreign = await store.toggl_connections.create(other, "tok-foreign")

    oldest_active = await store.api_keys.grant(made.secret, None)
    assert oldest_active is not None and oldest_active.connection is not None
    assert oldest_active.connection.id == first.id
    assert oldest_active.token is not None and oldest_active.token.get_secret_value() == (
        "tok-first"
    )
    assert oldest_active.connection.created_at.tzinfo is not None

    await store.toggl_connections.set_default(owner, first.id)
    second = (await store.toggl_connections.list(owner))[-1]
    await store.toggl_connections.set_default(owner, second.id)
    default = await store.api_keys.grant(made.secret, None)
    assert default is not None and default.connection is not None
    assert default.connection.id == second.id

    named = await store.api_keys.grant(made.secret, pending.id)
    assert named is not None and named.connection is not None
    assert named.connection.status.value == "PENDING" and named.token is None
    assert (await store.api_keys.grant(made.secret, foreign.id)).connection is None  # type: ignore[union-attr]
    assert (await store.api_keys.grant(made.secret, "no-such-id")).connection is None  # type: ignore[union-attr]
