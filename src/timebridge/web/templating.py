"""The pages' Jinja2 environment: templates in `web/templates/`, autoescaped, nothing from outside.

`render` is the one way a page is rendered: it adds what every page needs (the signed-in
account, its CSRF token for forms, the app's version and flashes) to the template's context.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from timebridge import __version__

if TYPE_CHECKING:
    from timebridge.web.auth import Viewer

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

templates = Jinja2Templates(directory=TEMPLATES_DIR)
templates.env.globals["version"] = __version__


def render(
    request: Request,
    template: str,
    viewer: Viewer | None = None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """`template` with `context`, the viewer (None when signed out) and the CSRF token its
    forms carry (the session's, or a signed-out browser's own)."""
    from timebridge.web.auth import pre_session_csrf, remember_pre_session_csrf

    csrf = viewer.session.csrf_token if viewer is not None else pre_session_csrf(request)
    response = templates.TemplateResponse(
        request,
        template,
        {"viewer": viewer, "csrf_token": csrf, **context},
        status_code=status_code,
    )
    if viewer is None:
        remember_pre_session_csrf(request, response)
    return response


__all__ = ["STATIC_DIR", "TEMPLATES_DIR", "render", "templates"]
