"""The OTLP receivers of a real `meshlens serve`, fuzzed: random bodies, content types and
encodings over HTTP (and the protobuf ones over gRPC) get a documented answer, never a 5xx
or a dropped connection, and the server keeps storing and deriving afterwards.

Also the items the decoder fuzz tests found PostgreSQL could not hold (open-enum values past
a smallint, uint64 counts past a bigint): each is rejected alone, the rest of its request is
stored.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import httpx
import pytest
from google.rpc.status_pb2 import Status
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from harness.waiting import wait_until
from tests.otlp_mutations import mutated, mutated_json, otlp_json
from tests.otlp_payloads import SpanSpec, new_ids, spans_request
from tests.otlp_strategies import fuzz, metrics_requests, mostly, trace_requests
from tests.support import RunningServer, metric_total

NOW = time.time_ns()  # item times are drawn around it: well inside the accepted window
PATHS = {"/v1/traces": "traces", "/v1/metrics": "metrics"}
GRPC_METHODS = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
}
CONTENT_TYPES = (
    "application/x-protobuf", "application/json", "application/protobuf",
    "application/json; charset=utf-8", "Application/X-Protobuf", "text/plain", "", "*/*",
    "application/x-protobuf; proto=opentelemetry.proto.collector.trace.v1", ";;;", "\u00e9",
)  # fmt: skip
ENCODINGS = ("", "identity", "gzip", "x-gzip", "GZIP", "br", "gzip, gzip", "\u00e9")
DOCUMENTED = {200, 400, 404, 405, 413, 415}
"""HTTP answers of the OTLP port to a request that is not an overload (429, 503)."""
ANSWERS = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}
PROTOBUF = {"content-type": "application/x-protobuf"}


@dataclass(frozen=True)
class FuzzedRequest:
    method: str
    path: str
    signal: str  # of the body: traces or metrics
    body: bytes
    headers: dict[str, str]


@st.composite
def bodies(draw: st.DrawFn, signal: str) -> tuple[bytes, bool]:
    """A body of `signal` (mostly valid, else mutated or random bytes), and whether it is JSON."""
    message = draw(trace_requests(NOW) if signal == "traces" else metrics_requests(NOW))
    as_json = draw(st.booleans())
    if as_json:
        valid = otlp_json(message)
        return draw(mostly(st.just(_json_bytes(valid)), mutated_json(valid))), True
    serialized = message.SerializeToString()
    odd = mutated(serialized) | st.binary(max_size=64)
    return draw(mostly(st.just(serialized), odd)), False


def _json_bytes(document: object) -> bytes:
    return json.dumps(document).encode()


@st.composite
def requests(draw: st.DrawFn) -> FuzzedRequest:
    path = draw(mostly(st.sampled_from(list(PATHS)), st.sampled_from(["/v1/logs", "/", "/v1/x"])))
    signal = PATHS.get(path) or "traces"
    body, as_json = draw(bodies(signal))
    matching = "application/json" if as_json else "application/x-protobuf"
    headers = {"content-type": draw(mostly(st.just(matching), st.sampled_from(CONTENT_TYPES)))}
    encoding = draw(mostly(st.sampled_from(["", "gzip"]), st.sampled_from(ENCODINGS)))
    if encoding:
        headers["content-encoding"] = encoding
    if encoding.strip().lower() in ("gzip", "x-gzip") and draw(st.integers(0, 4)):
        body = gzip.compress(body)  # mostly well-formed gzip; else the plain body, corrupt
    method = draw(mostly(st.just("POST"), st.sampled_from(["PUT", "GET", "DELETE"])))
    return FuzzedRequest(method, path, signal, body, headers)


@pytest.fixture(scope="module")
def grpc_channel(server: RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(server.grpc_endpoint) as channel:
        yield channel


def test_fuzzed_requests_get_documented_answers(
    server: RunningServer, grpc_channel: grpc.Channel
) -> None:
    answered: dict[int, int] = {}
    with httpx.Client(base_url=server.otlp_http, timeout=30) as client:

        @fuzz(150)
        @given(request=requests())
        def send(request: FuzzedRequest) -> None:
            headers = {key: value.encode() for key, value in request.headers.items()}
            response = client.request(
                request.method, request.path, content=request.body, headers=headers
            )  # a dropped connection raises here
            assert response.status_code in DOCUMENTED, (response.status_code, response.text)
            answered[response.status_code] = answered.get(response.status_code, 0) + 1
            if response.status_code in (200, 400):
                _check_body(response, request.signal)
            if "json" not in request.headers["content-type"] and request.path in PATHS:
                code = _grpc_answer(grpc_channel, request.signal, request.body)
                assert code in ANSWERS, code

        send()

    assert answered.get(200), answered  # the fuzz reached the decoder: some bodies were stored
    assert answered.get(400), answered  # and some refused
    assert_still_serving(server)


def _check_body(response: httpx.Response, signal: str) -> None:
    """200: the Export*ServiceResponse; 400: a google.rpc.Status; in the request's encoding."""
    as_json = response.headers["content-type"] == "application/json"
    if as_json:
        assert isinstance(response.json(), dict)
    elif response.status_code == 400:
        assert Status.FromString(response.content).code == 3  # INVALID_ARGUMENT
    elif signal == "traces":
        ExportTraceServiceResponse.FromString(response.content)
    else:
        ExportMetricsServiceResponse.FromString(response.content)


