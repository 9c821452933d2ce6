"""What the demo's traffic records, span by span: the apps' SDK spans with the spans real mesh
proxies send between them (Istio sidecars and ingress gateway, linkerd2-proxy), in the
shapes `meshlens/demo/envoy_spans.py` and `linkerd_spans.py` take from the proxies' sources.

The traffic runs in process (`demo_recording`; the proxies' own pipelines are tested against a
real HTTP server in `tests/meshlens/test_demo.py`).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from meshlens.demo.envoy_spans import IstioProxy
from meshlens.demo.linkerd_spans import LinkerdProxy
from tests.meshlens.unit.demo_recording import Recorded, record, span_id

ISTIO_APPS = {
    "frontend", "auth", "catalog", "inventory", "currency", "recommendations", "reviews",
    "cart", "checkout", "payments",
}  # fmt: skip
ENVOY_SPAN_KEYS = {
    "node_id", "zone", "guid:x-request-id", "http.url", "http.method", "downstream_cluster",
    "user_agent", "http.protocol", "peer.address", "request_size", "response_size",
    "component", "upstream_cluster", "upstream_cluster.name", "http.status_code",
    "response_flags", "istio.canonical_revision", "istio.canonical_service", "istio.mesh_id",
    "istio.namespace", "istio.cluster_id",
}  # fmt: skip
LINKERD_SPAN_KEYS = {
    "direction", "http.request.method", "url.scheme", "url.path", "url.full",
    "network.transport", "server.address", "server.port", "http.response.status_code",
    "user_agent.original",
}  # fmt: skip
NODE_ID = re.compile(
    r"^(sidecar|router)~10\.42\.\d+\.\d+~[a-z0-9-]+\.([a-z-]+)~\2\.svc\.cluster\.local$"
)


def _service(span: ReadableSpan) -> str:
    return str(span.resource.attributes["service.name"])


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _envoy(spans: Iterable[ReadableSpan]) -> list[ReadableSpan]:
    return [s for s in spans if s.resource.attributes.get("telemetry.sdk.name") == "envoy"]


def _linkerd(spans: Iterable[ReadableSpan]) -> list[ReadableSpan]:
    return [s for s in spans if _service(s) == "linkerd-proxy"]


def _without_ids(recorded: Recorded) -> list[tuple[Any, ...]]:
    return [
        (_service(s), s.name, s.kind, s.start_time, s.end_time, _attrs(s), s.status.status_code)
        for s in [*recorded.apps, *recorded.proxies]
    ]


def test_a_seed_repeats_the_traffic() -> None:
    first, again, other = record(7, 20), record.__wrapped__(7, 20), record(8, 20)
    assert len(first.apps) > 500
    assert len(first.proxies) > 500
    assert _without_ids(first) == _without_ids(again)
    assert _without_ids(first) != _without_ids(other)
    first_ids = {span_id(s) for s in first.proxies}
    assert not first_ids & {span_id(s) for s in again.proxies}  # a rerun is no resend


def test_every_istio_hop_is_the_six_span_chain() -> None:
    """caller CLIENT -> caller's sidecar outbound CLIENT -> callee's sidecar inbound SERVER ->
    callee SERVER (Envoy puts its own span id into the request it forwards)."""
    recorded = record(1)
    servers = [s for s in recorded.apps if s.kind is SpanKind.SERVER]
    assert {_service(s) for s in servers} >= ISTIO_APPS | {"shipping", "templates"}
    hops = 0
    for server in servers:
        if _service(server) not in ISTIO_APPS:
            continue
        inbound = recorded.parent(server)
        attributes = _attrs(inbound)
        assert inbound.kind is SpanKind.SERVER
        assert _service(inbound) == f"{_service(server)}.shop"
        assert attributes["istio.canonical_service"] == _service(server)
        assert (
            attributes["istio.canonical_revision"] == server.resource.attributes["service.version"]
        )
        assert attributes["upstream_cluster"] == "inbound|8080||"
        assert inbound.name == f"{_service(server)}.shop.svc.cluster.local:8080/*"
        outbound = recorded.parent(inbound)
        assert outbound.kind is SpanKind.CLIENT
        if _service(outbound) == "istio-ingressgateway.istio-system":
            assert _service(server) == "frontend"
            continue
        caller = recorded.parent(outbound)
        assert caller.kind is SpanKind.CLIENT
        assert _service(outbound) == f"{_service(caller)}.shop"
        cluster = _attrs(outbound)["upstream_cluster"]
        if _service(server) == "reviews":  # subsets of the canary's VirtualService
            version = server.resource.attributes["service.version"]
            assert cluster == f"outbound|8080|{version}|reviews.shop.svc.cluster.local"
            assert outbound.name == "reviews:8080/*"
        else:
            assert cluster == f"outbound|8080||{_service(server)}.shop.svc.cluster.local"
            assert outbound.name == f"{_service(server)}.shop.svc.cluster.local:8080/*"
        assert _attrs(outbound)["http.status_code"] == _attrs(inbound)["http.status_code"]
        assert _attrs(inbound)["http.status_code"] == str(
            _attrs(server)["http.response.status_code"]
        )
        assert caller.start_time < outbound.start_time < inbound.start_time < server.start_time
        assert server.end_time < inbound.end_time < outbound.end_time < caller.end_time
        hops += 1
    assert hops > 300


def test_envoy_spans_carry_envoys_tags_as_strings() -> None:
    recorded = record(1)
    envoy = _envoy(recorded.proxies)
    assert len(envoy) > 1000
    for span in envoy:
        attributes = _attrs(span)
        assert all(isinstance(value, str) for value in attributes.values()), attributes
        assert "http.route" not in attributes
        assert attributes["component"] == "proxy"
        assert attributes["response_flags"] in {"-", "UF", "UH"}
        status = int(attributes["http.status_code"])
        failed = status >= 500 or (status >= 400 and span.kind is SpanKind.CLIENT)
        assert (span.status.status_code is StatusCode.ERROR) is failed
        assert (attributes.get("error") == "true") is (status >= 500)
        assert attributes["istio.mesh_id"] == "cluster.local"
        assert span.instrumentation_scope is None
        assert set(span.resource.attributes) == {
            "service.name", "telemetry.sdk.language", "telemetry.sdk.name", "telemetry.sdk.version"
        }  # fmt: skip
        if span.name.startswith("router "):  # a gateway's upstream span: no listener tags
            assert "node_id" not in attributes
            continue
        assert ENVOY_SPAN_KEYS <= set(attributes) <= ENVOY_SPAN_KEYS | {"upstream_address", "error"}
        assert NODE_ID.match(attributes["node_id"]), attributes["node_id"]
        proxy = recorded.proxy_of[span_id(span)]
        assert isinstance(proxy, IstioProxy)
        assert attributes["node_id"].split("~")[2].startswith(proxy.pod)
    statuses = Counter(_attrs(s)["http.status_code"] for s in envoy)
    assert {"200", "500", "503"} <= set(statuses)


def test_the_gateway_sends_a_root_server_span_and_its_upstream_child() -> None:
    """Istio >= 1.28: the ingress gateway's SERVER span, then `router <cluster> egress`."""
    recorded = record(1)
    gateway = [s for s in recorded.proxies if _service(s) == "istio-ingressgateway.istio-system"]
    roots = [s for s in gateway if s.kind is SpanKind.SERVER]
    assert roots
    assert len(gateway) == 2 * len(roots)
    for root in roots:
        attributes = _attrs(root)
        assert root.parent is None
        assert attributes["node_id"].startswith("router~")
        assert attributes["http.url"].startswith("https://shop.example.com/api/")
        assert root.name == "frontend.shop.svc.cluster.local:8080/api*"
        assert attributes["istio.canonical_service"] == "istio-ingressgateway"
        (child,) = recorded.children(root)
        assert child.kind is SpanKind.CLIENT
        assert child.name == "router outbound|8080||frontend.shop.svc.cluster.local egress"
        (inbound,) = recorded.children(child)
        assert _service(inbound) == "frontend.shop"
        assert inbound.kind is SpanKind.SERVER


