"""Pydantic models of the Toggl Track v9 resources, shared by the client, the simulator and the CLI.

Models use Toggl's current field names (`workspace_id`, `project_id`, ...) and accept the legacy
short names (`wid`, `pid`, `tid`, `uid`) that the API still sends beside them: the current name
is read when present, the legacy one otherwise. The aliases are resolved by pydantic's validator
itself, in Rust: a sync validates every entry of its window on every run, so nothing per entry
runs in Python. `wire()` renders a model with every name Toggl uses (legacy names included,
secrets in clear); it exists for the simulator, never for display. Toggl sends a time entry in
several shapes (see `TimeEntry`), which the simulator writes itself (`fakes/toggl/wire.py`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import (
    AliasChoices,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

ProjectActivity = Literal["true", "false", "both"]
ClientStatus = Literal["active", "archived", "both"]


class TogglModel(BaseModel):
    """Base of every Toggl resource: unknown fields are ignored, legacy names accepted."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    #: Current field name -> legacy field name that Toggl also sends (from the fields' aliases).
    legacy_names: ClassVar[dict[str, str]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.legacy_names = {
            name: field.validation_alias.choices[1]
            for name, field in cls.model_fields.items()
            if isinstance(field.validation_alias, AliasChoices)
            and field.validation_alias.choices[0] == name
            and isinstance(field.validation_alias.choices[1], str)
        }

    def wire(self) -> dict[str, Any]:
        """The JSON object Toggl sends for this resource (legacy names and secrets included)."""
        data = self.model_dump(mode="json", by_alias=True)
        for name, value in self:
            if isinstance(value, SecretStr):
                data[name] = value.get_secret_value()
            elif value is None and type(self).model_fields[name].exclude:
                data[name] = None  # left out of dumps (a secret), but Toggl sends it
        for current, legacy in self.legacy_names.items():
            data[legacy] = data.get(current)
        return data


def _or_legacy(name: str, short: str) -> AliasChoices:
    """A field Toggl sends under its current `name` and its legacy `short` name: read `name`
    when present, else `short`. (`wire()` writes both.)"""
    return AliasChoices(name, short)


class Me(TogglModel):
    """The authenticated user (`GET /me`)."""

    id: int
    email: str
    fullname: str
    timezone: str = "UTC"
    default_workspace_id: int | None = None
    beginning_of_week: int = 1
    image_url: str | None = None
    #: Toggl sends the account's API token in clear (a gateway leaves it out); it stays masked
    #: in every repr and is left out of every dump.
    api_token: SecretStr | None = Field(default=None, exclude=True)
    at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Workspace(TogglModel):
    """A workspace the user belongs to (`GET /me/workspaces`, `GET /workspaces/{id}`)."""

    id: int
    name: str
    organization_id: int | None = None
    premium: bool = False
    business_ws: bool = False
    admin: bool = False
    default_currency: str = "USD"
    default_hourly_rate: float | None = None
    rounding: int = 0
    rounding_minutes: int = 0
    only_admins_may_create_projects: bool = False
    only_admins_may_create_tags: bool = False
    max_data_retention_days: int | None = None
    api_token: SecretStr | None = Field(default=None, exclude=True)
    at: datetime | None = None


class WorkspaceUser(TogglModel):
    """A member of a workspace (`GET /workspaces/{id}/users`)."""

    id: int
    email: str | None = None
    fullname: str | None = None
    timezone: str | None = None
    admin: bool = False
    inactive: bool = False


class TimeEntry(TogglModel):
    """A time entry: running while `duration` < 0, deleted once `server_deleted_at` is set.

    Every shape Toggl has been recorded sending reads the same (reference/toggl.md §3): instants
    with `Z` or `+00:00`; `pid`/`project_id` and `tid`/`task_id` absent or null (no project, no
    task); a running entry's duration as `-1` (a create's answer) or minus its start's Unix time
    (lists); an entry created without a duration as `duration: 0` with `stop` null or equal to
    `start`; `tags`/`tag_ids` null or `[]`.
    """

    id: int
    workspace_id: int = Field(validation_alias=_or_legacy("workspace_id", "wid"))
    project_id: int | None = Field(default=None, validation_alias=_or_legacy("project_id", "pid"))
    task_id: int | None = Field(default=None, validation_alias=_or_legacy("task_id", "tid"))
    user_id: int | None = Field(default=None, validation_alias=_or_legacy("user_id", "uid"))
    start: AwareDatetime
    stop: AwareDatetime | None = None
    duration: int
    description: str | None = None
    tags: list[str] | None = None
    tag_ids: list[int] | None = None
    billable: bool = False
    duronly: bool = True
    at: AwareDatetime | None = None
    server_deleted_at: AwareDatetime | None = None
    permissions: list[str] | None = None

    @property
    def is_running(self) -> bool:
        return self.duration < 0

    @property
    def is_deleted(self) -> bool:
        return self.server_deleted_at is not None

    def end(self, now: datetime) -> datetime:
        """When the entry ends; `now` for a running entry (it counts up to the present)."""
        if self.is_running:
            return max(now, self.start)
        if self.stop is not None:
            return self.stop
        return self.start + timedelta(seconds=self.duration)

    def elapsed_seconds(self, now: datetime) -> int:
        """Tracked seconds; a running entry counts from its start to `now`."""
        if self.is_running:
            return max(0, int((now - self.start).total_seconds()))
        return self.duration


class Project(TogglModel):
    """A project (`/workspaces/{id}/projects`)."""

    id: int
    workspace_id: int = Field(validation_alias=_or_legacy("workspace_id", "wid"))
    client_id: int | None = Field(default=None, validation_alias=_or_legacy("client_id", "cid"))
    name: str
    is_private: bool = True
    active: bool = True
    color: str = "#0b83d9"
    billable: bool | None = None
    template: bool | None = None
    auto_estimates: bool | None = None
    estimated_hours: int | None = None
    rate: float | None = None
    currency: str | None = None
    actual_hours: int | None = None
    actual_seconds: int | None = None
    start_date: str | None = None
    end_date: str | None = None
    at: datetime | None = None
    created_at: datetime | None = None
    server_deleted_at: datetime | None = None


class Client(TogglModel):
    """A client (`/workspaces/{id}/clients`). Toggl names its workspace `wid` only."""

    id: int
    workspace_id: int = Field(alias="wid")
    name: str
    archived: bool = False
    notes: str | None = None
    creator_id: int | None = None
    at: datetime | None = None


class Tag(TogglModel):
    """A tag (`/workspaces/{id}/tags`)."""

    id: int
    workspace_id: int
    name: str
    creator_id: int | None = None
    at: datetime | None = None
    deleted_at: datetime | None = None


class Quota(TogglModel):
    """One hourly API quota (`GET /me/quota`): an organization's, or the user-scoped one (None)."""

    organization_id: int | None = None
    remaining: int
    resets_in_secs: int
    total: int


# --- Webhooks API v1 ------------------------------------------------------------------------------


class WebhookEventFilter(TogglModel):
    """Which events a webhook subscription receives: an `entity` ("time_entry", "project", …;
    `GET /event_filters` lists them) and an `action`: "created", "updated", "deleted" or "*"."""

    entity: str
    action: str


class WebhookSubscription(TogglModel):
    """A webhook subscription (`/webhooks/api/v1/subscriptions/{workspace_id}`).

    Events reach `url_callback` only while it is `enabled` and validated (`validated_at` set).
    The `secret` signs every delivery (`X-Webhook-Signature-256`): it stays masked in every repr
    and is left out of every dump; `secret.get_secret_value()` reads it.
    """

    subscription_id: int
    workspace_id: int
    user_id: int | None = None
    enabled: bool
    description: str
    event_filters: list[WebhookEventFilter]
    url_callback: str
    secret: SecretStr | None = Field(default=None, exclude=True)
    validated_at: AwareDatetime | None = None
    has_pending_events: bool = False
    created_at: AwareDatetime | None = None
    updated_at: AwareDatetime | None = None


class WebhookDelivery(TogglModel):
    """One event's deliveries to a subscription (`GET …/subscriptions/{wid}/{sid}/events`).

    Toggl does not document this record: every field is optional and unknown ones are ignored.
    `status` is "pending", "delivered" or "failed" as far as known.
    """

    event_id: int | None = None
    created_at: AwareDatetime | None = None
    status: str | None = None
    failed_delivery_attempts: int = 0
    last_delivery_error: str | None = None
    delivered_at: AwareDatetime | None = None
    action: str | None = None
    entity: str | None = None
    last_delivery_attempt_at: AwareDatetime | None = None


# --- Request payloads -------------------------------------------------------------------------


class Payload(BaseModel):
    """Base of request bodies: strict about unknown fields, so typos fail before any request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def body(self) -> dict[str, Any]:
        """The JSON body: only the fields that were given (so updates change only those)."""
        return self.model_dump(mode="json", exclude_unset=True)


class TimeEntryCreate(Payload):
    """Body of `POST /workspaces/{wid}/time_entries`. A negative duration starts a timer."""

    workspace_id: int
    start: AwareDatetime
    duration: int = -1
    stop: AwareDatetime | None = None
    created_with: str = "timebridge"
    description: str | None = None
    project_id: int | None = None
    task_id: int | None = None
    tags: list[str] | None = None
    tag_ids: list[int] | None = None
    billable: bool | None = None
    user_id: int | None = None

    def body(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude_none=True)
        data["created_with"] = self.created_with
        return data

    @model_validator(mode="after")
    def _stop_after_start(self) -> TimeEntryCreate:
        if self.stop is not None and self.stop < self.start:
            raise ValueError("stop must not be before start")
        return self


class TimeEntryUpdate(Payload):
    """Body of `PUT /workspaces/{wid}/time_entries/{id}`: only the fields set are changed."""

    start: AwareDatetime | None = None
    stop: AwareDatetime | None = None
    duration: int | None = None
    description: str | None = None
    project_id: int | None = None
    task_id: int | None = None
    tags: list[str] | None = None
    tag_ids: list[int] | None = None
    billable: bool | None = None


class ProjectCreate(Payload):
    name: str = Field(min_length=1)
    active: bool | None = None
    is_private: bool | None = None
    client_id: int | None = None
    color: str | None = None
    billable: bool | None = None
    estimated_hours: int | None = None
    rate: float | None = None

    def body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class ProjectUpdate(Payload):
    name: str | None = Field(default=None, min_length=1)
    active: bool | None = None
    is_private: bool | None = None
    client_id: int | None = None
    color: str | None = None
    billable: bool | None = None
    estimated_hours: int | None = None
    rate: float | None = None


class ClientCreate(Payload):
    name: str = Field(min_length=1)
    notes: str | None = None

    def body(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class ClientUpdate(Payload):
    name: str | None = Field(default=None, min_length=1)
    notes: str | None = None


class TagChange(Payload):
    """Body of tag create and update."""

    name: str = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _strip(cls, value: str) -> str:
        stripped = value.strip()
        if not stripped:
            raise ValueError("a tag name cannot be blank")
        return stripped


class WebhookSubscriptionCreate(Payload):
    """Body of `POST /webhooks/api/v1/subscriptions/{workspace_id}`.

    Toggl probes `url_callback` at once when the subscription is created enabled: it must answer
    200 (`CallbackUnreachable` otherwise). Without a `secret`, Toggl generates one and answers
    it once, in the created subscription. `description` must be unique in the workspace. The
    secret given here stays out of the repr.
    """

    url_callback: str = Field(min_length=1)
    event_filters: list[WebhookEventFilter] = Field(min_length=1)
    description: str = Field(min_length=1)
    enabled: bool = True
    secret: str | None = Field(default=None, repr=False)

    @field_validator("secret")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value:
            raise ValueError("a secret cannot be empty (leave it out to have Toggl make one)")
        return value

    def body(self) -> dict[str, Any]:
        """Every field; `secret` only when given."""
        return self.model_dump(mode="json", exclude_none=True)
