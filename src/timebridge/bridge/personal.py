"""Personal mode's runs: a `timebridge.toml` (`timebridge.personal`) kept in the store and synced
by the `Bridge`, exactly as the service syncs its users.

The config's person is a local "personal" account in the default store (a SQLite file and a
generated key in the data directory): its Toggl and Exist connections (tokens encrypted, each
with the origin the config names), the resolved mapping, the ledger and the run records. So
`serve` on the same data directory keeps the same person in sync, with the same origins.

Toggl's hourly quota is small, so project names are resolved to ids (a projects listing) and
attributes acquired in Exist only when the config differs from what was stored last time
(tokens, origins, or the mapping, judged by each project's name as last seen). A steady-state
run costs one Toggl request. New tokens are stored only after they worked (the Toggl token lists
the projects, the Exist token reads the profile), so a mistyped token in the config never
replaces a good one that `serve` may be using, and a config's first run checks both ends.
"""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, replace

from pydantic import SecretStr

from timebridge.bridge.results import MappingSaved, Skipped, SyncPreview
from timebridge.bridge.service import Bridge
from timebridge.config import Settings
from timebridge.exist import ExistTokens, Profile
from timebridge.logs import register_secret
from timebridge.origins import exist_origin, toggl_origin
from timebridge.personal import (
    PERSONAL_ACCOUNT_EMAIL,
    PERSONAL_DISPLAY_NAME,
    PersonalConfig,
    PersonalConfigError,
    ResolvedProject,
    mapping_is_current,
    resolve_projects,
    same_attribute,
)
from timebridge.store import (
    Account,
    ConnectionStatus,
    DuplicateAccount,
    ExistState,
    ProjectMapping,
    RunSecrets,
    SyncContext,
    TogglState,
)
from timebridge.sync.runner import RunKind, RunReport
from timebridge.toggl import AsyncTogglClient, Project
from timebridge.toggl import errors as toggl_errors

#: The account id of a config never stored: the dry run plans against an empty ledger.
_NO_ACCOUNT = 0


@dataclass(frozen=True)
class MappingUpdate:
    """What re-resolving a changed mapping did."""

    projects: tuple[ResolvedProject, ...]
    saved: MappingSaved
    toggl_requests: int = 0

    @property
    def mapping(self) -> Mapping[int, str]:
        return self.saved.mapping

    @property
    def refused(self) -> Mapping[str, str]:
        return self.saved.refused

    @property
    def taken_over(self) -> Mapping[str, str]:
        return self.saved.taken_over

    @property
    def exist_requests(self) -> int:
        return self.saved.exist_requests


@dataclass(frozen=True)
class PersonalRun:
    """What one personal `sync` did."""

    account_id: int
    result: RunReport | Skipped
    #: Set when the config had changed and the mapping was resolved and acquired again.
    mapping_update: MappingUpdate | None = None


@dataclass(frozen=True)
class _Stored:
    """What the store holds of the personal account, compared with the config."""

    account: Account | None
    toggl_changed: bool
    exist_changed: bool
    mapping_current: bool
    stored_attributes: frozenset[str]

    @property
    def needs_mapping_update(self) -> bool:
        # A new token (or origin) may be another account: resolve and acquire again.
        return self.toggl_changed or self.exist_changed or not self.mapping_current


