"""What the query layer returns: golden signals, nodes, edges, details, series, mTLS.

Plain dataclasses, shared by the JSON API (`api.schemas` turns them into responses) and the
dashboards. Counts are exact; latency is a mergeable `LatencyHistogram`; rates divide by the
covered seconds of the window or point they describe.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from api.windows import Series
from meshlens.signals.histogram import LatencyHistogram

ENTRY_SPANS = "entry-spans"
INBOUND_EDGES = "inbound-edges"
NODE_TYPE_PRECEDENCE = ("service", "client", "database", "messaging", "external")


@dataclass(slots=True)
class Mtls:
    """Requests by mTLS state."""

    mutual: int = 0
    tls: int = 0
    plaintext: int = 0
    unknown: int = 0

    @property
    def coverage(self) -> float | None:
        """mutual / (mutual + tls + plaintext); None when no request's state is known."""
        known = self.mutual + self.tls + self.plaintext
        return self.mutual / known if known else None

    def merge(self, other: Mtls) -> None:
        self.mutual += other.mutual
        self.tls += other.tls
        self.plaintext += other.plaintext
        self.unknown += other.unknown


@dataclass(slots=True)
class Signals:
    """Golden signals of one key over `seconds` (the covered seconds of its window or point)."""

    seconds: float
    requests: int = 0
    errors: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    mtls: Mtls = field(default_factory=Mtls)
    saturation: float | None = None  # utilization gauges are not derived yet

    @property
    def error_rate(self) -> float | None:
        """errors / requests; None without requests."""
        return self.errors / self.requests if self.requests else None

    @property
    def rps(self) -> float:
        """Requests per second over the covered seconds."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def latency_ms(self) -> dict[str, float | None]:
        """{"p50", "p95", "p99"} in milliseconds, None without requests."""
        return self.latency.quantiles_ms()

    def merge(self, other: Signals) -> Signals:
        """Add `other`'s counts (not its seconds) into this one; returns self."""
        self.requests += other.requests
        self.errors += other.errors
        self.latency.merge(other.latency)
        self.mtls.merge(other.mtls)
        return self


@dataclass(slots=True)
class Node:
    """A service or virtual node with the signals of what it answers."""

    name: str
    type: str
    signals: Signals
    signals_from: str


@dataclass(slots=True)
class Edge:
    """Requests from `source` to `target`; `sources` lists `mesh-metrics` and/or `traces`."""

    source: str
    source_type: str
    target: str
    target_type: str
    sources: tuple[str, ...]
    signals: Signals


@dataclass(slots=True)
class Graph:
    nodes: list[Node]
    edges: list[Edge]


@dataclass(slots=True)
class Share:
    """One operation or version of a service, with its share of the service's requests."""

    name: str
    signals: Signals
    share: float | None


@dataclass(slots=True)
class ServiceDetail:
    node: Node
    upstream: list[Edge]
    downstream: list[Edge]
    operations: list[Share]
    versions: list[Share]


@dataclass(slots=True)
class SeriesPoint:
    start_unix: int
    end_unix: int
    signals: Signals


@dataclass(slots=True)
class ServiceSeries:
    node_name: str
    series: Series
    points: list[SeriesPoint]
    signals_from: str


@dataclass(slots=True)
class MtlsPoint:
    start_unix: int
    end_unix: int
    mtls: Mtls


@dataclass(slots=True)
class MtlsSummary:
    """Mesh-wide mTLS states, the edges they come from, and coverage over time."""

    totals: Mtls
    edges: list[Edge]
    plaintext_edges: list[Edge]
    tls_edges: list[Edge]
    series: Series
    points: list[MtlsPoint]
