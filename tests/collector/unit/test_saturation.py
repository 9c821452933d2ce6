"""Saturation from utilization gauges: clamping, CPU modes, the service, the decoder's notes."""

from __future__ import annotations

import math

import pytest

from collector.decode import OtlpDecoder, TimeWindow
from collector.derive.saturation import GaugeReadings, Readings, saturation_service, utilization
from tests.metric_payloads import MetricSpec, Point, istio_labels, metrics_request

NOW = 1_800_000_000 * 10**9  # a minute start
MINUTE = NOW // 10**9
WINDOW = TimeWindow.around(NOW, retention_days=7, future_skew_s=3600)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.0, 0.0), (0.42, 0.42), (1.0, 1.0), (1.3, 1.0), (-0.1, None), (math.nan, None),
     (math.inf, None)],
)  # fmt: skip
def test_values_are_clamped_or_ignored(value: float, expected: float | None) -> None:
    assert utilization(value) == expected


def test_the_highest_value_per_minute_wins_and_cpu_modes_add_up() -> None:
    gauge = GaugeReadings()
    gauge.add(NOW + 1, {"cpu.mode": "user"}, 0.5)
    gauge.add(NOW + 1, {"cpu.mode": "system"}, 0.2)
    gauge.add(NOW + 1, {"cpu.mode": "idle"}, 0.3)
    gauge.add(NOW + 30 * 10**9, {}, 0.6)
    gauge.add(NOW + 90 * 10**9, {}, -1.0)
    readings: Readings = {}
    assert gauge.fold_into(readings, "cart") == 1  # the negative value
    assert readings == {(MINUTE, "cart"): pytest.approx(0.7)}


def test_the_service_of_a_resource() -> None:
    assert saturation_service("cart", {"service.name": "cart"}) == "cart"
    linkerd = {"service.name": "linkerd-proxy", "k8s.deployment.name": "books"}
    assert saturation_service("linkerd-proxy", linkerd) == "books"
    kubeletstats = {"k8s.pod.name": "books-7d9-x", "k8s.deployment.name": "books"}
    assert saturation_service("unknown_service", kubeletstats) == "books"
    assert saturation_service("unknown_service", {"k8s.pod.name": "p"}) == ""


def test_the_decoder_notes_gauges_and_mesh_series() -> None:
    decoder = OtlpDecoder(frozenset({"process.cpu.utilization"}))
    request = metrics_request(
        {"service.name": "cart"},
        [
            MetricSpec("process.cpu.utilization", "gauge", [Point({}, NOW + 5, value=0.25)]),
            MetricSpec("app.ratio", "gauge", [Point({}, NOW + 5, value=0.9)]),
            MetricSpec(
                "istio_requests_total",
                "sum",
                [Point(istio_labels("web", "cart"), NOW + 5, NOW - 10**9, 3.0)],
            ),
            MetricSpec(
                "istio_requests_total",
                "sum",
                [Point(istio_labels("web", "cart", reporter="source"), NOW + 5, 1, 3.0)],
            ),
        ],
    )
    batch = decoder.metrics(request.SerializeToString(), WINDOW)
    assert batch.saturation == {(MINUTE, "cart"): 0.25}
    assert len(batch.points) == 4
    assert [(e.source, e.target, e.role) for e in batch.edge_series.values()] == [
        ("web", "cart", "requests")
    ]
