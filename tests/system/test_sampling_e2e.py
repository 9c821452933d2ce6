"""Sampled spans through the real OTLP/HTTP receiver, read back through the JSON API.

Two `meshlens serve` processes deriving fast, each on its own database: one as shipped (no
sampling percentage declared), one with `MESHLENS_SPAN_SAMPLING_PERCENT=10`.

- OpenTelemetry SDK spans sampled by the SDK's own consistent-probability sampler
  (opentelemetry-sdk 1.45, `opentelemetry/sdk/trace/_sampling_experimental`: ratio 0.5 writes
  `tracestate` `ot=th:8`): each counts 2 requests, and nothing is marked. Every service samples
  with the same ratio on the trace id's randomness, so the decisions agree along a trace (its
  `composable_parent_threshold` would not do: the 1.45 Tracer does not hand the parent's
  tracestate to the sampler, so children lose their threshold).
- Envoy spans as Istio's sidecars write them (`tests/collector/proxy_spans.py`: `component=proxy`,
  `upstream_cluster`, `http.status_code` as a string) record no probability: as shipped they
  count one each and are marked `rate_is_lower_bound`; with the percentage declared they count
  100 / 10 = 10 each and are not marked.
- Istio's destination-reported `istio_requests_total` for a service whose Envoy spans are also
  there: the service's requests and errors are the metrics', not marked.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace._sampling_experimental import (
    composable_traceid_ratio_based,
    composite_sampler,
)
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from harness.postgres import DatabaseFactory
from harness.waiting import wait_until
from tests.collector.proxy_spans import CLIENT, SERVER, envoy, outbound, send
from tests.metric_payloads import MetricSpec, Point, istio_labels, metrics_request
from tests.support import FAST_DERIVATION, RunningServer, running_server, unique_names

S, MS = 1_000_000_000, 1_000_000
NOT_MARKED_TRACES = {"source": "traces", "unknown_rate_share": 0.0, "rate_is_lower_bound": False}


@pytest.fixture(scope="module")
def shipped(
    databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    log = tmp_path_factory.mktemp("sampling") / "shipped.log"
    with running_server(databases.create(), log, **FAST_DERIVATION) as server:
        yield server


@pytest.fixture(scope="module")
def declared(
    databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    log = tmp_path_factory.mktemp("sampling") / "declared.log"
    env = {**FAST_DERIVATION, "MESHLENS_SPAN_SAMPLING_PERCENT": "10"}
    with running_server(databases.create(), log, **env) as server:
        yield server


def _api(server: RunningServer, path: str) -> Any:
    answer = httpx.get(f"{server.web}{path}", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _service(server: RunningServer, name: str) -> dict[str, Any] | None:
    services = _api(server, "/api/v1/services?window=15m")["services"]
    return next((s for s in services if s["name"] == name), None)


def _edge(server: RunningServer, source: str, target: str) -> dict[str, Any] | None:
    edges = _api(server, "/api/v1/graph?window=15m")["edges"]
    return next((e for e in edges if (e["source"], e["target"]) == (source, target)), None)


def _settled(read: Callable[[], dict[str, Any] | None], requests: int) -> dict[str, Any]:
    """The answer once it counts `requests`; two seconds (several deriver passes) later it must
    count them still."""
    wait_until(lambda: (read() or {}).get("requests") == requests, timeout=20,
               what=lambda: f"{requests} requests, have {read()}")  # fmt: skip
    time.sleep(2)
    found = read()
    assert found is not None
    assert found["requests"] == requests, found
    return found


# --- (a) SDK spans with an OpenTelemetry threshold -------------------------------------------


def _sampled_provider(server: RunningServer, name: str, kept: InMemorySpanExporter
                      ) -> TracerProvider:  # fmt: skip
    """An SDK pipeline sampling half the traces (`ot=th:8`), exporting to meshlens and
    remembering what it exported."""
    sampler = composite_sampler(composable_traceid_ratio_based(0.5))
    provider = TracerProvider(resource=Resource.create({"service.name": name}), sampler=sampler)
    exporter = OTLPSpanExporter(endpoint=f"{server.otlp_http}/v1/traces", timeout=10)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.add_span_processor(SimpleSpanProcessor(kept))
    return provider


def _traced_calls(server: RunningServer, frontend: str, backend: str, count: int
                  ) -> list[ReadableSpan]:  # fmt: skip
    """`count` requests into `frontend`, each calling `backend`; the spans the SDKs kept."""
    kept = InMemorySpanExporter()
    callers = _sampled_provider(server, frontend, kept)
    callees = _sampled_provider(server, backend, kept)
    tracer = callers.get_tracer("shop")
    for _ in range(count):
        with (
            tracer.start_as_current_span("GET /", kind=SpanKind.SERVER),
            tracer.start_as_current_span("GET", kind=SpanKind.CLIENT),
        ):
            headers: dict[str, str] = {}
            inject(headers)  # traceparent and tracestate, as over HTTP
            callees.get_tracer("shop").start_span(
                "GET /stock", context=extract(headers), kind=SpanKind.SERVER
            ).end()
    callers.shutdown()
    callees.shutdown()
    return list(kept.get_finished_spans())


def test_sdk_spans_with_a_threshold_count_their_adjusted_count(shipped: RunningServer) -> None:
    name = unique_names()
    frontend, backend = name("frontend"), name("backend")
    spans = _traced_calls(shipped, frontend, backend, 40)
    served = [s for s in spans if s.kind == SpanKind.SERVER and s.resource.attributes[
        "service.name"] == backend]  # fmt: skip
    assert 5 <= len(served) <= 35, len(served)  # half of 40 traces, give or take
    assert {str(s.context.trace_state.to_header()) for s in spans} == {"ot=th:8"}
    service = _settled(lambda: _service(shipped, backend), 2 * len(served))
    assert service["sampling"] == NOT_MARKED_TRACES
    edge = _settled(lambda: _edge(shipped, frontend, backend), 2 * len(served))
    assert edge["sampling"] == NOT_MARKED_TRACES
    assert edge["sources"] == ["traces"]


# --- (b), (c) Envoy spans: no probability recorded ------------------------------------------


def _envoy_calls(server: RunningServer, caller: str, callee: str, count: int) -> None:
    """`count` requests caller -> callee as their Istio sidecars trace them (the caller's
    outbound CLIENT span, the callee's inbound SERVER span), one in ten answered 503."""
    now = time.time_ns()
    specs = []
    for n in range(count):
        trace, client, server_span = os.urandom(16), os.urandom(8), os.urandom(8)
        status = "503" if n % 10 == 0 else "200"
        at = now + n * MS
        specs += [
            envoy(caller, CLIENT, (trace, client, b""), outbound(callee), start=at,
                  duration_ns=12 * MS, status=status),
            envoy(callee, SERVER, (trace, server_span, client), "inbound|8080||", start=at + MS,
                  duration_ns=10 * MS, status=status),
        ]  # fmt: skip
    send(server, specs)


def test_envoy_spans_without_a_rate_are_marked_lower_bounds(shipped: RunningServer) -> None:
    name = unique_names()
    web, shop = name("web"), name("shop")
    _envoy_calls(shipped, web, shop, 20)
    service = _settled(lambda: _service(shipped, shop), 20)
    assert service["errors"] == 2
    assert service["sampling"] == {
        "source": "traces",
        "unknown_rate_share": 1.0,
        "rate_is_lower_bound": True,
    }
    edge = _settled(lambda: _edge(shipped, web, shop), 20)
    assert edge["sampling"]["rate_is_lower_bound"] is True
    detail = _api(shipped, f"/api/v1/services/{shop}?window=15m")
    assert [(v["version"], v["sampling"]["rate_is_lower_bound"]) for v in detail["versions"]] == [
        ("v1", True)  # Istio's canonical revision
    ]


def test_envoy_spans_with_a_declared_percentage_count_it(declared: RunningServer) -> None:
    name = unique_names()
    web, shop = name("web"), name("shop")
    _envoy_calls(declared, web, shop, 20)
    service = _settled(lambda: _service(declared, shop), 200)  # 100 / 10 each
    assert service["errors"] == 20
    assert service["sampling"] == NOT_MARKED_TRACES
    edge = _settled(lambda: _edge(declared, web, shop), 200)
    assert edge["sampling"] == NOT_MARKED_TRACES


# --- (d) Istio mesh metrics for the same service ---------------------------------------------


def test_mesh_metrics_give_the_service_its_rate_and_errors(shipped: RunningServer) -> None:
    name = unique_names()
    web, shop = name("web"), name("shop")
    _envoy_calls(shipped, web, shop, 20)  # 20 sampled spans of unknown rate
    _settled(lambda: _service(shipped, shop), 20)
    at = time.time_ns() - 30 * S
    started = at - 20 * S  # a new series started 20 s before: counted whole
    ok, failed = istio_labels(web, shop), istio_labels(web, shop, response_code="503")
    request = metrics_request(
        {"service.name": "istio-proxies", "service.instance.id": f"{shop}:15090"},
        [MetricSpec("istio_requests_total", "sum",
                    [Point(ok, at, started, 430), Point(failed, at, started, 17)])],
    )  # fmt: skip
    answer = httpx.post(
        f"{shipped.otlp_http}/v1/metrics",
        content=request.SerializeToString(),
        headers={"content-type": "application/x-protobuf"},
    )
    assert answer.status_code == 200, answer.text
    service = _settled(lambda: _service(shipped, shop), 447)
    assert (service["errors"], service["mtls"]["mutual"]) == (17, 447)
    assert service["sampling"] == {
        "source": "mesh-metrics",
        "unknown_rate_share": 0.0,
        "rate_is_lower_bound": False,
    }
    assert service["latency_ms"]["p50"] == pytest.approx(10, rel=0.02)  # its spans': 10 ms
    edge = _settled(lambda: _edge(shipped, web, shop), 447)
    assert (edge["sources"], edge["sampling"]["source"]) == (["mesh-metrics", "traces"],
                                                             "mesh-metrics")  # fmt: skip
    detail = _api(shipped, f"/api/v1/services/{shop}?window=15m")
    assert (detail["requests"], detail["errors"]) == (447, 17)
    (version,) = detail["versions"]  # from the spans: mesh metrics keep no version
    assert (version["requests"], version["share"]) == (20, 1.0)
    assert version["sampling"]["rate_is_lower_bound"] is True
