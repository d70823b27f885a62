"""Toggl connections (shared by the bridge and the gateway) and Exist connections."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy.exc import IntegrityError

from timebridge.clock import FakeClock
from timebridge.exist.models import ExistTokens
from timebridge.store import (
    AccountNotFound,
    ConnectionNotFound,
    ConnectionPending,
    ConnectionStatus,
    Store,
)
from timebridge.store.models import TogglConnectionRow


async def new_user(store: Store, email: str = "ada@example.com") -> int:
    return (await store.accounts.create(email)).id


# --- Toggl ------------------------------------------------------------------------------------


async def test_the_first_connection_becomes_the_default(store: Store, clock: FakeClock) -> None:
    user = await new_user(store)
    first = await store.toggl_connections.create(user, "tok-1", label="Work")
    clock.advance(1)
    second = await store.toggl_connections.create(user, "tok-2", label="Home")

    assert first.is_default and not second.is_default
    assert first.status is ConnectionStatus.ACTIVE and first.has_token
    assert await store.toggl_connections.default(user) == first
    assert [c.id for c in await store.toggl_connections.list(user)] == [first.id, second.id]


async def test_choosing_another_default_moves_it(store: Store) -> None:
    user = await new_user(store)
    first = await store.toggl_connections.create(user, "tok-1")
    second = await store.toggl_connections.create(user, "tok-2")
    third = await store.toggl_connections.create(user, "tok-3", make_default=True)

    assert third.is_default
    await store.toggl_connections.set_default(user, second.id)
    defaults = [c.id for c in await store.toggl_connections.list(user) if c.is_default]
    assert defaults == [second.id]
    assert not (await store.toggl_connections.get(user, first.id)).is_default


async def test_connections_created_at_once_still_have_one_default(store: Store) -> None:
    user = await new_user(store)
    await asyncio.gather(*(store.toggl_connections.create(user, f"tok-{n}") for n in range(6)))
    connections = await store.toggl_connections.list(user)
    assert len(connections) == 6
    assert sum(c.is_default for c in connections) == 1


async def test_the_database_allows_one_default_per_owner(store: Store, clock: FakeClock) -> None:
    user = await new_user(store)
    await store.toggl_connections.create(user, "tok-1")
    with pytest.raises(IntegrityError):
        async with store.database.transaction() as session:
            session.add(
                TogglConnectionRow(
                    account_id=user,
                    status="ACTIVE",
                    is_default=True,
                    created_at=clock.now(),
                    updated_at=clock.now(),
                )
            )


async def test_another_owners_connection_is_not_found(store: Store) -> None:
    alice, mallory = await new_user(store, "alice@example.com"), await new_user(store, "m@x.org")
    connection = await store.toggl_connections.create(alice, "tok-alice")

    with pytest.raises(ConnectionNotFound):
        await store.toggl_connections.get(mallory, connection.id)
    with pytest.raises(ConnectionNotFound):
        await store.toggl_connections.token(mallory, connection.id)
    with pytest.raises(ConnectionNotFound):
        await store.toggl_connections.set_default(mallory, connection.id)
    with pytest.raises(ConnectionNotFound):
        await store.toggl_connections.mark_failed(mallory, connection.id, "nope")
    with pytest.raises(ConnectionNotFound):
        await store.toggl_connections.delete(mallory, connection.id)
    assert await store.toggl_connections.list(mallory) == []
    token = await store.toggl_connections.token(alice, connection.id)
    assert token.get_secret_value() == "tok-alice"


async def test_a_pending_connection_gets_its_token_later(store: Store) -> None:
    user = await new_user(store)
    pending = await store.toggl_connections.create(user)
    assert pending.status is ConnectionStatus.PENDING and not pending.has_token
    with pytest.raises(ConnectionPending):
        await store.toggl_connections.token(user, pending.id)

    active = await store.toggl_connections.set_token(
        user, pending.id, SecretStr("tok-pasted"), toggl_user_id=6_000_000_001, label="Me"
    )

    assert active.status is ConnectionStatus.ACTIVE and active.has_token
    assert active.toggl_user_id == 6_000_000_001
    assert await store.toggl_connections.list(user, status=ConnectionStatus.PENDING) == []
    assert (
        await store.toggl_connections.token(user, pending.id)
    ).get_secret_value() == "tok-pasted"


async def test_a_refused_token_marks_the_connection_failed_until_replaced(
    store: Store, clock: FakeClock
) -> None:
    user = await new_user(store)
    connection = await store.toggl_connections.create(user, "tok-1")
    clock.advance(60)

    failed = await store.toggl_connections.mark_failed(user, connection.id, "Toggl answered 403")

    assert failed.status is ConnectionStatus.FAILED
    assert failed.failure_reason == "Toggl answered 403"
    assert failed.updated_at > connection.updated_at
    assert await store.toggl_connections.list(user, status=ConnectionStatus.ACTIVE) == []
    fixed = await store.toggl_connections.set_token(user, connection.id, "tok-2")
    assert fixed.status is ConnectionStatus.ACTIVE and fixed.failure_reason is None


async def test_deleting_the_default_promotes_the_oldest_active_one(
    store: Store, clock: FakeClock
) -> None:
    user = await new_user(store)
    default = await store.toggl_connections.create(user, "tok-1")
    clock.advance(1)
    broken = await store.toggl_connections.create(user, "tok-2")
    await store.toggl_connections.mark_failed(user, broken.id, "403")
    clock.advance(1)
    healthy = await store.toggl_connections.create(user, "tok-3")

    await store.toggl_connections.delete(user, default.id)

    assert (await store.toggl_connections.default(user)) == await store.toggl_connections.get(
        user, healthy.id
    )
    with pytest.raises(ConnectionNotFound):
        await store.toggl_connections.get(user, default.id)


async def test_a_connection_needs_an_existing_owner(store: Store) -> None:
    with pytest.raises(AccountNotFound):
        await store.toggl_connections.create(4242, "tok-1")


# --- Exist ------------------------------------------------------------------------------------

EXPIRES = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)


def oauth_tokens(access: str, refresh: str, expires_at: datetime = EXPIRES) -> ExistTokens:
    return ExistTokens(
        access_token=SecretStr(access),
        refresh_token=SecretStr(refresh),
        expires_at=expires_at,
        scope="media_write productivity_write",
    )


async def test_an_exist_grant_comes_back_as_it_was_saved(store: Store, clock: FakeClock) -> None:
    user = await new_user(store)
    saved = await store.exist_connections.save(
        user, oauth_tokens("access-1", "refresh-1"), time_zone="Europe/Berlin"
    )

    assert saved.status is ConnectionStatus.ACTIVE and saved.has_refresh_token
    assert saved.time_zone == "Europe/Berlin" and saved.time_zone_checked_at == clock.now()
    tokens = await store.exist_connections.tokens(user)
    assert tokens.access_token.get_secret_value() == "access-1"
    assert tokens.refresh_token is not None
    assert tokens.refresh_token.get_secret_value() == "refresh-1"
    assert tokens.expires_at == EXPIRES
    assert tokens.scope == "media_write productivity_write"


async def test_a_personal_token_has_no_refresh_token(store: Store) -> None:
    user = await new_user(store)
    saved = await store.exist_connections.save(user, ExistTokens.personal("personal-1"))
    assert not saved.has_refresh_token
    assert (await store.exist_connections.tokens(user)).refresh_token is None


async def test_rotation_replaces_both_tokens_together(store: Store) -> None:
    user = await new_user(store)
    await store.exist_connections.save(user, oauth_tokens("access-1", "refresh-1"))
    later = EXPIRES + timedelta(days=30)

    await store.exist_connections.rotate(user, oauth_tokens("access-2", "refresh-2", later))

    tokens = await store.exist_connections.tokens(user)
    assert tokens.access_token.get_secret_value() == "access-2"
    assert tokens.refresh_token is not None
    assert tokens.refresh_token.get_secret_value() == "refresh-2"
    assert tokens.expires_at == later


async def test_rotating_a_missing_connection_is_not_found(store: Store) -> None:
    user = await new_user(store)
    with pytest.raises(ConnectionNotFound):
        await store.exist_connections.rotate(user, oauth_tokens("a", "r"))
    assert await store.exist_connections.get(user) is None


async def test_a_broken_exist_connection_is_active_again_after_reconnecting(
    store: Store,
) -> None:
    user = await new_user(store)
    await store.exist_connections.save(user, oauth_tokens("access-1", "refresh-1"))
    await store.exist_connections.mark_broken(user)
    broken = await store.exist_connections.get(user)
    assert broken is not None and broken.status is ConnectionStatus.FAILED

    await store.exist_connections.save(user, oauth_tokens("access-2", "refresh-2"))
    again = await store.exist_connections.get(user)
    assert again is not None and again.status is ConnectionStatus.ACTIVE


async def test_the_zone_read_from_exist_is_remembered(store: Store, clock: FakeClock) -> None:
    user = await new_user(store)
    await store.exist_connections.save(user, ExistTokens.personal("p"))
    await store.exist_connections.set_time_zone(user, "America/New_York", clock.now())
    saved = await store.exist_connections.get(user)
    assert saved is not None and saved.time_zone == "America/New_York"
    with pytest.raises(ValueError, match="time zone"):
        await store.exist_connections.set_time_zone(user, "Mars/Olympus", clock.now())


async def test_the_users_own_zone_overrides_are_checked(store: Store) -> None:
    user = await new_user(store)
    await store.accounts.set_time_zone(user, "Asia/Tokyo")
    assert (await store.accounts.get(user)).time_zone == "Asia/Tokyo"
    with pytest.raises(ValueError, match="time zone"):
        await store.accounts.set_time_zone(user, "Nowhere/Special")
    with pytest.raises(AccountNotFound):
        await store.accounts.set_time_zone(4242, None)
