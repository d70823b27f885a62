"""The Exist attributes the bridge writes, and owning them.

Exist lets exactly one service write an attribute, so the bridge acquires each mapped attribute
when a mapping is saved (not before every write), releases it when it is unmapped or the user
disconnects, and re-acquires once when a write is refused for ownership.

Exist's per-item error codes are barely documented, so a refused acquire (or write) is never
judged by its code: the attributes we own are read back (`attributes/owned/`) instead. That costs
one request, and only when something was refused. Every read of attributes we map or own asks
for low-priority ones too (Exist hides priority ≥ 10 by default). Re-acquiring an attribute we
already own succeeds, as Exist's guide says.

`movies_min` is a recent template (2025-10-07). Where Exist refuses it, movies go to a custom
duration attribute labelled "Watching movies", as the original service did; its API name is a
slug Exist chooses, so it is read from Exist's answer, never assumed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from timebridge.exist import (
    ERROR_EXISTS,
    AcquireItem,
    AsyncExistClient,
    Attribute,
    CreateItem,
    ValueType,
)
from timebridge.records import UserId
from timebridge.sync.ledger import LedgerStore

#: The templates a Toggl project can be mapped to, in the order the mapping page lists them.
BRIDGE_TEMPLATES: tuple[str, ...] = (
    "tv_min",
    "movies_min",
    "gaming_min",
    "productive_min",
    "neutral_min",
    "distracting_min",
)
MOVIES_TEMPLATE = "movies_min"
MOVIES_FALLBACK_LABEL = "Watching movies"
MOVIES_FALLBACK_GROUP = "media"

#: Release failures meaning the attribute is not ours (any more): nothing left to release.
_NOT_OURS = frozenset({"unauthorised", "not_found"})


@dataclass(frozen=True)
class AttributeClaims:
    """What acquiring a mapping's attributes achieved.

    `names` maps each requested attribute to the name to write to (the same, except a refused
    `movies_min` that fell back to the custom attribute); `refused` holds Exist's reason for each
    attribute we could not own.
    """

    names: Mapping[str, str] = field(default_factory=dict)
    refused: Mapping[str, str] = field(default_factory=dict)

    def resolve(self, mapping: Mapping[int, str]) -> dict[int, str]:
        """The mapping to save: projects keep their attribute under the name acquired; projects
        whose attribute was refused are left out (a value we cannot write is not a mapping)."""
        return {
            project_id: self.names[attribute]
            for project_id, attribute in mapping.items()
            if attribute in self.names
        }


@dataclass(frozen=True)
class ReleaseOutcome:
    """Which attributes are no longer ours, and why the others could not be released."""

    released: frozenset[str] = frozenset()
    failed: Mapping[str, str] = field(default_factory=dict)


def acquire_item(name: str) -> AcquireItem:
    """Our templates are acquired by template (Exist creates them if missing); anything else
    (the movies fallback) by name."""
    if name in BRIDGE_TEMPLATES:
        return AcquireItem(template=name)
    return AcquireItem(name=name)


async def owned_names(exist: AsyncExistClient) -> dict[str, Attribute]:
    """The attributes this client owns, by name."""
    return {attribute.name: attribute for attribute in await exist.all_owned_attributes()}


async def other_owners(exist: AsyncExistClient, attributes: Iterable[str]) -> dict[str, str]:
    """Which of `attributes` another service (say RescueTime) owns now, with its label, so the
    mapping page can say so before saving takes them over."""
    wanted = sorted(set(attributes))
    if not wanted:
        return {}
    found = await exist.all_attributes(
        names=wanted, include_inactive=True, include_low_priority=True
    )
    ours = await owned_names(exist)
    return {
        attribute.name: attribute.service.label or attribute.service.name
        for attribute in found
        if attribute.service is not None and attribute.name not in ours
    }


async def acquire_attributes(exist: AsyncExistClient, attributes: Iterable[str]) -> AttributeClaims:
    """Own every attribute in `attributes` (template names, or names of custom attributes).

    Already owning one counts as success. A refused `movies_min` falls back to the custom
    "Watching movies" attribute. Upstream errors (auth, 5xx after retries) propagate.
    """
    wanted = sorted(set(attributes))
    if not wanted:
        return AttributeClaims()
    result = await exist.acquire([acquire_item(name) for name in wanted])
    names: dict[str, str] = {}
    refused: dict[str, str] = {}
    for success in result.succeeded:
        requested = success.item.template or success.item.name
        if requested is not None:
            names[requested] = requested
    failures = {
        failure.item.template or failure.item.name or "": failure for failure in result.failed
    }
    if failures:
        owned = await owned_names(exist)
        for requested, failure in failures.items():
            if requested in owned:
                names[requested] = requested
            elif requested == MOVIES_TEMPLATE:
                fallback = await _movies_fallback(exist, owned)
                if fallback is not None:
                    names[requested] = fallback
                else:
                    refused[requested] = f"{failure.error_code}: {failure.error}"
            else:
                refused[requested] = f"{failure.error_code}: {failure.error}"
    return AttributeClaims(names=names, refused=refused)


async def _movies_fallback(exist: AsyncExistClient, owned: Mapping[str, Attribute]) -> str | None:
    """The name of a "Watching movies" duration attribute we own, creating it if needed."""
    for attribute in owned.values():
        if _is_movies_fallback(attribute):
            return attribute.name
    created = await exist.create(
        [
            CreateItem.custom(
                MOVIES_FALLBACK_LABEL, MOVIES_FALLBACK_GROUP, ValueType.DURATION, manual=False
            )
        ]
    )
    for success in created.succeeded:
        name = success.name or (success.attribute.name if success.attribute else None)
        if name:
            return name
    if not created.failed_with(ERROR_EXISTS):
        return None
    # The user has one already (made by hand or by an earlier service): take it over by name.
    existing = await exist.all_attributes(
        groups=[MOVIES_FALLBACK_GROUP], include_inactive=True, include_low_priority=True
    )
    for attribute in existing:
        if _is_movies_fallback(attribute):
            taken = await exist.acquire([AcquireItem(name=attribute.name)])
            if taken.succeeded:
                return attribute.name
    return None


def _is_movies_fallback(attribute: Attribute) -> bool:
    return (
        attribute.template is None
        and attribute.label.casefold() == MOVIES_FALLBACK_LABEL.casefold()
        and attribute.value_type is ValueType.DURATION
    )


async def reacquire(exist: AsyncExistClient, names: Iterable[str]) -> frozenset[str]:
    """Take back attributes a write was refused for; returns those we own afterwards."""
    wanted = sorted(set(names))
    if not wanted:
        return frozenset()
    result = await exist.acquire([acquire_item(name) for name in wanted])
    ours = {success.item.template or success.item.name or "" for success in result.succeeded}
    if result.failed:
        owned = await owned_names(exist)
        ours |= {name for name in wanted if name in owned}
    return frozenset(ours & set(wanted))


async def release_attributes(exist: AsyncExistClient, names: Iterable[str]) -> ReleaseOutcome:
    """Give attributes back; one that is not ours (any more) counts as released."""
    wanted = sorted(set(names))
    if not wanted:
        return ReleaseOutcome()
    result = await exist.release(wanted)
    released = {success.item.name for success in result.succeeded}
    failed: dict[str, str] = {}
    for failure in result.failed:
        if failure.error_code in _NOT_OURS:
            released.add(failure.item.name)
        else:
            failed[failure.item.name] = f"{failure.error_code}: {failure.error}"
    return ReleaseOutcome(released=frozenset(released), failed=failed)


@dataclass(frozen=True)
class MappingChange:
    """The outcome of saving a mapping: what to store, and what Exist refused."""

    #: project id -> the Exist attribute name to write (store this).
    mapping: Mapping[int, str]
    claims: AttributeClaims
    #: Unmapped attributes released now (nothing of ours left in Exist to bring down).
    released: ReleaseOutcome
    #: Unmapped attributes still holding our values: the next run zeroes, then releases them.
    retiring: frozenset[str]


async def save_mapping(
    exist: AsyncExistClient,
    ledger: LedgerStore,
    user_id: UserId,
    *,
    previous: Mapping[int, str],
    requested: Mapping[int, str],
) -> MappingChange:
    """Acquire what `requested` maps to and release what is no longer mapped.

    An unmapped attribute whose values we wrote is not released here: once released, our zeros
    could not land, and its old days would keep our minutes forever. The next run brings it
    down to zero (the planner's retired attributes) and releases it then.
    """
    claims = await acquire_attributes(exist, requested.values())
    mapping = claims.resolve(requested)
    unmapped = set(previous.values()) - set(mapping.values())
    rows = await ledger.load(user_id)
    retiring = {attribute for (attribute, _day), value in rows.items() if value != 0}
    retiring &= unmapped
    released = await release_attributes(exist, unmapped - retiring)
    await ledger.forget(
        user_id, [key for key in rows if key[0] in released.released and key[0] not in retiring]
    )
    return MappingChange(
        mapping=mapping, claims=claims, released=released, retiring=frozenset(retiring)
    )
