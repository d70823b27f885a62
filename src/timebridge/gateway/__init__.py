"""The gateway: the Toggl Track API behind Timebridge API keys (DESIGN.md, "The gateway").

- `ANY /toggl-track/{path}` (`proxy.py`): a native Toggl path, checked (`paths.py`) and forwarded
  to the chosen connection's origin with its token injected; quota guard and rate limit
  (`limits.py`), redaction of `api_token`, audit of writes (`audit.py`). Answered by a lean ASGI
  layer in front of the app's middleware and routes (the route documents it in the OpenAPI
  schema).
- `/connections` (`connections.py`): the seed gateway's connections API.
- Keys (`keys.py`): `tb_…`, shown once, stored as SHA-256 + prefix; `auth.py` turns one into
  the caller.

`install(app)` adds all of it to the service's FastAPI app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing `timebridge.gateway.keys` (the CLI does) loads no web stack
    from fastapi import FastAPI
    from starlette.types import ASGIApp


def install(app: FastAPI) -> None:
    """Mount the gateway's routes, its error answers and its state's lifetime on `app`."""
    from timebridge.gateway import connections, pages, proxy
    from timebridge.gateway.errors import install_gateway_errors
    from timebridge.gateway.state import install_lifespan

    app.include_router(connections.router)
    app.include_router(proxy.router)
    app.include_router(pages.router)
    install_gateway_errors(app)
    # `/toggl-track/…` is answered in front of the app's middleware and routes.
    build = app.build_middleware_stack

    def build_middleware_stack() -> ASGIApp:
        return proxy.GatewayLayer(build())

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]
    install_lifespan(app)


__all__ = ["install"]
