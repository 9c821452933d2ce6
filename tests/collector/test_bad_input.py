"""Bad input against a real `meshlens serve`: each gets its documented answer, nothing breaks.

After every case an autouse fixture checks the service is still healthy: a good export is
answered 200 and stored, and /healthz answers 200. The answers checked here are the OTLP/HTTP
ones (400 with a google.rpc.Status in the request's encoding, 413, 415, partial success) and
the OTLP/gRPC status codes.
"""

from __future__ import annotations

import gzip
import os
import time
import zlib
from collections.abc import Callable, Iterator

import grpc
import httpx
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    Gauge,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from prometheus_client.parser import text_string_to_metric_families

from tests.support import RunningServer, rss_bytes

MIB = 1024 * 1024
LIMIT = 20 * MIB  # meshlens's default max_body_bytes
GRPC_LIMIT = 4 * MIB  # meshlens's default grpc_max_message_bytes
DAY_NS = 86_400 * 1_000_000_000
PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}
GZIP_PROTOBUF = {**PROTOBUF, "content-encoding": "gzip"}
GZIP_JSON = {**JSON, "content-encoding": "gzip"}
INVALID_ARGUMENT, RESOURCE_EXHAUSTED = 3, 8  # google.rpc.Code
TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


# -- building requests --------------------------------------------------------------------------


def span(
    trace_id: bytes | None = None, *, start: int | None = None, name: str = "GET /checkout"
) -> Span:
    """A well-formed server span (fresh ids; starting now unless `start` is given)."""
    start = time.time_ns() if start is None else start
    return Span(
        trace_id=os.urandom(16) if trace_id is None else trace_id,
        span_id=os.urandom(8),
        name=name,
        kind=Span.SPAN_KIND_SERVER,
        start_time_unix_nano=start,
        end_time_unix_nano=start + 5_000_000,
        attributes=[KeyValue(key="http.route", value=AnyValue(string_value="/checkout"))],
    )


def traces(*spans: Span) -> ExportTraceServiceRequest:
    """One resource and scope holding `spans`."""
    resource = Resource(
        attributes=[KeyValue(key="service.name", value=AnyValue(string_value="bad-input"))]
    )
    scope = ScopeSpans(scope=InstrumentationScope(name="tests", version="1"), spans=spans)
    return ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[scope])]
    )


def gauge(name: str, *times: int) -> ExportMetricsServiceRequest:
    """A gauge `name` with one point at each of `times`."""
    points = [NumberDataPoint(time_unix_nano=t, as_double=float(i)) for i, t in enumerate(times)]
    metric = Metric(name=name, gauge=Gauge(data_points=points))
    resource = Resource(
        attributes=[KeyValue(key="service.name", value=AnyValue(string_value="bad-input"))]
    )
    return ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(resource=resource, scope_metrics=[ScopeMetrics(metrics=[metric])])
        ]
    )


def post(
    server: RunningServer, path: str, content: bytes, headers: dict[str, str]
) -> httpx.Response:
    return httpx.post(server.otlp_http + path, content=content, headers=headers, timeout=60)


def spans_stored(server: RunningServer, trace_id: bytes) -> list[bytes]:
    """The span ids stored for `trace_id`."""
    return [
        span_id
        for (span_id,) in server.query(
            "SELECT span_id FROM spans WHERE trace_id = %s ORDER BY span_id", (trace_id,)
        )
    ]


def protobuf_status(response: httpx.Response) -> Status:
    """The google.rpc.Status of a protobuf error answer."""
    assert response.headers["content-type"] == "application/x-protobuf"
    return Status.FromString(response.content)


def json_status(response: httpx.Response) -> dict[str, object]:
    """The google.rpc.Status of a JSON error answer."""
    assert response.headers["content-type"] == "application/json"
    status: dict[str, object] = response.json()
    assert set(status) <= {"code", "message", "details"}
    return status


def rss_kib(pid: int) -> int:
    rss = rss_bytes(pid)
    assert rss is not None, f"no VmRSS for process {pid}"
    return rss // 1024


