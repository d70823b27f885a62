"""The Toggl simulator's in-memory world: users, workspaces and everything in them.

Every mutation goes through this class, under one lock, and stamps `at` from the injected clock,
so `since` queries see exactly what changed. Resources are stored as the shared pydantic models
of `timebridge.toggl.models` (immutable; changes replace them).
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from timebridge.clock import Clock
from timebridge.toggl.models import Client, Me, Project, Tag, TimeEntry, Workspace, WorkspaceUser

Plan = Literal["free", "starter", "premium", "enterprise"]
#: What happened to a time entry, as webhooks name it.
EntryAction = Literal["created", "updated", "deleted"]
#: Called with every change to a time entry (HTTP API and Python seeding alike), the lock held.
EntryListener = Callable[[EntryAction, TimeEntry], None]

#: Workspace-scoped requests per hour by plan (support.toggl.com, since 2025-09-05).
WORKSPACE_QUOTA: dict[Plan, int] = {"free": 30, "starter": 240, "premium": 600, "enterprise": 1200}
#: User-scoped requests (/me...) per hour, on every plan.
USER_QUOTA = 30
#: How many days before today `start_date` on /me/time_entries may reach by default. Toggl's
#: floor depends on the account and is not documented; reference/toggl.md §2 records the
#: time-entries endpoint refusing anything older than about three months (the same 90 days as
#: `since`), so that is the default here.
DEFAULT_HISTORY_DAYS = 90


class SimulatorError(Exception):
    """A request the simulated Toggl refuses; answered with `status` and the message as a JSON
    string."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class SimUser:
    """A simulated Toggl account."""

    id: int
    api_token: str
    email: str
    fullname: str
    timezone: str
    default_workspace_id: int
    password: str | None = None
    created_at: datetime | None = None
    #: How many days before today (in the user's time zone) `start_date` may reach.
    history_days: int = DEFAULT_HISTORY_DAYS

    def start_date_floor(self, now: datetime) -> date:
        """The earliest `start_date` /me/time_entries accepts for this account at `now`.

        [guess] "today" is the user's local date; Toggl's message names only a date.
        """
        return now.astimezone(ZoneInfo(self.timezone)).date() - timedelta(days=self.history_days)

    def me(self) -> Me:
        return Me(
            id=self.id,
            email=self.email,
            fullname=self.fullname,
            timezone=self.timezone,
            default_workspace_id=self.default_workspace_id,
            beginning_of_week=1,
            image_url="https://assets.track.toggl.com/images/profile.png",
            api_token=SecretStr(self.api_token),
            at=self.created_at,
            created_at=self.created_at,
            updated_at=self.created_at,
        )


@dataclass
class SimWorkspace:
    model: Workspace
    plan: Plan
    members: dict[int, bool] = field(default_factory=dict)  # user id -> admin

    @property
    def hourly_quota(self) -> int:
        return WORKSPACE_QUOTA[self.plan]


