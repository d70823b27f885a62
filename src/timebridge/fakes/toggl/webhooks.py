"""Toggl's Webhooks API v1 in the simulator, with signed deliveries to the callbacks.

Sources: `shared/reference/toggl.md` §5 "Webhooks" and Toggl's pages it cites. "[docs]" marks
what Toggl documents, "[code]" what public integrations show, "[guess]" a choice made here.

The HTTP API (base `/webhooks/api/v1`, Basic auth with the API token as on v9 [docs]; answers and
errors as v9's: `application/json; charset=utf-8`, errors as JSON strings [guess]; requests
naming a workspace count against its hourly quota [guess]):
- `GET /event_filters`: `{entity: [actions]}` [docs: "available entity->actions map"; the list
  of entities is a guess]. Only `time_entry` events are ever sent by this simulator.
- `GET /subscriptions/{wid}`: the workspace's subscriptions (an admin sees all, others their
  own [guess]). `POST /subscriptions/{wid}`: create from `url_callback`, `event_filters`
  (`[{"entity", "action": "created"|"updated"|"deleted"|"*"}]`, at least one [docs]), `enabled`
  (default false [guess]), `description` (required, unique in the workspace [docs]) and an
  optional `secret` (generated when missing [docs]). Answer: the subscription,
  `{subscription_id, workspace_id, user_id, enabled, description, event_filters, url_callback,
  secret, validated_at, has_pending_events, created_at, updated_at}` [docs].
- `PUT /subscriptions/{wid}/{sid}` replaces those fields (a new `url_callback` must be
  validated again [guess]); `PATCH` takes only `{"enabled": bool}` [docs]; `DELETE` answers the
  subscription with `deleted_at` [guess]. Unknown: 404 "subscription {sid} for workspace {wid}
  was not found" [docs].
- Creating, or enabling (PATCH, or PUT of an enabled one whose URL or state changes) probes the
  callback at once [docs]: a signed PING is POSTed to it inside the API call, and the call fails
  with 400 "URL endpoint {url} responded with status {code} instead of 200" or "URL endpoint
  {url} request failed with error: {error}" [docs] unless it answers 200. So the first PING
  reaches the callback before the creator knows the subscription's id. If that PING is answered
  with the validation code, the subscription comes back already validated [guess: it is the
  synchronous validation].
- Limits per workspace by plan [docs]: Free 1 enabled subscription with up to 3 events, Starter
  2/6, Premium 3/12 (Enterprise: 10/100 here [guess]; Toggl says "custom"). An action `*` counts
  as every action of its entity (3 for `time_entry`) [guess]. Over the limit: 400 "User {uid}
  already reached the limit of {n} enabled subscriptions for workspace {wid}" [docs] or 400
  "the {plan} plan allows up to {n} events per subscription" [guess].
- `POST /ping/{wid}/{sid}`: queues a PING delivery (retried like any event) and answers 200
  `"OK"` [guess]. A PING of a subscription not yet validated carries `validation_code` and
  `validation_code_url` [code]; answering it 2xx with `{"validation_code": "<code>"}` validates
  (synchronous validation) [docs].
- `GET /validate/{wid}/{sid}/{code}`: asynchronous validation [docs]: 200 `"OK"`; 400 "not
  found" for a wrong code or subscription, 400 "already validated" [docs]. It needs no
  credentials here, the code being the secret [guess: it is handed out as a ready-made URL].
- `GET /subscriptions/{wid}/{sid}/events?offset=N`: the delivery log, newest first, 50 a page,
  kept a week [issue 16 says so of Toggl's; the endpoint and `offset` are in reference/toggl.md;
  the record's shape is a guess]: `{event_id, created_at,
  action, entity, status: "pending"|"delivered"|"failed", failed_delivery_attempts,
  last_delivery_error, last_delivery_attempt_at, delivered_at}`.

Deliveries: a POST of the compact JSON event with `Content-Type: application/json` and
`X-Webhook-Signature-256: sha256=<hex HMAC-SHA256 of the raw body keyed by the secret>` [docs].
Keys are in the order of Toggl's documented raw PING (`event_id, created_at, creator_id,
metadata, payload, subscription_id, timestamp, url_callback`), which reproduces its test vector.
An event: `metadata` holds strings (ids included): `action, event_user_id, model, model_owner_id,
path, request_body, request_type, time_entry_id, workspace_id` [code]; `payload` is the entry
with integer ids (a running one: `stop` null, negative duration; a stop is `updated`; a deleted
one carries `server_deleted_at` [guess]) [code]; `timestamp` is the attempt's time [guess].
A PING's `payload` is `"ping"` and its `event_id` 0, as in Toggl's documented example [docs].
Events go to subscriptions that are enabled and validated when the change happens [docs] and
whose creator may see the entry (an admin sees the workspace's, others their own) [docs].
Success is any 2xx [docs]; anything else, or no answer within `timeout`, is retried after each
of `retry_delays` and then given up [guess: Toggl's schedule is not documented]. Order between
events is not guaranteed [guess].

Python helpers for tests (all on `TogglSimulator.webhooks`, a `WebhookService`):
- a subscription's owner is any simulated user: `user = sim.add_user(plan="starter")` owns a
  workspace on that plan (`user.default_workspace_id`); `sim.world.add_member(wid, uid)` adds a
  non-admin who sees only their own entries;
- `sim.webhooks.settings` (`WebhookSettings`): `retry_delays`, `timeout`, `probe_timeout`;
  tests set them small: `TogglSimulator(clock, webhook_settings=WebhookSettings.fast())`;
- `sim.webhooks.drain(timeout=5.0)` waits until no delivery is queued or in flight (raises
  `TimeoutError` otherwise); `sim.webhooks.pending()` counts them;
- `sim.webhooks.faults.add(drop=True | delay=seconds, times=N, probability=p,
  subscription_id=…, action="created"|"updated"|"deleted"|"ping")`: a dropped delivery is lost
  silently (never sent, never retried, absent from `/events`, listed in
  `sim.webhooks.dropped`); a delayed one is first attempted `delay` seconds late;
  `sim.webhooks.faults.clear()`;
- `sim.webhooks.subscriptions(workspace_id=None)`, `sim.webhooks.subscription(sid)`,
  `sim.webhooks.attempts` (every POST made: body, headers, status, error) and
  `sim.webhooks.create(user, url_callback, …, probe=False, validated=True)` to seed one without
  the handshake;
- `webhooks.sign(secret, body)` and `webhooks.encode(event)` as the simulator uses them.
The admin API has `POST|DELETE /_admin/webhooks/faults`, `POST /_admin/webhooks/drain`
(`{"timeout": s}`) and `GET /_admin/webhooks/subscriptions`.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import heapq
import hmac
import itertools
import json
import random
import secrets
import string
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from timebridge.clock import Clock
from timebridge.fakes.toggl import wire
from timebridge.fakes.toggl.state import EntryAction, Plan, SimulatorError, SimUser, TogglWorld
from timebridge.toggl.models import TimeEntry

BASE = "/webhooks/api/v1"
ACTIONS = ("created", "updated", "deleted")
#: [guess] the entities Toggl offers filters for; only time entries are ever sent here.
ENTITIES = (
    "client",
    "project",
    "project_group",
    "project_user",
    "tag",
    "task",
    "time_entry",
    "workspace",
    "workspace_user",
)
#: [docs] enabled subscriptions per workspace and events per subscription, by plan.
LIMITS: dict[Plan, tuple[int, int]] = {
    "free": (1, 3),
    "starter": (2, 6),
    "premium": (3, 12),
    "enterprise": (10, 100),  # [guess] "custom"
}
#: The delivery log is kept a week (issue 16's account of Toggl's API; not in the reference).
LOG_KEPT = timedelta(days=7)
LOG_PAGE = 50  # [guess]
SIGNATURE_HEADER = "X-Webhook-Signature-256"
#: [code] real event ids are about this large.
FIRST_EVENT_ID = 8 * 10**15


def sign(secret: str, body: bytes) -> str:
    """The `X-Webhook-Signature-256` value: `sha256=` and the HMAC-SHA256 of the raw body [docs]."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode(event: dict[str, Any]) -> bytes:
    """An event as sent: compact JSON, keys in the order given (Toggl's, see the docstring)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def _stamp(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _new_secret() -> str:
    # [docs] generated when omitted; shaped like the documented example ("PGuRrhCFajIyEvFlreKL").
    return "".join(secrets.choice(string.ascii_letters) for _ in range(20))


@dataclass
class WebhookSettings:
    """How deliveries are made. The defaults are [guess]es; tests use `fast()`."""

    retry_delays: tuple[float, ...] = (10.0, 60.0, 300.0, 1800.0)
    timeout: float = 10.0
    probe_timeout: float = 10.0

    @classmethod
    def fast(cls) -> WebhookSettings:
        return cls(retry_delays=(0.05, 0.1, 0.2), timeout=1.0, probe_timeout=2.0)


@dataclass(frozen=True)
class Origin:
    """The API request behind a change, for an event's `metadata`."""

    method: str
    path: str
    body: str


