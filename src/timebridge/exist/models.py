"""Pydantic models of Exist API v2 resources and write payloads (client, simulator and CLI).

Read models ignore fields they do not know (Exist adds fields over time). Write payloads are
strict and validate what the client can know before any request: dates are local `date`s, names
are not blank, and the templates Exist documents as whole-number types get whole numbers.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Generic, Self, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

#: A date in the user's own time zone (the field name `date` would shadow the type in classes).
LocalDate = date

#: One day's value of an attribute; its Python type follows the attribute's value type.
AttributeValue = int | float | str


class ValueType(enum.IntEnum):
    """Exist's attribute value types (`value_type`)."""

    QUANTITY = 0
    DECIMAL = 1
    STRING = 2
    DURATION = 3
    TIME_OF_DAY = 4
    PERCENTAGE = 5
    TIME_OF_DAY_FROM_MIDDAY = 6
    BOOLEAN = 7
    SCALE = 8

    @property
    def takes_integers(self) -> bool:
        """Whether Exist stores whole numbers for this type (and refuses a float)."""
        return self not in (ValueType.DECIMAL, ValueType.PERCENTAGE, ValueType.STRING)

    @property
    def can_increment(self) -> bool:
        """Exist refuses increments of string, scale and time-of-day attributes."""
        return self not in (
            ValueType.STRING,
            ValueType.SCALE,
            ValueType.TIME_OF_DAY,
            ValueType.TIME_OF_DAY_FROM_MIDDAY,
        )


#: The templates whose value type we know for sure (from Exist's published template list), so
#: that a float sent to a duration or count attribute fails before any request.
KNOWN_TEMPLATE_TYPES: Mapping[str, ValueType] = {
    "productive_min": ValueType.DURATION,
    "neutral_min": ValueType.DURATION,
    "distracting_min": ValueType.DURATION,
    "pomodoros_min": ValueType.DURATION,
    "tv_min": ValueType.DURATION,
    "gaming_min": ValueType.DURATION,
    "movies_min": ValueType.DURATION,
    "mobile_screen_min": ValueType.DURATION,
    "events_duration": ValueType.DURATION,
    "meditation_min": ValueType.DURATION,
    "steps": ValueType.QUANTITY,
    "tasks_completed": ValueType.QUANTITY,
    "commits": ValueType.QUANTITY,
    "words_written": ValueType.QUANTITY,
    "mood": ValueType.SCALE,
}


class ExistModel(BaseModel):
    """Base of every resource Exist returns: unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Profile(ExistModel):
    """The authenticated user (`GET accounts/profile/`); `timezone` defines the user's days."""

    username: str
    first_name: str = ""
    last_name: str = ""
    avatar: str | None = None
    timezone: str = "UTC"
    local_time: datetime | None = None
    imperial_distance: bool = False
    imperial_weight: bool = False
    imperial_energy: bool = False
    imperial_liquid: bool = False
    imperial_temperature: bool = False
    trial: bool = False
    delinquent: bool = False


class Group(ExistModel):
    """An attribute group such as `productivity` or `media`; scopes are granted per group."""

    name: str
    label: str = ""
    priority: int = 0


class Service(ExistModel):
    """A service that can own (write) attributes: an OAuth client or a first-party integration."""

    name: str
    label: str = ""


class Template(ExistModel):
    """An attribute template (`GET attributes/templates/`)."""

    name: str
    label: str
    group: Group
    priority: int = 0
    value_type: ValueType
    value_type_description: str = ""


class Attribute(ExistModel):
    """One of the user's attributes; `service` is its current owner, None when nobody owns it."""

    template: str | None = None
    name: str
    label: str
    group: Group
    service: Service | None = None
    active: bool = True
    priority: int = 0
    manual: bool = False
    value_type: ValueType
    value_type_description: str = ""
    available_services: list[Service] = Field(default_factory=list)


class DayValue(ExistModel):
    """An attribute's value on one local date.

    A day without data may come back as None (reference/object_types.md) or as the type's
    default, 0 (guide/read_client.md); both parse, and `is_empty` treats them alike.
    """

    date: LocalDate
    value: AttributeValue | None = None

    @property
    def is_empty(self) -> bool:
        """Whether the day holds nothing: None, or a zero (Exist answers either)."""
        return self.value is None or (not isinstance(self.value, str) and self.value == 0)


class AttributeWithValues(Attribute):
    """An attribute with its recent values, newest first (`GET attributes/with-values/`)."""

    values: list[DayValue] = Field(default_factory=list)


ResultT = TypeVar("ResultT", bound=BaseModel)


class Page(ExistModel, Generic[ResultT]):
    """One page of a Django-REST-framework paged list: `{count, next, previous, results}`."""

    count: int
    next: str | None = None
    previous: str | None = None
    results: list[ResultT]

    @property
    def has_next(self) -> bool:
        return self.next is not None


# --- OAuth ----------------------------------------------------------------------------------------

