"""What a rule's signal reads, per scope instance, from the query layer (`meshlens.read`): the
rollups, or for `metric` rules the stored metric points of its window.

One round reads each window's graph once (`Readings` caches per window length), so 500 rules
on a few windows cost a few queries.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from statistics import fmean
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from alerting.model import Rule, Scope, Signal, all_match
from meshlens.read import queries
from meshlens.read.metric_queries import metric_points
from meshlens.read.results import Edge, Graph, Mtls, NodeKey, Signals
from meshlens.read.windows import Window, window_for
from meshlens.timeunits import NANOS_PER_SECOND


@dataclass(frozen=True, slots=True)
class Instance:
    """One scope instance of a rule: its labels, its value (None: unknown) and the requests
    its window holds (None where requests do not apply, as for saturation and metrics)."""

    labels: Mapping[str, str]
    value: float | None
    requests: int | None


@dataclass
class Readings:
    """The graphs and versions of one round, per window length; `now` is the round's time."""

    conn: AsyncConnection
    now: float
    _graphs: dict[int, Graph] = field(default_factory=dict)
    _versions: dict[int, list[tuple[str, str, Signals]]] = field(default_factory=dict)

    def window(self, seconds: int) -> Window:
        """The rule's window: its whole minutes before the current minute, and the current
        minute so far (rollups are per minute: a window ending now at a minute boundary would
        hold nothing of the last seconds). Rates divide by the seconds it covers."""
        return window_for(f"{max(60, seconds) + 60}s", None, self.now)

    async def graph(self, seconds: int) -> Graph:
        if seconds not in self._graphs:
            self._graphs[seconds] = await queries.graph(self.conn, self.window(seconds))
        return self._graphs[seconds]

    async def versions(self, seconds: int) -> list[tuple[str, str, Signals]]:
        if seconds not in self._versions:
            self._versions[seconds] = await queries.versions(self.conn, self.window(seconds))
        return self._versions[seconds]

    async def instances(self, rule: Rule) -> list[Instance]:
        """The rule's instances that meet its scope matchers."""
        if rule.signal is Signal.METRIC:
            found = await self._metric(rule)
            return [one for one in found if all_match(rule.matchers, one.labels)]
        if rule.scope is Scope.VERSION:
            return [
                _instance(rule, labels, signals, [])
                for service, version, signals in await self.versions(rule.window)
                if all_match(rule.matchers, labels := {"service": service, "version": version})
            ]
        return graph_instances(rule, await self.graph(rule.window))

    async def _metric(self, rule: Rule) -> list[Instance]:
        assert rule.metric is not None
        window = self.window(rule.window)
        start, end = window.start_unix * NANOS_PER_SECOND, window.end_unix * NANOS_PER_SECOND
        by_key: dict[str, list[tuple[int, float]]] = defaultdict(list)
        matchers = rule.metric.matchers
        for point in await metric_points(self.conn, rule.metric.name, start, end):
            if point.value is None or not all_match(matchers, _strings(point.attributes)):
                continue
            key = point.service if rule.scope is Scope.SERVICE else ""
            by_key[key].append((point.time_unix_nano, float(point.value)))
        return [
            Instance({"service": key} if rule.scope is Scope.SERVICE else {}, value, None)
            for key, points in sorted(by_key.items())
            if (value := _aggregate(rule.metric.aggregation, points)) is not None
        ]


def _strings(attributes: Any) -> dict[str, str]:
    if not isinstance(attributes, dict):
        return {}
    return {str(key): str(value) for key, value in attributes.items()}


def _aggregate(how: str, points: list[tuple[int, float]]) -> float | None:
    """The points' `how`: sum, avg, min, max, last, or rate (per second, of a counter: the
    increases between points, ignoring drops as resets)."""
    if not points:
        return None
    values = [value for _, value in points]
    if how == "rate":
        if len(points) < 2:
            return None
        increase = sum(max(0.0, b - a) for a, b in pairwise(values))
        seconds = (points[-1][0] - points[0][0]) / 1e9
        return increase / seconds if seconds > 0 else None
    reducers: dict[str, Callable[[list[float]], float]] = {
        "sum": sum,
        "avg": fmean,
        "min": min,
        "max": max,
        "last": lambda found: found[-1],
    }
    return float(reducers[how](values))


def graph_instances(rule: Rule, graph: Graph) -> list[Instance]:
    """The rule's instances in `graph` that meet its matchers (values only for those)."""
    if rule.scope is Scope.EDGE:  # labelled by names: the edges between two names are one
        between: dict[tuple[str, str], list[Edge]] = defaultdict(list)
        for e in graph.edges:  # a service and a virtual node may share a name (two edges)
            between[e.source, e.target].append(e)
        return [
            _instance(rule, labels, _summed(edges), edges)
            for (source, target), edges in between.items()
            if all_match(rule.matchers, labels := {"source": source, "target": target})
        ]
    if rule.scope is Scope.SERVICE:
        chosen = [
            node
            for node in graph.nodes
            if node.type == "service" and all_match(rule.matchers, {"service": node.name})
        ]
        inbound: dict[NodeKey, list[Edge]] = defaultdict(list)
        if rule.signal is Signal.PLAINTEXT_EDGES:
            for edge in graph.edges:
                inbound[edge.target_key].append(edge)
        return [
            _instance(rule, {"service": node.name}, node.signals, inbound[node.key])
            for node in chosen
        ]
    return [_mesh(rule, graph)] if all_match(rule.matchers, {}) else []


def _summed(edges: list[Edge]) -> Signals:
    """The signals of `edges` (of one window) added up; one edge's own."""
    if len(edges) == 1:
        return edges[0].signals
    total = Signals(seconds=edges[0].signals.seconds)
    for edge in edges:
        total.merge(edge.signals)
    return total


def _mesh(rule: Rule, graph: Graph) -> Instance:
    services = [node for node in graph.nodes if node.type == "service"]
    total = Signals(seconds=services[0].signals.seconds if services else 0.0)
    for node in services:
        total.merge(node.signals)
    saturation = [n.signals.saturation for n in services if n.signals.saturation is not None]
    total.saturation = max(saturation) if saturation else None
    mtls = Mtls()
    for edge in graph.edges:
        mtls.merge(edge.signals.mtls)
    total.mtls = mtls
    return _instance(rule, {}, total, graph.edges)


def _instance(rule: Rule, labels: dict[str, str], signals: Signals, edges: list[Edge]) -> Instance:
    return Instance(labels, value(rule.signal, signals, edges), _requests(rule.signal, signals))


def _requests(signal: Signal, signals: Signals) -> int | None:
    return None if signal is Signal.SATURATION else signals.requests


def value(signal: Signal, signals: Signals, edges: list[Edge]) -> float | None:
    """The value of `signal` for a scope instance with these signals (and inbound edges)."""
    if signal is Signal.REQUEST_RATE:
        return signals.rps
    if signal is Signal.ERROR_RATE:
        return signals.error_rate
    if signal in _QUANTILES:
        return signals.latency_ms()[_QUANTILES[signal]]
    if signal is Signal.SATURATION:
        return signals.saturation
    if signal is Signal.MTLS_COVERAGE:
        return signals.mtls.coverage
    if signal is Signal.PLAINTEXT_EDGES:
        return float(sum(1 for edge in edges if edge.signals.mtls.plaintext > 0))
    raise ValueError(f"no value for {signal}")


_QUANTILES = {Signal.LATENCY_P50: "p50", Signal.LATENCY_P95: "p95", Signal.LATENCY_P99: "p99"}
