"""One OpenTelemetry SDK pipeline per simulated workload and per proxy, exporting to meshlens
over OTLP/HTTP.

Each workload (a service at a version) is its own process in a real mesh, so here it has its
own `Resource` (service.name, service.version, Kubernetes attributes), its own
`TracerProvider` with a `BatchSpanProcessor` and `OTLPSpanExporter`, and its own
`MeterProvider` whose observable gauge reports the workload's CPU utilization through an
`OTLPMetricExporter`. Backfilled utilization points (the past has no live reader) are built as
SDK `MetricsData` and sent through an `OTLPMetricExporter` as well.

Each proxy (an Istio sidecar, a linkerd2-proxy, the ingress gateway) exports on its own too,
with the resource the proxy sends (`envoy_spans.resource`, `LinkerdProxy.resource`): a
`BatchSpanProcessor` and `OTLPSpanExporter` of its own, fed finished spans (`hops`), so a
sidecar's spans and its app's never share an export request.

The proxies' request metrics (`proxy_metrics`: Istio's and Linkerd's counters and
histograms, as a Collector's `prometheus` receiver scrapes them) go out a round of scrapes
per export, in order, from a thread of their own (`scrape_sender`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Gauge,
    Metric,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    PeriodicExportingMetricReader,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Tracer

from meshlens.demo import envoy_spans
from meshlens.demo.envoy_spans import IstioProxy
from meshlens.demo.mesh import Mesh, Service, Version
from meshlens.demo.pods import Proxy, all_proxies, deployment_of, pod_of, scrape_target
from meshlens.demo.prometheus_scrape import RequestSeries
from meshlens.demo.proxy_metrics import ProxyMetrics
from meshlens.demo.scrape_sender import ScrapeSender
from meshlens.demo.topology import NAMESPACE
from meshlens.demo.utilization import UtilizationModel

SCOPE = "meshlens.demo"
EXPORT_TIMEOUT_SECONDS = 5.0
SPAN_QUEUE = 50_000  # spans a workload may hold before they are exported
SPAN_BATCH = 2_000
SPAN_DELAY_MS = 1_000  # live spans reach meshlens within about a second
METRIC_INTERVAL_MS = 10_000
SHUTDOWN_SECONDS = 15.0  # longest wait for the pipelines to flush
NANOS_PER_SECOND = 1_000_000_000


class ExportCounts:
    """Spans, and the proxies' metric points, exported and not (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.sent = 0
        self.failed = 0
        self.points_sent = 0
        self.points_failed = 0

    def add(self, spans: int, ok: bool) -> None:
        with self._lock:
            if ok:
                self.sent += spans
            else:
                self.failed += spans

    def add_points(self, points: int, ok: bool) -> None:
        with self._lock:
            if ok:
                self.points_sent += points
            else:
                self.points_failed += points


class CountingExporter(SpanExporter):
    """Passes spans to the OTLP exporter and counts how that went."""

    def __init__(self, inner: SpanExporter, counts: ExportCounts) -> None:
        self._inner = inner
        self._counts = counts

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self._inner.export(spans)
        self._counts.add(len(spans), result is SpanExportResult.SUCCESS)
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._inner.force_flush(timeout_millis)


@dataclass(frozen=True)
class Workload:
    """A service at one version: one deployment, one SDK pipeline."""

    service: Service
    version: Version

    @property
    def key(self) -> tuple[str, str]:
        """(service name, version name)."""
        return (self.service.name, self.version.name)

    @property
    def deployment(self) -> str:
        """`reviews-v2` when the service runs several versions, else the service name."""
        return deployment_of(self.service, self.version)

    def resource(self) -> Resource:
        """The SDK resource: who emits (service.name, service.version) and where it runs."""
        pod = pod_of(self.service, self.version).name
        return Resource.create(
            {
                "service.name": self.service.name,
                "service.version": self.version.name,
                "service.namespace": NAMESPACE,
                "service.instance.id": pod,
                "deployment.environment.name": "demo",
                "k8s.namespace.name": NAMESPACE,
                "k8s.deployment.name": self.deployment,
                "k8s.pod.name": pod,
                "k8s.container.name": self.service.name,
            }
        )


