"""The pages people use: home, connections, mapping, status, settings (server-rendered)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from timebridge.web.auth import SignedIn
from timebridge.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/")
async def home(request: Request, viewer: SignedIn) -> Response:
    """Both connections, the last and next run, Sync now."""
    return render(request, "home.html", viewer)
