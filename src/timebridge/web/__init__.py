"""The web service: today health and metrics around the embedded scheduler; pages and the JSON
API are added as routers on `create_app`'s app."""

from timebridge.web.app import (
    Health,
    ServiceState,
    SyncScheduler,
    build_scheduler,
    create_app,
    database_reachable,
    service_state,
)

__all__ = [
    "Health",
    "ServiceState",
    "SyncScheduler",
    "build_scheduler",
    "create_app",
    "database_reachable",
    "service_state",
]
