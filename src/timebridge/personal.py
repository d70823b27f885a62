"""Personal mode: one person, one `timebridge.toml`, one cron-friendly `timebridge sync`.

    [toggl]
    api_token = "…"            # or TOGGL_API_TOKEN
    # workspace_id = 1234567   # only look for projects there
    [exist]
    token = "…"                # or EXIST_TOKEN (a personal token)
    [mapping]
    "Series" = "tv"            # project name (or id) = attribute (or its alias)
    "Deep work" = "productive"
    [sync]
    time_zone = "Europe/Berlin"  # optional: else Exist's zone for your days

Everything the service keeps for a user is kept here too, in the default store (a SQLite file
and a generated key in the data directory): a local "personal" account, its Toggl and Exist
connections (tokens encrypted), the resolved mapping, the ledger and the run records. So a
personal run is exactly the service's `SyncService.sync_user`, and `serve` on the same data
directory keeps the same person in sync.

Toggl's hourly quota is small, so project names are resolved to ids (a projects listing) and
attributes acquired in Exist only when the config's mapping differs from the one stored last
time, which remembers each project's name as last seen. A steady-state run costs one Toggl
request.
"""

from __future__ import annotations

import difflib
import hmac
import json
import os
import tomllib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails

from timebridge.clock import Clock, SystemClock
from timebridge.config import Settings
from timebridge.exist import AsyncExistClient, ExistTokens, OAuthApp
from timebridge.jobs.tasks import Skipped, SkipReason, SyncService
from timebridge.logs import register_secret
from timebridge.retry import RetryPolicy
from timebridge.store import (
    Account,
    ConnectionStatus,
    DuplicateAccount,
    ExistConnection,
    ProjectMapping,
    Store,
)
from timebridge.sync.attributes import (
    BRIDGE_TEMPLATES,
    MOVIES_TEMPLATE,
    other_owners,
    save_mapping,
)
from timebridge.sync.runner import RunKind, RunReport, SyncRunner, UserSyncSettings
from timebridge.toggl import AsyncTogglClient, Project
from timebridge.toggl import errors as toggl_errors

#: The file `timebridge sync --config` is usually given.
CONFIG_FILE_NAME = "timebridge.toml"
#: The local account personal mode keeps its state under (`.invalid`: never a real address).
PERSONAL_ACCOUNT_EMAIL = "personal@timebridge.invalid"
PERSONAL_DISPLAY_NAME = "Personal"

TOGGL_TOKEN_ENV = "TOGGL_API_TOKEN"
TOGGL_BASE_URL_ENV = "TOGGL_BASE_URL"
EXIST_TOKEN_ENV = "EXIST_TOKEN"
EXIST_BASE_URL_ENV = "EXIST_BASE_URL"

#: Friendly names accepted in `[mapping]`, beside Exist's own attribute names.
ATTRIBUTE_ALIASES: Mapping[str, str] = {
    "tv": "tv_min",
    "movies": "movies_min",
    "gaming": "gaming_min",
    "productive": "productive_min",
    "neutral": "neutral_min",
    "distracting": "distracting_min",
}
#: How many project names an "unknown project" message lists before cutting off.
LISTED_PROJECTS = 30


class PersonalConfigError(Exception):
    """The personal config is unusable; the message names the bad key and what is wrong."""

    def __init__(self, key: str | None, problem: str) -> None:
        super().__init__(f"{key}: {problem}" if key else problem)
        self.key = key
        self.problem = problem


# --- the config file ----------------------------------------------------------------------------


def canonical_attribute(name: str) -> str:
    """Exist's name of a bridge attribute given by name or alias (`tv` -> `tv_min`)."""
    cleaned = name.strip().lower()
    cleaned = ATTRIBUTE_ALIASES.get(cleaned, cleaned)
    if cleaned not in BRIDGE_TEMPLATES:
        aliases = ", ".join(ATTRIBUTE_ALIASES)
        raise ValueError(
            f"{json.dumps(name)} is not an attribute Timebridge writes; use one of {aliases} "
            f"(or Exist's names: {', '.join(BRIDGE_TEMPLATES)})"
        )
    return cleaned


def _not_blank(value: SecretStr) -> SecretStr:
    stripped = value.get_secret_value().strip()
    if not stripped:
        raise ValueError("empty")
    return SecretStr(stripped)


