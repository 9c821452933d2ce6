"""Mesh metrics: cumulative points as deltas (resets, new series, order) and label mapping."""

from __future__ import annotations

import pytest

from collector.derive.classify import MTLS_MUTUAL, MTLS_PLAINTEXT, MTLS_UNKNOWN
from collector.derive.cumulative import NEW_SERIES_LOOKBACK_NS, Outcome, Reading, advance
from collector.derive.mesh_metrics import (
    ISTIO_DURATION,
    ISTIO_REQUESTS,
    LATENCY,
    LINKERD_LATENCY,
    LINKERD_RESPONSES,
    REQUESTS,
    EdgeSeries,
    edge_series,
    is_mesh_metric,
)

S = 1_000_000_000
T0 = 1_800_000_000 * S  # an arbitrary "now"


def _counter(value: float, time: int, start: int = T0 - 3600 * S) -> Reading:
    return Reading(start, time, value)


def _run(points: list[Reading], *, appeared: bool = False) -> list[tuple[Outcome, float]]:
    cursor = None
    seen = []
    for point in points:
        step = advance(cursor, point, appeared=appeared)
        seen.append((step.outcome, step.value))
        cursor = step.cursor
    return seen


# --- deltas -------------------------------------------------------------------------------


def test_differences_between_points_of_one_run() -> None:
    points = [_counter(100, T0), _counter(130, T0 + 15 * S), _counter(130, T0 + 30 * S)]
    assert _run(points) == [
        (Outcome.BASELINE, 0),  # started an hour ago: counted before we were watching
        (Outcome.DELTA, 30),
        (Outcome.DELTA, 0),
    ]


def test_a_value_drop_is_a_reset_counting_the_new_value() -> None:
    points = [_counter(100, T0), _counter(120, T0 + 15 * S), _counter(7, T0 + 30 * S)]
    assert _run(points)[1:] == [(Outcome.DELTA, 20), (Outcome.RESET, 7)]


def test_a_new_known_start_after_the_last_point_is_a_reset_even_without_a_drop() -> None:
    first = _counter(100, T0)
    restarted = Reading(T0 + 5 * S, T0 + 15 * S, 250)  # a new process counted 250 since T0+5s
    assert _run([first, restarted])[1] == (Outcome.RESET, 250)


def test_an_unknown_new_start_without_a_drop_goes_on() -> None:
    """The Prometheus receiver restarted: start = time on its first point, the counter went on."""
    first = _counter(100, T0)
    rebased = Reading(T0 + 15 * S, T0 + 15 * S, 104)
    zero_start = Reading(0, T0 + 30 * S, 110)
    assert _run([first, rebased, zero_start])[1:] == [(Outcome.DELTA, 4), (Outcome.DELTA, 6)]


def test_a_new_series_counts_from_its_recent_start() -> None:
    point = Reading(T0 - 20 * S, T0, 7)
    assert _run([point]) == [(Outcome.NEW_SERIES, 7)]
    just_in = Reading(T0 - NEW_SERIES_LOOKBACK_NS, T0, 7)
    assert _run([just_in]) == [(Outcome.NEW_SERIES, 7)]


@pytest.mark.parametrize(
    "start",
    [0, T0, T0 - NEW_SERIES_LOOKBACK_NS - 1],
    ids=["unset", "equal-to-time", "too-old"],
)
def test_a_new_series_without_a_recent_known_start_is_a_baseline(start: int) -> None:
    assert _run([Reading(start, T0, 7), Reading(start, T0 + 15 * S, 9)]) == [
        (Outcome.BASELINE, 0),
        (Outcome.DELTA, 2),
    ]


def test_a_series_new_since_an_earlier_export_of_its_resource_counts_whole() -> None:
    assert _run([Reading(0, T0, 3)], appeared=True) == [(Outcome.NEW_SERIES, 3)]


def test_older_and_equal_points_are_ignored() -> None:
    points = [_counter(100, T0), _counter(150, T0 + 30 * S), _counter(120, T0 + 15 * S)]
    points.append(_counter(150, T0 + 30 * S))
    points.append(_counter(160, T0 + 45 * S))
    assert _run(points)[1:] == [
        (Outcome.DELTA, 50),
        (Outcome.OUT_OF_ORDER, 0),
        (Outcome.OUT_OF_ORDER, 0),
        (Outcome.DELTA, 10),  # from 150, not from the late 120
    ]


