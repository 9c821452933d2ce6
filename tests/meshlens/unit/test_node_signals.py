"""Which rows count for a node (`read.node_signals`) and how signals say they are lower bounds.

Pure: signals are built by hand, as the query layer builds them from summed rollup columns
(requests, errors, latency text, mTLS mutual, tls, plaintext, unknown, unknown_rate).
"""

from __future__ import annotations

from meshlens.read import node_signals
from meshlens.read.results import Edge, Signals
from meshlens.read.windows import Window
from meshlens.signals.histogram import LatencyHistogram

WINDOW = Window(start_unix=0, end_unix=600, now=600.0)
MS = 1_000_000


def _latency_text(*durations_ns: int) -> str:
    """One rollup row's histogram as `read.rollup_sql` sends it."""
    histogram = LatencyHistogram()
    for duration in durations_ns:
        histogram.add(duration)
    keys, counts = histogram.to_arrays()
    return "[{" + ",".join(map(str, keys)) + "},{" + ",".join(map(str, counts)) + "}]"


def _signals(
    requests: int,
    errors: int = 0,
    *,
    unknown_rate: int = 0,
    metered: bool = False,
    mutual: int = 0,
    took_ms: int = 10,
) -> Signals:
    signals = Signals(seconds=WINDOW.seconds)
    latency = _latency_text(*[took_ms * MS] * requests) if requests else None
    unknown = requests - mutual
    columns = (requests, errors, latency, mutual, 0, 0, unknown, unknown_rate)
    node_signals.add(signals, *columns, metered=metered)
    return signals


def _edge(source: str, target: str, signals: Signals, *sources: str, target_type: str = "service"
          ) -> Edge:  # fmt: skip
    return Edge(source, "service", target, target_type, tuple(sorted(sources)), signals)


def test_counts_say_where_they_come_from_and_whether_they_are_a_lower_bound() -> None:
    assert (Signals(seconds=60).counted_from, Signals(seconds=60).unknown_rate_share) == (
        None,
        None,
    )
    assert not Signals(seconds=60).rate_is_lower_bound
    sampled = _signals(8, unknown_rate=2)
    assert (sampled.counted_from, sampled.unknown_rate_share) == ("traces", 0.25)
    assert sampled.rate_is_lower_bound
    metered = _signals(30, 3, metered=True)
    assert (metered.counted_from, metered.unknown_rate_share) == ("mesh-metrics", 0.0)
    assert not metered.rate_is_lower_bound
    both = Signals(seconds=60).merge(metered).merge(sampled)
    assert (both.requests, both.metered, both.unknown_rate) == (38, 30, 2)
    assert (both.counted_from, both.unknown_rate_share) == ("mixed", 2 / 38)
    assert both.rate_is_lower_bound


def test_a_service_with_inbound_mesh_metrics_counts_them_and_keeps_its_entry_latency() -> None:
    entry = _signals(6, 1, unknown_rate=6, took_ms=40)  # its proxy's spans, rate unknown
    metered = _signals(30, 3, metered=True, mutual=30, took_ms=200)  # its traces do not count
    other_caller = _signals(4, unknown_rate=4)  # seen in traces only: left out
    edges = [
        _edge("gateway", "shop", metered, "mesh-metrics", "traces"),
        _edge("batch", "shop", other_caller, "traces"),
    ]
    nodes = {n.key: n for n in node_signals.nodes(WINDOW, {"shop": entry}, edges, {"shop": 0.4})}
    shop = nodes[("shop", "service")]
    assert shop.signals_from == "entry-spans"
    signals = shop.signals
    assert (signals.requests, signals.errors, signals.mtls.mutual) == (30, 3, 30)
    assert (signals.counted_from, signals.rate_is_lower_bound) == ("mesh-metrics", False)
    assert signals.latency_ms() == entry.latency_ms()  # the entry spans', not the edges'
    assert signals.saturation == 0.4
    assert entry.requests == 6  # the entry-span total is left as it was (for shares)


def test_a_service_without_inbound_mesh_metrics_keeps_its_entry_spans() -> None:
    entry = _signals(6, 1, unknown_rate=6)
    edges = [_edge("gateway", "shop", _signals(6, unknown_rate=6), "traces")]
    shop = node_signals.nodes(WINDOW, {"shop": entry}, edges, {})[1]
    assert shop.key == ("shop", "service")
    assert shop.signals is entry
    assert (shop.signals.counted_from, shop.signals.rate_is_lower_bound) == ("traces", True)


def test_a_service_without_entry_spans_counts_only_its_metered_edges() -> None:
    edges = [
        _edge("shop", "ledger", _signals(5, metered=True, took_ms=30), "mesh-metrics"),
        _edge("batch", "ledger", _signals(2, unknown_rate=2), "traces"),
        _edge("shop", "db", _signals(7, unknown_rate=7), "traces", target_type="database"),
        _edge("cart", "db", _signals(3), "traces", target_type="database"),
    ]
    nodes = {n.key: n for n in node_signals.nodes(WINDOW, {}, edges, {})}
    ledger = nodes[("ledger", "service")]
    assert (ledger.signals_from, ledger.signals.requests) == ("inbound-edges", 5)
    assert ledger.signals.counted_from == "mesh-metrics"
    assert ledger.signals.latency_ms() == _signals(5, took_ms=30).latency_ms()
    db = nodes[("db", "database")]  # a virtual node sums every inbound edge, as before
    assert (db.signals.requests, db.signals.unknown_rate_share) == (10, 0.7)
    assert (db.signals.counted_from, db.signals.rate_is_lower_bound) == ("traces", True)


def test_a_virtual_node_summing_both_kinds_is_mixed() -> None:
    edges = [
        _edge("shop", "api.example.com", _signals(5, metered=True), "mesh-metrics",
              target_type="external"),
        _edge("cart", "api.example.com", _signals(3, unknown_rate=3), "traces",
              target_type="external"),
    ]  # fmt: skip
    nodes = {n.key: n for n in node_signals.nodes(WINDOW, {}, edges, {})}
    external = nodes[("api.example.com", "external")]
    assert (external.signals.requests, external.signals.counted_from) == (8, "mixed")
    assert external.signals.unknown_rate_share == 3 / 8


def test_shares_are_of_the_total_given() -> None:
    entry = _signals(10, unknown_rate=10)
    parts = {"": entry, "v1": _signals(8, unknown_rate=8), "v2": _signals(2, unknown_rate=2)}
    found = node_signals.shares(entry, parts)
    assert [(s.name, s.share, s.signals.rate_is_lower_bound) for s in found] == [
        ("v1", 0.8, True),
        ("v2", 0.2, True),
    ]
