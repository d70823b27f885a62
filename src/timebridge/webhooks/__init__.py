"""Toggl webhooks, the receiving side (DESIGN.md, "Webhooks"): Toggl's deliveries become syncs
within seconds.

- `receiver.py`: `POST /hooks/toggl/{token}` — the endpoint by its token, the signature
  (`signature.py`), PINGs and their validation, repeated events dropped;
- `coalesce.py`: the events of a few seconds become one sync of the user, through the embedded
  scheduler (`Coalescer`) or the distributed queue (`QueuedTrigger`).

Subscribing, unsubscribing and the daily check are the account's business: `bridge.webhooks`
(`timebridge.bridge.webhooks`). `install(app)` adds the receiver to the service's app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Mount the receiver's route and its state's lifetime on `app`."""
    from timebridge.webhooks.lifespan import install_lifespan
    from timebridge.webhooks.receiver import router

    app.include_router(router)
    install_lifespan(app)


__all__ = ["install"]