def proxy_resource(proxy: Proxy, started_ns: int = 0) -> Resource:
    """The resource a proxy exports (no SDK defaults: a proxy is no OpenTelemetry SDK); a
    linkerd2-proxy's says when its process started: `started_ns`, the pods' start."""
    if isinstance(proxy, IstioProxy):
        return Resource(envoy_spans.resource(proxy))
    return Resource(replace(proxy, started_at=started_ns // NANOS_PER_SECOND).resource())


def workloads(mesh: Mesh) -> list[Workload]:
    """Every (service, version) of the mesh."""
    return [
        Workload(service, version)
        for service in mesh.services.values()
        for version in service.versions
    ]


class Pipelines:
    """The SDK providers of every workload, and the counts of what they exported."""

    def __init__(
        self,
        mesh: Mesh,
        endpoint: str,
        gauge: str | None,
        utilization: UtilizationModel,
        started_ns: int,
    ) -> None:
        """`started_ns`: when the mesh's pods started (the simulated history's start)."""
        self.counts = ExportCounts()
        self._endpoint = endpoint
        self._gauge = gauge
        self._utilization = utilization
        self._workloads = workloads(mesh)
        self._resources = {w.key: w.resource() for w in self._workloads}
        self._tracer_providers: list[TracerProvider] = []
        self._meter_providers: list[MeterProvider] = []
        self._tracers: dict[tuple[str, str], Tracer] = {}
        for workload in self._workloads:
            provider = TracerProvider(
                resource=self._resources[workload.key], sampler=ALWAYS_ON, shutdown_on_exit=False
            )
            provider.add_span_processor(self._span_processor())
            self._tracer_providers.append(provider)
            self._tracers[workload.key] = provider.get_tracer(SCOPE)
        proxies = all_proxies(mesh)
        self._proxies = {
            proxy: (proxy_resource(proxy, started_ns), self._span_processor()) for proxy in proxies
        }
        self._metrics = ProxyMetrics({p: scrape_target(p) for p in proxies}, started_ns)
        self._scrapes = ScrapeSender(endpoint, EXPORT_TIMEOUT_SECONDS, self.counts.add_points)

    def tracer(self, service: str, version: str) -> Tracer:
        """The tracer of a workload."""
        return self._tracers[(service, version)]

    def proxy_resource(self, proxy: Proxy) -> Resource:
        """The resource `proxy` exports its spans with."""
        return self._proxies[proxy][0]

    def send_proxy_span(self, proxy: Proxy, span: ReadableSpan) -> None:
        """Queue a finished span of `proxy` for export with the proxy's other spans."""
        self._proxies[proxy][1].on_end(span)

    def count_request(
        self, proxy: Proxy, series: RequestSeries, end_ns: int, duration_ns: int
    ) -> None:
        """`proxy` counts a request that ends at `end_ns` in its metrics."""
        self._metrics.count(proxy, series, end_ns, duration_ns)

    def scrape(self, until_ns: int) -> None:
        """Send the rounds of scrapes of the proxies' metrics complete by `until_ns`."""
        for data in self._metrics.scrape_rounds(until_ns):
            self._scrapes.submit(data)

    def _span_processor(self) -> BatchSpanProcessor:
        exporter = OTLPSpanExporter(
            endpoint=f"{self._endpoint}/v1/traces", timeout=EXPORT_TIMEOUT_SECONDS
        )
        return BatchSpanProcessor(
            CountingExporter(exporter, self.counts),
            max_queue_size=SPAN_QUEUE,
            schedule_delay_millis=SPAN_DELAY_MS,
            max_export_batch_size=SPAN_BATCH,
        )

    def start_gauges(self) -> None:
        """Start reporting live utilization (every 10 s) through each workload's MeterProvider."""
        gauge = self._gauge
        if gauge is None or self._meter_providers:
            return
        for workload in self._workloads:
            reader = PeriodicExportingMetricReader(
                OTLPMetricExporter(
                    endpoint=f"{self._endpoint}/v1/metrics", timeout=EXPORT_TIMEOUT_SECONDS
                ),
                export_interval_millis=METRIC_INTERVAL_MS,
            )
            provider = MeterProvider(
                resource=self._resources[workload.key],
                metric_readers=[reader],
                shutdown_on_exit=False,
            )
            provider.get_meter(SCOPE).create_observable_gauge(
                gauge,
                callbacks=[self._observe(workload)],
                unit="1",
                description="CPU usage of the pod over its CPU limit",
            )
            self._meter_providers.append(provider)

    def _observe(self, workload: Workload) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            value = self._utilization.value(workload.service, workload.version, time.time_ns())
            return [Observation(value)]

        return observe

    def send_past_utilization(self, times_ns: Sequence[int]) -> bool:
        """Utilization points of every workload at the past `times_ns`, in one export."""
        if self._gauge is None or not times_ns:
            return True
        scope = InstrumentationScope(SCOPE)
        resource_metrics = []
        for workload in self._workloads:
            points = [
                NumberDataPoint(
                    attributes={},
                    start_time_unix_nano=at,
                    time_unix_nano=at,
                    value=self._utilization.value(workload.service, workload.version, at),
                )
                for at in times_ns
            ]
            metric = Metric(
                name=self._gauge,
                description="CPU usage of the pod over its CPU limit",
                unit="1",
                data=Gauge(data_points=points),
            )
            resource_metrics.append(
                ResourceMetrics(
                    resource=self._resources[workload.key],
                    scope_metrics=[ScopeMetrics(scope=scope, metrics=[metric], schema_url="")],
                    schema_url="",
                )
            )
        exporter = OTLPMetricExporter(
            endpoint=f"{self._endpoint}/v1/metrics", timeout=EXPORT_TIMEOUT_SECONDS
        )
        try:
            result = exporter.export(MetricsData(resource_metrics=resource_metrics))
        finally:
            exporter.shutdown()
        return result is MetricExportResult.SUCCESS

    def flush(self) -> None:
        """Export every span ended and every scrape made so far (blocks until the exports are
        answered)."""
        _in_parallel(lambda p: p.force_flush(), [*self._tracer_providers, *self._processors()])
        self._scrapes.flush(SHUTDOWN_SECONDS)

    def shutdown(self) -> None:
        """Export what is left and stop every pipeline, all at once (a dead endpoint costs
        one export timeout, not one per workload)."""
        pipelines: list[Pipeline] = [
            *self._tracer_providers,
            *self._meter_providers,
            *self._processors(),
        ]
        self._scrapes.submit(self._metrics.final_scrape(time.time_ns()))
        _in_parallel(lambda p: p.shutdown(), pipelines)
        self._scrapes.close(SHUTDOWN_SECONDS)
        self._tracer_providers.clear()
        self._meter_providers.clear()
        self._proxies.clear()

    def _processors(self) -> list[BatchSpanProcessor]:
        return [processor for _, processor in self._proxies.values()]


Pipeline = TracerProvider | MeterProvider | BatchSpanProcessor


def _in_parallel(action: Callable[[Pipeline], object], providers: Sequence[Pipeline]) -> None:
    threads = [
        threading.Thread(target=action, args=(p,), name="meshlens-demo-flush", daemon=True)
        for p in providers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SHUTDOWN_SECONDS)
