"""What the demo's proxies count in their metrics, request by request, and how their scrapes
look: the label sets Istio's stats filter and linkerd2-proxy write (`meshlens/demo/
istio_metrics.py`, `linkerd_metrics.py` cite the sources), one count per request each proxy
handled (the same requests, times and durations as the proxies' spans), and the cumulative
OTLP points a Collector's `prometheus` receiver would send (`proxy_metrics.py`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

from meshlens.demo.envoy_spans import IstioProxy
from meshlens.demo.linkerd_spans import LinkerdProxy
from meshlens.demo.pods import Proxy, gateway_proxy, proxy_of, scrape_target
from meshlens.demo.prometheus_scrape import RequestSeries
from meshlens.demo.proxy_metrics import INTERVAL_NS, ProxyMetrics
from meshlens.demo.topology import shop
from tests.meshlens.unit.demo_recording import START, Count, Recorded, record, span_id

S = 1_000_000_000
MS = 1_000_000
ISTIO_COUNTER, ISTIO_HISTOGRAM = "istio_requests_total", "istio_request_duration_milliseconds"


def _labels(series: RequestSeries, name: str) -> dict[str, str]:
    (labels,) = [
        dict(ls) for family, ls in (*series.counters, *series.histograms) if family.name == name
    ]
    return labels


def _status_of_span(span: ReadableSpan) -> str:
    attributes = dict(span.attributes or {})
    return str(attributes.get("http.status_code") or attributes["http.response.status_code"])


def _counting_spans(recorded: Recorded) -> list[ReadableSpan]:
    """The proxy spans whose proxy counts the request in its metrics: each Istio proxy's
    outermost span of it (a gateway's root, not its `router` child), Linkerd's outbound CLIENT
    (the endpoint stack) and inbound SERVER spans."""
    chosen = []
    for span in recorded.proxies:
        attributes = dict(span.attributes or {})
        if isinstance(recorded.proxy_of[span_id(span)], IstioProxy):
            if not span.name.startswith("router "):
                chosen.append(span)
        elif (attributes["direction"], span.kind) in (
            ("outbound", SpanKind.CLIENT),
            ("inbound", SpanKind.SERVER),
        ):
            chosen.append(span)
    return chosen


def _kind(count: Count) -> str:
    if isinstance(count.proxy, IstioProxy):
        return _labels(count.series, ISTIO_COUNTER)["reporter"]
    return _labels(count.series, "request_total")["direction"]


def _status(count: Count) -> str:
    if isinstance(count.proxy, IstioProxy):
        return _labels(count.series, ISTIO_COUNTER)["response_code"]
    return _labels(count.series, "response_total")["status_code"]


def test_each_proxy_counts_each_request_it_handled_once_when_its_span_ends() -> None:
    recorded = record(1, 120)
    expected = Counter()
    for span in _counting_spans(recorded):
        assert span.end_time is not None
        assert span.start_time is not None
        proxy = recorded.proxy_of[span_id(span)]
        if isinstance(proxy, IstioProxy):
            kind = "destination" if span.kind is SpanKind.SERVER and not proxy.router else "source"
        else:
            kind = str(dict(span.attributes or {})["direction"])
        duration = span.end_time - span.start_time
        expected[(proxy, kind, span.end_time, duration, _status_of_span(span))] += 1
    counted = Counter(
        (c.proxy, _kind(c), c.end_ns, c.duration_ns, _status(c)) for c in recorded.counted
    )
    assert len(recorded.counted) > 2000
    assert counted == expected
    kinds = Counter((type(c.proxy).__name__, _kind(c)) for c in recorded.counted)
    assert set(kinds) == {
        ("IstioProxy", "source"),
        ("IstioProxy", "destination"),
        ("LinkerdProxy", "outbound"),
        ("LinkerdProxy", "inbound"),
    }
    assert kinds[("LinkerdProxy", "outbound")] == kinds[("LinkerdProxy", "inbound")]


def _istio_counts(recorded: Recorded, **match: str) -> list[dict[str, str]]:
    found = []
    for count in recorded.counted:
        if isinstance(count.proxy, IstioProxy):
            labels = _labels(count.series, ISTIO_COUNTER)
            assert labels == _labels(count.series, ISTIO_HISTOGRAM)  # one label set for both
            if all(labels.get(key) == value for key, value in match.items()):
                found.append(labels)
    return found


def test_a_destination_sidecar_names_both_ends_as_istios_stats_filter_does() -> None:
    labels = _istio_counts(
        record(1, 120),
        reporter="destination",
        source_workload="frontend",
        destination_workload="reviews-v2",
        response_code="200",
    )[0]
    assert list(labels.items()) == [  # in the stats filter's order; no empty grpc status
        ("reporter", "destination"),
        ("source_workload", "frontend"),
        ("source_canonical_service", "frontend"),
        ("source_canonical_revision", "2.14.1"),
        ("source_workload_namespace", "shop"),
        ("source_principal", "spiffe://cluster.local/ns/shop/sa/frontend"),
        ("source_app", "frontend"),
        ("source_version", "2.14.1"),
        ("source_cluster", "Kubernetes"),
        ("destination_workload", "reviews-v2"),
        ("destination_workload_namespace", "shop"),
        ("destination_principal", "spiffe://cluster.local/ns/shop/sa/reviews"),
        ("destination_app", "reviews"),
        ("destination_version", "v2"),
        ("destination_service", "reviews.shop.svc.cluster.local"),
        ("destination_canonical_service", "reviews"),
        ("destination_canonical_revision", "v2"),
        ("destination_service_name", "reviews"),
        ("destination_service_namespace", "shop"),
        ("destination_cluster", "Kubernetes"),
        ("request_protocol", "http"),
        ("response_code", "200"),
        ("response_flags", "-"),
        ("connection_security_policy", "mutual_tls"),
    ]


def test_source_reporters_know_what_the_destination_told_them() -> None:
    recorded = record(1, 120)
    every = _istio_counts(recorded)
    assert all(value for labels in every for value in labels.values())
    sources = _istio_counts(recorded, reporter="source")
    assert {labels["connection_security_policy"] for labels in sources} == {"unknown"}
    # the gateway: reporter source, its own pod has no version label
    (gateway, *_) = _istio_counts(
        recorded, reporter="source", source_workload="istio-ingressgateway"
    )
    assert gateway["destination_workload"] == "frontend"
    assert gateway["source_workload_namespace"] == "istio-system"
    assert "source_version" not in gateway
    assert gateway["destination_principal"] == "spiffe://cluster.local/ns/shop/sa/frontend"
    # shipping has no sidecar: the endpoint's metadata names it, no certificate, no destination
    to_shipping = _istio_counts(
        recorded, source_workload="checkout", destination_service_name="shipping"
    )
    assert to_shipping
    assert {labels["reporter"] for labels in to_shipping} == {"source"}
    shipping = to_shipping[0]
    assert (shipping["destination_workload"], shipping["destination_canonical_service"]) == (
        "shipping",
        "shipping",
    )
    assert shipping["destination_canonical_revision"] == "0.9.8"
    for key in ("destination_principal", "source_principal", "destination_app"):
        assert shipping[key] == "unknown", key
    # calls that never reached recommendations: UF names the endpoint's workload, UH nothing
    failed = {
        labels["response_flags"]: labels for labels in _istio_counts(recorded, response_code="503")
    }
    assert set(failed) >= {"UF", "UH"}
    assert failed["UF"]["destination_workload"] == "recommendations"
    assert failed["UH"]["destination_workload"] == "unknown"
    assert failed["UH"]["destination_canonical_service"] == "unknown"
    assert failed["UH"]["destination_canonical_revision"] == "latest"
    for labels in failed.values():
        assert labels["reporter"] == "source"
        assert labels["destination_service"] == "recommendations.shop.svc.cluster.local"
        assert labels["source_principal"] == labels["destination_principal"] == "unknown"


def _linkerd_labels(recorded: Recorded, name: str, direction: str) -> dict[str, str]:
    for count in recorded.counted:
        if isinstance(count.proxy, LinkerdProxy):
            labels = _labels(count.series, name)
            if labels["direction"] == direction and labels.get("status_code", "200") == "200":
                return labels
    raise AssertionError(f"no {direction} {name}")


def test_linkerd_proxies_label_both_directions_as_linkerd2_proxy_does() -> None:
    recorded = record(1, 120)
    outbound = _linkerd_labels(recorded, "response_total", "outbound")
    address = outbound["target_addr"]
    templates = proxy_of(shop().services["templates"], shop().services["templates"].versions[0])
    assert isinstance(templates, LinkerdProxy)
    assert list(outbound.items()) == [
        ("direction", "outbound"),
        ("authority", "templates.shop.svc.cluster.local:8080"),
        ("target_addr", address),
        ("target_ip", address.rpartition(":")[0]),
        ("target_port", "8080"),
        ("tls", "true"),
        ("server_id", "templates.shop.serviceaccount.identity.linkerd.cluster.local"),
        ("dst_control_plane_ns", "linkerd"),
        ("dst_deployment", "templates"),
        ("dst_namespace", "shop"),
        ("dst_pod", templates.pod),
        ("dst_pod_template_hash", templates.pod_template_hash),
        ("dst_service", "templates"),
        ("dst_serviceaccount", "templates"),
        ("status_code", "200"),
        ("classification", "success"),
    ]
    inbound = _linkerd_labels(recorded, "response_total", "inbound")
    assert list(inbound.items()) == [
        ("direction", "inbound"),
        ("target_addr", address),
        ("target_ip", address.rpartition(":")[0]),
        ("target_port", "8080"),
        ("tls", "true"),
        ("client_id", "email.shop.serviceaccount.identity.linkerd.cluster.local"),
        ("srv_kind", "default"),
        ("srv_name", "all-unauthenticated"),
        ("srv_port", "8080"),
        ("route_kind", "default"),
        ("route_name", "default"),
        ("authz_kind", "default"),
        ("authz_name", "all-unauthenticated"),
        ("status_code", "200"),
        ("classification", "success"),
    ]
    request_total = _linkerd_labels(recorded, "request_total", "outbound")
    assert request_total == {
        k: v for k, v in outbound.items() if k not in ("status_code", "classification")
    }
    failures = [
        _labels(c.series, "response_total")
        for c in recorded.counted
        if isinstance(c.proxy, LinkerdProxy) and _status(c) == "500"
    ]
    assert failures
    assert {labels["classification"] for labels in failures} == {"failure"}


# --- scrapes ------------------------------------------------------------------------------


def _two_proxies() -> tuple[IstioProxy, LinkerdProxy]:
    mesh = shop()
    frontend = mesh.services["frontend"]
    email = mesh.services["email"]
    sidecar, linkerd = proxy_of(frontend, frontend.versions[0]), proxy_of(email, email.versions[0])
    assert isinstance(sidecar, IstioProxy)
    assert isinstance(linkerd, LinkerdProxy)
    return sidecar, linkerd


def _series(recorded: Recorded, proxy: Proxy) -> RequestSeries:
    return next(c.series for c in recorded.counted if c.proxy == proxy and _status(c) == "200")


def _points(request: Any) -> dict[tuple[str, str, tuple[tuple[str, str], ...]], list[Any]]:
    """Per (instance, metric, attributes): the points of an export request, in order."""
    found: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[Any]] = {}
    for resource_metrics in request.resource_metrics:
        resource = {kv.key: kv.value.string_value for kv in resource_metrics.resource.attributes}
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                data = metric.sum if metric.HasField("sum") else metric.histogram
                for point in data.data_points:
                    attributes = tuple((kv.key, kv.value.string_value) for kv in point.attributes)
                    key = (resource["service.instance.id"], metric.name, attributes)
                    found.setdefault(key, []).append(point)
    return found


def test_scrapes_are_cumulative_rounds_each_target_at_its_own_offset() -> None:
    recorded = record(1, 20)
    sidecar, linkerd = _two_proxies()
    started = START - 60 * S
    metrics = ProxyMetrics({p: scrape_target(p) for p in (sidecar, linkerd)}, started)
    istio, email = _series(recorded, sidecar), _series(recorded, linkerd)
    # offsets are at least a second into a round: these fall before the scrapes of their round
    metrics.count(sidecar, istio, started + S // 2, 12 * MS)
    metrics.count(sidecar, istio, started + 30 * S + S // 2, 30 * MS)  # in the third round
    metrics.count(linkerd, email, started + 15 * S + S // 2, 7 * MS)  # in the second
    rounds = [encode_metrics(data) for data in metrics.scrape_rounds(started + 45 * S)]
    assert list(metrics.scrape_rounds(started + 45 * S)) == []  # each round once
    assert len(rounds) == 3
    times: dict[str, set[int]] = {}
    values: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[float]] = {}
    for n, request in enumerate(rounds):
        for (instance, name, attributes), points in _points(request).items():
            (point,) = points  # a target once per round
            assert point.start_time_unix_nano == started
            assert started + n * INTERVAL_NS + S <= point.time_unix_nano
            assert point.time_unix_nano < started + (n + 1) * INTERVAL_NS
            times.setdefault(instance, set()).add(point.time_unix_nano)
            value = point.as_double if name.endswith("_total") else point.count
            values.setdefault((instance, name, attributes), []).append(value)
            assert all(value for _, value in attributes)  # no empty label
    # the sidecar's round offset is its own, the same every round
    sidecar_times = sorted(times[scrape_target(sidecar).address])
    assert sidecar_times[1] - sidecar_times[0] == sidecar_times[2] - sidecar_times[1] == INTERVAL_NS
    counters = {key: v for key, v in values.items() if key[1] == ISTIO_COUNTER}
    assert list(counters.values()) == [[1.0, 1.0, 2.0]]  # cumulative: the 40 s request last
    (linkerd_requests,) = [v for key, v in values.items() if key[1] == "request_total"]
    assert linkerd_requests == [1.0, 1.0]  # no series before its first request
    metrics.count(linkerd, email, started + 46 * S, 3 * MS)  # after every scrape so far
    final = _points(encode_metrics(metrics.final_scrape(started + 45 * S)))
    latest = max(p.time_unix_nano for points in final.values() for p in points)
    assert latest >= started + 46 * S
    email_requests = [
        p.as_double for k, points in final.items() if k[1] == "request_total" for p in points
    ]
    assert email_requests == [2.0]


def test_a_scrape_is_what_a_collectors_prometheus_receiver_sends() -> None:
    recorded = record(1, 20)
    gateway = gateway_proxy(shop().gateway)  # type: ignore[arg-type]
    metrics = ProxyMetrics({gateway: scrape_target(gateway)}, START)
    series = _series(recorded, gateway)
    metrics.count(gateway, series, START + 2 * S, 48 * MS)
    metrics.count(gateway, series, START + 3 * S, 7 * MS)
    request = encode_metrics(metrics.final_scrape(START + 4 * S))
    (resource_metrics,) = request.resource_metrics
    resource = {kv.key: kv.value.string_value for kv in resource_metrics.resource.attributes}
    target = scrape_target(gateway)
    assert resource == {
        "service.name": "kubernetes-pods",
        "server.address": gateway.ip,
        "service.instance.id": f"{gateway.ip}:15020",
        "server.port": "15020",
        "url.scheme": "http",
        "k8s.pod.name": gateway.pod,
        "k8s.namespace.name": "istio-system",
        "k8s.replicaset.name": target.replicaset,
    }
    (scope,) = resource_metrics.scope_metrics
    assert scope.scope.name.endswith("/receiver/prometheusreceiver")
    counter, histogram = scope.metrics
    assert (counter.name, histogram.name) == (ISTIO_COUNTER, ISTIO_HISTOGRAM)
    assert counter.sum.is_monotonic
    assert counter.sum.aggregation_temporality == 2
    (count,) = counter.sum.data_points
    assert count.as_double == 2.0
    attributes = {kv.key: kv.value.string_value for kv in count.attributes}
    assert attributes["pod"] == gateway.pod
    assert attributes["namespace"] == "istio-system"
    assert attributes["app"] == "istio-ingressgateway"
    assert histogram.histogram.aggregation_temporality == 2
    (latency,) = histogram.histogram.data_points
    assert list(latency.explicit_bounds)[:6] == [0.5, 1, 5, 10, 25, 50]
    assert len(latency.bucket_counts) == len(latency.explicit_bounds) + 1
    assert latency.count == sum(latency.bucket_counts) == 2
    assert latency.sum == 48 + 7  # whole milliseconds
    assert latency.bucket_counts[3] == 1
    assert latency.bucket_counts[5] == 1
    assert not latency.HasField("min")
    assert not latency.HasField("max")


def test_each_run_restarts_the_deployments_so_its_series_are_its_own() -> None:
    """A rerun's backfill goes back over an earlier run's minutes: with the same pods its
    series would go back in time, so each run has pods (and scrape targets) of its own."""
    first, again, other = shop("2026-12-08T00:00:00Z"), shop("2026-12-08T00:00:00Z"), shop("x")
    targets = []
    for mesh in (first, again, other):
        assert mesh.gateway is not None
        proxies = [gateway_proxy(mesh.gateway)]
        for service in mesh.services.values():
            proxies += [p for v in service.versions if (p := proxy_of(service, v)) is not None]
        targets.append([scrape_target(p).resource()["service.instance.id"] for p in proxies])
    assert targets[0] == targets[1]
    assert not set(targets[0]) & set(targets[2])
    assert len(set(targets[0])) == len(targets[0]) == 14  # 11 sidecars, a gateway, 2 Linkerd
