"""OtlpGrpcReceiver: `TraceService/Export` and `MetricsService/Export` over gRPC.

Registered as generic handlers on raw bytes, so decoding stays in `collector.decode`. gRPC
inflates gzip messages itself and enforces the message limit (RESOURCE_EXHAUSTED). Over mTLS,
the client certificate gRPC verified names the sender recorded with the data.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
from grpc import aio

from collector.decode import retry_trailers
from collector.errors import IngestError, RequestTooLarge, RetryableError, Unauthenticated
from collector.ingest import OtlpIngest, Signal
from collector.receivers.auth import IngestTokens
from meshlens.tls import sender_identity

_Context = aio.ServicerContext[bytes, bytes]

TRACE_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"
METRICS_SERVICE = "opentelemetry.proto.collector.metrics.v1.MetricsService"


class OtlpGrpcReceiver:
    """Builds and runs the gRPC server of the OTLP/gRPC port."""

    def __init__(
        self, ingest: OtlpIngest, max_message_bytes: int, tokens: IngestTokens | None = None
    ) -> None:
        self._ingest = ingest
        self._max_message = max_message_bytes
        self._tokens = tokens or IngestTokens()

    def server(self, address: str, credentials: grpc.ServerCredentials | None = None) -> aio.Server:
        """A gRPC server bound to `address` (not started), over TLS with `credentials`."""
        server = aio.server(
            options=[
                ("grpc.max_receive_message_length", self._max_message),
                ("grpc.max_send_message_length", 4 * 1024 * 1024),
            ]
        )
        server.add_generic_rpc_handlers(
            (
                _service(TRACE_SERVICE, self._export_traces),
                _service(METRICS_SERVICE, self._export_metrics),
            )
        )
        if credentials is None:
            server.add_insecure_port(address)
        else:
            server.add_secure_port(address, credentials)
        return server

    async def _export_traces(self, request: bytes, context: _Context) -> bytes:
        return await self._export("spans", request, context)

    async def _export_metrics(self, request: bytes, context: _Context) -> bytes:
        return await self._export("points", request, context)

    async def _export(self, signal: Signal, request: bytes, context: _Context) -> bytes:
        try:
            self._tokens.check(_authorization(context))
        except Unauthenticated as exc:
            self._ingest.refused(signal, "grpc", "unauthenticated")
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        try:
            return await self._ingest.export(
                signal, request, as_json=False, transport="grpc", sender=_sender(context)
            )
        except RetryableError as exc:
            context.set_trailing_metadata(retry_trailers(14, str(exc), exc.retry_after))
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
        except RequestTooLarge as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except IngestError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        raise AssertionError("abort() always raises")


def _authorization(context: _Context) -> str | None:
    """The `authorization` metadata of the call (gRPC keys are lower case)."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value if isinstance(value, str) else value.decode("latin-1")
    return None


def _sender(context: _Context) -> str | None:
    """The identity of the client certificate the call came with (mTLS), else None."""
    certificate = next(iter(context.auth_context().get("x509_pem_cert", ())), None)
    return sender_identity(certificate) if certificate else None


def _service(
    name: str, export: Callable[..., Awaitable[bytes]]
) -> grpc.GenericRpcHandler[bytes, bytes]:
    handler = grpc.unary_unary_rpc_method_handler(export)  # raw bytes in and out
    return grpc.method_handlers_generic_handler(name, {"Export": handler})
