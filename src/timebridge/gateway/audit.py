"""The audit trail: every write (POST, PUT, PATCH, DELETE) made with a key is recorded — when,
the key's prefix, the connection, method, path, status and duration; never a body."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from timebridge.gateway.auth import Caller
from timebridge.gateway.errors import GatewayError
from timebridge.store import Store

logger = logging.getLogger(__name__)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@asynccontextmanager
async def audited(
    store: Store, who: Caller, method: str, path: str
) -> AsyncIterator[dict[str, str | None]]:
    """Record the write made inside the block (if `method` writes), with the status it ended
    with; the block may name the connection in the yielded dict."""
    if method not in WRITE_METHODS:
        yield {}
        return
    started = time.monotonic()
    details: dict[str, str | None] = {"connection_id": None}
    status = 500
    try:
        yield details
        status = int(details.get("status") or 200)
    except GatewayError as exc:
        status = exc.status
        raise
    finally:
        try:
            await store.api_keys.record(
                who.account_id,
                key_id=who.key_id,
                key_prefix=who.prefix,
                connection_id=details.get("connection_id"),
                method=method,
                path=path,
                status=status,
                duration_ms=round((time.monotonic() - started) * 1000),
            )
        except Exception:
            logger.exception("could not record a gateway write in the audit trail")


__all__ = ["WRITE_METHODS", "audited"]