def test_histograms_subtract_bucket_by_bucket_and_reset_on_any_drop() -> None:
    bounds = (5.0, 10.0)
    first = Reading(T0 - 3600 * S, T0, 10, (5, 3, 2), bounds)
    second = Reading(T0 - 3600 * S, T0 + 15 * S, 14, (6, 6, 2), bounds)
    dropped = Reading(T0 - 3600 * S, T0 + 30 * S, 15, (1, 12, 2), bounds)  # a bucket fell
    steps = []
    cursor = None
    for point in (first, second, dropped):
        step = advance(cursor, point)
        steps.append((step.outcome, step.buckets))
        cursor = step.cursor
    assert steps == [
        (Outcome.BASELINE, None),
        (Outcome.DELTA, (1, 3, 0)),
        (Outcome.RESET, (1, 12, 2)),
    ]


def test_histogram_bounds_changing_rebases_without_counting() -> None:
    first = Reading(1, T0, 10, (5, 5), (10.0,))
    other = Reading(1, T0 + 15 * S, 12, (5, 5, 2), (10.0, 20.0))
    step = advance(advance(None, first).cursor, other)
    assert (step.outcome, step.counted, step.cursor) == (Outcome.REBASED, False, other)


# --- which series count, as which edge ----------------------------------------------------


def _istio(**labels: str) -> dict[str, str]:
    base = {
        "reporter": "destination",
        "source_workload": "productpage-v1",
        "source_canonical_service": "productpage",
        "destination_workload": "reviews-v2",
        "destination_canonical_service": "reviews",
        "destination_service": "reviews.default.svc.cluster.local",
        "request_protocol": "http",
        "response_code": "200",
        "grpc_response_status": "",
        "response_flags": "-",
        "connection_security_policy": "mutual_tls",
    }
    return {**base, **labels}


def _istio_edge(name: str = ISTIO_REQUESTS, **labels: str) -> EdgeSeries | None:
    return edge_series(name, _istio(**labels), {"service.name": "istio-proxies"}, "istio-proxies")


def test_metric_names_and_types_are_pinned() -> None:
    assert is_mesh_metric("istio_requests_total", "sum", True)
    assert is_mesh_metric("istio_request_duration_milliseconds", "histogram", None)
    assert is_mesh_metric("response_total", "sum", True)
    assert is_mesh_metric("response_latency_ms", "histogram", None)
    assert not is_mesh_metric("istio_requests_total", "sum", False)
    assert not is_mesh_metric("istio_requests_total", "gauge", None)
    assert not is_mesh_metric("request_total", "sum", True)  # counted when the request begins


def test_istio_destination_reporter_names_the_edge_by_canonical_service() -> None:
    assert _istio_edge() == EdgeSeries(
        REQUESTS, "productpage", "service", "reviews", "service", False, MTLS_MUTUAL, ""
    )
    edge = _istio_edge(source_canonical_service="", destination_canonical_service="unknown")
    assert edge is not None
    assert (edge.source, edge.target) == ("productpage-v1", "reviews-v2")  # the workloads


def test_istio_counts_each_request_once() -> None:
    assert _istio_edge(reporter="source") is None  # the destination proxy counted it
    assert _istio_edge(reporter="waypoint") is not None  # ambient mode's destination side
    assert _istio_edge(reporter="") is None


def test_istio_source_reporter_counts_what_no_destination_proxy_saw() -> None:
    outside = _istio_edge(
        reporter="source",
        destination_workload="unknown",
        destination_canonical_service="unknown",
        destination_service="api.stripe.com",
        response_code="404",
        connection_security_policy="unknown",
    )
    assert outside == EdgeSeries(
        REQUESTS, "productpage", "service", "api.stripe.com", "external", True, MTLS_UNKNOWN
    )  # client rules: 4xx is an error of the caller
    aborted = _istio_edge(reporter="source", response_code="503", response_flags="FI")
    assert aborted is not None
    assert (aborted.target, aborted.error, aborted.mtls) == ("reviews", True, MTLS_UNKNOWN)
    circuit_broken = _istio_edge(reporter="source", response_code="503", response_flags="UO")
    assert circuit_broken is not None
    assert _istio_edge(reporter="source", response_flags="UT") is None  # may have arrived


