"""Which rows count for a node: summed rollup columns into `results.Signals`, and each node's
signals chosen from its entry spans, its inbound edges or its inbound mesh metrics.

The choices (documented for the API in `meshlens.read.queries` and the README):
- A service's signals come from its entry spans; a node without entry-span rows in the window
  (a mesh-metrics-only service, a database, a broker) gets the sum of its inbound edges.
- Where mesh metrics count into a service in the window, they win for its requests, errors and
  mTLS states: the sum of its inbound edges that have mesh-metrics rows (each counted from those
  only, `queries`); edges seen in traces alone are not added, as they may be the same requests
  under other names (Istio's metrics name canonical services, spans the proxy's `service.name`).
  Latency stays that of the entry spans, when the service has them: the service's own time in
  2%-wide buckets, against the proxies' coarse ones; a percentile of sampled spans is not biased
  by the sampling. Without entry spans it is that of those edges.
- Operations and versions come from entry spans only (mesh metrics keep neither), and their
  shares are of the entry-span total, so a sampled version is not compared with an unsampled
  total.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from meshlens.read.results import (
    ENTRY_SPANS,
    INBOUND_EDGES,
    MESH_METRICS,
    SERVICE,
    Edge,
    Node,
    NodeKey,
    Share,
    Signals,
    node_order,
)
from meshlens.read.windows import Window


def add(
    signals: Signals,
    requests: int,
    errors: int,
    latency: str | None,
    mutual: int,
    tls: int,
    plaintext: int,
    unknown: int,
    unknown_rate: int,
    *,
    metered: bool = False,
) -> None:
    """Add summed signal columns into `signals` (histograms are summed when asked); `metered`:
    they are of mesh metrics."""
    signals.requests += requests
    signals.errors += errors
    signals.mtls.add(mutual, tls, plaintext, unknown)
    signals.unknown_rate += unknown_rate
    if metered:
        signals.metered += requests
    if latency is not None:
        signals.latency.add_text(latency)


def add_columns(signals: Signals, columns: Sequence[Any]) -> None:
    """Add summed signal columns (of spans) into `signals`."""
    add(signals, *columns)


def add_latency(signals: Signals, columns: Sequence[Any]) -> None:
    """Add the histograms of summed signal columns, not their counts."""
    if columns[2] is not None:
        signals.latency.add_text(columns[2])


def nodes(
    window: Window,
    totals: Mapping[str, Signals],
    edges: Iterable[Edge],
    saturation: Mapping[str, float],
) -> list[Node]:
    """Nodes of the services with entry-span signals and of every edge's ends (a node per name
    and type), by name then type (`results.node_order`); the first node of a name has the
    saturation of the name."""
    keys: set[NodeKey] = {(name, SERVICE) for name in totals}
    inbound: dict[NodeKey, Signals] = {}
    metered: dict[str, Signals] = {}  # services' inbound mesh-metric edges
    for edge in edges:
        keys.update((edge.source_key, edge.target_key))
        signals = inbound.setdefault(edge.target_key, Signals(seconds=window.seconds))
        signals.merge(edge.signals)
        if edge.target_type == SERVICE and MESH_METRICS in edge.sources:
            metered.setdefault(edge.target, Signals(seconds=window.seconds)).merge(edge.signals)
    found = []
    previous = None
    for key in sorted(keys, key=node_order):
        name, type_ = key
        if type_ == SERVICE and name in totals:
            signals = totals[name]
            if name in metered:  # counts from the metrics, latency from the entry spans
                signals = _entry_latency(signals, metered[name])
            node = Node(name, SERVICE, signals, ENTRY_SPANS)
        else:
            signals = inbound.get(key) or Signals(seconds=window.seconds)
            if type_ == SERVICE and name in metered:
                signals = metered[name]
            node = Node(name, type_, signals, INBOUND_EDGES)
        if name != previous:
            node.signals.saturation = saturation.get(name)
        previous = name
        found.append(node)
    return found


def _entry_latency(entry: Signals, metered: Signals) -> Signals:
    """The signals of a service with entry spans and inbound mesh metrics: the metrics' counts,
    the entry spans' latency."""
    signals = Signals(seconds=entry.seconds)
    signals.latency.merge(entry.latency)
    return signals.counts_of(metered)


def shares(total: Signals, parts: Mapping[str, Signals]) -> list[Share]:
    """Parts by requests (most first), each with its share of `total`'s requests.

    The '' key (rows that are not this breakdown) is left out.
    """
    found = [
        Share(name, signals, signals.requests / total.requests if total.requests else None)
        for name, signals in parts.items()
        if name
    ]
    return sorted(found, key=lambda share: (-share.signals.requests, share.name))