def refused_requests(server: RunningServer) -> dict[tuple[str, str, str], float]:
    """meshlens_ingest_refused_requests_total by (signal, transport, reason)."""
    text = httpx.get(server.web + "/metrics", timeout=10).text
    counts = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "meshlens_ingest_refused_requests_total":
                labels = sample.labels
                counts[labels["signal"], labels["transport"], labels["reason"]] = sample.value
    return counts


def grpc_export(server: RunningServer, message: bytes) -> bytes:
    """A raw TraceService/Export call; the raw response bytes (RpcError on failure)."""
    options = [("grpc.max_send_message_length", 64 * MIB)]
    with grpc.insecure_channel(server.grpc_endpoint, options=options) as channel:
        export: Callable[..., bytes] = channel.unary_unary(
            TRACE_EXPORT,
            request_serializer=lambda raw: raw,
            response_deserializer=lambda raw: raw,
        )
        return export(message, timeout=30)


@pytest.fixture(scope="session")
def gzip_bomb() -> bytes:
    """1 GiB of zeros, gzip-compressed (about 1 MiB), streamed so it never sits in memory."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(16 * MIB)
    parts = [compressor.compress(zeros) for _ in range(64)]
    parts.append(compressor.flush())
    bomb = b"".join(parts)
    assert len(bomb) < 2 * MIB
    return bomb


@pytest.fixture(autouse=True)
def stays_healthy(server: RunningServer) -> Iterator[None]:
    """After each case: a good export is answered 200 and stored, and /healthz is 200."""
    yield
    trace_id = os.urandom(16)
    good = traces(span(trace_id), span(trace_id))
    response = post(server, "/v1/traces", good.SerializeToString(), PROTOBUF)
    assert response.status_code == 200, response.content
    assert ExportTraceServiceResponse.FromString(response.content) == ExportTraceServiceResponse()
    assert len(spans_stored(server, trace_id)) == 2
    assert httpx.get(server.web + "/healthz", timeout=10).status_code == 200
    assert server.process.poll() is None


# -- malformed bodies: 400 with a google.rpc.Status ---------------------------------------------


@pytest.mark.parametrize("path", ["/v1/traces", "/v1/metrics"])
def test_malformed_protobuf_is_400_with_a_protobuf_status(server: RunningServer, path: str) -> None:
    response = post(server, path, b"\x0a\xff\xff\xff\xff\x0f not protobuf", PROTOBUF)

    assert response.status_code == 400
    status = protobuf_status(response)
    assert status.code == INVALID_ARGUMENT
    assert "malformed protobuf" in status.message


def test_protobuf_nested_too_deep_is_400(server: RunningServer) -> None:
    """An attribute of 2000 nested arrays (12 KB): refused by the decoder's depth limit."""

    def field(number: int, payload: bytes) -> bytes:  # a length-delimited protobuf field
        return _varint(number << 3 | 2) + _varint(len(payload)) + payload

    value = field(1, b"x")  # AnyValue.string_value
    for _ in range(2000):
        value = field(5, field(1, value))  # AnyValue.array_value -> ArrayValue.values
    attribute = field(1, b"deep") + field(2, value)  # KeyValue
    deep_span = span().SerializeToString() + field(9, attribute)  # Span.attributes
    body = field(1, field(2, field(2, deep_span)))  # request -> resource -> scope spans

    response = post(server, "/v1/traces", body, PROTOBUF)

    assert response.status_code == 400
    status = protobuf_status(response)
    assert status.code == INVALID_ARGUMENT
    assert "malformed protobuf" in status.message


def _varint(number: int) -> bytes:
    out = bytearray()
    while number > 0x7F:
        out.append(number & 0x7F | 0x80)
        number >>= 7
    out.append(number)
    return bytes(out)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"resourceSpans": [', "malformed JSON"),
        (b"not json at all", "malformed JSON"),
        (b"", "malformed JSON"),
        (b'{"resourceSpans": [{"scopeSpans": "not a list"}]}', "malformed OTLP/JSON"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": {}}]}]}]}', "kind"),
    ],
    ids=["truncated", "not-json", "empty", "wrong-type", "wrong-enum-type"],
)
def test_malformed_json_is_400_with_a_json_status(
    server: RunningServer, body: bytes, says: str
) -> None:
    response = post(server, "/v1/traces", body, JSON)

    assert response.status_code == 400
    status = json_status(response)
    assert status["code"] == INVALID_ARGUMENT
    assert says in str(status["message"])