def test_a_call_the_sidecar_cannot_deliver_has_no_server_half() -> None:
    """UF / UH: the caller's sidecar answers 503 itself; nothing on the callee's side."""
    recorded = record(1, 120)
    failed = [s for s in _envoy(recorded.proxies) if _attrs(s)["response_flags"] != "-"]
    assert failed
    for span in failed:
        attributes = _attrs(span)
        assert span.kind is SpanKind.CLIENT
        assert (
            attributes["upstream_cluster"]
            == "outbound|8080||recommendations.shop.svc.cluster.local"
        )
        assert attributes["http.status_code"] == "503"
        assert attributes["error"] == "true"
        assert span.status.status_code is StatusCode.ERROR
        assert ("upstream_address" in attributes) is (attributes["response_flags"] == "UF")
        assert recorded.children(span) == []
        caller = recorded.parent(span)
        assert _attrs(caller)["http.response.status_code"] == 503
        assert caller.status.status_code is StatusCode.ERROR


def test_every_linkerd_hop_is_four_proxy_spans() -> None:
    """email -> templates: email's proxy outbound SERVER and CLIENT, templates' proxy inbound
    SERVER and CLIENT, between the apps' spans; status Unset, name = the path."""
    recorded = record(1, 120)
    renders = [s for s in recorded.apps if _service(s) == "templates" and s.kind is SpanKind.SERVER]
    assert renders
    for server in renders:
        chain = [recorded.parent(server)]
        while len(chain) < 5:
            chain.append(recorded.parent(chain[-1]))
        *proxies, caller = chain
        assert (_service(caller), caller.kind) == ("email", SpanKind.CLIENT)
        expected = [
            ("templates", "inbound", SpanKind.CLIENT),
            ("templates", "inbound", SpanKind.SERVER),
            ("email", "outbound", SpanKind.CLIENT),
            ("email", "outbound", SpanKind.SERVER),
        ]
        for span, (workload, direction, kind) in zip(proxies, expected, strict=True):
            attributes = _attrs(span)
            assert _service(span) == "linkerd-proxy"
            assert span.resource.attributes["linkerd.io/proxy-deployment"] == workload
            assert span.resource.attributes["app"] == workload
            assert isinstance(recorded.proxy_of[span_id(span)], LinkerdProxy)
            assert (attributes["direction"], span.kind) == (direction, kind)
            assert span.status.status_code is StatusCode.UNSET
            assert span.name == attributes["url.path"] == "/api/render"
            assert set(attributes) == LINKERD_SPAN_KEYS
            assert all(isinstance(value, str) for value in attributes.values())
            assert attributes["http.response.status_code"] == str(
                _attrs(server)["http.response.status_code"]
            )
            canonical = "templates.shop.svc.cluster.local"
            host = "templates" if (direction, kind) == ("outbound", SpanKind.SERVER) else canonical
            assert attributes["server.address"] == host
            assert attributes["server.port"] == "8080"
    assert len(_linkerd(recorded.proxies)) == 4 * len(renders)


def test_apps_keep_their_routes_and_proxies_have_none() -> None:
    recorded = record(1)
    for span in recorded.apps:
        if span.kind is SpanKind.SERVER:
            assert "http.route" in _attrs(span), span.name
    assert not [s for s in recorded.proxies if "http.route" in _attrs(s)]
