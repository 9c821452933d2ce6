"""The demo's traffic, recorded in process: the apps' SDK spans (the SDK's in-memory exporter),
and the proxies' spans and metric counts as their pipelines would get them (a recording sink).
Shared by the demo's unit tests."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import cache, cached_property

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

from meshlens.demo.arrivals import Arrivals
from meshlens.demo.pipelines import proxy_resource, workloads
from meshlens.demo.pods import Proxy
from meshlens.demo.prometheus_scrape import RequestSeries
from meshlens.demo.topology import shop
from meshlens.demo.traffic import Traffic

START = 1_700_000_000 * 1_000_000_000


@dataclass(frozen=True)
class Count:
    """A request a proxy counted in its metrics."""

    proxy: Proxy
    series: RequestSeries
    end_ns: int
    duration_ns: int


@dataclass
class ProxySink:
    """Records the proxies' spans as their pipelines would get them, and their counts."""

    spans: list[ReadableSpan] = field(default_factory=list)
    proxies: dict[int, Proxy] = field(default_factory=dict)  # span id -> its proxy
    counted: list[Count] = field(default_factory=list)

    def proxy_resource(self, proxy: Proxy) -> Resource:
        return proxy_resource(proxy)

    def send_proxy_span(self, proxy: Proxy, span: ReadableSpan) -> None:
        assert span.context is not None
        self.spans.append(span)
        self.proxies[span.context.span_id] = proxy

    def count_request(
        self, proxy: Proxy, series: RequestSeries, end_ns: int, duration_ns: int
    ) -> None:
        self.counted.append(Count(proxy, series, end_ns, duration_ns))


@dataclass(frozen=True)
class Recorded:
    apps: list[ReadableSpan]
    proxies: list[ReadableSpan]
    proxy_of: dict[int, Proxy]
    counted: list[Count]

    @cached_property
    def by_id(self) -> dict[int, ReadableSpan]:
        return {span_id(span): span for span in [*self.apps, *self.proxies]}

    @cached_property
    def _children(self) -> dict[int, list[ReadableSpan]]:
        children: dict[int, list[ReadableSpan]] = {}
        for span in [*self.apps, *self.proxies]:
            if span.parent is not None:
                children.setdefault(span.parent.span_id, []).append(span)
        return children

    def children(self, span: ReadableSpan) -> list[ReadableSpan]:
        return self._children.get(span_id(span), [])

    def parent(self, span: ReadableSpan) -> ReadableSpan:
        assert span.parent is not None, span.name
        return self.by_id[span.parent.span_id]


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


@cache
def record(seed: int, seconds: int = 60, rate: float = 5.0) -> Recorded:
    """The spans of `seconds` of the demo's traffic at `rate` requests/s."""
    mesh = shop()
    exporter = InMemorySpanExporter()
    tracers: dict[tuple[str, str], Tracer] = {}
    for workload in workloads(mesh):
        provider = TracerProvider(resource=workload.resource(), shutdown_on_exit=False)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracers[workload.key] = provider.get_tracer("test")
    sink = ProxySink()
    rng = random.Random(seed)
    traffic = Traffic(mesh, lambda service, version: tracers[(service, version)], sink, rng)
    for at in Arrivals(rng, rate, START).until(START + seconds * 1_000_000_000):
        traffic.request(at)
    apps = list(exporter.get_finished_spans())
    assert traffic.spans == len(apps) + len(sink.spans)
    return Recorded(apps, sink.spans, sink.proxies, sink.counted)
