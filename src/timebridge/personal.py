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

This module reads and checks the file and matches its project names to Toggl projects (pure,
given the projects). Running it is `timebridge.bridge.personal.PersonalSync`: a local
"personal" account in the default store, synced by the same `Bridge` as the service's users.
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
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

from timebridge.origins import OriginError, exist_origin, toggl_origin
from timebridge.sync.attributes import BRIDGE_TEMPLATES, MOVIES_TEMPLATE

if TYPE_CHECKING:
    from timebridge.store import ProjectMapping
    from timebridge.toggl import Project

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


def _toggl_url(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        toggl_origin(value)
    except OriginError as exc:
        raise ValueError(str(exc).removeprefix("Toggl Track: ")) from None
    return value.strip()


def _exist_url(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        exist_origin(value)
    except OriginError as exc:
        raise ValueError(str(exc).removeprefix("Exist: ")) from None
    return value.strip()


_STRICT = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class TogglSection(BaseModel):
    """`[toggl]`: the API token, and optionally where Toggl is and which workspace to use."""

    model_config = _STRICT

    api_token: Annotated[SecretStr, AfterValidator(_not_blank)]
    base_url: Annotated[str | None, AfterValidator(_toggl_url)] = None
    workspace_id: int | None = Field(default=None, gt=0, strict=True)


class ExistSection(BaseModel):
    """`[exist]`: a personal access token, and optionally where Exist is."""

    model_config = _STRICT

    token: Annotated[SecretStr, AfterValidator(_not_blank)]
    base_url: Annotated[str | None, AfterValidator(_exist_url)] = None


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


def same_attribute(requested: str, stored: str) -> bool:
    """Whether a stored attribute is the one the config asks for."""
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
            m for m in stored if _same_project(key, m) and same_attribute(attribute, m.attribute)
        ]
        if not hits:
            return False
        matched.update(m.project_id for m in hits)
    return matched == {m.project_id for m in stored}


__all__ = [
    "ATTRIBUTE_ALIASES",
    "CONFIG_FILE_NAME",
    "EXIST_BASE_URL_ENV",
    "EXIST_TOKEN_ENV",
    "PERSONAL_ACCOUNT_EMAIL",
    "PERSONAL_DISPLAY_NAME",
    "TOGGL_BASE_URL_ENV",
    "TOGGL_TOKEN_ENV",
    "PersonalConfig",
    "PersonalConfigError",
    "ResolvedProject",
    "canonical_attribute",
    "load_personal_config",
    "mapping_is_current",
    "parse_personal_config",
    "resolve_projects",
    "same_attribute",
]
