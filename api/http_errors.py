"""The web port's errors, all answered `{"status", "message"}`: `ApiError` (raised by the
endpoints) and the errors Starlette answers by itself.

A path no route serves (404) and a method the path does not take (405) were answered
`{"detail": ...}`, unlike every other error of the web port (`{"status", "message"}`, as the
OpenAPI description says). A 405's `Allow` named only the methods of the first route matching
the path (`GET` for `/api/v1/rules`, which also takes `POST`); it now names them all.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match


class ApiError(Exception):
    """An answer other than 200: its status and a message for the caller."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def include_http_errors(app: FastAPI) -> None:
    """Answer `ApiError` and Starlette's own HTTP errors on `app` as `{"status", "message"}`."""
    app.add_exception_handler(ApiError, _error_answer)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _answer)  # type: ignore[arg-type]


async def _error_answer(_: Request, error: ApiError) -> JSONResponse:
    return JSONResponse({"status": error.status, "message": error.message}, error.status)


async def _answer(request: Request, error: HTTPException) -> JSONResponse:
    status, headers = error.status_code, dict(error.headers or {})
    path = request.scope["path"]
    if status == 404:
        message = f"nothing is served at {path!r}"
    elif status == 405:
        allowed = allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        message = f"{request.method} is not allowed on {path!r}; allowed: {', '.join(allowed)}"
    else:
        message = str(error.detail)
    return JSONResponse({"status": status, "message": message}, status, headers=headers)


METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serving this path takes (each asked through `matches`, which
    routers included in routers answer too)."""
    routes = request.app.router.routes
    return [
        method
        for method in METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]