def _http_url(value: str | None) -> str | None:
    if value is None:
        return None
    stripped = value.strip()
    if not stripped.startswith(("http://", "https://")):
        raise ValueError(f"{json.dumps(value)} is not an http(s) URL")
    return stripped


_STRICT = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class TogglSection(BaseModel):
    """`[toggl]`: the API token, and optionally where Toggl is and which workspace to use."""

    model_config = _STRICT

    api_token: Annotated[SecretStr, AfterValidator(_not_blank)]
    base_url: Annotated[str | None, AfterValidator(_http_url)] = None
    workspace_id: int | None = Field(default=None, gt=0, strict=True)


class ExistSection(BaseModel):
    """`[exist]`: a personal access token, and optionally where Exist is."""

    model_config = _STRICT

    token: Annotated[SecretStr, AfterValidator(_not_blank)]
    base_url: Annotated[str | None, AfterValidator(_http_url)] = None


class SyncSection(BaseModel):
    """`[sync]`: optional; `time_zone` overrides the zone Exist uses for the user's days."""

    model_config = _STRICT

    time_zone: str | None = None

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value.strip())
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{json.dumps(value)} is not a time zone (use an IANA name like Europe/Berlin)"
            ) from None
        return value.strip()


AttributeName = Annotated[str, AfterValidator(canonical_attribute)]