def test_istio_a_service_with_no_healthy_endpoint_is_still_that_service() -> None:
    """UH: no endpoint answered, so no workload is known, but destination_service is the
    Kubernetes Service the request was meant for: an edge to that service, not an external
    node `ratings.default`."""
    no_endpoint = _istio_edge(
        reporter="source",
        destination_workload="unknown",
        destination_canonical_service="unknown",
        destination_service="ratings.default.svc.cluster.local",
        destination_service_name="ratings",
        response_code="503",
        response_flags="UH",
    )
    assert no_endpoint is not None
    assert (no_endpoint.target, no_endpoint.target_type, no_endpoint.error) == (
        "ratings",
        "service",
        True,
    )


def test_istio_unknown_source_is_the_virtual_user() -> None:
    edge = _istio_edge(source_workload="unknown", source_canonical_service="unknown")
    assert edge is not None
    assert (edge.source, edge.source_type) == ("user", "client")


def test_istio_errors_by_the_server_rules_at_the_destination() -> None:
    def error(**labels: str) -> bool:
        edge = _istio_edge(**labels)
        assert edge is not None
        return edge.error

    assert error(response_code="503")
    assert not error(response_code="404")
    assert error(request_protocol="grpc", response_code="200", grpc_response_status="14")
    assert not error(request_protocol="grpc", response_code="200", grpc_response_status="5")
    assert not error(response_code="0")


@pytest.mark.parametrize(
    ("policy", "state"),
    [("mutual_tls", MTLS_MUTUAL), ("none", MTLS_PLAINTEXT), ("unknown", MTLS_UNKNOWN)],
)
def test_istio_mtls_from_the_destination_reporter(policy: str, state: int) -> None:
    edge = _istio_edge(connection_security_policy=policy)
    assert edge is not None
    assert edge.mtls == state


def test_istio_latency_is_the_callers_view() -> None:
    source_side = _istio_edge(ISTIO_DURATION, reporter="source")
    assert source_side == EdgeSeries(LATENCY, "productpage", "service", "reviews", "service")
    assert _istio_edge(ISTIO_DURATION) is None  # the source proxy measures it
    from_outside = _istio_edge(ISTIO_DURATION, source_workload="unknown",
                               source_canonical_service="unknown")  # fmt: skip
    assert from_outside is not None
    assert from_outside.source == "user"


def _linkerd(name: str = LINKERD_RESPONSES, **labels: str) -> EdgeSeries | None:
    base = {
        "direction": "outbound",
        "authority": "books.booksapp.svc.cluster.local:7002",
        "dst_deployment": "books",
        "dst_namespace": "booksapp",
        "dst_service": "books",
        "deployment": "webapp",
        "namespace": "booksapp",
        "tls": "true",
        "classification": "success",
        "status_code": "200",
    }
    return edge_series(name, {**base, **labels}, {"service.name": "linkerd-proxy"}, "linkerd")


def test_linkerd_outbound_series_make_edges() -> None:
    assert _linkerd() == EdgeSeries(
        REQUESTS, "webapp", "service", "books", "service", False, MTLS_MUTUAL, ""
    )
    assert _linkerd(direction="inbound") is None
    failed = _linkerd(classification="failure", status_code="500")
    assert failed is not None
    assert failed.error
    latency = _linkerd(LINKERD_LATENCY)
    assert latency == EdgeSeries(LATENCY, "webapp", "service", "books", "service")


def test_linkerd_plaintext_keeps_its_reason() -> None:
    edge = _linkerd(tls="no_identity", no_tls_reason="not_provided_by_service_discovery")
    assert edge is not None
    assert (edge.mtls, edge.plaintext_reason) == (
        MTLS_PLAINTEXT,
        "not_provided_by_service_discovery",
    )
    no_label = _linkerd(tls="")
    assert no_label is not None
    assert no_label.mtls == MTLS_UNKNOWN  # nothing says


def test_linkerd_source_from_the_resource_and_external_targets() -> None:
    labels = {"direction": "outbound", "authority": "api.github.com:443", "tls": "false"}
    resource = {"service.name": "linkerd-proxy", "k8s.deployment.name": "web"}
    edge = edge_series(LINKERD_RESPONSES, labels, resource, "linkerd-proxy")
    assert edge is not None
    assert (edge.source, edge.target, edge.target_type) == ("web", "api.github.com", "external")


def test_a_service_calling_itself_is_no_edge() -> None:
    assert _linkerd(dst_deployment="webapp") is None


def test_histograms_in_seconds_are_scaled() -> None:
    edge = edge_series(ISTIO_DURATION, _istio(reporter="source"), {}, "x", unit="s")
    assert edge is not None
    assert edge.bound_ns == 1_000_000_000
