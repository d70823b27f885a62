"""The gateway's errors: `{"error": {"code", "message"}}` with the right status and headers."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

# The JSON API's error body: the same `{"error": {"code", "message"}}`, one schema in OpenAPI.
from timebridge.web.api import ErrorBody


def documented(statuses: Mapping[int, str]) -> dict[int | str, dict[str, object]]:
    """OpenAPI `responses` for these error statuses, each with the error body."""
    return {
        status: {"model": ErrorBody, "description": words} for status, words in statuses.items()
    }


class GatewayError(Exception):
    """An answer the gateway gives itself (not Toggl's): status, code, message, headers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": {"code": self.code, "message": self.message}},
            status_code=self.status,
            headers=self.headers,
        )


def install_gateway_errors(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def gateway_error(request: Request, exc: GatewayError) -> Response:
        return exc.response()


__all__ = ["ErrorBody", "GatewayError", "documented", "install_gateway_errors"]