@pytest.mark.parametrize("body", [b"[]", b'[{"resourceSpans": []}]', b'"text"', b"42", b"null"])
def test_json_that_is_not_an_object_is_400(server: RunningServer, body: bytes) -> None:
    response = post(server, "/v1/traces", body, JSON)

    assert response.status_code == 400
    status = json_status(response)
    assert status["code"] == INVALID_ARGUMENT
    assert "top level must be an object" in str(status["message"])


def test_json_nested_too_deep_is_400_not_500(server: RunningServer) -> None:
    """1000 nested arrays (2 KB of JSON) must be refused as malformed, not crash the handler.

    orjson accepts nesting up to 1024 levels; meshlens then walks the document recursively
    (`hex_ids_to_base64`) and overflows Python's stack: today the answer is a 500 and the
    connection is dropped.
    """
    body = b'{"resourceSpans": ' + b"[" * 1000 + b"]" * 1000 + b"}"

    response = post(server, "/v1/traces", body, JSON)

    assert response.status_code == 400, response.text
    status = json_status(response)
    assert status["code"] == INVALID_ARGUMENT


# -- gzip ---------------------------------------------------------------------------------------


def test_truncated_gzip_is_400(server: RunningServer) -> None:
    body = gzip.compress(traces(span()).SerializeToString())

    response = post(server, "/v1/traces", body[: len(body) // 2], GZIP_PROTOBUF)

    assert response.status_code == 400
    status = protobuf_status(response)
    assert status.code == INVALID_ARGUMENT
    assert "gzip" in status.message
    assert "truncated" in status.message


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda good: b"this was never gzip",
        lambda good: good[:10] + b"\xff" * 8 + good[18:],  # the deflate stream is garbage
        lambda good: good[:-8] + b"\x00" * 8,  # the CRC-32 and length do not match
    ],
    ids=["not-gzip", "bad-deflate", "bad-crc"],
)
def test_corrupt_gzip_is_400(server: RunningServer, corrupt: Callable[[bytes], bytes]) -> None:
    good = gzip.compress(traces(span(), span()).SerializeToString())

    response = post(server, "/v1/traces", corrupt(good), GZIP_JSON)

    assert response.status_code == 400
    status = json_status(response)
    assert status["code"] == INVALID_ARGUMENT
    assert "gzip" in str(status["message"])


def test_gzip_bomb_is_413_without_inflating_it(server: RunningServer, gzip_bomb: bytes) -> None:
    before = rss_kib(server.process.pid)

    response = post(server, "/v1/traces", gzip_bomb, GZIP_PROTOBUF)

    after = rss_kib(server.process.pid)
    assert response.status_code == 413
    status = protobuf_status(response)
    assert status.code == RESOURCE_EXHAUSTED
    assert "decompression" in status.message
    assert after - before < 100 * 1024, f"RSS grew from {before} KiB to {after} KiB"


def test_gzip_bomb_over_json_is_413_too(server: RunningServer, gzip_bomb: bytes) -> None:
    before = rss_kib(server.process.pid)

    response = post(server, "/v1/metrics", gzip_bomb, GZIP_JSON)

    after = rss_kib(server.process.pid)
    assert response.status_code == 413
    assert json_status(response)["code"] == RESOURCE_EXHAUSTED
    assert after - before < 100 * 1024, f"RSS grew from {before} KiB to {after} KiB"


# -- size, media type, method, path ---------------------------------------------------------------


