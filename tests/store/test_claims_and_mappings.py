"""Ownership of attributes between a user's integrations, and the mapping rules, enforced by the
store and, underneath, by the database itself."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from timebridge.clock import FakeClock
from timebridge.store import (
    AttributeClaimed,
    AttributeStillMapped,
    Integration,
    InvalidMapping,
    ProjectMapping,
    Store,
)
from timebridge.store.models import AttributeClaimRow, MappingRow

WORKSPACE = 77


def project(project_id: int, attribute: str, name: str | None = None) -> ProjectMapping:
    return ProjectMapping(WORKSPACE, project_id, name or f"Project {project_id}", attribute)


async def new_user(store: Store, email: str = "ada@example.com") -> int:
    return (await store.accounts.create(email)).id


async def test_a_trakt_claim_blocks_mapping_a_toggl_project_to_it(store: Store) -> None:
    user = await new_user(store)
    await store.claims.claim(user, "tv_min", Integration.TRAKT)

    with pytest.raises(AttributeClaimed) as refused:
        await store.mappings.save(user, project(1, "tv_min"))

    assert refused.value.attribute == "tv_min"
    assert refused.value.holder == "trakt"
    assert "trakt" in str(refused.value)
    assert await store.mappings.for_account(user) == []
    assert await store.claims.holders(user) == {"tv_min": "trakt"}


async def test_the_database_refuses_a_second_integrations_claim(
    store: Store, clock: FakeClock
) -> None:
    user = await new_user(store)
    await store.claims.claim(user, "tv_min", Integration.TRAKT)

    with pytest.raises(IntegrityError):
        async with store.database.transaction() as session:
            session.add(
                AttributeClaimRow(
                    account_id=user,
                    attribute="tv_min",
                    integration=Integration.TOGGL.value,
                    created_at=clock.now(),
                )
            )


async def test_the_database_refuses_a_mapping_without_a_toggl_claim(
    store: Store, clock: FakeClock
) -> None:
    user = await new_user(store)
    await store.claims.claim(user, "tv_min", Integration.TRAKT)

    for attribute in ("tv_min", "gaming_min"):  # Trakt's, and nobody's
        with pytest.raises(IntegrityError):
            async with store.database.transaction() as session:
                session.add(
                    MappingRow(
                        account_id=user,
                        workspace_id=WORKSPACE,
                        project_id=1,
                        project_name="TV",
                        attribute=attribute,
                        updated_at=clock.now(),
                    )
                )


async def test_the_database_keeps_one_attribute_per_project(store: Store, clock: FakeClock) -> None:
    user = await new_user(store)
    await store.mappings.save(user, project(1, "tv_min"))
    await store.claims.claim(user, "gaming_min", Integration.TOGGL)

    with pytest.raises(IntegrityError):
        async with store.database.transaction() as session:
            session.add(
                MappingRow(
                    account_id=user,
                    workspace_id=WORKSPACE,
                    project_id=1,
                    project_name="TV again",
                    attribute="gaming_min",
                    updated_at=clock.now(),
                )
            )


async def test_saving_a_project_again_moves_it_to_the_new_attribute(store: Store) -> None:
    user = await new_user(store)
    await store.mappings.save(user, project(1, "tv_min", "Series"))
    await store.mappings.save(user, project(1, "movies_min", "Films"))

    assert await store.mappings.for_account(user) == [project(1, "movies_min", "Films")]
    # The old attribute still holds Toggl's minutes until the runner zeroes and releases it.
    assert await store.claims.retiring_toggl(user) == {"tv_min"}


async def test_several_projects_may_share_one_attribute(store: Store) -> None:
    user = await new_user(store)
    await store.mappings.save(user, project(1, "productive_min"))
    await store.mappings.save(user, project(2, "productive_min"))
    assert await store.mappings.project_map(user) == {1: "productive_min", 2: "productive_min"}


async def test_replace_saves_all_or_nothing(store: Store) -> None:
    user = await new_user(store)
    await store.mappings.replace(user, [project(1, "gaming_min")])
    await store.claims.claim(user, "tv_min", Integration.TRAKT)

    with pytest.raises(AttributeClaimed):
        await store.mappings.replace(user, [project(2, "productive_min"), project(3, "tv_min")])

    assert await store.mappings.project_map(user) == {1: "gaming_min"}
    assert "productive_min" not in await store.claims.holders(user)

    await store.mappings.replace(user, [project(2, "productive_min"), project(4, "neutral_min")])
    assert await store.mappings.project_map(user) == {2: "productive_min", 4: "neutral_min"}


async def test_a_project_cannot_map_to_two_attributes_at_once(store: Store) -> None:
    user = await new_user(store)
    with pytest.raises(InvalidMapping, match="both"):
        await store.mappings.replace(user, [project(1, "tv_min"), project(1, "gaming_min")])
    with pytest.raises(InvalidMapping, match="blank"):
        await store.mappings.save(user, project(1, "  "))
    assert await store.mappings.for_account(user) == []


async def test_a_toggl_claim_blocks_trakt_too(store: Store) -> None:
    user = await new_user(store)
    await store.mappings.save(user, project(1, "tv_min"))
    with pytest.raises(AttributeClaimed) as refused:
        await store.claims.claim(user, "tv_min", Integration.TRAKT)
    assert refused.value.holder == "toggl"


async def test_claims_are_per_user(store: Store) -> None:
    alice, bob = (
        await new_user(store, "alice@example.com"),
        await new_user(store, "bob@example.com"),
    )
    await store.claims.claim(alice, "tv_min", Integration.TRAKT)
    await store.mappings.save(bob, project(1, "tv_min"))
    assert await store.mappings.project_map(bob) == {1: "tv_min"}


async def test_a_mapped_claim_is_released_only_after_unmapping(store: Store) -> None:
    user = await new_user(store)
    await store.mappings.save(user, project(1, "tv_min"))

    with pytest.raises(AttributeStillMapped):
        await store.claims.release(user, "tv_min", Integration.TOGGL)

    assert await store.mappings.remove(user, 1)
    assert await store.claims.retiring_toggl(user) == {"tv_min"}
    assert await store.claims.release(user, "tv_min", Integration.TOGGL)
    assert await store.claims.holders(user) == {}
    # Now Trakt may have it.
    await store.claims.claim(user, "tv_min", Integration.TRAKT)


async def test_claiming_twice_for_the_same_integration_is_harmless(store: Store) -> None:
    user = await new_user(store)
    await store.claims.claim(user, "tv_min", Integration.TRAKT)
    await store.claims.claim(user, "tv_min", "trakt")
    assert await store.claims.holders(user) == {"tv_min": "trakt"}


async def test_rename_keeps_the_projects_last_seen_name(store: Store) -> None:
    user = await new_user(store)
    await store.mappings.save(user, project(1, "tv_min", "Series"))
    await store.mappings.rename(user, {1: "Shows", 99: "not mapped"})
    assert await store.mappings.for_account(user) == [project(1, "tv_min", "Shows")]
