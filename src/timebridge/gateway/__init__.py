"""The gateway: the Toggl Track API behind Timebridge API keys (DESIGN.md, "The gateway").

- `ANY /toggl-track/{path}` (`proxy.py`): a native Toggl path, checked (`paths.py`) and forwarded
  to the chosen connection's origin with its token injected; quota guard and rate limit
  (`limits.py`), redaction of `api_token`, audit of writes (`audit.py`).
- `/connections` (`connections.py`): the seed gateway's connections API.
- Keys (`keys.py`): `tb_…`, shown once, stored as SHA-256 + prefix; `auth.py` turns one into
  the caller.

`install(app)` adds all of it to the service's FastAPI app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing `timebridge.gateway.keys` (the CLI does) loads no web stack
    from fastapi import FastAPI
    from starlette.types import ASGIApp, Receive, Scope, Send


class _RefuseControlCharacters:
    """A decoded path with a line break or another control character matches no route (routes
    match one line): under `/toggl-track/` it is the 400 every refused path is, not a 404."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path.startswith("/toggl-track/") and any(
                ord(char) < 0x20 or ord(char) == 0x7F for char in path
            ):
                from timebridge.gateway.errors import GatewayError

                refused = GatewayError(
                    400, "invalid_path", "the path must not contain control characters"
                )
                await refused.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install(app: FastAPI) -> None:
    """Mount the gateway's routes, its error answers and its state's lifetime on `app`."""
    from timebridge.gateway import connections, pages, proxy
    from timebridge.gateway.errors import install_gateway_errors
    from timebridge.gateway.state import install_lifespan

    app.include_router(connections.router)
    app.include_router(proxy.router)
    app.include_router(pages.router)
    install_gateway_errors(app)
    app.add_middleware(_RefuseControlCharacters)
    install_lifespan(app)


__all__ = ["install"]
