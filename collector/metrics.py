"""What the collector counts, exposed on the web port's /metrics (Prometheus text format)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from collector.derive.loop import DeriveStats


class IngestMetrics:
    """Accepted, rejected and refused items; batch sizes; commit latency; queue depth."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.accepted = Counter(
            "meshlens_ingest_accepted_items",
            "Spans and points committed to the database.",
            ["signal", "transport"],
            registry=registry,
        )
        self.rejected = Counter(
            "meshlens_ingest_rejected_items",
            "Spans and points rejected one by one (partial success): bad ids, times.",
            ["signal", "transport"],
            registry=registry,
        )
        self.refused_requests = Counter(
            "meshlens_ingest_refused_requests",
            "Whole requests refused, by reason (malformed, too_large, unsupported, "
            "overloaded, unavailable).",
            ["signal", "transport", "reason"],
            registry=registry,
        )
        self.refused_items = Counter(
            "meshlens_ingest_refused_items",
            "Spans and points in requests refused after decoding (overloaded, unavailable).",
            ["signal", "transport", "reason"],
            registry=registry,
        )
        self.batch_items = Histogram(
            "meshlens_ingest_batch_items",
            "Spans and points per group commit.",
            buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000, 20000, 50000),
            registry=registry,
        )
        self.batch_requests = Histogram(
            "meshlens_ingest_batch_requests",
            "Requests sharing one group commit.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=registry,
        )
        self.commit_seconds = Histogram(
            "meshlens_ingest_commit_seconds",
            "Time to write and commit one batch.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.queue_items = Gauge(
            "meshlens_ingest_queue_items",
            "Spans and points accepted by receivers but not yet committed.",
            registry=registry,
        )
        self.healthy_writers = Gauge(
            "meshlens_ingest_healthy_writers",
            "Writer connections currently connected to the database.",
            registry=registry,
        )
        self.derived_requests = Counter(
            "meshlens_derive_requests",
            "Requests the deriver put on edges or moved, by how: paired (a client and a server "
            "half), virtual (a client half that waited alone: a call to a virtual node), moved "
            "(counted as virtual, then its server half came), hop (an app's client span and its "
            "sidecar's, one call), nest (a sidecar's entry span and its app's, one request).",
            ["how"],
            registry=registry,
        )
        self.unpaired_server_halves = Counter(
            "meshlens_derive_unpaired_server_halves",
            "Server halves whose client half never arrived within the pairing window.",
            registry=registry,
        )
        self.derive_failures = Counter(
            "meshlens_derive_failures",
            "Derivation passes that failed and are retried, by reason: database (PostgreSQL "
            "unreachable or an error it raised) or unexpected (a bug: the log has its traceback).",
            ["reason"],
            registry=registry,
        )
        self.derive_seconds = Histogram(
            "meshlens_derive_run_seconds",
            "Time of one derivation pass (pairing and folding into rollups).",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )

        self.metric_points = Counter(
            "meshlens_derive_metric_points",
            "Points of Istio / Linkerd series the deriver took, by outcome: delta, reset, "
            "new_series (counted from its start), baseline (a first point not counted), "
            "rebased (histogram bounds changed), out_of_order (older than the series' newest "
            "point: ignored), delta_temporality.",
            ["outcome"],
            registry=registry,
        )
        self.ignored_utilizations = Counter(
            "meshlens_saturation_ignored_values",
            "Utilization gauge values ignored for saturation (NaN, infinite or negative).",
            registry=registry,
        )

    def observe_derivation(self, stats: DeriveStats, seconds: float) -> None:
        """Count what one derivation pass did."""
        if not stats.ran:
            return
        self.derive_seconds.observe(seconds)
        self.derived_requests.labels("paired").inc(stats.pairs)
        self.derived_requests.labels("virtual").inc(stats.unpaired_counted)
        self.derived_requests.labels("moved").inc(stats.moved)
        self.derived_requests.labels("hop").inc(stats.hops)
        self.derived_requests.labels("nest").inc(stats.nests)
        self.unpaired_server_halves.inc(stats.expired_server_halves)
        for outcome, count in stats.metric_points.items():
            self.metric_points.labels(outcome).inc(count)
