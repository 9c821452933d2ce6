"""The sign-in page (`/login`) and sign-out (`/logout`) when the web port needs tokens."""

from __future__ import annotations

import time
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from dashboards.rendering import page
from meshlens.web_access import COOKIE, SESSION_SECONDS, AccessTokens

router = APIRouter(include_in_schema=False)
MAX_FORM_BYTES = 8192


def _tokens(request: Request) -> AccessTokens:
    found = getattr(request.app.state, "access_tokens", None)
    return found if isinstance(found, AccessTokens) else AccessTokens()


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return _form(request, _safe_next(next))


@router.post("/login", response_model=None)
async def login(request: Request) -> Response:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return _form(request, "/", "That form is too large.", 413)
    fields = parse_qs(body.decode("utf-8", "replace"))
    token = (fields.get("token") or [""])[0].strip()
    target = _safe_next((fields.get("next") or ["/"])[0])
    tokens = _tokens(request)
    if tokens.empty:
        return RedirectResponse(target, status_code=303)
    role = tokens.role_of(token) if token else None
    if role is None:
        return _form(request, target, "That token is not one of meshlens's tokens.", 401)
    answer = RedirectResponse(target, status_code=303)
    answer.set_cookie(
        COOKIE,
        tokens.session(role, time.time()),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return answer


@router.post("/logout", response_model=None)
async def logout() -> Response:
    answer = RedirectResponse("/login", status_code=303)
    answer.delete_cookie(COOKIE, path="/")
    return answer


def _form(request: Request, target: str, message: str = "", status: int = 200) -> HTMLResponse:
    context: dict[str, object] = {
        "active": "",
        "when": None,
        "query": "",
        "picker_keep": {},
        "next": target,
        "message": message,
        "tokens_required": not _tokens(request).empty,
    }
    return page("login.html", context, status)


def _safe_next(target: str) -> str:
    """Only a path of this site (no `//host`, no scheme): sign-in never leads elsewhere."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
