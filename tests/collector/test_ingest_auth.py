"""Ingest tokens: with MESHLENS_INGEST_TOKENS (or a token file) set, OTLP over HTTP and gRPC
needs `Authorization: Bearer <token>`; without one, or with another, the request gets 401 /
UNAUTHENTICATED and nothing of it is stored. The OpenTelemetry SDK exporters are the clients."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from harness.postgres import DatabaseFactory
from harness.waiting import wait_until
from tests.otlp_payloads import trace_request
from tests.support import RunningServer, running_server

TOKEN = "s3cret-ingest-token-7f1c"
FILE_TOKEN = "token-from-the-file-42aa"


@pytest.fixture(scope="module")
def secured(
    databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningServer, Path]]:
    folder = tmp_path_factory.mktemp("auth")
    tokens = folder / "tokens.txt"
    tokens.write_text(f"# senders of the shop namespace\n{FILE_TOKEN}\n")
    env = {
        "MESHLENS_INGEST_TOKENS": f"other-token, {TOKEN}",
        "MESHLENS_INGEST_TOKENS_FILE": str(tokens),
    }
    with running_server(databases.create(), folder / "meshlens.log", **env) as running:
        yield running, tokens


class Recording(SpanExporter):
    """The real exporter, keeping what it was answered."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.results: list[SpanExportResult] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        self.results.append(result)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()


def _send(exporter: SpanExporter) -> tuple[str, SpanExportResult]:
    service = f"auth-{uuid.uuid4().hex[:8]}"
    recording = Recording(exporter)
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(recording))
    with provider.get_tracer("tests.auth").start_as_current_span("GET /pay", kind=SpanKind.SERVER):
        pass
    provider.shutdown()
    (result,) = recording.results
    return service, result


def _stored(server: RunningServer, service: str) -> int:
    rows = server.query("SELECT count(*) FROM spans WHERE service = %s", (service,))
    return int(rows[0][0])


def _http(server: RunningServer, token: str | None) -> HttpSpanExporter:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return HttpSpanExporter(endpoint=f"{server.otlp_http}/v1/traces", headers=headers, timeout=5)


def _grpc(server: RunningServer, token: str | None) -> GrpcSpanExporter:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return GrpcSpanExporter(
        endpoint=server.grpc_endpoint, insecure=True, headers=headers, timeout=5
    )


@pytest.mark.parametrize("transport", ["http", "grpc"])
@pytest.mark.parametrize("token", [TOKEN, FILE_TOKEN])
def test_a_known_token_is_accepted(
    secured: tuple[RunningServer, Path], transport: str, token: str
) -> None:
    server, _ = secured
    make = _http if transport == "http" else _grpc
    service, result = _send(make(server, token))
    assert result is SpanExportResult.SUCCESS
    assert _stored(server, service) == 1


@pytest.mark.parametrize("transport", ["http", "grpc"])
@pytest.mark.parametrize("token", [None, "wrong-token", TOKEN + "x"])
def test_no_or_an_unknown_token_stores_nothing(
    secured: tuple[RunningServer, Path], transport: str, token: str | None
) -> None:
    server, _ = secured
    make = _http if transport == "http" else _grpc
    service, result = _send(make(server, token))
    assert result is SpanExportResult.FAILURE
    time.sleep(0.3)
    assert _stored(server, service) == 0


def test_http_answers_401_with_a_status_that_names_no_token(
    secured: tuple[RunningServer, Path],
) -> None:
    server, _ = secured
    body = trace_request("auth-raw").SerializeToString()
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN}"}):
        answer = httpx.post(
            f"{server.otlp_http}/v1/traces",
            content=body,
            headers={"Content-Type": "application/x-protobuf", **headers},
        )
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert TOKEN.encode() not in answer.content
    json_answer = httpx.post(
        f"{server.otlp_http}/v1/traces", content=b"{}", headers={"Content-Type": "application/json"}
    )
    assert json_answer.status_code == 401
    assert json_answer.json()["code"] == 16  # UNAUTHENTICATED
    assert "bearer token" in json_answer.json()["message"]


def test_grpc_answers_unauthenticated(secured: tuple[RunningServer, Path]) -> None:
    server, _ = secured
    with grpc.insecure_channel(server.grpc_endpoint) as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=lambda message: message,
            response_deserializer=lambda raw: raw,
        )
        with pytest.raises(grpc.RpcError) as refused:
            export(trace_request("auth-grpc-raw").SerializeToString(), timeout=5)
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED


def test_the_token_file_is_read_again_when_it_changes(
    secured: tuple[RunningServer, Path],
) -> None:
    server, tokens = secured
    tokens.write_text("rotated-token-9d\n")

    def rotated() -> tuple[str, SpanExportResult] | None:
        sent = _send(_http(server, "rotated-token-9d"))
        return sent if sent[1] is SpanExportResult.SUCCESS else None

    service, result = wait_until(
        rotated, timeout=15, what="the file's new token to be accepted", every=0.5
    )
    assert result is SpanExportResult.SUCCESS
    assert _stored(server, service) == 1
    _, old = _send(_http(server, FILE_TOKEN))
    assert old is SpanExportResult.FAILURE  # the file's previous token is gone
    _, fixed = _send(_http(server, TOKEN))
    assert fixed is SpanExportResult.SUCCESS  # MESHLENS_INGEST_TOKENS still holds
    assert TOKEN not in server.log()
    assert "rotated-token-9d" not in server.log()