def _grpc_answer(channel: grpc.Channel, signal: str, body: bytes) -> grpc.StatusCode:
    """The status code of the same body sent as a raw gRPC Export call."""
    export: Callable[..., bytes] = channel.unary_unary(
        GRPC_METHODS[signal], request_serializer=lambda raw: raw, response_deserializer=bytes
    )
    try:
        export(body, timeout=30)
    except grpc.RpcError as error:
        code: grpc.StatusCode = error.code()  # type: ignore[attr-defined]
        return code
    return grpc.StatusCode.OK


def assert_still_serving(server: RunningServer) -> None:
    """Alive, nothing logged as a crash, every writer connected, and a request pair sent now
    is stored and derived into an edge (the derivation loop survived what was stored)."""
    assert server.process.poll() is None
    assert "Traceback" not in server.log()
    assert metric_total(server, "meshlens_ingest_healthy_writers") == 2
    trace_id, client_id = new_ids()
    caller, callee = f"fuzz-caller-{os.urandom(3).hex()}", f"fuzz-callee-{os.urandom(3).hex()}"
    pair = spans_request(
        [
            SpanSpec(caller, 3, trace_id, client_id),
            SpanSpec(callee, 2, trace_id, os.urandom(8), parent_span_id=client_id),
        ]
    )
    response = post(server, "/v1/traces", pair.SerializeToString())
    assert response.status_code == 200
    assert len(spans_stored(server, trace_id)) == 2

    def derived() -> bool:
        edges = httpx.get(server.web + "/api/v1/graph", params={"window": "1h"}).json()["edges"]
        return any(e["source"] == caller and e["target"] == callee for e in edges)

    def the_edge() -> str:
        passes = metric_total(server, "meshlens_derive_run_seconds_count")  # growing: alive
        return (
            f"the edge {caller} -> {callee} ({passes:g} derivation passes so far):\n{server.log()}"
        )

    wait_until(derived, timeout=60, what=the_edge, every=0.5)


def post(server: RunningServer, path: str, body: bytes) -> httpx.Response:
    return httpx.post(server.otlp_http + path, content=body, headers=PROTOBUF, timeout=30)


def spans_stored(server: RunningServer, trace_id: bytes) -> list[bytes]:
    query = "SELECT span_id FROM spans WHERE trace_id = %s ORDER BY span_id"
    return [span_id for (span_id,) in server.query(query, (trace_id,))]


# --- what PostgreSQL cannot hold is rejected alone -----------------------------------------------


def test_spans_with_unknown_enum_values_are_rejected_alone(server: RunningServer) -> None:
    trace_id, good = os.urandom(16), os.urandom(8)
    request = spans_request(
        [
            SpanSpec("fuzz-enums", 2, trace_id, good),
            SpanSpec("fuzz-enums", 40000, trace_id, os.urandom(8)),
            SpanSpec("fuzz-enums", 2, trace_id, os.urandom(8), status_code=70000),
        ]
    )

    response = post(server, "/v1/traces", request.SerializeToString())

    assert response.status_code == 200, response.content
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 2
    assert "kind must be 0 to 5" in answer.partial_success.error_message
    assert "status.code must be 0 to 2" in answer.partial_success.error_message
    assert spans_stored(server, trace_id) == [good]


def test_points_the_database_cannot_hold_are_rejected_alone(server: RunningServer) -> None:
    name = f"fuzz.gauge.{os.urandom(4).hex()}"
    now = time.time_ns()
    request = ExportMetricsServiceRequest()
    metrics = request.resource_metrics.add().scope_metrics.add().metrics
    metrics.add(name=name).gauge.data_points.add(time_unix_nano=now, as_double=0.5)
    metrics.add(name=f"{name}.hist").histogram.data_points.add(time_unix_nano=now, count=2**64 - 1)
    odd = metrics.add(name=f"{name}.sum").sum
    odd.aggregation_temporality = 40000  # type: ignore[assignment]
    odd.data_points.add(time_unix_nano=now, as_int=1)

    response = post(server, "/v1/metrics", request.SerializeToString())

    assert response.status_code == 200, response.content
    answer = ExportMetricsServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_data_points == 2
    assert "counts must be at most" in answer.partial_success.error_message
    assert "aggregation_temporality must be 0 to 2" in answer.partial_success.error_message
    stored = server.query(
        "SELECT s.name FROM metric_points p JOIN metric_series s ON s.id = p.series_id "
        "WHERE s.name LIKE %s",
        (f"{name}%",),
    )
    assert stored == [(name,)]