#: Set by the simulator's HTTP endpoints around each request; empty for Python seeding.
current_origin: contextvars.ContextVar[Origin | None] = contextvars.ContextVar(
    "toggl_webhook_origin", default=None
)


class DeliveryFault(BaseModel):
    """A fault on deliveries: `drop` loses the matching delivery silently; `delay` postpones its
    first attempt by that many seconds."""

    model_config = ConfigDict(extra="forbid")

    drop: bool = False
    delay: float = Field(default=0.0, ge=0)
    probability: float = Field(default=1.0, ge=0, le=1)
    times: int | None = Field(default=None, ge=1)
    subscription_id: int | None = None
    action: Literal["created", "updated", "deleted", "ping"] | None = None


@dataclass
class DeliveryFaultPlan:
    """The delivery faults in force; thread-safe."""

    rng: random.Random = field(default_factory=random.Random)
    _rules: list[list[Any]] = field(default_factory=list)  # [fault, remaining]
    _lock: threading.Lock = field(default_factory=threading.Lock)
    fired: int = 0

    def add(self, fault: DeliveryFault | None = None, **rule: Any) -> DeliveryFault:
        fault = fault if fault is not None else DeliveryFault(**rule)
        with self._lock:
            self._rules.append([fault, fault.times])
        return fault

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def pick(self, subscription_id: int, action: str) -> DeliveryFault | None:
        with self._lock:
            for rule in self._rules:
                fault: DeliveryFault = rule[0]
                if fault.subscription_id not in (None, subscription_id):
                    continue
                if fault.action not in (None, action):
                    continue
                if fault.probability < 1 and self.rng.random() >= fault.probability:
                    continue
                if rule[1] is not None:
                    rule[1] -= 1
                    if rule[1] <= 0:
                        self._rules.remove(rule)
                self.fired += 1
                return fault
        return None


