"""One `timebridge toggl …` command's conversation with Toggl Track.

A `TogglSession` holds the client and the command's `TogglMemory`: it answers "which
workspace", "which time zone" and "which project names" from memory when it can, and asks Toggl
only when it must. `open_session` turns every failure into one clear line and an exit code.
Importing this module loads the Toggl client; the command modules import it when they run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from timebridge.cli._output import ExitCode, fail
from timebridge.cli._toggl_format import human
from timebridge.cli._toggl_memory import RememberedProfile, TogglMemory, gateway_memory_key
from timebridge.clock import Clock
from timebridge.toggl import (
    GATEWAY_QUOTA_GUARD_CODE,
    AuthenticationError,
    CredentialsMissing,
    Me,
    NotFound,
    QuotaExceeded,
    RateLimited,
    ServerError,
    StartDateTooEarly,
    TimeEntry,
    TogglClient,
    TogglError,
    TransportError,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Gateway:
    """A Timebridge gateway the CLI reaches Toggl through, instead of holding a Toggl token."""

    url: str
    key: str
    #: The key owner's Toggl connection to use; None: their default one.
    connection: str | None = None

    def __repr__(self) -> str:
        return f"Gateway(url={self.url!r}, key=<hidden>, connection={self.connection!r})"


class TogglSession:
    """The client, plus what is remembered about its account."""

    def __init__(
        self, client: TogglClient, memory: TogglMemory, configured_workspace: int | None
    ) -> None:
        self.client = client
        self.memory = memory
        self._configured_workspace = configured_workspace

    def me(self) -> Me:
        """`GET /me`, always asked; what the CLI needs of it is remembered."""
        me = self.client.me()
        self.memory.remember_profile(
            RememberedProfile(me.id, me.default_workspace_id, me.timezone or "UTC")
        )
        return me

    def profile(self) -> RememberedProfile:
        remembered = self.memory.profile
        if remembered is not None:
            return remembered
        me = self.me()
        return RememberedProfile(me.id, me.default_workspace_id, me.timezone or "UTC")

    def zone(self) -> ZoneInfo:
        """The Toggl user's time zone (UTC if Toggl names one this machine does not know)."""
        try:
            return ZoneInfo(self.profile().timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo("UTC")

    def _default_workspace(self) -> int:
        workspace = self.profile().default_workspace_id
        if workspace is None:
            fail("you have no default workspace in Toggl Track; pass --workspace", ExitCode.USAGE)
        return workspace

    def in_workspace(self, explicit: int | None, action: Callable[[int], T]) -> T:
        """Run `action` in the workspace asked for, else the configured one, else the default.

        A remembered default that Toggl refuses (403/404: the user left it, or it is gone) is
        forgotten, `/me` asked again, and the action retried once if the default changed.
        """
        chosen = explicit or self._configured_workspace
        if chosen is not None:
            return action(chosen)
        remembered = self.memory.profile is not None
        workspace = self._default_workspace()
        try:
            return action(workspace)
        except (AuthenticationError, NotFound):
            if not remembered:
                raise
            self.memory.forget_profile()
            if self._default_workspace() == workspace:
                raise
        return action(self._default_workspace())

    def project_names(self, entries: Sequence[TimeEntry]) -> dict[int, str]:
        """Names of the entries' projects: remembered, else listed once per workspace.

        Names only decorate a table: if Toggl cannot list them now, the ids are shown instead.
        """
        wanted: dict[int, set[int]] = {}
        for entry in entries:
            if entry.project_id is not None:
                wanted.setdefault(entry.workspace_id, set()).add(entry.project_id)
        names: dict[int, str] = {}
        for workspace, ids in wanted.items():
            known = self.memory.project_names(workspace)
            if not ids <= known.keys():
                try:
                    listed = {
                        p.id: p.name for p in self.client.iter_projects(workspace, active="both")
                    }
                except TogglError:
                    listed = {}
                else:
                    self.memory.remember_projects(workspace, listed, missing=ids - listed.keys())
                known = {**known, **listed}
            names.update({pid: name for pid in ids if (name := known.get(pid)) is not None})
        return names


def _floor_message(error: StartDateTooEarly, now: datetime) -> str:
    if error.earliest is None:
        return f"{error.message}; ask for fewer --days, or a later --start"
    floor = error.earliest
    days = max(0, (now - datetime.combine(floor, datetime.min.time(), UTC)) // timedelta(days=1))
    return (
        f"time entries can be read back to {floor.isoformat()} only; "
        f"ask for --days {days} or fewer, or a --start on or after that date "
        "(older entries are in Toggl's reports)"
    )


def _refused(error: AuthenticationError, through_gateway: bool) -> str:
    if not through_gateway:
        return f"authentication failed ({error.message}); check your API token"
    if error.gateway_code is None:
        # Toggl's own 401/403, passed through: the token stored behind the connection.
        return (
            f"Toggl refused the connection's stored token ({error.message}); "
            "reconnect Toggl on the gateway, or pick another --connection"
        )
    if error.status_code == 403:
        return f"the gateway refused ({error.message}); the key lacks a scope this command needs"
    return f"the gateway refused the key ({error.message}); check --key / TIMEBRIDGE_GATEWAY_KEY"


def describe(
    error: TogglError, now: datetime, *, through_gateway: bool = False
) -> tuple[str, ExitCode]:
    """One line for the person at the terminal, and the exit code scripts see."""
    if isinstance(error, AuthenticationError):
        return _refused(error, through_gateway), ExitCode.AUTHENTICATION
    if isinstance(error, QuotaExceeded):
        wait = "" if error.resets_in is None else f"; it resets in {human(error.resets_in)}"
        return f"Toggl's hourly API quota is used up{wait}", ExitCode.QUOTA
    if isinstance(error, RateLimited) and error.gateway_code == GATEWAY_QUOTA_GUARD_CODE:
        # The gateway's quota guard answering for Toggl: the same spent quota as a 402.
        wait = "" if error.retry_after is None else f"; it resets in {human(error.retry_after)}"
        return f"Toggl's hourly API quota is used up{wait} (the gateway said)", ExitCode.QUOTA
    if isinstance(error, NotFound):
        if through_gateway and error.gateway_code is not None:
            return f"the gateway: {error.message}", ExitCode.NOT_FOUND
        return f"not found ({error.message})", ExitCode.NOT_FOUND
    if isinstance(error, RateLimited | ServerError | TransportError):
        return str(error), ExitCode.UNAVAILABLE
    if isinstance(error, StartDateTooEarly):
        return _floor_message(error, now), ExitCode.USAGE
    if isinstance(error, CredentialsMissing):
        return (
            "the request reached Toggl without credentials (did a proxy drop them?)",
            ExitCode.AUTHENTICATION,
        )
    if through_gateway and error.gateway_code is not None and error.status_code == 400:
        return f"the gateway: {error.message}", ExitCode.USAGE
    return str(error), ExitCode.OTHER


@contextmanager
def open_session(
    token: str | None,
    base_url: str,
    configured_workspace: int | None,
    clock: Clock,
    *,
    memory_key: str,
    gateway: Gateway | None = None,
) -> Iterator[TogglSession]:
    """A session for one command; what it learnt is remembered even when the command fails.

    `memory_key` is the base URL as configured ("" for Toggl itself): with the token, it names
    the account's entry in the CLI's memory. Through a `gateway`, the token and base URL are not
    used: the gateway's key, URL and connection name the account instead.
    """
    try:
        if gateway is not None:
            client = TogglClient.through_gateway(
                gateway.url, gateway.key, connection=gateway.connection, clock=clock
            )
            memory = TogglMemory(gateway.key, gateway_memory_key(gateway.url, gateway.connection))
        elif token:
            client = TogglClient(token, base_url=base_url, clock=clock)
            memory = TogglMemory(token, memory_key)
        else:
            fail(
                "no Toggl API token: pass --token, set TOGGL_API_TOKEN, or run "
                "`timebridge toggl login` (or go through a gateway: --gateway URL --key KEY)",
                ExitCode.USAGE,
            )
    except ValueError as exc:
        fail(str(exc), ExitCode.USAGE)
    try:
        with client:
            yield TogglSession(client, memory, configured_workspace)
    except TogglError as exc:
        message, code = describe(exc, clock.now(), through_gateway=gateway is not None)
        fail(f"Toggl Track: {message}", code)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        fail(f"{where}: {first['msg']}" if where else first["msg"], ExitCode.USAGE)
    except ValueError as exc:
        fail(str(exc), ExitCode.USAGE)
    finally:
        memory.save()