class TogglWorld:
    """All simulated Toggl data. Thread-safe."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self._ids = itertools.count(1_000_001)
        self._entry_ids = itertools.count(4_000_000_001)
        self.users: dict[int, SimUser] = {}
        self.users_by_token: dict[str, SimUser] = {}
        self.workspaces: dict[int, SimWorkspace] = {}
        self.projects: dict[int, Project] = {}
        self.clients: dict[int, Client] = {}
        self.tags: dict[int, Tag] = {}
        self.entries: dict[int, TimeEntry] = {}
        #: Told of every created, updated (stopped included) and deleted time entry.
        self.entry_listeners: list[EntryListener] = []

    def _emit(self, action: EntryAction, entry: TimeEntry) -> None:
        for listener in list(self.entry_listeners):
            listener(action, entry)

    def _now(self) -> datetime:
        return self.clock.now().replace(microsecond=0)

    # --- users and workspaces -------------------------------------------------------------------

    def add_user(
        self,
        *,
        api_token: str | None = None,
        email: str | None = None,
        fullname: str = "Toggl User",
        timezone: str = "UTC",
        plan: Plan = "free",
        workspace_name: str | None = None,
        password: str | None = None,
        history_days: int = DEFAULT_HISTORY_DAYS,
    ) -> SimUser:
        """A user with their own default workspace (as every Toggl sign-up gets).

        `history_days` sets how far back this account's `start_date` may reach.
        """
        with self.lock:
            user_id = next(self._ids)
            token = api_token or secrets.token_hex(16)
            if token in self.users_by_token:
                raise ValueError("that API token is already in use")
            user = SimUser(
                id=user_id,
                api_token=token,
                email=email or f"user{user_id}@example.com",
                fullname=fullname,
                timezone=timezone,
                default_workspace_id=0,
                password=password,
                created_at=self._now(),
                history_days=history_days,
            )
            self.users[user_id] = user
            self.users_by_token[token] = user
            workspace = self.add_workspace(
                owner_id=user_id, name=workspace_name or f"{fullname}'s workspace", plan=plan
            )
            user.default_workspace_id = workspace.id
            return user

    def add_workspace(
        self,
        *,
        owner_id: int,
        name: str,
        plan: Plan = "free",
        organization_id: int | None = None,
    ) -> Workspace:
        with self.lock:
            self._user(owner_id)
            workspace_id = next(self._ids)
            model = Workspace(
                id=workspace_id,
                name=name,
                organization_id=organization_id or next(self._ids),
                premium=plan in ("premium", "enterprise"),
                business_ws=plan in ("premium", "enterprise"),
                admin=True,
                max_data_retention_days=None if plan != "free" else 365 * 3,
                at=self._now(),
            )
            self.workspaces[workspace_id] = SimWorkspace(model, plan, {owner_id: True})
            return model

    def add_member(self, workspace_id: int, user_id: int, *, admin: bool = False) -> None:
        with self.lock:
            self._user(user_id)
            self._workspace(workspace_id).members[user_id] = admin

    def revoke_token(self, user_id: int) -> str:
        """Reset the API token, as Toggl's profile page does; returns the new one."""
        with self.lock:
            user = self._user(user_id)
            del self.users_by_token[user.api_token]
            user.api_token = secrets.token_hex(16)
            self.users_by_token[user.api_token] = user
            return user.api_token

    def _user(self, user_id: int) -> SimUser:
        try:
            return self.users[user_id]
        except KeyError:
            raise SimulatorError(404, f"user {user_id} not found") from None

    def _workspace(self, workspace_id: int) -> SimWorkspace:
        try:
            return self.workspaces[workspace_id]
        except KeyError:
            raise SimulatorError(403, "User does not have access to this resource.") from None

    def workspace_for(self, user: SimUser, workspace_id: int) -> SimWorkspace:
        """The workspace if `user` belongs to it; Toggl answers 403 otherwise (even if missing)."""
        with self.lock:
            workspace = self.workspaces.get(workspace_id)
            if workspace is None or user.id not in workspace.members:
                raise SimulatorError(403, "User does not have access to this resource.")
            return workspace

    def workspaces_of(self, user: SimUser) -> list[Workspace]:
        with self.lock:
            return [ws.model for ws in self.workspaces.values() if user.id in ws.members]

    def workspace_users(self, workspace_id: int) -> list[WorkspaceUser]:
        with self.lock:
            workspace = self._workspace(workspace_id)
            return [
                WorkspaceUser(
                    id=user_id,
                    email=self.users[user_id].email,
                    fullname=self.users[user_id].fullname,
                    timezone=self.users[user_id].timezone,
                    admin=admin,
                )
                for user_id, admin in workspace.members.items()
            ]

    # --- projects -------------------------------------------------------------------------------

    def add_project(self, workspace_id: int, fields: dict[str, Any]) -> Project:
        with self.lock:
            self._workspace(workspace_id)
            name = str(fields.get("name") or "").strip()
            if not name:
                raise SimulatorError(400, "Project name must not be empty")
            if any(
                p.workspace_id == workspace_id and p.name.lower() == name.lower()
                for p in self.projects.values()
            ):
                raise SimulatorError(400, "Name has already been taken")
            client_id = fields.get("client_id")
            if client_id is not None:
                self._client_in(workspace_id, int(client_id), status=400)
            now = self._now()
            project = Project.model_validate(
                {
                    "is_private": True,
                    "active": True,
                    **{key: value for key, value in fields.items() if value is not None},
                    "id": next(self._ids),
                    "workspace_id": workspace_id,
                    "name": name,
                    "at": now,
                    "created_at": now,
                }
            )
            self.projects[project.id] = project
            return project

    def project_in(self, workspace_id: int, project_id: int) -> Project:
        with self.lock:
            project = self.projects.get(project_id)
            if project is None or project.workspace_id != workspace_id:
                raise SimulatorError(404, "Project not found")
            return project

    def update_project(
        self, workspace_id: int, project_id: int, changes: dict[str, Any]
    ) -> Project:
        with self.lock:
            project = self.project_in(workspace_id, project_id)
            if "name" in changes:
                name = str(changes["name"] or "").strip()
                if not name:
                    raise SimulatorError(400, "Project name must not be empty")
                if any(
                    p.id != project_id
                    and p.workspace_id == workspace_id
                    and p.name.lower() == name.lower()
                    for p in self.projects.values()
                ):
                    raise SimulatorError(400, "Name has already been taken")
                changes = {**changes, "name": name}
            if changes.get("client_id") is not None:
                self._client_in(workspace_id, int(changes["client_id"]), status=400)
            updated = Project.model_validate({**project.model_dump(), **changes, "at": self._now()})
            self.projects[project_id] = updated
            return updated

    def delete_project(self, workspace_id: int, project_id: int) -> None:
        with self.lock:
            self.project_in(workspace_id, project_id)
            del self.projects[project_id]

    # --- clients --------------------------------------------------------------------------------

    def _client_in(self, workspace_id: int, client_id: int, *, status: int = 404) -> Client:
        client = self.clients.get(client_id)
        if client is None or client.workspace_id != workspace_id:
            raise SimulatorError(status, "Client not found" if status == 404 else "Invalid client")
        return client

    def client_in(self, workspace_id: int, client_id: int) -> Client:
        with self.lock:
            return self._client_in(workspace_id, client_id)

    def add_client(
        self, workspace_id: int, name: str, notes: str | None, creator_id: int
    ) -> Client:
        with self.lock:
            self._workspace(workspace_id)
            name = name.strip()
            if not name:
                raise SimulatorError(400, "Client name must not be empty")
            if any(
                c.workspace_id == workspace_id and c.name.lower() == name.lower()
                for c in self.clients.values()
            ):
                raise SimulatorError(400, "Name has already been taken")
            client = Client(
                id=next(self._ids),
                workspace_id=workspace_id,
                name=name,
                notes=notes,
                creator_id=creator_id,
                at=self._now(),
            )
            self.clients[client.id] = client
            return client

    def update_client(self, workspace_id: int, client_id: int, changes: dict[str, Any]) -> Client:
        with self.lock:
            client = self._client_in(workspace_id, client_id)
            if "name" in changes and not str(changes["name"] or "").strip():
                raise SimulatorError(400, "Client name must not be empty")
            updated = client.model_copy(update={**changes, "at": self._now()})
            self.clients[client_id] = updated
            return updated

    def delete_client(self, workspace_id: int, client_id: int) -> None:
        with self.lock:
            self._client_in(workspace_id, client_id)
            del self.clients[client_id]
            for project in list(self.projects.values()):
                if project.client_id == client_id:
                    self.projects[project.id] = project.model_copy(update={"client_id": None})

    def archive_client(self, workspace_id: int, client_id: int) -> list[int]:
        with self.lock:
            client = self._client_in(workspace_id, client_id)
            now = self._now()
            self.clients[client_id] = client.model_copy(update={"archived": True, "at": now})
            archived = []
            for project in list(self.projects.values()):
                if project.client_id == client_id and project.active:
                    self.projects[project.id] = project.model_copy(
                        update={"active": False, "at": now}
                    )
                    archived.append(project.id)
            return archived

    def restore_client(
        self, workspace_id: int, client_id: int, *, all_projects: bool, project_ids: list[int]
    ) -> Client:
        with self.lock:
            client = self._client_in(workspace_id, client_id)
            now = self._now()
            restored = client.model_copy(update={"archived": False, "at": now})
            self.clients[client_id] = restored
            for project in list(self.projects.values()):
                if project.client_id == client_id and (all_projects or project.id in project_ids):
                    self.projects[project.id] = project.model_copy(
                        update={"active": True, "at": now}
                    )
            return restored

    # --- tags -----------------------------------------------------------------------------------

    def _tag_named(self, workspace_id: int, name: str) -> Tag | None:
        for tag in self.tags.values():
            if tag.workspace_id == workspace_id and tag.name.lower() == name.lower():
                return tag
        return None

    def add_tag(self, workspace_id: int, name: str, creator_id: int) -> Tag:
        with self.lock:
            self._workspace(workspace_id)
            name = name.strip()
            if not name:
                raise SimulatorError(400, "tag name can't be blank")
            if self._tag_named(workspace_id, name) is not None:
                raise SimulatorError(400, f"a tag with the name '{name}' already exists")
            tag = Tag(
                id=next(self._ids),
                workspace_id=workspace_id,
                name=name,
                creator_id=creator_id,
                at=self._now(),
            )
            self.tags[tag.id] = tag
            return tag

    def tag_in(self, workspace_id: int, tag_id: int) -> Tag:
        with self.lock:
            tag = self.tags.get(tag_id)
            if tag is None or tag.workspace_id != workspace_id:
                raise SimulatorError(404, "Tag was not found")
            return tag

    def rename_tag(self, workspace_id: int, tag_id: int, name: str) -> Tag:
        with self.lock:
            tag = self.tag_in(workspace_id, tag_id)
            name = name.strip()
            if not name:
                raise SimulatorError(400, "tag name can't be blank")
            other = self._tag_named(workspace_id, name)
            if other is not None and other.id != tag_id:
                raise SimulatorError(400, f"a tag with the name '{name}' already exists")
            renamed = tag.model_copy(update={"name": name, "at": self._now()})
            self.tags[tag_id] = renamed
            return renamed

    def delete_tag(self, workspace_id: int, tag_id: int) -> None:
        with self.lock:
            self.tag_in(workspace_id, tag_id)
            del self.tags[tag_id]

    # --- time entries ---------------------------------------------------------------------------

    def _resolve_tags(
        self, workspace_id: int, names: list[str] | None, ids: list[int] | None, creator_id: int
    ) -> tuple[list[str] | None, list[int] | None]:
        if names is None and ids is None:
            return None, None
        resolved: dict[int, Tag] = {}
        for tag_id in ids or []:
            tag = self.tags.get(tag_id)
            if tag is None or tag.workspace_id != workspace_id:
                raise SimulatorError(400, f"Invalid tag id {tag_id}")
            resolved[tag.id] = tag
        for name in names or []:
            # Toggl creates tags that are named on an entry but do not exist yet.
            tag = self._tag_named(workspace_id, name) or self.add_tag(
                workspace_id, name, creator_id
            )
            resolved[tag.id] = tag
        tags = sorted(resolved.values(), key=lambda tag: tag.name.lower())
        return [tag.name for tag in tags], [tag.id for tag in tags]

    def _check_project(self, workspace_id: int, project_id: int | None) -> None:
        if project_id is None:
            return
        project = self.projects.get(project_id)
        if project is None or project.workspace_id != workspace_id:
            raise SimulatorError(400, "Invalid project_id")

    def _stop_running(self, user_id: int, now: datetime) -> None:
        for entry in list(self.entries.values()):
            if entry.user_id == user_id and entry.is_running and not entry.is_deleted:
                self.entries[entry.id] = _stopped(entry, now)
                self._emit("updated", self.entries[entry.id])

    def add_time_entry(
        self,
        *,
        user_id: int,
        workspace_id: int,
        start: datetime,
        duration: int | None = None,
        stop: datetime | None = None,
        description: str | None = None,
        project_id: int | None = None,
        task_id: int | None = None,
        tags: list[str] | None = None,
        tag_ids: list[int] | None = None,
        billable: bool = False,
        saved_at: datetime | None = None,
    ) -> TimeEntry:
        """Create an entry as Toggl would: a negative duration (and no stop) starts a timer;
        neither `duration` nor `stop` makes an entry of no length (stop = start), as the
        recorded traffic of reference/toggl.md §3 shows.

        `saved_at` (seeding only; the HTTP API always saves "now") is when the entry was saved,
        its `at`: a history seeded as if it had been tracked day by day has entries last
        changed days ago, as `since` then sees them.
        """
        with self.lock:
            workspace = self._workspace(workspace_id)
            if user_id not in workspace.members:
                raise SimulatorError(403, "User does not have access to this resource.")
            if start.tzinfo is None:
                raise SimulatorError(400, "start must carry a time zone")
            start = start.replace(microsecond=0)
            if stop is not None:
                stop = stop.replace(microsecond=0)
                if stop < start:
                    raise SimulatorError(400, "Stop time must be after start time")
                if duration is not None and duration < 0:
                    raise SimulatorError(400, "A running time entry cannot have a stop time")
                duration = int((stop - start).total_seconds())
            elif duration is None:
                duration, stop = 0, start
            elif duration >= 0:
                stop = start + timedelta(seconds=duration)
            self._check_project(workspace_id, project_id)
            tag_names, resolved_ids = self._resolve_tags(workspace_id, tags, tag_ids, user_id)
            now = self._now()
            if saved_at is not None and saved_at > now:
                raise ValueError("an entry cannot have been saved in the future")
            running = duration < 0
            if running:
                self._stop_running(user_id, now)
            entry = TimeEntry(
                id=next(self._entry_ids),
                workspace_id=workspace_id,
                project_id=project_id,
                task_id=task_id,
                user_id=user_id,
                start=start,
                stop=None if running else stop,
                # Toggl reports a running entry's duration as minus its start's Unix time.
                duration=-int(start.timestamp()) if running else duration,
                description=description,
                tags=tag_names or [],
                tag_ids=resolved_ids or [],
                billable=billable,
                at=now if saved_at is None else saved_at.replace(microsecond=0),
            )
            self.entries[entry.id] = entry
            self._emit("created", entry)
            return entry

    def entry_of(self, user_id: int, entry_id: int, workspace_id: int | None = None) -> TimeEntry:
        with self.lock:
            entry = self.entries.get(entry_id)
            if (
                entry is None
                or entry.is_deleted
                or entry.user_id != user_id
                or (workspace_id is not None and entry.workspace_id != workspace_id)
            ):
                raise SimulatorError(404, "Time entry not found")
            return entry

    def update_time_entry(
        self, user_id: int, workspace_id: int | None, entry_id: int, changes: dict[str, Any]
    ) -> TimeEntry:
        """Change only the given fields. Moving `start` keeps the duration; `stop` sets it."""
        with self.lock:
            entry = self.entry_of(user_id, entry_id, workspace_id)
            target_ws = entry.workspace_id
            data = entry.model_dump()
            start: datetime = changes.get("start") or entry.start
            start = start.replace(microsecond=0)
            if "project_id" in changes:
                self._check_project(target_ws, changes["project_id"])
                data["project_id"] = changes["project_id"]
            for key in ("description", "billable", "task_id"):
                if key in changes:
                    data[key] = changes[key]
            if "tags" in changes or "tag_ids" in changes:
                data["tags"], data["tag_ids"] = self._resolve_tags(
                    target_ws, changes.get("tags"), changes.get("tag_ids"), user_id
                )
            stop: datetime | None = changes.get("stop")
            duration: int | None = changes.get("duration")
            if entry.is_running and stop is None and (duration is None or duration < 0):
                data["start"] = start
                data["duration"] = -int(start.timestamp())
            else:
                if stop is not None:
                    stop = stop.replace(microsecond=0)
                    if stop < start:
                        raise SimulatorError(400, "Stop time must be after start time")
                    duration = int((stop - start).total_seconds())
                elif duration is not None:
                    if duration < 0:
                        raise SimulatorError(400, "A stopped time entry cannot be restarted")
                    stop = start + timedelta(seconds=duration)
                else:
                    duration = entry.duration
                    stop = start + timedelta(seconds=duration)
                data.update(start=start, stop=stop, duration=duration)
            data["at"] = self._now()
            updated = TimeEntry.model_validate(data)
            self.entries[entry_id] = updated
            self._emit("updated", updated)
            return updated

    def stop_time_entry(self, user_id: int, workspace_id: int, entry_id: int) -> TimeEntry:
        with self.lock:
            entry = self.entry_of(user_id, entry_id, workspace_id)
            if not entry.is_running:
                raise SimulatorError(409, "Time entry is already stopped")
            stopped = _stopped(entry, self._now())
            self.entries[entry_id] = stopped
            self._emit("updated", stopped)
            return stopped

    def delete_time_entry(self, user_id: int, workspace_id: int | None, entry_id: int) -> None:
        """Mark deleted: it disappears from lists but `since` still reports it, as Toggl does."""
        with self.lock:
            entry = self.entry_of(user_id, entry_id, workspace_id)
            now = self._now()
            deleted = entry.model_copy(update={"server_deleted_at": now, "at": now})
            self.entries[entry_id] = deleted
            self._emit("deleted", deleted)

    def entries_of(self, user_id: int, *, include_deleted: bool = False) -> list[TimeEntry]:
        with self.lock:
            return [
                entry
                for entry in self.entries.values()
                if entry.user_id == user_id and (include_deleted or not entry.is_deleted)
            ]


def _stopped(entry: TimeEntry, now: datetime) -> TimeEntry:
    stop = max(now, entry.start)
    return entry.model_copy(
        update={"stop": stop, "duration": int((stop - entry.start).total_seconds()), "at": now}
    )