def test_body_over_the_limit_with_content_length_is_413(server: RunningServer) -> None:
    body = b"\x0a" * (LIMIT + MIB)  # 21 MiB

    response = post(server, "/v1/traces", body, PROTOBUF)

    assert response.status_code == 413
    status = protobuf_status(response)
    assert status.code == RESOURCE_EXHAUSTED
    assert str(LIMIT) in status.message


def test_streamed_body_over_the_limit_is_413(server: RunningServer) -> None:
    """No Content-Length (chunked): the limit is enforced while reading."""

    def chunks() -> Iterator[bytes]:
        for _ in range(21):
            yield b"\x0a" * MIB

    response = httpx.post(
        server.otlp_http + "/v1/traces", content=chunks(), headers=JSON, timeout=60
    )

    assert response.status_code == 413
    assert json_status(response)["code"] == RESOURCE_EXHAUSTED


def test_body_just_under_the_limit_is_not_413(server: RunningServer) -> None:
    """The limit is the limit: 20 MiB of (harmless) protobuf padding is read and decoded."""
    trace_id = os.urandom(16)
    request = traces(span(trace_id))
    padding = LIMIT - request.ByteSize() - 16
    # field 15 of the request is unknown to meshlens: protobuf skips it
    body = request.SerializeToString() + _varint(15 << 3 | 2) + _varint(padding) + b"p" * padding
    assert LIMIT - 16 < len(body) <= LIMIT

    response = post(server, "/v1/traces", body, PROTOBUF)

    assert response.status_code == 200, response.content
    assert len(spans_stored(server, trace_id)) == 1


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", ""])
def test_wrong_content_type_is_415(server: RunningServer, content_type: str) -> None:
    body = traces(span()).SerializeToString()

    response = post(server, "/v1/traces", body, {"content-type": content_type})

    assert response.status_code == 415
    status = json_status(response)
    assert status["code"] == INVALID_ARGUMENT
    assert "Content-Type" in str(status["message"])


@pytest.mark.parametrize("encoding", ["br", "deflate", "zstd"])
def test_unsupported_content_encoding_is_415(server: RunningServer, encoding: str) -> None:
    body = traces(span()).SerializeToString()

    response = post(server, "/v1/traces", body, {**PROTOBUF, "content-encoding": encoding})

    assert response.status_code == 415
    status = protobuf_status(response)
    assert status.code == INVALID_ARGUMENT
    assert "Content-Encoding" in status.message
    assert encoding in status.message


def test_get_is_405(server: RunningServer) -> None:
    assert httpx.get(server.otlp_http + "/v1/traces", timeout=10).status_code == 405
    assert httpx.get(server.otlp_http + "/v1/metrics", timeout=10).status_code == 405


def test_logs_are_404(server: RunningServer) -> None:
    """meshlens stores no logs: /v1/logs does not exist."""
    response = post(server, "/v1/logs", b'{"resourceLogs": []}', JSON)

    assert response.status_code == 404


# -- partial success ------------------------------------------------------------------------------


def test_a_span_with_a_3_byte_trace_id_is_rejected_alone(server: RunningServer) -> None:
    trace_id = os.urandom(16)
    bad = span(os.urandom(3))
    request = traces(span(trace_id), bad, span(trace_id), span(trace_id))

    response = post(server, "/v1/traces", request.SerializeToString(), PROTOBUF)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert "trace_id" in answer.partial_success.error_message
    good = sorted(s.span_id for s in request.resource_spans[0].scope_spans[0].spans)
    good.remove(bad.span_id)
    assert spans_stored(server, trace_id) == good
    assert server.query("SELECT count(*) FROM spans WHERE span_id = %s", (bad.span_id,)) == [(0,)]


@pytest.mark.parametrize(
    ("age_ns", "says"),
    [(30 * DAY_NS, "retention"), (-2 * DAY_NS, "future")],
    ids=["30-days-old", "2-days-ahead"],
)
def test_a_span_outside_the_time_window_is_rejected_alone(
    server: RunningServer, age_ns: int, says: str
) -> None:
    trace_id = os.urandom(16)
    outside = span(trace_id, start=time.time_ns() - age_ns, name="outside")
    request = traces(span(trace_id), outside, span(trace_id))

    response = post(server, "/v1/traces", request.SerializeToString(), PROTOBUF)

    assert response.status_code == 200
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert says in answer.partial_success.error_message
    assert "start_time_unix_nano" in answer.partial_success.error_message
    stored = spans_stored(server, trace_id)
    assert len(stored) == 2
    assert outside.span_id not in stored


