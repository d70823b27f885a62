"""`POST /hooks/toggl/{token}`: where Toggl delivers an endpoint's webhook events.

The token in the path finds the endpoint (by its SHA-256: one read); the signature
(`X-Webhook-Signature-256`) is checked in constant time over the raw body before anything in
the body is believed. A PING is answered with its validation code when it carries one (that
validates the subscription); an event is acknowledged at once, and only then is its id recorded
(a repeated delivery starts nothing) and a sync of the user triggered, gathered with the events
of the next seconds into one run. An event is a trigger, never data: the run fetches from
Toggl as every run does. Nothing of the body is logged (it holds descriptions).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, cast

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask

from timebridge.store import CallbackTarget, Store
from timebridge.webhooks.coalesce import Trigger
from timebridge.webhooks.signature import SIGNATURE_HEADER, verify

logger = logging.getLogger(__name__)

#: The largest delivery read (a time entry event is a few KB).
MAX_BODY_BYTES = 256 * 1024
#: Longer path tokens are not ours (ours are 43 characters).
_MAX_TOKEN = 128

router = APIRouter(include_in_schema=False)


#: How long an endpoint looked up by its token is reused without asking the store (seconds):
#: a delivery is answered without waiting for a database connection that busy syncs hold.
#: Turning off in this process forgets it at once; turned off elsewhere (the CLI), or a connection
#: that failed meanwhile, costs at most a sync that skips.
TARGET_TTL = 30.0
_TARGETS_MAX = 10_000


@dataclass
class WebhookReceiver:
    """What the route needs, kept on `app.state.webhooks` for the app's lifetime."""

    store: Store
    trigger: Trigger
    _targets: dict[str, tuple[float, CallbackTarget | None]] = field(default_factory=dict)

    async def target(self, token: str) -> CallbackTarget | None:
        """The endpoint of a callback token (None: none), from memory while fresh."""
        now = time.monotonic()
        known = self._targets.get(token)
        if known is not None and now - known[0] < TARGET_TTL:
            return known[1]
        found = await self.store.webhooks.target(token)
        if len(self._targets) >= _TARGETS_MAX:
            self._targets.clear()
        self._targets[token] = (now, found)
        return found

    def forget_endpoint(self, endpoint_id: int) -> None:
        """The endpoint is gone (turned off in this process): its token is looked up again."""
        for token, (_, known) in list(self._targets.items()):
            if known is not None and known.endpoint_id == endpoint_id:
                del self._targets[token]


def receiver_of(app: FastAPI) -> WebhookReceiver:
    receiver = getattr(app.state, "webhooks", None)
    if receiver is None:
        raise RuntimeError("the webhook receiver has not started")
    return cast(WebhookReceiver, receiver)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def concerns(event: dict[str, Any], target: CallbackTarget) -> bool:
    """Whether the event may change the user's time: a time entry of theirs, or anything not
    clearly someone else's (a subscription of a workspace admin sees every member's entries)."""
    payload = event.get("payload")
    owner = payload.get("user_id") if isinstance(payload, dict) else None
    if target.toggl_user_id is None or not isinstance(owner, int):
        return True
    return owner == target.toggl_user_id


async def _read(request: Request) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return None
    return bytes(body)


@router.post("/hooks/toggl/{token}")
async def receive(request: Request, token: str) -> JSONResponse:
    """A delivery from Toggl (see the module docstring)."""
    receiver = receiver_of(request.app)
    body = await _read(request)
    if body is None:
        return _error(413, "too_large", f"Deliveries are at most {MAX_BODY_BYTES} bytes.")
    target = await receiver.target(token) if len(token) <= _MAX_TOKEN else None
    if target is None:
        return _error(404, "not_found", "No webhook endpoint here.")
    if not verify(target.secret.get_secret_value(), body, request.headers.get(SIGNATURE_HEADER)):
        logger.warning(
            "webhook delivery with a bad signature", extra={"user_id": target.account_id}
        )
        return _error(401, "bad_signature", f"{SIGNATURE_HEADER} does not sign this body.")
    try:
        event = json.loads(body)
    except ValueError:
        return _error(400, "invalid_json", "The body is not JSON.")
    if not isinstance(event, dict):
        return _error(400, "invalid_event", "The body is not a webhook event.")
    if event.get("payload") == "ping":
        return await _ping(receiver, target, event)
    event_id = event.get("event_id")
    if not isinstance(event_id, int) or isinstance(event_id, bool):
        return _error(400, "invalid_event", "The event has no event_id.")
    if not target.active or not concerns(event, target):
        return JSONResponse({"status": "ignored"})
    return JSONResponse(
        {"status": "accepted"},
        background=BackgroundTask(_act, receiver, target, event_id, _action(event)),
    )


def _action(event: dict[str, Any]) -> str | None:
    metadata = event.get("metadata")
    action = metadata.get("action") if isinstance(metadata, dict) else None
    return action if isinstance(action, str) else None


async def _ping(
    receiver: WebhookReceiver, target: CallbackTarget, event: dict[str, Any]
) -> JSONResponse:
    code = event.get("validation_code")
    if not isinstance(code, str) or not code:
        return JSONResponse({"status": "ok"})
    subscription_id = event.get("subscription_id")
    if isinstance(subscription_id, int):
        await receiver.store.webhooks.answered_validation(target, subscription_id)
    logger.info("webhook validation answered", extra={"user_id": target.account_id})
    return JSONResponse({"validation_code": code})


async def _act(
    receiver: WebhookReceiver, target: CallbackTarget, event_id: int, action: str | None
) -> None:
    """After the answer: drop a repeated event, else trigger a sync of the user."""
    try:
        fresh = await receiver.store.webhooks.first_sight(target, event_id)
    except Exception:
        # The store is busy or down: a sync that may be one too many beats a lost change.
        logger.exception("could not record a webhook event", extra={"user_id": target.account_id})
        fresh = True
    logger.info(
        "webhook event",
        extra={
            "user_id": target.account_id,
            "event_id": event_id,
            "action": action,
            "repeated": not fresh,
        },
    )
    if fresh:
        receiver.trigger.soon(target.account_id)


__all__ = ["MAX_BODY_BYTES", "WebhookReceiver", "concerns", "receiver_of", "router"]