@dataclass
class Subscription:
    id: int
    workspace_id: int
    user_id: int
    description: str
    url_callback: str
    event_filters: list[dict[str, str]]
    enabled: bool
    secret: str
    created_at: datetime
    updated_at: datetime
    #: Where `validation_code_url` points (the simulator's own base URL).
    public_url: str
    validation_code: str = field(default_factory=lambda: secrets.token_hex(16))
    validated_at: datetime | None = None
    deleted_at: datetime | None = None

    def wants(self, action: str) -> bool:
        return any(
            f["entity"] == "time_entry" and f["action"] in (action, "*") for f in self.event_filters
        )

    @property
    def validation_code_url(self) -> str:
        return f"{self.public_url}{BASE}/validate/{self.workspace_id}/{self.id}/" + (
            self.validation_code
        )


@dataclass
class LogRecord:
    """One event's deliveries to one subscription, as `/events` shows it."""

    event_id: int
    subscription_id: int
    action: str
    entity: str
    created_at: datetime
    status: str = "pending"
    failed_delivery_attempts: int = 0
    last_delivery_error: str | None = None
    last_delivery_attempt_at: datetime | None = None
    delivered_at: datetime | None = None

    def wire(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "created_at": _stamp(self.created_at),
            "action": self.action,
            "entity": self.entity,
            "status": self.status,
            "failed_delivery_attempts": self.failed_delivery_attempts,
            "last_delivery_error": self.last_delivery_error,
            "last_delivery_attempt_at": (
                None
                if self.last_delivery_attempt_at is None
                else _stamp(self.last_delivery_attempt_at)
            ),
            "delivered_at": None if self.delivered_at is None else _stamp(self.delivered_at),
        }


