"""The soak's figures: meshlens's counters read from /metrics text, and the table over time."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from collector.metrics import IngestMetrics
from harness.soak.report import make_rows, meshlens_totals, row_samples
from harness.soak.samples import Sample, Scrape, metric_by, metric_total, parse_metrics


def exposition() -> str:
    """/metrics text of meshlens's own counters after some ingest."""
    registry = CollectorRegistry()
    metrics = IngestMetrics(registry)
    metrics.accepted.labels("spans", "http").inc(1200)
    metrics.accepted.labels("spans", "grpc").inc(300)
    metrics.accepted.labels("points", "http").inc(50)
    metrics.refused_requests.labels("spans", "http", "overloaded").inc(2)
    metrics.refused_requests.labels("spans", "grpc", "overloaded").inc()
    metrics.refused_requests.labels("spans", "http", "malformed").inc()
    metrics.refused_items.labels("spans", "http", "overloaded").inc(400)
    metrics.queue_items.set(17)
    return generate_latest(registry).decode()


def test_counters_are_summed_over_labels() -> None:
    scrape = parse_metrics(exposition())
    assert metric_total(scrape, "meshlens_ingest_accepted_items_total", signal="spans") == 1500
    assert metric_total(scrape, "meshlens_ingest_accepted_items_total") == 1550
    assert metric_by(scrape, "meshlens_ingest_refused_requests_total", "reason") == {
        "malformed": 1,
        "overloaded": 3,
    }
    assert metric_total(scrape, "meshlens_ingest_queue_items") == 17


def test_creation_times_and_histograms_are_not_counts() -> None:
    names = set(parse_metrics(exposition()))
    assert not [name for name in names if name.endswith(("_created", "_bucket", "_sum"))]
    assert "meshlens_ingest_accepted_items_total" in names


def test_totals_of_a_scrape() -> None:
    totals = meshlens_totals(parse_metrics(exposition()))
    assert totals["accepted_spans"] == 1500
    assert totals["refused_spans"] == {"overloaded": 400}
    assert totals["alert_rounds"] == 0  # not in this registry: counted as none


def sample(second: float, acknowledged: int, rss: float, refused: int, scrape: Scrape) -> Sample:
    return Sample(
        second=second,
        rss_mib=rss,
        cpu_seconds=second / 4,  # a quarter of a core
        machine_busy_seconds=second,
        database_mib=second,
        sent_spans=acknowledged + 100 * refused,
        acknowledged_spans=acknowledged,
        refused_requests={429: refused},
        dropped_requests=0,
        rejected_spans=0,
        web_requests=0,
        web_failures=0,
        scrape=scrape,
    )


def test_rows_are_rates_over_their_period() -> None:
    queue = parse_metrics(exposition())
    samples = [
        sample(10.0 * n, 2000 * 10 * n, 150 + n, n // 3, queue if n == 6 else {})
        for n in range(8)  # 0 to 70 s: rows of 3 periods, the last one shorter
    ]
    rows = make_rows(samples, 3)
    assert [row.end_second for row in rows] == [30, 60, 70]
    first, second, last = rows
    assert first.acknowledged_per_second == 2000
    assert first.sent_per_second == 2003.3  # and one refused request of 100 spans
    assert (first.refused_requests, second.refused_requests, last.refused_requests) == (1, 1, 0)
    assert first.cpu_percent == 25
    assert (first.rss_mib, first.rss_max_mib, last.rss_mib) == (153, 153, 157)
    assert (second.queue_items, last.queue_items) == (17, 0)


def test_about_twelve_rows() -> None:
    assert row_samples(3600, 10) == 30  # 5 minutes
    assert row_samples(300, 10) == 2
    assert row_samples(20, 1) == 2
    assert row_samples(20, 10) == 1
