"""The JSON API under `/api/v1`, documented by the app's OpenAPI: what the pages do."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from timebridge.web.auth import SignedIn

router = APIRouter(prefix="/api/v1", tags=["api"])


class MeOut(BaseModel):
    """The signed-in account."""

    id: int
    display_name: str | None
    exist_username: str | None
    time_zone: str | None


@router.get("/me", response_model=MeOut)
async def me(viewer: SignedIn) -> MeOut:
    """The signed-in account."""
    account = viewer.account
    return MeOut(
        id=account.id,
        display_name=account.display_name,
        exist_username=account.exist_username,
        time_zone=account.time_zone,
    )