@dataclass(frozen=True)
class Attempt:
    """One POST made to a callback (probes included), for tests."""

    subscription_id: int
    event_id: int
    action: str
    body: bytes
    headers: dict[str, str]
    status: int | None
    error: str | None
    probe: bool
    #: Seconds from sending the request to the whole answer (None: no answer).
    elapsed: float | None = None


@dataclass
class _Job:
    subscription_id: int
    event: dict[str, Any]
    action: str
    record: LogRecord
    attempt: int = 0


class WebhookService:
    """Subscriptions, the delivery queue and its workers. See the module docstring."""

    def __init__(
        self, world: TogglWorld, clock: Clock, settings: WebhookSettings | None = None
    ) -> None:
        self.world = world
        self.clock = clock
        self.settings = settings or WebhookSettings()
        self.faults = DeliveryFaultPlan()
        self.dropped: list[dict[str, Any]] = []
        self._lock = threading.RLock()
        self._subs: dict[int, Subscription] = {}
        self._ids = itertools.count(1)
        self._event_ids = itertools.count(FIRST_EVENT_ID)
        self._log: list[LogRecord] = []
        self._attempts: list[Attempt] = []
        self._queue: list[tuple[float, int, _Job]] = []
        self._seq = itertools.count()
        self._in_flight = 0
        self._wake = threading.Condition(self._lock)
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="toggl-webhook")
        self._dispatcher: threading.Thread | None = None
        world.entry_listeners.append(self._on_entry)

    # --- test helpers ---------------------------------------------------------------------------

    def subscriptions(self, workspace_id: int | None = None) -> list[Subscription]:
        with self._lock:
            return [
                s
                for s in self._subs.values()
                if workspace_id is None or s.workspace_id == workspace_id
            ]

    def subscription(self, subscription_id: int) -> Subscription:
        with self._lock:
            return self._subs[subscription_id]

    @property
    def attempts(self) -> list[Attempt]:
        with self._lock:
            return list(self._attempts)

    def pending(self) -> int:
        with self._lock:
            return len(self._queue) + self._in_flight

    def drain(self, timeout: float = 5.0) -> None:
        """Wait until no delivery is queued or in flight; `TimeoutError` after `timeout`."""
        deadline = time.monotonic() + timeout
        with self._wake:
            while self._queue or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.pending()} webhook deliveries still pending")
                self._wake.wait(min(left, 0.05))

    def create(
        self,
        user: SimUser,
        url_callback: str,
        *,
        workspace_id: int | None = None,
        description: str | None = None,
        event_filters: list[dict[str, str]] | None = None,
        enabled: bool = True,
        secret: str | None = None,
        validated: bool = True,
        public_url: str = "http://toggl.invalid",
    ) -> Subscription:
        """Seed a subscription without the probe or the handshake (limits still apply)."""
        filters = event_filters or [{"entity": "time_entry", "action": "*"}]
        sub = self._new(
            user,
            workspace_id or user.default_workspace_id,
            {
                "url_callback": url_callback,
                "description": description or f"subscription {url_callback}",
                "event_filters": filters,
                "enabled": enabled,
                "secret": secret,
            },
            public_url,
        )
        with self._lock:
            if validated:
                sub.validated_at = self._now()
            self._subs[sub.id] = sub
        return sub

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- subscriptions --------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self.clock.now()

    def wire(self, sub: Subscription) -> dict[str, Any]:
        with self._lock:
            pending = any(job.subscription_id == sub.id for _, _, job in self._queue)
        data: dict[str, Any] = {
            "subscription_id": sub.id,
            "workspace_id": sub.workspace_id,
            "user_id": sub.user_id,
            "enabled": sub.enabled,
            "description": sub.description,
            "event_filters": [dict(f) for f in sub.event_filters],
            "url_callback": sub.url_callback,
            "secret": sub.secret,
            "validated_at": None if sub.validated_at is None else _stamp(sub.validated_at),
            "has_pending_events": pending,
            "created_at": _stamp(sub.created_at),
            "updated_at": _stamp(sub.updated_at),
        }
        if sub.deleted_at is not None:
            data["deleted_at"] = _stamp(sub.deleted_at)
        return data

    def _check_fields(self, workspace_id: int, body: dict[str, Any], own_id: int | None) -> None:
        url = body.get("url_callback")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise SimulatorError(400, "url_callback must be a valid URL")
        description = body.get("description")
        if not isinstance(description, str) or not description.strip():
            raise SimulatorError(400, "description must not be empty")
        filters = body.get("event_filters")
        if not isinstance(filters, list) or not filters:
            raise SimulatorError(400, "at least one event filter is required")
        for item in filters:
            if not isinstance(item, dict) or item.get("entity") not in ENTITIES:
                raise SimulatorError(400, f"invalid event filter entity: {item!r}")
            if item.get("action") not in (*ACTIONS, "*"):
                raise SimulatorError(400, f"invalid event filter action: {item!r}")
        secret = body.get("secret")
        if secret is not None and (not isinstance(secret, str) or not secret):
            raise SimulatorError(400, "secret must be a non-empty string")
        if "enabled" in body and not isinstance(body["enabled"], bool):
            raise SimulatorError(400, "enabled must be a boolean")
        with self._lock:
            for other in self._subs.values():
                if (
                    other.workspace_id == workspace_id
                    and other.id != own_id
                    and other.description == description
                ):
                    raise SimulatorError(400, "description already exists in this workspace")

    def _check_limits(
        self,
        user: SimUser,
        plan: Plan,
        workspace_id: int,
        filters: list[dict[str, str]],
        enabled: bool,
        own_id: int | None,
    ) -> None:
        max_subs, max_events = LIMITS[plan]
        events = sum(3 if f["action"] == "*" else 1 for f in filters)
        if events > max_events:
            raise SimulatorError(
                400, f"the {plan} plan allows up to {max_events} events per subscription"
            )
        if not enabled:
            return
        with self._lock:
            used = sum(
                1
                for s in self._subs.values()
                if s.workspace_id == workspace_id and s.enabled and s.id != own_id
            )
        if used >= max_subs:
            raise SimulatorError(
                400,
                f"User {user.id} already reached the limit of {max_subs} enabled "
                f"subscriptions for workspace {workspace_id}",
            )

    def _new(
        self, user: SimUser, workspace_id: int, body: dict[str, Any], public_url: str
    ) -> Subscription:
        workspace = self.world.workspace_for(user, workspace_id)
        self._check_fields(workspace_id, body, None)
        filters = [{"entity": f["entity"], "action": f["action"]} for f in body["event_filters"]]
        enabled = bool(body.get("enabled", False))
        self._check_limits(user, workspace.plan, workspace_id, filters, enabled, None)
        now = self._now()
        with self._lock:
            return Subscription(
                id=next(self._ids),
                workspace_id=workspace_id,
                user_id=user.id,
                description=body["description"],
                url_callback=body["url_callback"],
                event_filters=filters,
                enabled=enabled,
                secret=body.get("secret") or _new_secret(),
                created_at=now,
                updated_at=now,
                public_url=public_url.rstrip("/"),
            )

    def _visible(self, user: SimUser, workspace_id: int) -> list[Subscription]:
        workspace = self.world.workspace_for(user, workspace_id)
        admin = workspace.members.get(user.id, False)
        with self._lock:
            return [
                s
                for s in self._subs.values()
                if s.workspace_id == workspace_id and (admin or s.user_id == user.id)
            ]

    def _find(self, user: SimUser, workspace_id: int, sid: int) -> Subscription:
        for sub in self._visible(user, workspace_id):
            if sub.id == sid:
                return sub
        raise SimulatorError(404, f"subscription {sid} for workspace {workspace_id} was not found")

    # --- HTTP handlers (called by the simulator, authenticated) ---------------------------------

    def event_filters(self) -> dict[str, list[str]]:
        return {entity: list(ACTIONS) for entity in ENTITIES}

    def list_for(self, user: SimUser, workspace_id: int) -> list[dict[str, Any]]:
        return [self.wire(s) for s in sorted(self._visible(user, workspace_id), key=lambda s: s.id)]

    async def create_via_api(
        self, user: SimUser, workspace_id: int, body: dict[str, Any], public_url: str
    ) -> dict[str, Any]:
        sub = self._new(user, workspace_id, body, public_url)
        with self._lock:
            # Stored before the probe, so that the PING's validation URL already works while
            # the create is still waiting for the callback's answer [guess].
            self._subs[sub.id] = sub
        if sub.enabled:
            try:
                await self._probe(sub)
            except SimulatorError:
                with self._lock:
                    del self._subs[sub.id]
                raise
        return self.wire(sub)

    async def update(
        self, user: SimUser, workspace_id: int, sid: int, body: dict[str, Any]
    ) -> dict[str, Any]:
        sub = self._find(user, workspace_id, sid)
        merged = {
            "url_callback": sub.url_callback,
            "description": sub.description,
            "event_filters": sub.event_filters,
            "enabled": sub.enabled,
            **body,
        }
        self._check_fields(workspace_id, merged, sid)
        workspace = self.world.workspace_for(user, workspace_id)
        filters = [{"entity": f["entity"], "action": f["action"]} for f in merged["event_filters"]]
        enabled = bool(merged["enabled"])
        self._check_limits(user, workspace.plan, workspace_id, filters, enabled, sid)
        url_changed = merged["url_callback"] != sub.url_callback
        candidate = Subscription(
            **{
                **sub.__dict__,
                "url_callback": merged["url_callback"],
                "description": merged["description"],
                "event_filters": filters,
                "enabled": enabled,
                "secret": merged.get("secret") or sub.secret,
                "updated_at": self._now(),
            }
        )
        if url_changed:
            # [guess] a new URL has to be validated again.
            candidate.validated_at = None
            candidate.validation_code = secrets.token_hex(16)
        if enabled and (url_changed or not sub.enabled):
            await self._probe(candidate)
        with self._lock:
            sub.__dict__.update(candidate.__dict__)
        return self.wire(sub)

    async def set_enabled(
        self, user: SimUser, workspace_id: int, sid: int, body: dict[str, Any]
    ) -> dict[str, Any]:
        if set(body) != {"enabled"} or not isinstance(body["enabled"], bool):
            raise SimulatorError(400, 'PATCH takes only {"enabled": true|false}')
        sub = self._find(user, workspace_id, sid)
        if body["enabled"] and not sub.enabled:
            workspace = self.world.workspace_for(user, workspace_id)
            self._check_limits(user, workspace.plan, workspace_id, sub.event_filters, True, sid)
            await self._probe(sub)
        with self._lock:
            sub.enabled = body["enabled"]
            sub.updated_at = self._now()
        return self.wire(sub)

    def delete(self, user: SimUser, workspace_id: int, sid: int) -> dict[str, Any]:
        sub = self._find(user, workspace_id, sid)
        with self._lock:
            sub.deleted_at = self._now()
            del self._subs[sid]
            self._queue = [item for item in self._queue if item[2].subscription_id != sid]
            heapq.heapify(self._queue)
            self._wake.notify_all()
        return self.wire(sub)

    def ping(self, user: SimUser, workspace_id: int, sid: int) -> None:
        sub = self._find(user, workspace_id, sid)
        self._enqueue(sub, self._ping_event(sub), "ping", event_id=0)

    def validate(self, workspace_id: int, sid: int, code: str) -> None:
        with self._lock:
            sub = self._subs.get(sid)
            if sub is None or sub.workspace_id != workspace_id:
                raise SimulatorError(400, "not found")
            if sub.validated_at is not None:
                raise SimulatorError(400, "already validated")
            if not hmac.compare_digest(sub.validation_code, code):
                raise SimulatorError(400, "not found")
            sub.validated_at = self._now()

    def events(self, user: SimUser, workspace_id: int, sid: int, offset: int) -> list[Any]:
        self._find(user, workspace_id, sid)
        floor = self._now() - LOG_KEPT
        with self._lock:
            self._log = [r for r in self._log if r.created_at >= floor]
            records = [r for r in self._log if r.subscription_id == sid]
        records.sort(key=lambda r: (r.created_at, r.event_id), reverse=True)
        return [r.wire() for r in records[offset : offset + LOG_PAGE]]

    # --- events ---------------------------------------------------------------------------------

    def _ping_event(self, sub: Subscription) -> dict[str, Any]:
        now = _stamp(self._now())
        event: dict[str, Any] = {
            "event_id": 0,
            "created_at": now,
            "creator_id": sub.user_id,
            "metadata": {"request_type": "POST", "event_user_id": sub.user_id},
            "payload": "ping",
            "subscription_id": sub.id,
            "timestamp": now,
            "url_callback": sub.url_callback,
        }
        if sub.validated_at is None:
            event["validation_code"] = sub.validation_code
            event["validation_code_url"] = sub.validation_code_url
        return event

    def _on_entry(self, action: EntryAction, entry: TimeEntry) -> None:
        """Called by the world, its lock held: queue an event for each subscription that wants
        it."""
        workspace = self.world.workspaces.get(entry.workspace_id)
        if workspace is None:
            return
        with self._lock:
            targets = [
                s
                for s in self._subs.values()
                if s.workspace_id == entry.workspace_id
                and s.enabled
                and s.validated_at is not None
                and s.wants(action)
                and (workspace.members.get(s.user_id, False) or s.user_id == entry.user_id)
            ]
        if not targets:
            return
        origin = current_origin.get()
        if origin is None:
            # [guess] what Toggl would show for the equivalent API call.
            method = {"created": "POST", "updated": "PUT", "deleted": "DELETE"}[action]
            path = f"/api/v9/workspaces/{entry.workspace_id}/time_entries"
            if action != "created":
                path += f"/{entry.id}"
            origin = Origin(method, path, "")
        now = _stamp(self._now())
        payload = wire.written_entry(entry)
        for sub in targets:
            event = {
                "event_id": 0,
                "created_at": now,
                "creator_id": sub.user_id,
                "metadata": {
                    "action": action,
                    "event_user_id": str(entry.user_id),
                    "model": "time_entry",
                    "model_owner_id": str(entry.user_id),
                    "path": origin.path,
                    "request_body": origin.body,
                    "request_type": origin.method,
                    "time_entry_id": str(entry.id),
                    "workspace_id": str(entry.workspace_id),
                },
                "payload": payload,
                "subscription_id": sub.id,
                "timestamp": now,
                "url_callback": sub.url_callback,
            }
            self._enqueue(sub, event, action)

    def _enqueue(
        self, sub: Subscription, event: dict[str, Any], action: str, event_id: int | None = None
    ) -> None:
        with self._lock:
            event["event_id"] = next(self._event_ids) if event_id is None else event_id
            fault = self.faults.pick(sub.id, action)
            if fault is not None and fault.drop:
                self.dropped.append(event)
                return
            record = LogRecord(
                event_id=event["event_id"],
                subscription_id=sub.id,
                action=action,
                entity="ping" if action == "ping" else "time_entry",
                created_at=self._now(),
            )
            self._log.append(record)
            delay = fault.delay if fault is not None else 0.0
            self._push(time.monotonic() + delay, _Job(sub.id, event, action, record))

    def _push(self, due: float, job: _Job) -> None:
        heapq.heappush(self._queue, (due, next(self._seq), job))
        if self._dispatcher is None or not self._dispatcher.is_alive():
            self._dispatcher = threading.Thread(
                target=self._dispatch, name="toggl-webhook-dispatcher", daemon=True
            )
            self._dispatcher.start()
        self._wake.notify_all()

    def _dispatch(self) -> None:
        with self._wake:
            while True:
                if not self._queue:
                    if not self._wake.wait(30) and not self._queue:
                        self._dispatcher = None
                        return
                    continue
                due, _, job = self._queue[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                heapq.heappop(self._queue)
                self._in_flight += 1
                try:
                    self._pool.submit(self._attempt, job)
                except RuntimeError:  # the pool is shut down
                    self._in_flight -= 1
                    return

    def _attempt(self, job: _Job) -> None:
        try:
            with self._lock:
                sub = self._subs.get(job.subscription_id)
            if sub is None:
                return
            job.event["timestamp"] = _stamp(self._now())
            status, error, answer = self._post(sub, job.event, job.action, self.settings.timeout)
            with self._lock:
                record = job.record
                record.last_delivery_attempt_at = self._now()
                if status is not None and 200 <= status < 300:
                    record.status = "delivered"
                    record.delivered_at = record.last_delivery_attempt_at
                    if job.action == "ping":
                        self._maybe_validate(sub, job.event, answer)
                    return
                record.failed_delivery_attempts += 1
                record.last_delivery_error = error
                if job.attempt < len(self.settings.retry_delays):
                    delay = self.settings.retry_delays[job.attempt]
                    job.attempt += 1
                    self._push(time.monotonic() + delay, job)
                else:
                    record.status = "failed"
        finally:
            with self._wake:
                self._in_flight -= 1
                self._wake.notify_all()

    def _post(
        self,
        sub: Subscription,
        event: dict[str, Any],
        action: str,
        timeout: float,
        probe: bool = False,
    ) -> tuple[int | None, str | None, bytes]:
        body = encode(event)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Toggl-Webhooks-Simulator",
            SIGNATURE_HEADER: sign(sub.secret, body),
        }
        status: int | None = None
        error: str | None = None
        answer = b""
        elapsed: float | None = None
        try:
            with httpx.Client(timeout=timeout) as client:
                sent = time.perf_counter()
                response = client.post(sub.url_callback, content=body, headers=headers)
                elapsed = time.perf_counter() - sent
            status, answer = response.status_code, response.content
            if not 200 <= status < 300:
                error = f"URL endpoint responded with status {status}"
        except httpx.HTTPError as exc:
            error = f"request failed with error: {type(exc).__name__}: {exc}".rstrip(": ")
        with self._lock:
            self._attempts.append(
                Attempt(
                    sub.id,
                    event["event_id"],
                    action,
                    body,
                    headers,
                    status,
                    error,
                    probe,
                    elapsed,
                )
            )
        return status, error, answer

    def _maybe_validate(self, sub: Subscription, event: dict[str, Any], answer: bytes) -> None:
        """Synchronous validation [docs]: the PING answered with its code."""
        code = event.get("validation_code")
        if code is None or sub.validated_at is not None:
            return
        try:
            parsed = json.loads(answer)
        except ValueError:
            return
        if isinstance(parsed, dict) and parsed.get("validation_code") == code:
            sub.validated_at = self._now()

    async def _probe(self, sub: Subscription) -> None:
        """[docs] create/enable probes the callback at once: it must answer 200."""
        event = self._ping_event(sub)
        status, error, answer = await asyncio.to_thread(
            self._post, sub, event, "ping", self.settings.probe_timeout, True
        )
        if status is None:
            raise SimulatorError(400, f"URL endpoint {sub.url_callback} {error}")
        if status != 200:
            raise SimulatorError(
                400,
                f"URL endpoint {sub.url_callback} responded with status {status} instead of 200",
            )
        with self._lock:
            self._maybe_validate(sub, event, answer)


__all__ = [
    "BASE",
    "LIMITS",
    "SIGNATURE_HEADER",
    "Attempt",
    "DeliveryFault",
    "DeliveryFaultPlan",
    "LogRecord",
    "Subscription",
    "WebhookService",
    "WebhookSettings",
    "current_origin",
    "encode",
    "sign",
]
