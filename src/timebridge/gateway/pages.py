"""The API keys page: create a key (shown once, on the answer to the form), list and revoke
keys, and the audit trail of writes made through the gateway. For the signed-in account only."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response

from timebridge.gateway.keys import SCOPES, new_key, parse_scopes
from timebridge.store import ApiKeyNotFound
from timebridge.web.auth import Changing, SignedIn, Viewer
from timebridge.web.state import bridge_of, service_state
from timebridge.web.templating import render

router = APIRouter(include_in_schema=False)

#: What the page says after a change sent the browser back (`?done=<key>`).
FLASHES = {"revoked": "The key was revoked: requests with it are refused from now on."}
SCOPE_WORDS = {
    "proxy:read": "Read Toggl Track through the gateway (GET)",
    "proxy:write": "Change Toggl Track through the gateway (POST, PUT, PATCH, DELETE)",
    "connections:read": "List your Toggl Track connections",
    "connections:write": "Create and delete connections",
}


async def _page(
    request: Request,
    viewer: Viewer,
    *,
    created: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    store = bridge_of(request).store
    keys = await store.api_keys.list(viewer.account_id)
    audit = await store.api_keys.audit(viewer.account_id, limit=50)
    done = request.query_params.get("done")
    return render(
        request,
        "keys.html",
        viewer,
        status_code=status_code,
        keys=keys,
        audit=audit,
        created=created,
        error=error,
        flash=FLASHES.get(done or ""),
        scopes=[(scope, SCOPE_WORDS[scope]) for scope in SCOPES],
        now=service_state(request.app).clock.now(),
        public_url=service_state(request.app).settings.public_url,
    )


@router.get("/keys")
async def keys_page(request: Request, viewer: SignedIn) -> Response:
    """Your API keys and the gateway's audit trail."""
    return await _page(request, viewer)


@router.post("/keys")
async def create_key(
    request: Request,
    viewer: Changing,
    name: Annotated[str, Form(max_length=200)] = "",
    scope: Annotated[list[str] | None, Form()] = None,
    expires_in_days: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """A new key, shown once on the page this answers with."""
    try:
        scopes = parse_scopes(scope or [])
    except ValueError as exc:
        return await _page(request, viewer, error=str(exc), status_code=400)
    days = expires_in_days.strip()
    if days and (not days.isdigit() or not 1 <= int(days) <= 3650):
        return await _page(
            request, viewer, error="Expiry: a number of days from 1 to 3650.", status_code=400
        )
    store = bridge_of(request).store
    now = service_state(request.app).clock.now()
    made = new_key()
    await store.api_keys.create(
        viewer.account_id,
        made.secret,
        prefix=made.prefix,
        scopes=scopes,
        name=name.strip() or None,
        expires_at=now + timedelta(days=int(days)) if days else None,
    )
    response = await _page(request, viewer, created=made.secret)
    response.headers["Cache-Control"] = "no-store"
    return response


@router.post("/keys/{key_id}/revoke")
async def revoke_key(request: Request, viewer: Changing, key_id: int) -> Response:
    """Revoke one of your keys."""
    try:
        await bridge_of(request).store.api_keys.revoke(viewer.account_id, key_id)
    except ApiKeyNotFound:
        raise HTTPException(404, "There is no such key.") from None
    return RedirectResponse("/keys?done=revoked", status_code=303)


__all__ = ["router"]