def test_a_point_older_than_retention_is_rejected_alone(server: RunningServer) -> None:
    name = f"bad_input.gauge.{os.urandom(4).hex()}"
    now = time.time_ns()
    request = gauge(name, now, now - 30 * DAY_NS, now + 1)

    response = post(server, "/v1/metrics", request.SerializeToString(), PROTOBUF)

    assert response.status_code == 200
    answer = ExportMetricsServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_data_points == 1
    assert name in answer.partial_success.error_message
    assert "retention" in answer.partial_success.error_message
    stored = server.query(
        "SELECT p.time_unix_nano FROM metric_points p JOIN metric_series s ON s.id = p.series_id "
        "WHERE s.name = %s ORDER BY 1",
        (name,),
    )
    assert stored == [(now,), (now + 1,)]


# -- gRPC -----------------------------------------------------------------------------------------


def test_grpc_malformed_message_is_invalid_argument(server: RunningServer) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        grpc_export(server, b"\x0a\xff\xff\xff\xff\x0f not protobuf")

    error: grpc.Call = raised.value  # type: ignore[assignment]
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed protobuf" in (error.details() or "")


def test_grpc_message_over_4_mib_is_resource_exhausted(server: RunningServer) -> None:
    trace_id = os.urandom(16)
    request = traces(span(trace_id, name="x" * (GRPC_LIMIT + 1024)))

    with pytest.raises(grpc.RpcError) as raised:
        grpc_export(server, request.SerializeToString())

    error: grpc.Call = raised.value  # type: ignore[assignment]
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert spans_stored(server, trace_id) == []


def test_grpc_still_serves_after_bad_messages(server: RunningServer) -> None:
    trace_id = os.urandom(16)
    request = traces(span(trace_id), span(os.urandom(3)))

    answer = ExportTraceServiceResponse.FromString(grpc_export(server, request.SerializeToString()))

    assert answer.partial_success.rejected_spans == 1
    assert len(spans_stored(server, trace_id)) == 1


# -- what /metrics counts -------------------------------------------------------------------------


def test_refused_requests_are_counted_by_reason(server: RunningServer, gzip_bomb: bytes) -> None:
    before = refused_requests(server)
    good = traces(span()).SerializeToString()

    post(server, "/v1/traces", b"\x0a\xff\xff", PROTOBUF)  # malformed
    post(server, "/v1/traces", b"{", JSON)  # malformed
    post(server, "/v1/traces", good[:-3], GZIP_PROTOBUF)  # malformed (not gzip)
    post(server, "/v1/metrics", b"[]", JSON)  # malformed
    post(server, "/v1/traces", gzip_bomb, GZIP_PROTOBUF)  # too_large
    post(server, "/v1/traces", b"\x0a" * (LIMIT + 1), PROTOBUF)  # too_large
    post(server, "/v1/traces", good, {"content-type": "text/plain"})  # unsupported
    post(server, "/v1/traces", good, {**PROTOBUF, "content-encoding": "br"})  # unsupported
    post(server, "/v1/metrics", good, {"content-type": "text/plain"})  # unsupported
    with pytest.raises(grpc.RpcError):
        grpc_export(server, b"\x0a\xff\xff")  # malformed

    after = refused_requests(server)
    delta = {key: after[key] - before.get(key, 0.0) for key in after}
    assert {key: value for key, value in delta.items() if value} == {
        ("spans", "http", "malformed"): 3,
        ("points", "http", "malformed"): 1,
        ("spans", "http", "too_large"): 2,
        ("spans", "http", "unsupported"): 2,
        ("points", "http", "unsupported"): 1,
        ("spans", "grpc", "malformed"): 1,
    }
