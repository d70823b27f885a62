"""The Exist simulator's in-memory world: users, their attributes and values, OAuth clients,
codes and tokens, and the rules for owning and writing attributes.

Everything here is plain Python under one lock, independent of HTTP, so the admin API, the
Python seeding API and the simulated endpoints share exactly the same rules. Each rule names the
file of Exist's developer docs it follows (github.com/hellocodeco/exist-api-docs, `docs/…`);
choices the docs leave open are marked "[guess]" where they are made.

Two switches let a test pick between answers the docs allow:
- `ExistWorld.empty_days`: whether a day without data reads as `null` (reference/object_types.md)
  or as the type's default, 0 (guide/read_client.md);
- `ExistWorld.fail_items`: a per-item write failure with any `error_code` for one attribute (the
  docs name only `missing_field`, `validation` and, on release, `unauthorised`).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from timebridge.clock import Clock
from timebridge.exist.models import AttributeValue, ValueType
from timebridge.fakes.exist.catalogue import (
    GROUPS,
    LOW_PRIORITY,
    SCOPES,
    TEMPLATES,
    VALUE_TYPE_DESCRIPTIONS,
    slugify,
)

#: Exist refuses write bodies longer than this.
MAX_ITEMS = 35
#: [guess] How long an authorization code stays valid (a common OAuth2 server default).
CODE_LIFETIME = timedelta(minutes=10)
#: The write endpoints a forced item failure (`ExistWorld.fail_items`) can apply to.
WRITE_ENDPOINTS = frozenset({"acquire", "release", "create", "update", "increment"})
#: How a day without data reads: `null` (reference/object_types.md: "this will be reflected
#: with a null value") or `zero` (guide/read_client.md: "Zero is the default value for other
#: types like quantities"; types without a default, such as time of day, scale and string, stay
#: null).
EmptyDays = Literal["null", "zero"]
#: Value types whose days without data read as 0 when `empty_days == "zero"` ([guess] for
#: decimal and percentage: the guide names "quantities" only).
_ZERO_DEFAULT = {
    ValueType.QUANTITY: 0,
    ValueType.DECIMAL: 0.0,
    ValueType.DURATION: 0,
    ValueType.PERCENTAGE: 0.0,
    ValueType.BOOLEAN: 0,
}

JsonObject = dict[str, Any]


class ApiError(Exception):
    """A refused request: an HTTP status and a DRF-style `{"detail": ...}` body."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class OAuthError(Exception):
    """A refused token request: an HTTP status and an RFC 6749 `{"error": ...}` body."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


class ItemFailure(Exception):
    """One write item refused; the rest of the batch goes on."""

    def __init__(self, error_code: str, error: str) -> None:
        super().__init__(error)
        self.error_code = error_code
        self.error = error


@dataclass
class SimService:
    """Anything that can own an attribute: an OAuth client, or an integration like RescueTime."""

    name: str
    label: str

    def wire(self) -> JsonObject:
        return {"name": self.name, "label": self.label}


@dataclass
class ForcedFailure:
    """A per-item failure a test imposes on one attribute (see `ExistWorld.fail_items`)."""

    attribute: str
    error_code: str
    error: str
    endpoints: frozenset[str]
    #: How many more matching items fail; None means until cleared.
    remaining: int | None = None


@dataclass
class SimClient:
    """An OAuth2 client. Writing through it acts as its service."""

    client_id: str
    client_secret: str
    service: str
    #: Allowed redirect URIs; empty means any (convenient for local demos) [guess].
    redirect_uris: list[str] = field(default_factory=list)

    @property
    def default_redirect_uri(self) -> str | None:
        """Where the user goes back when a request names no redirect URI: the first registered
        one ([guess] what an OAuth2 server does with several)."""
        return self.redirect_uris[0] if self.redirect_uris else None


@dataclass
class SimAttribute:
    name: str
    label: str
    group: str
    value_type: ValueType
    template: str | None
    manual: bool
    priority: int
    owner: str | None
    active: bool
    created: date
    available: list[str] = field(default_factory=list)
    values: dict[date, AttributeValue] = field(default_factory=dict)

    def first_day(self) -> date:
        return min([self.created, *self.values])


@dataclass
class SimUser:
    username: str
    timezone: str
    first_name: str = ""
    last_name: str = ""
    attributes: dict[str, SimAttribute] = field(default_factory=dict)
    #: Templates this user's Exist refuses to acquire or create (as if Exist did not know them).
    refused_templates: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: Per-item failures imposed by a test, first match wins.
    forced_failures: list[ForcedFailure] = field(default_factory=list)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def by_template(self, template: str) -> SimAttribute | None:
        for attribute in self.attributes.values():
            if attribute.template == template:
                return attribute
        return None


@dataclass
class SimToken:
    access_token: str
    refresh_token: str | None
    username: str
    client_id: str
    scopes: frozenset[str]
    expires_at: datetime | None
    personal: bool = False
    revoked: bool = False


@dataclass
class SimCode:
    code: str
    username: str
    client_id: str
    #: The redirect URI the user was sent back to (the client's registered one when the
    #: authorization request named none).
    redirect_uri: str
    scopes: frozenset[str]
    expires_at: datetime
    used: bool = False


def _token() -> str:
    # Exist's tokens look like 40 hex digits.
    return secrets.token_hex(20)


def _missing(index: int, names: Iterable[str]) -> ItemFailure:
    listed = ", ".join(f"'{name}'" for name in names)
    return ItemFailure("missing_field", f"Object at index {index} missing field(s) {listed}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_value(attribute: SimAttribute, value: object) -> AttributeValue:
    """Exist validates only broad types: int vs float vs string [docs]."""
    if value is None:
        raise ItemFailure("validation", "Cannot set a value back to null")
    if attribute.value_type is ValueType.STRING:
        if not isinstance(value, str):
            raise ItemFailure("validation", "Cannot apply a number to a string type")
        return value
    if not _is_number(value):
        raise ItemFailure("validation", "Cannot apply a string to a numeric type")
    assert isinstance(value, int | float)
    if attribute.value_type.takes_integers and isinstance(value, float):
        raise ItemFailure("validation", "Cannot apply a float to an integer type")
    return value


class ExistWorld:
    """All simulated Exist data. Thread-safe: every public method takes the lock."""

    def __init__(self, clock: Clock, *, token_lifetime: timedelta) -> None:
        self.clock = clock
        self.token_lifetime = token_lifetime
        self.lock = threading.RLock()
        self.users: dict[str, SimUser] = {}
        self.services: dict[str, SimService] = {}
        self.clients: dict[str, SimClient] = {}
        self.tokens: dict[str, SimToken] = {}
        self.refresh_tokens: dict[str, SimToken] = {}
        self.codes: dict[str, SimCode] = {}
        #: How days without data read (`values/`, `with-values/`); a per-test switch.
        self.empty_days: EmptyDays = "null"

    # --- seeding --------------------------------------------------------------------------------

    def add_user(
        self,
        username: str,
        *,
        timezone: str = "UTC",
        first_name: str = "",
        last_name: str = "",
    ) -> SimUser:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {timezone!r}") from None
        with self.lock:
            if username in self.users:
                raise ValueError(f"user {username!r} exists")
            user = SimUser(username, timezone, first_name, last_name)
            self.users[username] = user
            return user

    def add_service(self, name: str, label: str | None = None) -> SimService:
        with self.lock:
            service = self.services.get(name)
            if service is None:
                service = SimService(name, label or name.replace("_", " ").title())
                self.services[name] = service
            return service

    def add_client(
        self,
        name: str = "Timebridge",
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        service: str | None = None,
        redirect_uris: Iterable[str] = (),
    ) -> SimClient:
        with self.lock:
            client_id = client_id or secrets.token_hex(10)
            if client_id in self.clients:
                raise ValueError(f"client {client_id!r} exists")
            service_name = service or slugify(name)
            if service_name in self.services:
                raise ValueError(f"service {service_name!r} exists")
            self.add_service(service_name, name)
            client = SimClient(
                client_id, client_secret or _token(), service_name, list(redirect_uris)
            )
            self.clients[client_id] = client
            return client

    def user(self, username: str) -> SimUser:
        try:
            return self.users[username]
        except KeyError:
            raise ValueError(f"no user {username!r}") from None

    def client(self, client_id: str) -> SimClient:
        try:
            return self.clients[client_id]
        except KeyError:
            raise ValueError(f"no client {client_id!r}") from None

    def today(self, user: SimUser) -> date:
        return self.clock.now().astimezone(user.zone).date()

    def add_attribute(
        self,
        username: str,
        *,
        template: str | None = None,
        label: str | None = None,
        group: str | None = None,
        value_type: ValueType | int | None = None,
        owner: str | None = None,
        manual: bool = False,
        active: bool = True,
        priority: int | None = None,
    ) -> SimAttribute:
        """Give a user an attribute directly (as if another app or the user had made it).

        `priority` overrides the template's or the group's next one: 10 or more makes the
        attribute "low priority", hidden from reads without `include_low_priority`.
        """
        with self.lock:
            user = self.user(username)
            if owner is not None:
                self.add_service(owner)
            if template is not None:
                if template not in TEMPLATES:
                    raise ValueError(f"unknown template {template!r}")
                if user.by_template(template) is not None:
                    raise ValueError(f"{username} already has {template}")
                attribute = self._from_template(user, template, manual=manual, owner=owner)
            else:
                if label is None or group is None or value_type is None:
                    raise ValueError("a custom attribute needs label, group and value_type")
                if group not in GROUPS:
                    raise ValueError(f"unknown group {group!r}")
                attribute = self._custom(user, label, group, ValueType(value_type), manual, owner)
            attribute.active = active
            if priority is not None:
                attribute.priority = priority
            return attribute

    def refuse_template(
        self,
        username: str,
        template: str,
        *,
        error_code: str = "not_found",
        error: str | None = None,
    ) -> None:
        """Make acquiring or creating `template` fail for this user, per item.

        [guess] Modelled on a server that does not know the template yet (as before `movies_min`
        was added in 2025): `not_found`, "Template '…' does not exist".
        """
        with self.lock:
            self.user(username).refused_templates[template] = (
                error_code,
                error or f"Template '{template}' does not exist",
            )

    def fail_items(
        self,
        username: str,
        attribute: str,
        error_code: str,
        error: str | None = None,
        *,
        endpoints: Iterable[str] = ("update", "increment"),
        times: int | None = None,
    ) -> ForcedFailure:
        """Make every write item naming `attribute` fail with `error_code` (any string).

        The item lands in the answer's `failed` list with `error_code` and `error`, the answer
        is a 202 and the item has no effect; the batch's other items go on as usual. `attribute`
        is matched against an item's `name` or `template` (for `create`, also the API name its
        label would get). `endpoints` picks among acquire, release, create, update and
        increment; `times` limits it to the next N matching items (None: until
        `clear_item_failures`). A malformed item still fails as `missing_field` first.

        [docs] Only `missing_field` and `validation` (reference/writing_data.md) and
        `unauthorised` (reference/attribute_ownership.md, on release) are documented; this is
        how tests reach the codes Exist may send without saying so.
        """
        chosen = frozenset(endpoints)
        unknown = chosen - WRITE_ENDPOINTS
        if not chosen or unknown:
            raise ValueError(
                f"endpoints must be among {sorted(WRITE_ENDPOINTS)} (got {sorted(chosen)})"
            )
        if not error_code:
            raise ValueError("error_code must not be empty")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1")
        forced = ForcedFailure(
            attribute=attribute,
            error_code=error_code,
            error=error or f"Attribute '{attribute}' failed ({error_code})",
            endpoints=chosen,
            remaining=times,
        )
        with self.lock:
            self.user(username).forced_failures.append(forced)
        return forced

    def clear_item_failures(self, username: str | None = None) -> None:
        """Remove the failures `fail_items` imposed (on one user, or on everyone)."""
        with self.lock:
            users = [self.user(username)] if username is not None else self.users.values()
            for user in users:
                user.forced_failures.clear()

    def _forced(self, user: SimUser, endpoint: str, item: Mapping[str, Any]) -> None:
        """Raise the failure a test imposed on this item, if any."""
        keys = {str(item[key]) for key in ("name", "template") if item.get(key)}
        if endpoint == "create" and item.get("label"):
            keys.add(slugify(str(item["label"])))
        for forced in user.forced_failures:
            if endpoint not in forced.endpoints or forced.attribute not in keys:
                continue
            if forced.remaining is not None:
                forced.remaining -= 1
                if forced.remaining <= 0:
                    user.forced_failures.remove(forced)
            raise ItemFailure(forced.error_code, forced.error)

    def set_value(
        self, username: str, attribute: str, day: date, value: AttributeValue | None
    ) -> None:
        with self.lock:
            found = self._attribute(self.user(username), attribute)
            if value is None:
                found.values.pop(day, None)
            else:
                found.values[day] = value

    def stored_values(self, username: str, attribute: str) -> dict[date, AttributeValue]:
        with self.lock:
            return dict(sorted(self._attribute(self.user(username), attribute).values.items()))

    def set_owner(self, username: str, attribute: str, service: str | None) -> None:
        with self.lock:
            found = self._attribute(self.user(username), attribute)
            if service is not None:
                self.add_service(service)
                if service not in found.available:
                    found.available.append(service)
            found.owner = service
            found.active = service is not None or found.manual

    def _attribute(self, user: SimUser, name: str) -> SimAttribute:
        try:
            return user.attributes[name]
        except KeyError:
            raise ValueError(f"{user.username} has no attribute {name!r}") from None

    def _from_template(
        self, user: SimUser, template: str, *, manual: bool, owner: str | None
    ) -> SimAttribute:
        spec = TEMPLATES[template]
        attribute = SimAttribute(
            name=spec.name,
            label=spec.label,
            group=spec.group,
            value_type=spec.value_type,
            template=spec.name,
            manual=manual,
            priority=spec.priority,
            owner=owner,
            active=True,
            created=self.today(user),
            available=[owner] if owner else [],
        )
        user.attributes[attribute.name] = attribute
        return attribute

    def _custom(
        self,
        user: SimUser,
        label: str,
        group: str,
        value_type: ValueType,
        manual: bool,
        owner: str | None,
    ) -> SimAttribute:
        base = slugify(label)
        name = base
        suffix = 2
        # [guess] A slug already taken (by an attribute or a template name) gets a number.
        while name in user.attributes or name in TEMPLATES:
            name = f"{base}_{suffix}"
            suffix += 1
        # [guess] custom attributes go after the group's others but never become "low priority"
        # (priority >= 10, hidden by default): that is for a few obscure templates. A test that
        # wants a low-priority attribute seeds one with `add_attribute(priority=...)`.
        priority = min(
            LOW_PRIORITY - 1, 1 + sum(1 for a in user.attributes.values() if a.group == group)
        )
        attribute = SimAttribute(
            name=name,
            label=label,
            group=group,
            value_type=value_type,
            template=None,
            manual=manual,
            priority=priority,
            owner=owner,
            active=True,
            created=self.today(user),
            available=[owner] if owner else [],
        )
        user.attributes[name] = attribute
        return attribute

    # --- OAuth ----------------------------------------------------------------------------------

    def issue_personal_token(self, username: str, client_id: str) -> SimToken:
        """The token Exist shows a developer client's owner: every scope, no refresh token.

        [guess] It expires like any token (after the token lifetime).
        """
        with self.lock:
            self.user(username)
            self.client(client_id)
            token = SimToken(
                access_token=_token(),
                refresh_token=None,
                username=username,
                client_id=client_id,
                scopes=SCOPES,
                expires_at=self.clock.now() + self.token_lifetime,
                personal=True,
            )
            self.tokens[token.access_token] = token
            return token

    def mint_code(
        self, username: str, client_id: str, redirect_uri: str, scopes: Iterable[str]
    ) -> str:
        """What the user's "Allow" click produces: a one-time authorization code."""
        with self.lock:
            self.user(username)
            self.client(client_id)
            wanted = frozenset(scopes)
            unknown = wanted - SCOPES
            if unknown or not wanted:
                raise ValueError(f"invalid scopes: {sorted(unknown) or 'none given'}")
            code = SimCode(
                code=secrets.token_urlsafe(24),
                username=username,
                client_id=client_id,
                redirect_uri=redirect_uri,
                scopes=wanted,
                expires_at=self.clock.now() + CODE_LIFETIME,
            )
            self.codes[code.code] = code
            return code.code

    def _issue(self, username: str, client_id: str, scopes: frozenset[str]) -> SimToken:
        token = SimToken(
            access_token=_token(),
            refresh_token=_token(),
            username=username,
            client_id=client_id,
            scopes=scopes,
            expires_at=self.clock.now() + self.token_lifetime,
        )
        self.tokens[token.access_token] = token
        assert token.refresh_token is not None
        self.refresh_tokens[token.refresh_token] = token
        return token

    def _client_for_token_request(self, client_id: str | None, secret: str | None) -> SimClient:
        client = self.clients.get(client_id or "")
        if client is None or not secret or not secrets.compare_digest(client.client_secret, secret):
            raise OAuthError(401, "invalid_client", "Client authentication failed")
        return client

    def exchange_code(
        self, client_id: str | None, secret: str | None, code: str | None, redirect_uri: str | None
    ) -> SimToken:
        """Trade a code for a token pair.

        `redirect_uri` may be left out (reference/authentication/oauth2.md lists it, but a
        production client, existintegrations2's ExistApiService, omits it both here and at
        authorize): then the code must have been issued for the client's registered redirect
        URI, as RFC 6749 section 4.1.3 requires the URI only when the authorization request
        named one. When given, it must equal the code's.
        """
        with self.lock:
            client = self._client_for_token_request(client_id, secret)
            found = self.codes.get(code or "")
            if (
                found is None
                or found.used
                or found.client_id != client.client_id
                or found.expires_at <= self.clock.now()
            ):
                raise OAuthError(400, "invalid_grant", "Invalid or expired authorization code")
            expected = redirect_uri if redirect_uri is not None else client.default_redirect_uri
            if expected != found.redirect_uri:
                raise OAuthError(400, "invalid_grant", "Mismatching redirect URI")
            found.used = True
            return self._issue(found.username, found.client_id, found.scopes)

    def refresh(self, client_id: str | None, secret: str | None, refresh: str | None) -> SimToken:
        """A new pair; the old access AND refresh tokens stop working at once [docs]."""
        with self.lock:
            client = self._client_for_token_request(client_id, secret)
            old = self.refresh_tokens.get(refresh or "")
            if old is None or old.revoked or old.client_id != client.client_id:
                raise OAuthError(400, "invalid_grant", "Invalid refresh token")
            old.revoked = True
            del self.refresh_tokens[refresh or ""]
            self.tokens.pop(old.access_token, None)
            return self._issue(old.username, old.client_id, old.scopes)

    def authenticate(self, header: str) -> SimToken:
        """The token of an `Authorization: Bearer …` header, or a 401 as Exist words it [guess]."""
        scheme, _, value = header.partition(" ")
        if not header or scheme.lower() != "bearer" or not value.strip():
            raise ApiError(401, "Authentication credentials were not provided.")
        with self.lock:
            token = self.tokens.get(value.strip())
            if token is None or token.revoked:
                raise ApiError(401, "Invalid token.")
            if token.expires_at is not None and token.expires_at <= self.clock.now():
                raise ApiError(401, "Token has expired.")
            return token

    def revoke(self, access_token: str) -> None:
        with self.lock:
            token = self.tokens.pop(access_token, None)
            if token is not None:
                token.revoked = True
                if token.refresh_token:
                    self.refresh_tokens.pop(token.refresh_token, None)

    # --- reading --------------------------------------------------------------------------------

    def service_of(self, token: SimToken) -> str:
        return self.clients[token.client_id].service

    def can_read(self, token: SimToken, attribute: SimAttribute) -> bool:
        return f"{attribute.group}_read" in token.scopes or (
            attribute.manual and "manual_read" in token.scopes
        )

    def can_write(self, token: SimToken, group: str, manual: bool) -> bool:
        return f"{group}_write" in token.scopes or (manual and "manual_write" in token.scopes)

    def attribute_json(self, attribute: SimAttribute) -> JsonObject:
        group = GROUPS[attribute.group]
        owner = self.services.get(attribute.owner) if attribute.owner else None
        return {
            "template": attribute.template,
            "name": attribute.name,
            "label": attribute.label,
            "group": {"name": group.name, "label": group.label, "priority": group.priority},
            "service": owner.wire() if owner else None,
            "active": attribute.active,
            "priority": attribute.priority,
            "manual": attribute.manual,
            "value_type": int(attribute.value_type),
            "value_type_description": VALUE_TYPE_DESCRIPTIONS[attribute.value_type],
            "available_services": [
                self.services[name].wire() for name in attribute.available if name in self.services
            ],
        }

    def visible_attributes(self, token: SimToken) -> list[SimAttribute]:
        """The user's attributes the token may read, in Exist's display order."""
        with self.lock:
            user = self.users[token.username]
            found = [a for a in user.attributes.values() if self.can_read(token, a)]
            return sorted(found, key=lambda a: (GROUPS[a.group].priority, a.priority, a.name))

    def owned_attributes(self, token: SimToken) -> list[SimAttribute]:
        """[guess] Owned attributes are listed to their owner whatever its read scopes: a
        write-only client must be able to see what it owns."""
        with self.lock:
            user = self.users[token.username]
            service = self.service_of(token)
            found = [a for a in user.attributes.values() if a.owner == service]
            return sorted(found, key=lambda a: (GROUPS[a.group].priority, a.priority, a.name))

    def day_values(self, attribute: SimAttribute, newest: date, days: int) -> list[JsonObject]:
        """`days` consecutive dates ending at `newest`, newest first: every day is listed
        (reference/object_types.md), a day without data as `empty_days` says."""
        with self.lock:
            empty = _ZERO_DEFAULT.get(attribute.value_type) if self.empty_days == "zero" else None
            return [
                {
                    "date": (newest - timedelta(days=offset)).isoformat(),
                    "value": attribute.values.get(newest - timedelta(days=offset), empty),
                }
                for offset in range(days)
            ]

    # --- ownership ------------------------------------------------------------------------------

    def _take_ownership(self, attribute: SimAttribute, service: str) -> None:
        attribute.owner = service
        attribute.active = True
        if service not in attribute.available:
            attribute.available.append(service)

    def acquire(self, token: SimToken, index: int, item: Mapping[str, Any]) -> SimAttribute:
        """Make the token's service the owner of one attribute (reference/attribute_ownership.md).

        - `template`: the templated attribute, created first if the user lacks it [docs].
        - `name`: any existing attribute, templated or custom. The docs dropped the
          `allow_user_defined` query flag in 2022 (commit bb88638): `name` alone means "any
          attribute", so the flag is ignored.
        - `manual` (optional) sets whether Exist offers manual entry for it [docs]. Left out, an
          existing attribute keeps its flag, and one created here is manual, as
          `attributes/create/` defaults (reference/creating_attributes.md); [guess] the guide
          (guide/write_client.md) sends `"manual": false` "to make sure that when we acquire the
          attribute, it is not shown for manual entry", which implies the default can be manual.
        - Acquiring what the service already owns succeeds again (guide/write_client.md: "We
          could run this again and get the same result"); `manual` still applies.
        """
        with self.lock:
            user = self.users[token.username]
            service = self.service_of(token)
            template = item.get("template")
            name = item.get("name")
            manual = item.get("manual")
            if not template and not name:
                raise _missing(index, ["name"])
            self._forced(user, "acquire", item)
            if template:
                template = str(template)
                self._check_template(user, template)
                found = user.by_template(template)
                if found is None:
                    is_manual = bool(manual) if manual is not None else True
                    group = TEMPLATES[template].group
                    if not self.can_write(token, group, is_manual):
                        raise _no_scope(group)
                    return self._from_template(user, template, manual=is_manual, owner=service)
            else:
                found = user.attributes.get(str(name))
                if found is None:
                    raise ItemFailure("not_found", f"Attribute '{name}' not found")
            attribute = found
            # [guess] The scope needed is that of the attribute as it will be: its group's write
            # scope, or `manual_write` for one that stays manual.
            is_manual = bool(manual) if manual is not None else attribute.manual
            if not self.can_write(token, attribute.group, is_manual):
                raise _no_scope(attribute.group)
            attribute.manual = is_manual
            self._take_ownership(attribute, service)
            return attribute

    def release(self, token: SimToken, index: int, item: Mapping[str, Any]) -> SimAttribute:
        with self.lock:
            user = self.users[token.username]
            service = self.service_of(token)
            name = item.get("name")
            if not name:
                raise _missing(index, ["name"])
            self._forced(user, "release", item)
            attribute = user.attributes.get(str(name))
            if attribute is None:
                raise ItemFailure("not_found", f"Attribute '{name}' not found")
            if attribute.owner != service:
                raise ItemFailure(
                    "unauthorised", f"Attribute '{name}' does not belong to this service"
                )
            # [docs] Ownership passes to another connected service that can supply it, else the
            # attribute goes inactive.
            successor = next((other for other in attribute.available if other != service), None)
            attribute.owner = successor
            attribute.active = successor is not None
            return attribute

    def create(self, token: SimToken, index: int, item: Mapping[str, Any]) -> SimAttribute:
        with self.lock:
            user = self.users[token.username]
            service = self.service_of(token)
            # [docs] `manual` defaults to true on create (reference/creating_attributes.md).
            manual = bool(item.get("manual", True))
            self._forced(user, "create", item)
            template = item.get("template")
            if template:
                template = str(template)
                self._check_template(user, template)
                spec = TEMPLATES[template]
                if user.by_template(template) is not None:
                    raise ItemFailure("exists", f"Attribute '{template}' already exists")
                if not self.can_write(token, spec.group, manual):
                    raise _no_scope(spec.group)
                return self._from_template(user, template, manual=manual, owner=service)
            missing = [key for key in ("label", "group", "value_type") if item.get(key) is None]
            if missing:
                raise _missing(index, missing)
            label = str(item["label"]).strip()
            group = str(item["group"])
            if not label:
                raise ItemFailure("validation", "Label cannot be blank")
            if group not in GROUPS:
                raise ItemFailure("validation", f"Unknown group '{group}'")
            raw_type = item["value_type"]
            if not isinstance(raw_type, int) or isinstance(raw_type, bool):
                raise ItemFailure("validation", "value_type must be an integer")
            try:
                value_type = ValueType(raw_type)
            except ValueError:
                raise ItemFailure("validation", f"Unknown value type {raw_type}") from None
            if value_type is ValueType.TIME_OF_DAY_FROM_MIDDAY:
                raise ItemFailure("validation", "Value type 6 is reserved for templates")
            taken = {a.label.casefold() for a in user.attributes.values()}
            if label.casefold() in taken or slugify(label) in user.attributes:
                # [code] existintegrations2 treats error_code "exists" as "already there".
                raise ItemFailure("exists", f"Attribute '{label}' already exists")
            if not self.can_write(token, group, manual):
                raise _no_scope(group)
            return self._custom(user, label, group, value_type, manual, service)

    def _check_template(self, user: SimUser, template: str) -> None:
        refused = user.refused_templates.get(template)
        if refused is not None:
            raise ItemFailure(*refused)
        if template not in TEMPLATES:
            raise ItemFailure("not_found", f"Template '{template}' does not exist")

    # --- values ---------------------------------------------------------------------------------

    def _writable(self, token: SimToken, user: SimUser, name: object) -> SimAttribute:
        attribute = user.attributes.get(str(name))
        if attribute is None:
            raise ItemFailure("not_found", f"Attribute '{name}' not found")
        if attribute.owner != self.service_of(token) or not self.can_write(
            token, attribute.group, attribute.manual
        ):
            raise ItemFailure("unauthorised", f"Attribute '{name}' does not belong to this service")
        return attribute

    def update(self, token: SimToken, index: int, item: Mapping[str, Any]) -> JsonObject:
        with self.lock:
            user = self.users[token.username]
            missing = [key for key in ("name", "date", "value") if key not in item]
            if missing:
                raise _missing(index, missing)
            self._forced(user, "update", item)
            day = _parse_date(item["date"])
            attribute = self._writable(token, user, item["name"])
            attribute.values[day] = check_value(attribute, item["value"])
            return dict(item)

    def increment(self, token: SimToken, index: int, item: Mapping[str, Any]) -> JsonObject:
        with self.lock:
            user = self.users[token.username]
            missing = [key for key in ("name", "value") if key not in item]
            if missing:
                raise _missing(index, missing)
            self._forced(user, "increment", item)
            day = _parse_date(item["date"]) if item.get("date") else self.today(user)
            attribute = self._writable(token, user, item["name"])
            if not attribute.value_type.can_increment:
                raise ItemFailure(
                    "validation",
                    f"Cannot increment a '{VALUE_TYPE_DESCRIPTIONS[attribute.value_type]}' "
                    "attribute",
                )
            delta = check_value(attribute, item["value"])
            assert isinstance(delta, int | float)
            if delta < 0:
                # The product seed reports that Exist rejects negative increments; the
                # reference calls it undocumented. We reject them, per item.
                raise ItemFailure("validation", "Increments cannot be negative")
            current = attribute.values.get(day, 0)
            assert isinstance(current, int | float)
            attribute.values[day] = current + delta
            return {**item, "current": attribute.values[day]}


def _no_scope(group: str) -> ItemFailure:
    # [guess] the code for writing outside the token's scopes (the reference: "likely").
    return ItemFailure("unauthorised", f"This client has no write access to the '{group}' group")


def _parse_date(raw: object) -> date:
    try:
        return (
            date.fromisoformat(str(raw)) if isinstance(raw, str) and len(raw) == 10 else _bad(raw)
        )
    except ValueError:
        return _bad(raw)


def _bad(raw: object) -> date:
    raise ItemFailure("validation", f"Invalid date '{raw}', expected YYYY-MM-DD")