#: Everything the bridge needs: write its six attributes, read them back for repair.
BRIDGE_SCOPES: tuple[str, ...] = (
    "productivity_read",
    "productivity_write",
    "media_read",
    "media_write",
)


class ExistTokens(BaseModel):
    """An access token and, for OAuth grants, the refresh token that replaces the pair.

    Exist rotates both tokens on refresh and invalidates the old pair, so whoever holds an
    `ExistTokens` must persist a refreshed one before making the next call. A personal token
    (the one Exist creates for a developer client's owner) has no refresh token.
    """

    model_config = ConfigDict(frozen=True)

    access_token: SecretStr
    refresh_token: SecretStr | None = None
    #: When the access token stops working; None when unknown (personal tokens).
    expires_at: AwareDatetime | None = None
    #: The granted scopes, space-separated as Exist sends them.
    scope: str = ""
    token_type: str = "Bearer"

    @field_validator("access_token")
    @classmethod
    def _not_blank(cls, value: SecretStr) -> SecretStr:
        stripped = value.get_secret_value().strip()
        if not stripped:
            raise ValueError("the Exist access token is empty")
        return SecretStr(stripped)

    @classmethod
    def personal(cls, access_token: str) -> ExistTokens:
        """A personal access token: a bare Bearer token without refresh."""
        return cls(access_token=SecretStr(access_token))

    @classmethod
    def from_token_response(cls, payload: Mapping[str, object], *, now: datetime) -> ExistTokens:
        """Parse the JSON of `POST oauth2/access_token`; `expires_in` counts from `now`.

        `expires_in` may be a number or a numeric string; anything else means "unknown"."""
        expires_in = _seconds(payload.get("expires_in"))
        refresh = payload.get("refresh_token")
        return cls(
            access_token=SecretStr(str(payload["access_token"])),
            refresh_token=SecretStr(str(refresh)) if refresh else None,
            expires_at=(
                now.astimezone(UTC) + timedelta(seconds=expires_in)
                if expires_in is not None
                else None
            ),
            scope=str(payload.get("scope") or ""),
            token_type=str(payload.get("token_type") or "Bearer"),
        )

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.scope.split())

    @property
    def can_refresh(self) -> bool:
        return self.refresh_token is not None

    def expires_within(self, now: datetime, margin: timedelta = timedelta(0)) -> bool:
        """Whether the access token is expired at `now + margin` (False when expiry is unknown)."""
        return self.expires_at is not None and now + margin >= self.expires_at


def _seconds(raw: object) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str):
        try:
            raw = float(raw)
        except ValueError:
            return None
    if isinstance(raw, int | float) and 0 <= raw < 10**10:
        return float(raw)
    return None


class OAuthApp(BaseModel):
    """The credentials of an Exist OAuth2 client (from exist.io/account/apps/)."""

    model_config = ConfigDict(frozen=True)

    client_id: str = Field(min_length=1)
    client_secret: SecretStr

    @field_validator("client_secret")
    @classmethod
    def _secret_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("the OAuth client secret is empty")
        return value


# --- write payloads -------------------------------------------------------------------------------


class Payload(BaseModel):
    """Base of write items: strict about unknown fields, so typos fail before any request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def body(self) -> dict[str, Any]:
        """The JSON object Exist expects for this item (unset optional fields left out)."""
        return self.model_dump(mode="json", exclude_none=True)

    def matches(self, echo: Mapping[str, object]) -> bool:
        """Whether Exist's echo of an item (in `success` or `failed`) stands for this item."""
        return all(echo.get(key) == value for key, value in self.body().items())


def _name(value: str, what: str = "name") -> str:
    stripped = value.strip()
    if not stripped:
        raise ValueError(f"an attribute {what} cannot be blank")
    return stripped


def _plain_date(value: object) -> object:
    # A datetime is a date too; refuse it rather than silently dropping its time and zone,
    # because Exist's days are the user's local dates.
    if isinstance(value, datetime):
        raise ValueError("give the user's local date (a datetime.date), not a datetime")
    return value


def _check_value(name: str, value: object, *, allow_none: bool = False) -> object:
    if value is None and allow_none:
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"value for {name!r} must be an int, a float or a string")
    known = KNOWN_TEMPLATE_TYPES.get(name)
    if known is not None and known.takes_integers and not isinstance(value, int):
        raise ValueError(
            f"{name!r} holds whole numbers ({known.name.lower()}); got {value!r}. "
            "Round durations to whole minutes first."
        )
    return value


class AcquireItem(Payload):
    """One attribute to acquire: by `template` (created if the user lacks it) or by `name` (any
    existing attribute, custom ones included).

    `manual` is sent as False by default, as Exist's guide does "to make sure that when we
    acquire the attribute, it is not shown for manual entry" (guide/write_client.md): the values
    come from us, and a hand-entered one would be overwritten. None leaves the flag out.
    """

    template: str | None = None
    name: str | None = None
    #: Whether Exist offers manual entry for it; None sends nothing (Exist decides).
    manual: bool | None = False

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.template is None) == (self.name is None):
            raise ValueError("acquire by template or by name: give exactly one")
        if self.template is not None:
            _name(self.template, "template")
        if self.name is not None:
            _name(self.name)
        return self

    def matches(self, echo: Mapping[str, object]) -> bool:
        if self.template is not None:
            return echo.get("template") == self.template
        return echo.get("name") == self.name


