"""What the query layer returns: golden signals, nodes, edges, details, series, mTLS.

Plain dataclasses, shared by the JSON API (`api.schemas` turns them into responses) and the
dashboards. Counts are exact; latency sums log-bucketed histograms (`Latency`); rates divide by
the covered seconds of the window or point they describe.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, compress
from operator import add

import orjson

from meshlens.read.windows import Series
from meshlens.signals.histogram import MAX_KEY, QUANTILES, LatencyHistogram, quantiles_ms

ENTRY_SPANS = "entry-spans"
INBOUND_EDGES = "inbound-edges"
MESH_METRICS = "mesh-metrics"
TRACES = "traces"
MIXED = "mixed"
"""Where a signals object's counts come from (`Signals.counted_from`): the proxies' request
counters (not sampled), spans (each counting the requests it stands for), or both (a node
summing edges of each kind)."""
SERVICE = "service"
NODE_TYPE_PRECEDENCE = (SERVICE, "client", "database", "messaging", "external")

NodeKey = tuple[str, str]
"""A node's identity: (name, type). A service `redis` and a database `redis` are two nodes."""
EdgeKey = tuple[str, str, str, str]
"""An edge's identity: (source, source type, target, target type)."""


def type_rank(node_type: str) -> tuple[int, str]:
    """Where `node_type` comes among the types one name can have: service, client, database,
    messaging, external, then any other by name."""
    if node_type in NODE_TYPE_PRECEDENCE:
        return (NODE_TYPE_PRECEDENCE.index(node_type), "")
    return (len(NODE_TYPE_PRECEDENCE), node_type)


def node_order(key: NodeKey) -> tuple[str, tuple[int, str]]:
    """Sort key of nodes: by name, then the types of one name by `type_rank`."""
    return (key[0], type_rank(key[1]))


def node_ids(keys: Iterable[NodeKey]) -> dict[NodeKey, str]:
    """A unique id per node of one answer: the name, but for a name several nodes have, only
    the first of them by `type_rank` (the service, when there is one) has the name as id and
    every other one has `<type>:<name>` (with `~2`, `~3`... should that be another's id too)."""
    ordered = sorted(set(keys), key=node_order)
    ids: dict[NodeKey, str] = {}
    taken: set[str] = set()
    for key in ordered:  # the first node of each name keeps the name
        if key[0] not in taken:
            ids[key] = key[0]
            taken.add(key[0])
    for key in ordered:
        if key not in ids:
            found = candidate = f"{key[1]}:{key[0]}"
            number = 1
            while found in taken:
                number += 1
                found = f"{candidate}~{number}"
            ids[key] = found
            taken.add(found)
    return ids


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
        self.add(other.mutual, other.tls, other.plaintext, other.unknown)

    def add(self, mutual: int, tls: int, plaintext: int, unknown: int) -> None:
        self.mutual += mutual
        self.tls += tls
        self.plaintext += plaintext
        self.unknown += unknown


class Latency:
    """Latency histograms added up for one answer, summed only when a percentile is asked.

    Histograms are kept as they come (rollup rows' arrays, or the JSON text `read.rollup_sql`
    concatenates them into), so adding one costs an append. Summing them goes into a dense list
    indexed by bucket key, two to three times cheaper per bucket than a dict, and percentiles
    come from its running sum by `meshlens.signals.histogram.quantiles_ms`, as those of a
    `LatencyHistogram` of the same counts do.
    """

    __slots__ = ("_dense", "_pending", "_quantiles")

    def __init__(self) -> None:
        self._pending: list[tuple[Sequence[int] | str | None, Sequence[int]]] = []
        self._dense: list[int] | None = None
        self._quantiles: dict[str, float | None] | None = None
        """The last `quantiles_ms`, until something is added (alert rules ask it again)."""

    def add_arrays(self, keys: Sequence[int], counts: Sequence[int]) -> None:
        """Add a histogram stored as sorted keys and their counts (a rollup row's arrays)."""
        if len(keys) != len(counts):
            raise ValueError(f"histogram arrays differ: {len(keys)} keys, {len(counts)} counts")
        if keys:
            if keys[0] < 0:  # a key past MAX_KEY fails when summed; a negative one would not
                raise ValueError(f"bucket key {keys[0]} is negative")
            self._pending.append((keys, counts))
            self._quantiles = None

    def add_text(self, histograms: str) -> None:
        """Add histograms given as `[{keys},{counts},{keys},{counts},...]` (PostgreSQL array
        literals of bucket keys and counts, in pairs, in brackets)."""
        self._pending.append((histograms, ()))
        self._quantiles = None

    def merge(self, other: Latency) -> None:
        """Add `other`'s counts (`other` is left as it is)."""
        self._pending.extend(other._pending)
        if other._dense is not None:
            self._pending.append((None, other._dense.copy()))
        self._quantiles = None

    def counts(self) -> list[int]:
        """Counts by bucket key (the index), `MAX_KEY + 1` of them."""
        dense = self._dense
        if dense is None:
            dense = self._dense = [0] * (MAX_KEY + 1)
        for keys, counts in self._pending:
            if keys is None:  # another one's dense counts
                dense[:] = map(add, dense, counts)
            elif isinstance(keys, str):
                arrays = orjson.loads(keys.translate(_BRACKETS))
                for row_keys, row_counts in zip(arrays[::2], arrays[1::2], strict=True):
                    _add_sparse(dense, row_keys, row_counts)
            else:
                _add_sparse(dense, keys, counts)
        self._pending.clear()
        return dense

    def histogram(self) -> LatencyHistogram:
        """The sum as a sparse `LatencyHistogram`."""
        dense = self.counts()
        return LatencyHistogram(dict(compress(enumerate(dense), dense)))

    def quantiles_ms(self) -> dict[str, float | None]:
        """{"p50", "p95", "p99"} in milliseconds rounded to 3 decimals; None when empty."""
        if self._quantiles is None:
            self._quantiles = self._compute_quantiles()
        return dict(self._quantiles)

    def _compute_quantiles(self) -> dict[str, float | None]:
        if self._dense is None and not self._pending:
            return quantiles_ms((), (), QUANTILES)
        return quantiles_ms(_KEYS, list(accumulate(self.counts())), QUANTILES)


