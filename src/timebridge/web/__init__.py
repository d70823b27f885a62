"""The web service: the pages, the sign-in routes and the JSON API around the Bridge, with
health, metrics and the embedded scheduler (`create_app`)."""

from timebridge.web.app import Health, create_app, database_reachable
from timebridge.web.state import ServiceState, SyncScheduler, build_scheduler, service_state

__all__ = [
    "Health",
    "ServiceState",
    "SyncScheduler",
    "build_scheduler",
    "create_app",
    "database_reachable",
    "service_state",
]
