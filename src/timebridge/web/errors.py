"""How the web app answers what went wrong: pages get a page (or the sign-in redirect), the JSON
API gets `{"error": {"code", "message"}}` with the right status."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from timebridge.web.auth import CsrfRejected, NotSignedIn, optional_viewer, signin_redirect
from timebridge.web.templating import render

API_PREFIX = "/api/"


#: The gateway's paths answer JSON errors too.
GATEWAY_PREFIXES = ("/toggl-track", "/connections/")


def is_api(request: Request) -> bool:
    path = request.url.path
    return path.startswith((API_PREFIX, *GATEWAY_PREFIXES)) or path == "/connections"


def api_error(status: int, code: str, message: str) -> JSONResponse:
    """The JSON API's error body."""
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "invalid_request",
    429: "rate_limited",
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, exc: NotSignedIn) -> Response:
        if is_api(request):
            return api_error(401, "unauthorized", "Sign in first (no valid session).")
        return signin_redirect(request)

    @app.exception_handler(CsrfRejected)
    async def csrf_rejected(request: Request, exc: CsrfRejected) -> Response:
        message = "This request did not carry this session's CSRF token; reload the page."
        if is_api(request):
            return api_error(403, "csrf_failed", message)
        viewer = await optional_viewer(request)
        return render(
            request,
            "error.html",
            viewer,
            status_code=403,
            title="This form has expired",
            message="The page was open too long or came from elsewhere. Reload it and try again.",
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if is_api(request):
            code = _CODES.get(exc.status_code, "error")
            response = api_error(exc.status_code, code, str(exc.detail))
            # Retry-After, Allow, WWW-Authenticate… stay with the answer.
            response.headers.update(exc.headers or {})
            return response
        viewer = await optional_viewer(request)
        title = "Not found" if exc.status_code == 404 else "Something is not right"
        return render(
            request,
            "error.html",
            viewer,
            status_code=exc.status_code,
            title=title,
            message=str(exc.detail) if exc.status_code != 404 else "There is no such page here.",
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'][1:]) or 'body'}: {error['msg']}"
            for error in exc.errors()
        )
        if is_api(request):
            return api_error(422, "invalid_request", problems or "invalid request")
        viewer = await optional_viewer(request)
        return render(
            request, "error.html", viewer, status_code=422, title="Check the form", message=problems
        )


__all__ = ["API_PREFIX", "api_error", "install_error_handlers", "is_api"]