_KEYS = range(MAX_KEY + 1)


_BRACKETS = str.maketrans("{}", "[]")


def _add_sparse(dense: list[int], keys: Sequence[int], counts: Sequence[int]) -> None:
    if keys and keys[0] < 0:  # a key past MAX_KEY fails on its own; a negative one would not
        raise ValueError(f"bucket key {keys[0]} is negative")
    for key, count in zip(keys, counts, strict=True):
        dense[key] += count


@dataclass(slots=True)
class Signals:
    """Golden signals of one key over `seconds` (the covered seconds of its window or point)."""

    seconds: float
    requests: int = 0
    errors: int = 0
    latency: Latency = field(default_factory=Latency)
    mtls: Mtls = field(default_factory=Mtls)
    saturation: float | None = None
    """Highest utilization in [0, 1] of the saturation rows covering the same time; None
    without any."""
    unknown_rate: int = 0
    """Of the requests, those counted from spans sampled at a rate nobody declared (a proxy's
    span counts one, yet stands for more): with any, `requests` is a lower bound."""
    metered: int = 0
    """Of the requests, those counted from mesh metrics (the proxies' counters: not sampled)."""

    @property
    def unknown_rate_share(self) -> float | None:
        """unknown_rate / requests; None without requests."""
        return self.unknown_rate / self.requests if self.requests else None

    @property
    def rate_is_lower_bound(self) -> bool:
        """Whether some requests come from spans sampled at an unknown rate: the true requests,
        errors and rate are higher (error_rate and latency are estimates, not bounds)."""
        return self.unknown_rate > 0

    @property
    def counted_from(self) -> str | None:
        """`MESH_METRICS` when every request comes from mesh metrics, `TRACES` when none does,
        `MIXED` otherwise; None without requests."""
        if not self.requests:
            return None
        if self.metered >= self.requests:
            return MESH_METRICS
        return TRACES if self.metered <= 0 else MIXED

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
        """Add `other`'s counts (not its seconds nor its saturation) into this one; returns
        self."""
        self.requests += other.requests
        self.errors += other.errors
        self.latency.merge(other.latency)
        self.mtls.merge(other.mtls)
        self.unknown_rate += other.unknown_rate
        self.metered += other.metered
        return self

    def counts_of(self, other: Signals) -> Signals:
        """Take `other`'s counts (requests, errors, mTLS states, unknown_rate, metered) in
        place of this one's, keeping this one's latency and saturation; returns self."""
        self.requests, self.errors = other.requests, other.errors
        self.mtls = Mtls()
        self.mtls.merge(other.mtls)
        self.unknown_rate, self.metered = other.unknown_rate, other.metered
        return self


@dataclass(slots=True)
class Node:
    """A service or virtual node with the signals of what it answers; `key` is its identity."""

    name: str
    type: str
    signals: Signals
    signals_from: str

    @property
    def key(self) -> NodeKey:
        return (self.name, self.type)


@dataclass(slots=True)
class Edge:
    """Requests from `source` to `target`; `sources` lists `mesh-metrics` and/or `traces`."""

    source: str
    source_type: str
    target: str
    target_type: str
    sources: tuple[str, ...]
    signals: Signals
    plaintext_reasons: Counter[str] = field(default_factory=Counter)
    """Plaintext requests by the reason the mesh gave (Linkerd `no_tls_reason`)."""

    @property
    def plaintext_reason(self) -> str | None:
        """The reason with the most plaintext requests (ties: the first by name); None without
        any."""
        return top_reason(self.plaintext_reasons)

    @property
    def key(self) -> EdgeKey:
        return (self.source, self.source_type, self.target, self.target_type)

    @property
    def source_key(self) -> NodeKey:
        return (self.source, self.source_type)

    @property
    def target_key(self) -> NodeKey:
        return (self.target, self.target_type)


@dataclass(slots=True)
class Graph:
    """Nodes (one per name and type) and the edges between them."""

    nodes: list[Node]
    edges: list[Edge]

    def node_ids(self) -> dict[NodeKey, str]:
        """A unique id for every node and edge end (`node_ids`)."""
        keys = [node.key for node in self.nodes]
        keys += [key for edge in self.edges for key in (edge.source_key, edge.target_key)]
        return node_ids(keys)


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
    node_type: str = SERVICE


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
    edge_points: dict[EdgeKey, list[Mtls]] = field(default_factory=dict)
    """Each counted edge's mTLS states per point of `series`, by `Edge.key`."""


def top_reason(reasons: Mapping[str, int]) -> str | None:
    """The reason with the most requests (ties: the first by name); None without any."""
    counted = [(-count, reason) for reason, count in reasons.items() if count > 0]
    return min(counted)[1] if counted else None
