"""The ingest benchmark's proxy-shaped workload (`bench/proxy_traces.py`): what it sends is what
mesh proxies send beside SDK apps, each emitter on its own, and its traces stay whole although
they are spread over several requests (`LoadGenerator` sends the set with one prefix a round).
"""

from __future__ import annotations

import time
from collections import Counter
from functools import cache

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from bench.loadgen import LoadGenerator, LoadStats
from bench.templates import TOKEN_LENGTH, TemplateSet, build_workload, id_prefix

SPANS_PER_REQUEST = 200
GATEWAY = "istio-ingressgateway.istio-system"


@cache
def workload() -> TemplateSet:
    return build_workload("proxy", SPANS_PER_REQUEST, seed=7)


def _resource(request: ExportTraceServiceRequest) -> dict[str, str]:
    (resource_spans,) = request.resource_spans  # one emitter per request
    return {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}


def _decoded(prefix: bytes) -> list[tuple[dict[str, str], Span]]:
    """Every span of the set sent with `prefix`, with its emitter's resource."""
    set_ = workload()
    spans = []
    for template in set_.templates:
        request = ExportTraceServiceRequest.FromString(template.body.replace(set_.token, prefix))
        resource = _resource(request)
        spans += [
            (resource, span) for ss in request.resource_spans[0].scope_spans for span in ss.spans
        ]
    return spans


def _emitter(resource: dict[str, str]) -> str:
    if resource.get("telemetry.sdk.name") == "envoy":
        return "envoy"
    return "linkerd" if resource["service.name"] == "linkerd-proxy" else "app"


def test_each_request_holds_one_emitters_spans() -> None:
    set_ = workload()
    assert set_.grouped
    assert len(set_.templates) > 8
    emitters = Counter()
    for template in set_.templates:
        assert 0 < template.spans <= SPANS_PER_REQUEST
        emitters[_emitter(_resource(ExportTraceServiceRequest.FromString(template.body)))] += 1
    assert set(emitters) == {"envoy", "linkerd", "app"}


def test_the_set_sent_with_one_prefix_holds_whole_traces() -> None:
    spans = _decoded(id_prefix(3))
    assert len(spans) == workload().spans
    ids = {(span.trace_id, span.span_id) for _, span in spans}
    roots = Counter()
    for resource, span in spans:
        assert span.trace_id[:TOKEN_LENGTH] == id_prefix(3)
        if span.parent_span_id:
            assert (span.trace_id, span.parent_span_id) in ids, span.name
        else:
            roots[(resource["service.name"], span.kind)] += 1
    # Istio traces start at the gateway, Linkerd traces at users' app (its proxy saw no context)
    assert set(roots) == {(GATEWAY, Span.SPAN_KIND_SERVER), ("users", Span.SPAN_KIND_SERVER)}
    assert sum(roots.values()) == workload().traces


def test_proxies_send_their_own_shapes_and_no_route() -> None:
    spans = _decoded(id_prefix(1))
    kinds = Counter()
    for resource, span in spans:
        attributes = {kv.key: kv.value for kv in span.attributes}
        emitter = _emitter(resource)
        kinds[emitter] += 1
        if emitter == "app":
            if span.kind == Span.SPAN_KIND_SERVER:
                assert "http.route" in attributes
            continue
        assert "http.route" not in attributes
        assert all(value.HasField("string_value") for value in attributes.values())
        if emitter == "linkerd":
            assert attributes["direction"].string_value in {"inbound", "outbound"}
            assert span.status.code == 0  # Unset, always
            assert span.name == attributes["url.path"].string_value
        else:
            assert attributes["component"].string_value == "proxy"
            assert attributes["upstream_cluster"].string_value.startswith(("outbound|", "inbound|"))
    assert kinds["envoy"] > kinds["linkerd"] > 0
    assert kinds["app"] > 0


def test_a_grouped_set_is_sent_with_one_prefix_per_round() -> None:
    set_ = workload()
    stats = LoadStats(SPANS_PER_REQUEST, time.perf_counter(), 1)
    generator = LoadGenerator(set_.token, set_.templates, 9, stats, grouped=True)
    rounds = [[generator.next_send() for _ in set_.templates] for _ in range(2)]
    for sends in rounds:
        assert [template for template, _, _ in sends] == set_.templates
        assert len({prefix for _, _, prefix in sends}) == 1
    assert rounds[0][0][2] != rounds[1][0][2]
    ungrouped = LoadGenerator(set_.token, set_.templates, 9, stats)
    prefixes = [ungrouped.next_send()[2] for _ in range(5)]
    assert len(set(prefixes)) == 5  # the sdk workload: every send a prefix of its own
