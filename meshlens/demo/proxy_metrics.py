"""The proxies' request metrics, scraped every 15 s and sent to meshlens as a Collector would.

Each proxy (an Istio sidecar or gateway, a linkerd2-proxy) counts a request when it ends, as
the proxies do (Envoy's stats filter at the stream's end, linkerd2-proxy when the response
stream completes): `ProxyMetrics.count` holds it until then. A Collector's `prometheus`
receiver scrapes each proxy's pod every `SCRAPE_INTERVAL_SECONDS`, each target at its own
offset within the interval (as Prometheus spreads its targets), and sends what it read as
cumulative OTLP points (`prometheus_scrape`): a counter or histogram per series, all of a
proxy's series with the proxy process's start as their start time. The demo's pods start
when its simulated history starts (the backfill's first minute, or the stream's), so every
series counts from zero there, and a series that appears later (the first 503 of a pod)
has been exported by that pod's scrapes before.

`scrape_rounds(until)` gives the rounds of scrapes complete by `until` (simulated or wall
time): one export each, every target scraped once; `final_scrape(at)` scrapes every target
once more, so the requests of the last seconds are counted too. Nothing here sends anything
or reads a clock (`pipelines` sends the rounds).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from meshlens.demo.pods import Proxy
from meshlens.demo.prometheus_scrape import (
    COUNTER,
    RECEIVER_SCOPE,
    RECEIVER_VERSION,
    SCRAPE_INTERVAL_SECONDS,
    Family,
    LabelSet,
    RequestSeries,
    Target,
)

NANOS_PER_SECOND = 1_000_000_000
NANOS_PER_MS = 1_000_000
INTERVAL_NS = SCRAPE_INTERVAL_SECONDS * NANOS_PER_SECOND
CUMULATIVE = AggregationTemporality.CUMULATIVE


@dataclass
class _Buckets:
    """A cumulative explicit-bucket histogram of whole milliseconds."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def add(self, ms: int) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)
        self.counts[bisect.bisect_left(self.bounds, ms)] += 1  # `le`: a bound holds itself
        self.total += ms


@dataclass
class _ProxySeries:
    """One proxy's series (in the order they appeared) and the requests it has yet to count."""

    target: Target
    offset_ns: int
    counters: dict[tuple[Family, LabelSet], float] = field(default_factory=dict)
    histograms: dict[tuple[Family, LabelSet], _Buckets] = field(default_factory=dict)
    pending: list[tuple[int, int, RequestSeries, int]] = field(default_factory=list)

    def settle(self, until_ns: int) -> None:
        """Count the requests that ended by `until_ns`."""
        while self.pending and self.pending[0][0] <= until_ns:
            _, _, series, ms = heapq.heappop(self.pending)
            for key in series.counters:
                self.counters[key] = self.counters.get(key, 0.0) + 1.0
            for family, labels in series.histograms:
                buckets = self.histograms.setdefault((family, labels), _Buckets(family.bounds))
                buckets.add(ms)

    def latest_end(self) -> int:
        return max((end for end, *_ in self.pending), default=0)


class ProxyMetrics:
    """Every proxy's counters and histograms, and their scrapes."""

    def __init__(self, targets: Mapping[Proxy, Target], started_ns: int) -> None:
        self.started_ns = started_ns  # the pods' start: every series' start time
        self._proxies = {
            key: _ProxySeries(target, _offset(target)) for key, target in targets.items()
        }
        self._resources = {key: Resource(t.resource()) for key, t in targets.items()}
        self._round = 0  # the next round of scrapes
        self._scraped_ns = started_ns  # the newest scrape's time
        self._sequence = itertools.count()  # keeps the heap from comparing series

    def count(self, proxy: Proxy, series: RequestSeries, end_ns: int, duration_ns: int) -> None:
        """`proxy` handled a request that ends at `end_ns` and took `duration_ns`."""
        ms = max(0, duration_ns) // NANOS_PER_MS  # both proxies record whole milliseconds
        item = (end_ns, next(self._sequence), series, ms)
        heapq.heappush(self._proxies[proxy].pending, item)

    def scrape_rounds(self, until_ns: int) -> Iterator[MetricsData]:
        """The rounds of scrapes complete by `until_ns`, oldest first (each once)."""
        while self.started_ns + (self._round + 1) * INTERVAL_NS <= until_ns:
            start = self.started_ns + self._round * INTERVAL_NS
            self._round += 1
            data = self._scrape({key: start + p.offset_ns for key, p in self._proxies.items()})
            if data.resource_metrics:
                yield data

    def final_scrape(self, now_ns: int) -> MetricsData:
        """Every proxy scraped once more, late enough for every request queued so far."""
        latest = max((p.latest_end() for p in self._proxies.values()), default=0)
        at = max(now_ns, latest, self._scraped_ns + 1)
        return self._scrape(dict.fromkeys(self._proxies, at))

    def _scrape(self, times: Mapping[Proxy, int]) -> MetricsData:
        resource_metrics = []
        for key, at in times.items():
            proxy = self._proxies[key]
            proxy.settle(at)
            self._scraped_ns = max(self._scraped_ns, at)
            metrics = _metrics(proxy, self.started_ns, at)
            if metrics:
                scope = ScopeMetrics(_SCOPE, metrics, schema_url="")
                resource_metrics.append(ResourceMetrics(self._resources[key], [scope], ""))
        return MetricsData(resource_metrics)


_SCOPE = InstrumentationScope(RECEIVER_SCOPE, RECEIVER_VERSION)


def _offset(target: Target) -> int:
    """Where in the interval Prometheus scrapes `target`: a hash of it, the same every run."""
    share = zlib.crc32(target.address.encode()) / 2**32
    return NANOS_PER_SECOND + int(share * (INTERVAL_NS - NANOS_PER_SECOND))


def _metrics(proxy: _ProxySeries, start_ns: int, at_ns: int) -> list[Metric]:
    """The proxy's series at one scrape, a metric per family (families in order seen)."""
    families: dict[Family, list[NumberDataPoint | HistogramDataPoint]] = {}
    extra = proxy.target.labels
    for (family, labels), value in proxy.counters.items():
        point = NumberDataPoint(dict((*labels, *extra)), start_ns, at_ns, value)
        families.setdefault(family, []).append(point)
    for (family, labels), buckets in proxy.histograms.items():
        histogram_point = HistogramDataPoint(
            attributes=dict((*labels, *extra)),
            start_time_unix_nano=start_ns,
            time_unix_nano=at_ns,
            count=sum(buckets.counts),
            sum=buckets.total,
            bucket_counts=list(buckets.counts),
            explicit_bounds=list(buckets.bounds),
            # a Prometheus histogram has no min or max: the SDK's encoder leaves None unset
            min=None,  # type: ignore[arg-type]
            max=None,  # type: ignore[arg-type]
        )
        families.setdefault(family, []).append(histogram_point)
    return [_metric(family, points) for family, points in families.items()]


def _metric(family: Family, points: list[NumberDataPoint | HistogramDataPoint]) -> Metric:
    if family.kind == COUNTER:
        numbers = [p for p in points if isinstance(p, NumberDataPoint)]
        data: Sum | Histogram = Sum(numbers, CUMULATIVE, is_monotonic=True)
    else:
        histograms = [p for p in points if isinstance(p, HistogramDataPoint)]
        data = Histogram(histograms, CUMULATIVE)
    return Metric(family.name, family.description, "", data)
