"""OtlpHttpReceiver: `POST /v1/traces` and `/v1/metrics`, protobuf or JSON, identity or gzip.

Thin by design: check the media type, read the body under the limit, hand it to `OtlpIngest`,
map errors to the OTLP/HTTP answers (400 with a google.rpc.Status, 413, 415, 429/503 with
Retry-After). Over mTLS, the client certificate in the scope's ASGI `tls` extension
(`meshlens.asgi_tls`) names the sender recorded with the data.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from collector.decode import status_body
from collector.errors import (
    IngestError,
    Overloaded,
    RequestTooLarge,
    RetryableError,
    Unauthenticated,
    UnsupportedMediaType,
)
from collector.ingest import OtlpIngest, Signal
from collector.receivers.auth import IngestTokens
from collector.receivers.bodies import BodyBudget, BodyHold, check_encoding, read_body
from meshlens.tls import sender_identity

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_MEDIA_TYPES = {PROTOBUF: False, "application/protobuf": False, JSON: True}
# gRPC status codes carried in google.rpc.Status bodies
_INVALID_ARGUMENT, _RESOURCE_EXHAUSTED, _UNAVAILABLE, _UNAUTHENTICATED = 3, 8, 14, 16


class OtlpHttpReceiver:
    """Builds the ASGI app of the OTLP/HTTP port."""

    def __init__(
        self,
        ingest: OtlpIngest,
        max_body_bytes: int,
        tokens: IngestTokens | None = None,
        budget: BodyBudget | None = None,
    ) -> None:
        self._ingest = ingest
        self._limit = max_body_bytes
        self._tokens = tokens or IngestTokens()
        self._budget = budget or BodyBudget(64 * max_body_bytes, retry_after=1)

    def app(self) -> Starlette:
        """The Starlette application serving the OTLP/HTTP paths."""
        return Starlette(
            routes=[
                Route("/v1/traces", self._traces, methods=["POST"]),
                Route("/v1/metrics", self._metrics, methods=["POST"]),
            ]
        )

    async def _traces(self, request: Request) -> Response:
        return await self._handle(request, "spans")

    async def _metrics(self, request: Request) -> Response:
        return await self._handle(request, "points")

    async def _handle(self, request: Request, signal: Signal) -> Response:
        try:
            as_json = _media_type(request.headers.get("content-type", ""))
        except UnsupportedMediaType as exc:
            self._ingest.refused(signal, "http", "unsupported")
            return _error(415, _INVALID_ARGUMENT, str(exc), as_json=True)
        try:
            self._tokens.check(request.headers.get("authorization"))
        except Unauthenticated as exc:  # before the body is read: nothing of it is kept
            self._ingest.refused(signal, "http", "unauthenticated")
            headers = {"WWW-Authenticate": 'Bearer realm="meshlens"'}
            return _error(401, _UNAUTHENTICATED, str(exc), as_json=as_json, headers=headers)
        with self._budget.hold() as hold:  # released once the body is decoded and answered
            try:
                body = await self._read(request, hold)
            except IngestError as exc:
                self._ingest.refused(signal, "http", _reason(exc))
                return _refusal(exc, as_json)
            try:
                answer = await self._ingest.export(
                    signal, body, as_json=as_json, transport="http", sender=_sender(request.scope)
                )
            except IngestError as exc:  # counted by OtlpIngest
                return _refusal(exc, as_json)
        return Response(answer, media_type=JSON if as_json else PROTOBUF)

    async def _read(self, request: Request, hold: BodyHold) -> bytes:
        gzipped = check_encoding(request.headers.get("content-encoding", ""))
        length = request.headers.get("content-length", "")
        if length.isdigit():
            if not gzipped and int(length) > self._limit:
                raise RequestTooLarge(f"the body is larger than {self._limit} bytes")
            hold.grow_to(int(length))  # refused before reading when the budget has no room
        return await read_body(request.stream(), gzipped=gzipped, limit=self._limit, hold=hold)


def _sender(scope: Scope) -> str | None:
    """The identity of the connection's client certificate (mTLS), else None."""
    tls = scope.get("extensions", {}).get("tls")
    chain = tls.get("client_cert_chain") if tls else None
    return sender_identity(chain[0].encode("ascii")) if chain else None


def _reason(exc: IngestError) -> str:
    """The `reason` label of a refusal counted before decoding."""
    if isinstance(exc, RequestTooLarge):
        return "too_large"
    if isinstance(exc, UnsupportedMediaType):
        return "unsupported"
    if isinstance(exc, Overloaded):
        return "overloaded"
    return "malformed"


def _refusal(exc: IngestError, as_json: bool) -> Response:
    """The OTLP/HTTP answer to a refused request."""
    message = str(exc)
    if isinstance(exc, RetryableError):
        status = 429 if isinstance(exc, Overloaded) else 503
        headers = {"Retry-After": str(exc.retry_after)}
        return _error(status, _UNAVAILABLE, message, as_json=as_json, headers=headers)
    if isinstance(exc, RequestTooLarge):
        return _error(413, _RESOURCE_EXHAUSTED, message, as_json=as_json)
    if isinstance(exc, UnsupportedMediaType):
        return _error(415, _INVALID_ARGUMENT, message, as_json=as_json)
    return _error(400, _INVALID_ARGUMENT, message, as_json=as_json)


def _media_type(content_type: str) -> bool:
    """True for OTLP/JSON, False for protobuf; UnsupportedMediaType otherwise."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in _MEDIA_TYPES:
        raise UnsupportedMediaType(
            f"unsupported Content-Type {content_type!r}; use {PROTOBUF} or {JSON}"
        )
    return _MEDIA_TYPES[media]


def _error(
    status: int,
    code: int,
    message: str,
    *,
    as_json: bool,
    headers: dict[str, str] | None = None,
) -> Response:
    body = status_body(code, message, as_json=as_json)
    return Response(body, status, headers=headers, media_type=JSON if as_json else PROTOBUF)