class PersonalConfig(BaseModel):
    """A parsed and checked `timebridge.toml`."""

    model_config = _STRICT

    toggl: TogglSection
    exist: ExistSection
    #: Project name or id (as written in the file) -> Exist attribute name.
    mapping: dict[str, AttributeName]
    sync: SyncSection = SyncSection()

    @field_validator("mapping")
    @classmethod
    def _some_projects(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError('empty; map at least one Toggl project, e.g. "Series" = "tv"')
        if any(not key.strip() for key in value):
            raise ValueError("a project name cannot be blank")
        return {key.strip(): attribute for key, attribute in value.items()}


_SECTIONS = ("toggl", "exist", "mapping", "sync")
_ENV_FALLBACKS: Mapping[tuple[str, str], str] = {
    ("toggl", "api_token"): TOGGL_TOKEN_ENV,
    ("toggl", "base_url"): TOGGL_BASE_URL_ENV,
    ("exist", "token"): EXIST_TOKEN_ENV,
    ("exist", "base_url"): EXIST_BASE_URL_ENV,
}
_SECTION_MODELS: Mapping[str, type[BaseModel]] = {
    "toggl": TogglSection,
    "exist": ExistSection,
    "sync": SyncSection,
}


def _key_path(location: Sequence[int | str]) -> str:
    """`toggl.api_token`, or `mapping."Series"` (project names quoted, as TOML writes them)."""
    parts: list[str] = []
    for index, part in enumerate(location):
        text = str(part)
        parts.append(json.dumps(text) if index > 0 and location[0] == "mapping" else text)
    return ".".join(parts)


def _problem(error: ErrorDetails) -> PersonalConfigError:
    """One pydantic error as the message a person can act on."""
    location = tuple(error["loc"])
    key = _key_path(location)
    kind = error["type"]
    if kind == "missing":
        if len(location) == 1:
            if location[0] == "mapping":
                return PersonalConfigError(
                    "mapping",
                    'missing; map Toggl projects to attributes, e.g. [mapping] "Series" = "tv"',
                )
            return PersonalConfigError(key, f"missing section [{location[0]}]")
        env = _ENV_FALLBACKS.get((str(location[0]), str(location[-1])))
        return PersonalConfigError(key, f"missing (set it or {env})" if env else "missing")
    if kind == "extra_forbidden":
        if len(location) == 1:
            return PersonalConfigError(key, f"unknown section; sections are {', '.join(_SECTIONS)}")
        model = _SECTION_MODELS.get(str(location[0]))
        if model is None:
            return PersonalConfigError(key, "unknown key")
        close = difflib.get_close_matches(str(location[-1]), list(model.model_fields), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return PersonalConfigError(
            key, f"unknown key{hint}; keys are {', '.join(model.model_fields)}"
        )
    if kind in ("model_type", "dict_type"):
        return PersonalConfigError(key, "must be a table")
    if kind == "string_type":
        return PersonalConfigError(key, "must be a string (in quotes)")
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return PersonalConfigError(key, "must be a whole number")
    if kind == "greater_than":
        return PersonalConfigError(key, "must be a positive number")
    if kind == "value_error":
        cause = (error.get("ctx") or {}).get("error")
        message = str(cause) if cause is not None else error["msg"]
        if message == "empty":
            env = _ENV_FALLBACKS.get((str(location[0]), str(location[-1])))
            message = f"empty (set it or {env})" if env else "empty"
        return PersonalConfigError(key, message)
    return PersonalConfigError(key, error["msg"])


def parse_personal_config(
    data: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> PersonalConfig:
    """Check a parsed TOML document; `PersonalConfigError` names the first bad key.

    Tokens and base URLs the file leaves out are taken from the environment variables the
    `toggl` and `exist` commands read (`TOGGL_API_TOKEN`, …), so a token need not be written in
    a file at all.
    """
    environ = os.environ if environ is None else environ
    merged: dict[str, Any] = dict(data)
    for (section, key), variable in _ENV_FALLBACKS.items():
        value = environ.get(variable, "").strip()
        if not value:
            continue
        current = merged.get(section, {})
        if isinstance(current, Mapping) and key not in current:
            merged[section] = {**current, key: value}
    try:
        return PersonalConfig.model_validate(merged)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        # A misspelt key also makes the real one "missing": name the misspelling, the cause.
        unknown = [error for error in errors if error["type"] == "extra_forbidden"]
        raise _problem((unknown or errors)[0]) from None


def load_personal_config(path: Path, environ: Mapping[str, str] | None = None) -> PersonalConfig:
    """Read and check `path`; every problem is a `PersonalConfigError` with one clear line."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise PersonalConfigError(None, f"{path}: no such file") from None
    except IsADirectoryError:
        raise PersonalConfigError(None, f"{path}: is a directory, not a config file") from None
    except OSError as exc:
        raise PersonalConfigError(None, f"{path}: cannot read it ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise PersonalConfigError(None, f"{path}: not valid TOML: {exc}") from None
    return parse_personal_config(data, environ)


# --- resolving project names ----------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedProject:
    """One `[mapping]` line, matched to a Toggl project."""

    #: The key as written in the config (a name or an id).
    key: str
    workspace_id: int
    project_id: int
    project_name: str
    #: The attribute the config asks for (a template name; Exist may give movies another one).
    attribute: str


def _quoted_key(key: str) -> str:
    return f"mapping.{json.dumps(key)}"


def _project_list(projects: Sequence[Project]) -> str:
    names = sorted({project.name for project in projects}, key=str.casefold)
    if not names:
        return "you have no projects in Toggl Track"
    shown = ", ".join(names[:LISTED_PROJECTS])
    more = len(names) - LISTED_PROJECTS
    return f"projects are: {shown}" + (f", … ({more} more)" if more > 0 else "")


def _match(key: str, projects: Sequence[Project]) -> Project:
    """The project a mapping key means: an id, an exact name, or a unique case-insensitive one."""
    if key.isdigit():
        by_id = [project for project in projects if project.id == int(key)]
        if by_id:
            return by_id[0]
    for candidates in (
        [project for project in projects if project.name == key],
        [project for project in projects if project.name.casefold() == key.casefold()],
    ):
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            ids = ", ".join(str(project.id) for project in candidates)
            raise PersonalConfigError(
                _quoted_key(key),
                f"several Toggl projects are named {json.dumps(key)} (ids {ids}); "
                "map the one you mean by its id",
            )
    problem = f"no such Toggl project; {_project_list(projects)}"
    close = difflib.get_close_matches(key, sorted({project.name for project in projects}), n=1)
    if close:
        problem += f" (did you mean {json.dumps(close[0])}?)"
    raise PersonalConfigError(_quoted_key(key), problem)


def resolve_projects(
    mapping: Mapping[str, str], projects: Sequence[Project]
) -> list[ResolvedProject]:
    """Match every `[mapping]` key to a Toggl project (pure: the projects are given).

    `PersonalConfigError` for a name that matches no project (listing the real ones), one that
    matches several, or two keys that mean one project but ask for different attributes.
    """
    live = [project for project in projects if project.server_deleted_at is None]
    resolved: dict[int, ResolvedProject] = {}
    for key, attribute in mapping.items():
        project = _match(key, live)
        earlier = resolved.get(project.id)
        if earlier is not None and earlier.attribute != attribute:
            raise PersonalConfigError(
                _quoted_key(key),
                f"is the same project as {_quoted_key(earlier.key)}, mapped to "
                f"{earlier.attribute}; a project maps to one attribute",
            )
        resolved[project.id] = ResolvedProject(
            key, project.workspace_id, project.id, project.name, attribute
        )
    return list(resolved.values())


def _same_attribute(requested: str, stored: str) -> bool:
    # Where Exist refused the movies template, movies live in a custom attribute of its naming.
    return stored == requested or (requested == MOVIES_TEMPLATE and stored not in BRIDGE_TEMPLATES)


def _same_project(key: str, stored: ProjectMapping) -> bool:
    if key.isdigit() and int(key) == stored.project_id:
        return True
    return stored.project_name.casefold() == key.casefold()


def mapping_is_current(config: PersonalConfig, stored: Sequence[ProjectMapping]) -> bool:
    """Whether the stored mapping is what the config asks for, judged by the names last seen,
    so that an unchanged config costs no Toggl request (a project renamed in Toggl since keeps
    syncing under its id until the config is edited)."""
    if len(stored) != len(config.mapping):
        return False
    workspace = config.toggl.workspace_id
    if workspace is not None and any(m.workspace_id != workspace for m in stored):
        return False
    matched: set[int] = set()
    for key, attribute in config.mapping.items():
        hits = [
            m for m in stored if _same_project(key, m) and _same_attribute(attribute, m.attribute)
        ]
        if not hits:
            return False
        matched.update(m.project_id for m in hits)
    return matched == {m.project_id for m in stored}


# --- running ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedWrite:
    """One value a sync would write: what the ledger says Exist holds now, and the new value."""

    attribute: str
    date: date
    #: None when Timebridge never wrote this value (Exist may hold anything, or nothing).
    ledger_value: int | None
    value: int


@dataclass(frozen=True)
class SyncPreview:
    """What `sync --dry-run` found: the writes a run would make now, none of them made."""

    #: None for a personal config never synced yet (there is no account until the first run).
    account_id: int | None
    window: tuple[date, ...]
    writes: tuple[PlannedWrite, ...]
    #: Attributes a real run would first acquire in Exist (the mapping changed).
    to_acquire: tuple[str, ...] = ()
    toggl_requests: int = 0
    exist_requests: int = 0


@dataclass(frozen=True)
class MappingUpdate:
    """What re-resolving a changed mapping did."""

    projects: tuple[ResolvedProject, ...]
    #: project id -> the attribute name stored (movies may have fallen back to a custom one).
    mapping: Mapping[int, str]
    #: Attributes Exist refused to let us own, with its reason: those projects are not synced.
    refused: Mapping[str, str] = field(default_factory=dict)
    #: Attributes another service (say RescueTime) owned until now, with its name.
    taken_over: Mapping[str, str] = field(default_factory=dict)
    toggl_requests: int = 0
    exist_requests: int = 0


@dataclass(frozen=True)
class PersonalRun:
    """What one personal `sync` did."""

    account_id: int
    result: RunReport | Skipped
    #: Set when the config's mapping had changed and was resolved and acquired again.
    mapping_update: MappingUpdate | None = None


class SyncNotPossible(Exception):
    """The account lacks an active Toggl or Exist connection, so nothing can be planned."""

    def __init__(self, user_id: int, reason: SkipReason) -> None:
        super().__init__(f"user {user_id}: {reason.value}")
        self.user_id = user_id
        self.reason = reason


#: The ledger of an account that does not exist yet: no account has this id (ids start at 1).
_NO_ACCOUNT = 0


@dataclass(frozen=True)
class _PlanInputs:
    """Everything planning one user's sync needs, from the store or from a personal config."""

    account_id: int
    toggl_token: SecretStr
    exist_tokens: ExistTokens
    mapping: Mapping[int, str]
    zone_override: str | None
    exist_zone: str | None
    exist_zone_checked_at: datetime | None


def _exist_app(settings: Settings) -> OAuthApp | None:
    secret = settings.exist_client_secret
    if settings.exist_client_id and secret is not None:
        return OAuthApp(client_id=settings.exist_client_id, client_secret=secret)
    return None


def _zone(name: str | None) -> ZoneInfo | None:
    return ZoneInfo(name) if name else None


async def _plan(
    store: Store,
    settings: Settings,
    inputs: _PlanInputs,
    *,
    clock: Clock,
    retry: RetryPolicy | None,
    on_tokens: Callable[[ExistTokens], Awaitable[None]] | None = None,
) -> SyncPreview:
    async with (
        AsyncTogglClient(
            inputs.toggl_token.get_secret_value(),
            base_url=settings.toggl_base_url,
            retry=retry,
            clock=clock,
        ) as toggl,
        AsyncExistClient(
            inputs.exist_tokens,
            app=_exist_app(settings),
            on_tokens=on_tokens,
            base_url=settings.exist_base_url,
            oauth_base_url=settings.exist_oauth_base_url,
            retry=retry,
            clock=clock,
        ) as exist,
    ):
        runner = SyncRunner(
            UserSyncSettings(
                user_id=inputs.account_id,
                toggl=toggl,
                exist=exist,
                mapping=inputs.mapping,
                clock=clock,
                zone_override=_zone(inputs.zone_override),
                exist_zone=_zone(inputs.exist_zone),
                exist_zone_checked_at=inputs.exist_zone_checked_at,
            ),
            store.ledger,
        )
        plan = await runner.plan()
        toggl_requests, exist_requests = toggl.requests_sent, exist.requests_sent
    ledger = await store.ledger.load(inputs.account_id)
    return SyncPreview(
        account_id=inputs.account_id if inputs.account_id != _NO_ACCOUNT else None,
        window=plan.window,
        writes=tuple(
            PlannedWrite(w.attribute, w.date, ledger.get((w.attribute, w.date)), w.value)
            for w in plan.writes
        ),
        toggl_requests=toggl_requests,
        exist_requests=exist_requests,
    )


async def preview_sync(
    store: Store,
    settings: Settings,
    account_id: int,
    *,
    clock: Clock | None = None,
    retry: RetryPolicy | None = None,
) -> SyncPreview:
    """The writes a sync of `account_id` would make now, without making any (`--dry-run`).

    Reads Toggl's entries (and Exist's profile when the zone is due); never writes to Exist,
    the ledger or the run records. Upstream errors propagate as the clients raise them.
    """
    toggl_connection = await store.toggl_connections.default(account_id)
    if toggl_connection is None or toggl_connection.status is not ConnectionStatus.ACTIVE:
        raise SyncNotPossible(account_id, SkipReason.NO_TOGGL)
    exist_connection = await store.exist_connections.get(account_id)
    if exist_connection is None or exist_connection.status is not ConnectionStatus.ACTIVE:
        raise SyncNotPossible(account_id, SkipReason.NO_EXIST)
    account = await store.accounts.get(account_id)
    inputs = _PlanInputs(
        account_id=account_id,
        toggl_token=await store.toggl_connections.token(account_id, toggl_connection.id),
        exist_tokens=await store.exist_connections.tokens(account_id),
        mapping=await store.mappings.project_map(account_id),
        zone_override=account.time_zone,
        exist_zone=exist_connection.time_zone,
        exist_zone_checked_at=exist_connection.time_zone_checked_at,
    )

    async def keep_rotated_tokens(new_tokens: ExistTokens) -> None:
        # A refresh invalidates the old pair: losing the new one would break the connection.
        await store.exist_connections.rotate(account_id, new_tokens)

    return await _plan(
        store,
        settings,
        inputs,
        clock=clock or SystemClock(),
        retry=retry,
        on_tokens=keep_rotated_tokens,
    )


def effective_settings(config: PersonalConfig, settings: Settings) -> Settings:
    """The service settings with the config's (or the environment's) base URLs applied."""
    changes: dict[str, str] = {}
    if config.toggl.base_url:
        changes["toggl_base_url"] = config.toggl.base_url
    if config.exist.base_url:
        changes["exist_base_url"] = config.exist.base_url
    return settings.model_copy(update=changes)


@dataclass(frozen=True)
class _StoredState:
    """What the store holds of the personal account, compared with the config."""

    account: Account | None
    toggl_token_changed: bool
    exist_token_changed: bool
    mapping_current: bool
    exist_connection: ExistConnection | None

    @property
    def needs_mapping_update(self) -> bool:
        # A new token may be another Toggl or Exist account: resolve and acquire again.
        return self.toggl_token_changed or self.exist_token_changed or not self.mapping_current


class PersonalSync:
    """Personal mode over an open store: keep the account and mapping as the config says, then
    run (or preview) a sync.

    New tokens are stored only after they worked (resolving the mapping uses both), so a
    mistyped token in the config never replaces a good one that `serve` may be using.
    """

    def __init__(
        self,
        config: PersonalConfig,
        settings: Settings,
        store: Store,
        *,
        clock: Clock | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._config = config
        self._settings = effective_settings(config, settings)
        self._store = store
        self._clock = clock or SystemClock()
        self._retry = retry or RetryPolicy()
        # Whatever happens next, these two never reach a log line.
        register_secret(config.toggl.api_token)
        register_secret(config.exist.token)

    async def run(self, kind: RunKind = RunKind.SYNC) -> PersonalRun:
        """Bring Exist to Toggl's truth for the config's mapping, and record the run."""
        state = await self._stored_state()
        account_id = await self._ensure_account(state.account)
        update: MappingUpdate | None = None
        if state.needs_mapping_update:
            update = await self._update_mapping(account_id)
        await self._store_connections(account_id, state)
        service = SyncService(self._store, self._settings, clock=self._clock, retry=self._retry)
        result = await service.sync_user(account_id, kind)
        return PersonalRun(account_id=account_id, result=result, mapping_update=update)

    async def preview(self) -> SyncPreview:
        """What `run` would write now. Nothing is written anywhere: not to Exist, not to the
        store (a config never synced is previewed against an empty ledger)."""
        state = await self._stored_state()
        account_id = state.account.id if state.account is not None else _NO_ACCOUNT
        to_acquire: tuple[str, ...] = ()
        toggl_requests = 0
        if state.needs_mapping_update:
            projects, toggl_requests = await self._resolve()
            mapping: Mapping[int, str] = {p.project_id: p.attribute for p in projects}
            to_acquire = tuple(sorted(set(mapping.values())))
        else:
            mapping = await self._store.mappings.project_map(account_id)
        known_zone = state.exist_connection if not state.exist_token_changed else None
        inputs = _PlanInputs(
            account_id=account_id,
            toggl_token=self._config.toggl.api_token,
            exist_tokens=ExistTokens(access_token=self._config.exist.token),
            mapping=mapping,
            zone_override=self._config.sync.time_zone,
            exist_zone=known_zone.time_zone if known_zone is not None else None,
            exist_zone_checked_at=known_zone.time_zone_checked_at
            if known_zone is not None
            else None,
        )
        preview = await _plan(
            self._store, self._settings, inputs, clock=self._clock, retry=self._retry
        )
        return replace(
            preview,
            to_acquire=to_acquire,
            toggl_requests=preview.toggl_requests + toggl_requests,
        )

    # --- the steps ------------------------------------------------------------------------------

    async def _stored_state(self) -> _StoredState:
        store, config = self._store, self._config
        account = await store.accounts.by_email(PERSONAL_ACCOUNT_EMAIL)
        if account is None:
            return _StoredState(None, True, True, False, None)
        toggl = await store.toggl_connections.default(account.id)
        toggl_token = (
            await store.toggl_connections.token(account.id, toggl.id)
            if toggl is not None and toggl.has_token
            else None
        )
        exist = await store.exist_connections.get(account.id)
        exist_token = (
            (await store.exist_connections.tokens(account.id)).access_token
            if exist is not None
            else None
        )
        return _StoredState(
            account=account,
            toggl_token_changed=not _same_secret(toggl_token, config.toggl.api_token),
            exist_token_changed=not _same_secret(exist_token, config.exist.token),
            mapping_current=mapping_is_current(
                config, await store.mappings.for_account(account.id)
            ),
            exist_connection=exist,
        )

    async def _ensure_account(self, account: Account | None) -> int:
        store, zone = self._store, self._config.sync.time_zone
        if account is None:
            try:
                account = await store.accounts.create(
                    PERSONAL_ACCOUNT_EMAIL, display_name=PERSONAL_DISPLAY_NAME, time_zone=zone
                )
            except DuplicateAccount:  # another run created it just now
                account = await store.accounts.by_email(PERSONAL_ACCOUNT_EMAIL)
                assert account is not None
        if account.time_zone != zone:
            await store.accounts.set_time_zone(account.id, zone)
        return account.id

    async def _store_connections(self, account_id: int, state: _StoredState) -> None:
        """Store changed tokens (encrypted) and re-activate a connection a run had given up on:
        the config is the person saying "these are my tokens"."""
        store, config = self._store, self._config
        toggl = await store.toggl_connections.default(account_id)
        if toggl is None:
            await store.toggl_connections.create(
                account_id, config.toggl.api_token, label=PERSONAL_DISPLAY_NAME
            )
        elif state.toggl_token_changed or toggl.status is not ConnectionStatus.ACTIVE:
            await store.toggl_connections.set_token(account_id, toggl.id, config.toggl.api_token)
        exist = await store.exist_connections.get(account_id)
        if (
            exist is None
            or state.exist_token_changed
            or exist.status is not ConnectionStatus.ACTIVE
        ):
            await store.exist_connections.save(
                account_id, ExistTokens(access_token=config.exist.token)
            )

    def _toggl(self) -> AsyncTogglClient:
        return AsyncTogglClient(
            self._config.toggl.api_token.get_secret_value(),
            base_url=self._settings.toggl_base_url,
            retry=self._retry,
            clock=self._clock,
        )

    def _exist(self) -> AsyncExistClient:
        return AsyncExistClient(
            self._config.exist.token.get_secret_value(),
            base_url=self._settings.exist_base_url,
            oauth_base_url=self._settings.exist_oauth_base_url,
            retry=self._retry,
            clock=self._clock,
        )

    async def _resolve(self) -> tuple[list[ResolvedProject], int]:
        """The config's mapping matched to Toggl projects, and the Toggl requests it took."""
        async with self._toggl() as toggl:
            projects = await self._projects(toggl)
            return resolve_projects(self._config.mapping, projects), toggl.requests_sent

    async def _projects(self, toggl: AsyncTogglClient) -> list[Project]:
        workspace = self._config.toggl.workspace_id
        try:
            workspaces = [workspace] if workspace else [w.id for w in await toggl.workspaces()]
            found: list[Project] = []
            for workspace_id in workspaces:
                # Archived projects too: their entries still count.
                found.extend([p async for p in toggl.iter_projects(workspace_id, active="both")])
        except toggl_errors.AuthenticationError:
            if workspace is None:
                raise
            # Toggl answers 403 both for a bad token and for a workspace that is not yours.
            await toggl.me()
            raise PersonalConfigError(
                "toggl.workspace_id", f"{workspace} is not one of your Toggl workspaces"
            ) from None
        return found

    async def _update_mapping(self, account_id: int) -> MappingUpdate:
        """Resolve names to ids, acquire the attributes in Exist, store the mapping."""
        store = self._store
        projects, toggl_requests = await self._resolve()
        requested = {project.project_id: project.attribute for project in projects}
        previous = await store.mappings.project_map(account_id)
        async with self._exist() as exist:
            taken_over = await other_owners(exist, requested.values())
            change = await save_mapping(
                exist, store.ledger, account_id, previous=previous, requested=requested
            )
            exist_requests = exist.requests_sent
        await store.mappings.replace(
            account_id,
            [
                ProjectMapping(
                    project.workspace_id,
                    project.project_id,
                    project.project_name,
                    change.mapping[project.project_id],
                )
                for project in projects
                if project.project_id in change.mapping
            ],
        )
        return MappingUpdate(
            projects=tuple(projects),
            mapping=dict(change.mapping),
            refused=dict(change.claims.refused),
            taken_over={k: v for k, v in taken_over.items() if k not in change.claims.refused},
            toggl_requests=toggl_requests,
            exist_requests=exist_requests,
        )


def _same_secret(stored: SecretStr | None, configured: SecretStr) -> bool:
    return stored is not None and hmac.compare_digest(
        stored.get_secret_value().encode(), configured.get_secret_value().encode()
    )


__all__ = [
    "ATTRIBUTE_ALIASES",
    "CONFIG_FILE_NAME",
    "PERSONAL_ACCOUNT_EMAIL",
    "MappingUpdate",
    "PersonalConfig",
    "PersonalConfigError",
    "PersonalRun",
    "PersonalSync",
    "PlannedWrite",
    "ResolvedProject",
    "SyncNotPossible",
    "SyncPreview",
    "canonical_attribute",
    "effective_settings",
    "load_personal_config",
    "mapping_is_current",
    "parse_personal_config",
    "preview_sync",
    "resolve_projects",
]