class PersonalSync:
    """Personal mode over a `Bridge`: keep the account as the config says, then run (or
    preview) a sync."""

    def __init__(self, config: PersonalConfig, settings: Settings, bridge: Bridge) -> None:
        self._config = config
        self._bridge = bridge
        self._store = bridge.store
        self._toggl_origin = toggl_origin(config.toggl.base_url or settings.toggl_base_url)
        self._exist_origin = exist_origin(config.exist.base_url or settings.exist_base_url)
        # Whatever happens next, these two never reach a log line.
        register_secret(config.toggl.api_token)
        register_secret(config.exist.token)

    async def run(self, kind: RunKind = RunKind.SYNC) -> PersonalRun:
        """Bring Exist to Toggl's truth for the config's mapping, and record the run."""
        stored = await self._stored()
        account_id = await self._ensure_account(stored.account)
        update: MappingUpdate | None = None
        if stored.needs_mapping_update:
            projects, toggl_requests = await self._resolve()
            profile = await self._check_exist() if stored.exist_changed else None
            await self._store_connections(
                account_id, stored, profile.timezone if profile is not None else None
            )
            if profile is not None:
                await self._sign_in_as(account_id, profile.username)
            saved = await self._bridge.save_mapping(
                account_id,
                [
                    ProjectMapping(p.workspace_id, p.project_id, p.project_name, p.attribute)
                    for p in projects
                ],
            )
            update = MappingUpdate(tuple(projects), saved, toggl_requests)
        else:
            await self._store_connections(account_id, stored, None)
        result = await self._bridge.sync(account_id, kind)
        return PersonalRun(account_id=account_id, result=result, mapping_update=update)

    async def preview(self) -> SyncPreview:
        """What `run` would write now. Nothing is written anywhere: not to Exist, not to the
        store (a config never synced is previewed against an empty ledger). Both ends are
        asked, so a wrong token or URL shows here as in a real run."""
        stored = await self._stored()
        account_id = stored.account.id if stored.account is not None else _NO_ACCOUNT
        toggl_requests = 0
        if stored.needs_mapping_update:
            projects, toggl_requests = await self._resolve()
            mapping: Mapping[int, str] = {p.project_id: p.attribute for p in projects}
        else:
            mapping = await self._store.mappings.project_map(account_id)
        to_acquire = tuple(
            sorted(
                name
                for name in set(mapping.values())
                if stored.toggl_changed
                or stored.exist_changed
                or not any(same_attribute(name, held) for held in stored.stored_attributes)
            )
        )
        context = SyncContext(
            account_id,
            zone_override=self._config.sync.time_zone,
            toggl=TogglState("personal", ConnectionStatus.ACTIVE, self._toggl_origin),
            exist=ExistState(ConnectionStatus.ACTIVE, None, None, self._exist_origin),
            secrets=RunSecrets(
                self._config.toggl.api_token,
                ExistTokens(access_token=self._config.exist.token),
            ),
            mapping=mapping,
        )
        preview = await self._bridge.plan_context(context)
        return replace(
            preview,
            to_acquire=to_acquire,
            toggl_requests=preview.toggl_requests + toggl_requests,
        )

    # --- the steps ------------------------------------------------------------------------------

    async def _stored(self) -> _Stored:
        store, config = self._store, self._config
        account = await store.accounts.by_email(PERSONAL_ACCOUNT_EMAIL)
        if account is None:
            return _Stored(None, True, True, False, frozenset())
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
        mappings = await store.mappings.for_account(account.id)
        return _Stored(
            account=account,
            toggl_changed=not _same_secret(toggl_token, config.toggl.api_token)
            or toggl is None
            or toggl.origin != self._toggl_origin,
            exist_changed=not _same_secret(exist_token, config.exist.token)
            or exist is None
            or exist.origin != self._exist_origin,
            mapping_current=mapping_is_current(config, mappings),
            stored_attributes=frozenset(m.attribute for m in mappings),
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

    async def _store_connections(
        self, account_id: int, stored: _Stored, exist_zone: str | None
    ) -> None:
        """Store changed tokens (encrypted, with their origins) and re-activate a connection a
        run had given up on: the config is the person saying "these are my tokens"."""
        store, config = self._store, self._config
        toggl = await store.toggl_connections.default(account_id)
        if toggl is None:
            await store.toggl_connections.create(
                account_id,
                config.toggl.api_token,
                label=PERSONAL_DISPLAY_NAME,
                origin=self._toggl_origin,
            )
        elif stored.toggl_changed or toggl.status is not ConnectionStatus.ACTIVE:
            await store.toggl_connections.set_token(
                account_id, toggl.id, config.toggl.api_token, origin=self._toggl_origin
            )
        exist = await store.exist_connections.get(account_id)
        if exist is None or stored.exist_changed or exist.status is not ConnectionStatus.ACTIVE:
            await store.exist_connections.save(
                account_id,
                ExistTokens(access_token=config.exist.token),
                time_zone=exist_zone,
                origin=self._exist_origin,
            )

    async def _check_exist(self) -> Profile:
        """Ask Exist for the profile with the config's token (its zone is kept)."""
        upstreams = self._bridge.upstreams
        tokens = ExistTokens(access_token=self._config.exist.token)
        async with upstreams.exist(tokens, self._exist_origin) as exist:
            return await exist.profile()

    async def _sign_in_as(self, account_id: int, username: str) -> None:
        """The personal account is that Exist user's: "Sign in with Exist" on `serve` finds it
        (unless another account signs in as that user already)."""
        account = await self._store.accounts.get(account_id)
        if account.exist_username is None:
            with contextlib.suppress(DuplicateAccount):
                await self._store.accounts.set_exist_username(account_id, username)

    async def _resolve(self) -> tuple[list[ResolvedProject], int]:
        """The config's mapping matched to Toggl projects, and the Toggl requests it took."""
        upstreams = self._bridge.upstreams
        async with upstreams.toggl(self._config.toggl.api_token, self._toggl_origin) as toggl:
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


def _same_secret(stored: SecretStr | None, configured: SecretStr) -> bool:
    return stored is not None and hmac.compare_digest(
        stored.get_secret_value().encode(), configured.get_secret_value().encode()
    )


__all__ = ["MappingUpdate", "PersonalRun", "PersonalSync"]
