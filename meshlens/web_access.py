"""Who may use the web port (`MESHLENS_API_TOKENS`, `MESHLENS_API_TOKENS_FILE`).

Without tokens everything is open (a laptop on 127.0.0.1). With tokens, every request but the
health checks, the sign-in page and static assets needs a token of a role: `read` for GET and
HEAD (pages, API reads, /metrics), `admin` for everything else (rules, receivers, silences).
Scripts send `Authorization: Bearer <token>`. A browser signs in once at `/login` and gets a
session cookie (HttpOnly, SameSite=Strict, Secure over HTTPS) carrying its role, an expiry
and an HMAC keyed by the tokens, so it stays valid across meshlens processes and ends when the
token that made it is removed. Writes made with the cookie must come from meshlens's own pages
(the `Origin` or `Referer` is this host): no other site can make a browser change anything.
Entries are `role:token` (a bare token is `read`); tokens are compared in constant time and
never logged or shown.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from meshlens.timeunits import HOUR

ROLES = ("read", "admin")
COOKIE = "meshlens_session"
SESSION_SECONDS = 12 * HOUR
PUBLIC_PATHS = ("/healthz", "/readyz", "/login", "/logout", "/favicon.ico")
PUBLIC_PREFIXES = ("/static/",)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class AccessError(ValueError):
    """A token entry that is not `role:token` with a known role."""


@dataclass(frozen=True, slots=True)
class AccessTokens:
    """Tokens by role; `empty` when the web port is open."""

    tokens: tuple[tuple[str, str], ...] = ()
    """(role, token) pairs."""

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AccessTokens:
        pairs = []
        for entry in (entry.strip() for entry in entries):
            if not entry or entry.startswith("#"):
                continue
            role, found, token = entry.partition(":")
            if not found:
                role, token = "read", entry
            if role not in ROLES:
                raise AccessError(f"a token's role must be read or admin, not {role!r}")
            if len(token) < 16:
                raise AccessError(f"{role} tokens must be at least 16 characters long")
            pairs.append((role, token))
        return cls(tuple(pairs))

    @classmethod
    def load(cls, entries: Iterable[str], file: Path | None) -> AccessTokens:
        lines = list(entries)
        if file is not None:
            lines += file.read_text(encoding="utf-8").splitlines()
        return cls.parse(lines)

    @property
    def empty(self) -> bool:
        return not self.tokens

    def role_of(self, token: str) -> str | None:
        """The role of `token` (admin wins when listed twice); None when unknown."""
        found = None
        for role, known in self.tokens:
            if hmac.compare_digest(token.encode(), known.encode()):
                found = "admin" if role == "admin" or found == "admin" else role
        return found

    # --- sessions -----------------------------------------------------------------------------

    def _key(self) -> bytes:
        material = "\n".join(f"{role}:{token}" for role, token in sorted(self.tokens))
        return hashlib.sha256(b"meshlens-session\n" + material.encode()).digest()

    def session(self, role: str, now: float) -> str:
        """A cookie value for `role`, valid SESSION_SECONDS from `now`."""
        expires = int(now) + SESSION_SECONDS
        payload = f"{role}.{expires}"
        signature = hmac.new(self._key(), payload.encode(), hashlib.sha256).hexdigest()
        return f"{payload}.{signature}"

    def session_role(self, value: str, now: float) -> str | None:
        """The role a cookie value grants, None when forged, expired or from other tokens."""
        role, _, rest = value.partition(".")
        expires, _, signature = rest.partition(".")
        if role not in ROLES or not expires.isdigit() or int(expires) < now:
            return None
        expected = hmac.new(self._key(), f"{role}.{expires}".encode(), hashlib.sha256)
        return role if hmac.compare_digest(expected.hexdigest(), signature) else None


class AccessControl:
    """ASGI middleware enforcing `AccessTokens` on the web port."""

    def __init__(self, app: ASGIApp, tokens: AccessTokens) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.tokens.empty or _public(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = {
            key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]
        }
        method = scope["method"]
        role, by_cookie = self._role(headers)
        if role is None:
            await _refuse(scope, send, 401, "sign in: a read or admin token is needed")
            return
        if method not in SAFE_METHODS:
            if role != "admin":
                await _refuse(scope, send, 403, "an admin token is needed to change anything")
                return
            if by_cookie and not _same_origin(headers):
                await _refuse(scope, send, 403, "a change must come from meshlens's own pages")
                return
        await self.app(scope, receive, send)

    def _role(self, headers: dict[str, str]) -> tuple[str | None, bool]:
        authorization = headers.get("authorization", "")
        if authorization[:7].lower() == "bearer ":
            return self.tokens.role_of(authorization[7:].strip()), False
        cookie = _cookie(headers.get("cookie", ""), COOKIE)
        if cookie:
            return self.tokens.session_role(cookie, time.time()), True
        return None, False


def _public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _same_origin(headers: dict[str, str]) -> bool:
    """The request comes from a page of this host (Origin, else Referer)."""
    host = headers.get("host", "")
    source = headers.get("origin") or headers.get("referer") or ""
    return bool(host) and urlsplit(source).netloc == host


async def _refuse(scope: Scope, send: Send, status: int, message: str) -> None:
    """401/403: JSON for the API and scripts, a redirect to the sign-in page for pages."""
    path = scope["path"]
    api = path.startswith(("/api/", "/metrics", "/docs", "/openapi.json"))
    if status == 401 and scope["method"] in SAFE_METHODS and not api:
        query = scope["query_string"].decode("latin-1")
        target = path + (f"?{query}" if query else "")
        location = "/login?next=" + quote(target, safe="")
        await _answer(send, 303, b"", [(b"location", location.encode("latin-1"))])
        return
    body = orjson.dumps({"status": status, "message": message})
    headers = [(b"content-type", b"application/json")]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="meshlens"'))
    await _answer(send, status, body, headers)


async def _answer(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