class ReleaseItem(Payload):
    """One attribute to release; ownership passes to another service or the attribute goes
    inactive."""

    name: str

    @field_validator("name")
    @classmethod
    def _valid(cls, value: str) -> str:
        return _name(value)


class CreateItem(Payload):
    """One attribute to create: from a `template`, or custom (`label`, `group`, `value_type`).

    `manual` defaults to False here and is always sent, because Exist's own default is True
    (reference/creating_attributes.md): an attribute we create is filled by us, not by hand.
    """

    template: str | None = None
    label: str | None = None
    group: str | None = None
    value_type: ValueType | None = None
    manual: bool = False

    @model_validator(mode="after")
    def _template_or_custom(self) -> Self:
        custom = (self.label, self.group, self.value_type)
        if self.template is not None:
            _name(self.template, "template")
            if any(part is not None for part in custom):
                raise ValueError("a templated attribute takes no label, group or value_type")
            return self
        if any(part is None for part in custom):
            raise ValueError("a custom attribute needs label, group and value_type")
        assert self.label is not None and self.group is not None
        _name(self.label, "label")
        _name(self.group, "group")
        if self.value_type is ValueType.TIME_OF_DAY_FROM_MIDDAY:
            raise ValueError("value type 6 is reserved for templates")
        return self

    @classmethod
    def custom(
        cls, label: str, group: str, value_type: ValueType, *, manual: bool = False
    ) -> CreateItem:
        return cls(label=label, group=group, value_type=value_type, manual=manual)

    def matches(self, echo: Mapping[str, object]) -> bool:
        if self.template is not None:
            return echo.get("template") == self.template
        return echo.get("label") == self.label


class UpdateItem(Payload):
    """Set an attribute's total for one local date (`attributes/update/`)."""

    name: str
    date: LocalDate
    value: AttributeValue

    @field_validator("date", mode="before")
    @classmethod
    def _local_date(cls, value: object) -> object:
        return _plain_date(value)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _name(value)

    @model_validator(mode="before")
    @classmethod
    def _valid_value(cls, data: Any) -> Any:
        if isinstance(data, dict) and "value" in data:
            _check_value(str(data.get("name", "")).strip(), data["value"])
        return data


class IncrementItem(Payload):
    """Add to an attribute's value for a local date (today in the user's zone when None)."""

    name: str
    value: int | float
    date: LocalDate | None = None

    @field_validator("date", mode="before")
    @classmethod
    def _local_date(cls, value: object) -> object:
        return _plain_date(value)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _name(value)

    @model_validator(mode="before")
    @classmethod
    def _valid_value(cls, data: Any) -> Any:
        if isinstance(data, dict) and "value" in data:
            value = data["value"]
            if isinstance(value, str):
                raise ValueError("increments are numbers")
            _check_value(str(data.get("name", "")).strip(), value)
        return data


# --- write results --------------------------------------------------------------------------------

ItemT = TypeVar("ItemT", bound=Payload)

#: Error codes Exist is known to send for failed items. Exist does not document a full list.
ERROR_MISSING_FIELD = "missing_field"
ERROR_VALIDATION = "validation"
ERROR_UNAUTHORISED = "unauthorised"
ERROR_EXISTS = "exists"
#: Our own code for an item Exist's answer did not mention at all: treat it as not written.
ERROR_UNREPORTED = "unreported"


class Succeeded(BaseModel, Generic[ItemT]):
    """An item Exist accepted."""

    model_config = ConfigDict(frozen=True)

    item: ItemT
    #: The day's new total, for increments.
    current: AttributeValue | None = None
    #: The attribute as Exist describes it (for acquire and create).
    attribute: Attribute | None = None
    #: The attribute's API name as Exist reports it (read it from here after a create).
    name: str | None = None


class Failed(BaseModel, Generic[ItemT]):
    """An item Exist refused, with its reason; the other items of the batch may have succeeded."""

    model_config = ConfigDict(frozen=True)

    item: ItemT
    error_code: str
    error: str


class WriteResult(BaseModel, Generic[ItemT]):
    """The outcome of a write, merged over all its batches: every item is in one of the lists."""

    model_config = ConfigDict(frozen=True)

    succeeded: list[Succeeded[ItemT]] = Field(default_factory=list)
    failed: list[Failed[ItemT]] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every item succeeded."""
        return not self.failed

    def failed_with(self, error_code: str) -> list[Failed[ItemT]]:
        return [failure for failure in self.failed if failure.error_code == error_code]

    def merged(self, other: WriteResult[ItemT]) -> WriteResult[ItemT]:
        return type(self)(
            succeeded=[*self.succeeded, *other.succeeded], failed=[*self.failed, *other.failed]
        )
