"""The service map: focus filter, layered layout and plotly figure (no database needed)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import orjson
import pytest

from dashboards.layout import Position
from dashboards.service_map import (
    HEALTH_COLOURS,
    focus,
    health,
    layered_positions,
    map_figure,
    plotly_text,
)
from meshlens.read.results import Edge, Graph, Latency, Mtls, Node, NodeKey, Signals

SECONDS = 60.0
TYPES = {
    "user": "client",
    "postgres": "database",
    "redis": "database",
    "kafka": "messaging",
    "api.stripe.com": "external",
}
XSS = "<img src=x onerror=alert(1)>"


def signals(
    requests: int = 600,
    errors: int = 0,
    *,
    mutual: int = 0,
    tls: int = 0,
    plaintext: int = 0,
    unknown: int = 0,
) -> Signals:
    latency = Latency()
    if requests:
        latency.add_arrays([400, 500], [requests - requests // 10, requests // 10])
    return Signals(
        seconds=SECONDS,
        requests=requests,
        errors=errors,
        latency=latency,
        mtls=Mtls(mutual, tls, plaintext, unknown),
    )


def edge(source: str, target: str, requests: int = 600, errors: int = 0, **mtls: int) -> Edge:
    """An edge; mTLS counts default to all requests mutual."""
    counts = mtls or {"mutual": requests}
    return Edge(
        source=source,
        source_type=TYPES.get(source, "service"),
        target=target,
        target_type=TYPES.get(target, "service"),
        sources=("traces",),
        signals=signals(requests, errors, **counts),
    )


def graph(edges: Iterable[Edge], *lonely: str) -> Graph:
    """The graph of `edges` (nodes get the sum of their inbound edges) and `lonely` services."""
    edges = list(edges)
    inbound: dict[str, Signals] = {}
    types: dict[str, str] = {name: "service" for name in lonely}
    for e in edges:
        types[e.source] = e.source_type
        types[e.target] = e.target_type
        inbound.setdefault(e.target, Signals(seconds=SECONDS)).merge(e.signals)
    nodes = [
        Node(name, kind, inbound.get(name) or Signals(seconds=SECONDS), "inbound-edges")
        for name, kind in sorted(types.items())
    ]
    return Graph(nodes=nodes, edges=edges)


def shop() -> Graph:
    """A small DAG: a client, services, and one virtual node of each type."""
    return graph(
        [
            edge("user", "frontend"),
            edge("frontend", "cart"),
            edge("frontend", "checkout"),
            edge("cart", "redis"),
            edge("checkout", "payments"),
            edge("checkout", "kafka"),
            edge("payments", "postgres"),
            edge("payments", "api.stripe.com"),
            edge("batch-job", "payments"),
        ]
    )


def mesh(services: int = 210, edges: int = 1000, seed: int = 7) -> Graph:
    """A random mesh in tiers, with a few calls back to earlier tiers (cycles)."""
    rng = random.Random(seed)
    names = [f"svc-{n:03d}" for n in range(services)]
    tier = {name: rng.randrange(6) for name in names}
    pairs = {("user", name) for name in names if tier[name] == 0}
    while len(pairs) < edges:
        source, target = rng.choice(names), rng.choice([*names, "postgres", "kafka"])
        if target in names and tier[target] <= tier[source] and rng.random() > 0.05:
            continue
        pairs.add((source, target))
    return graph(edge(s, t, rng.randrange(1, 100_000)) for s, t in sorted(pairs))


def by_name(positions: dict[NodeKey, Position]) -> dict[str, Position]:
    """Positions by name, for graphs whose names are unique."""
    named = {name: position for (name, _), position in positions.items()}
    assert len(named) == len(positions)
    return named


# --- figure helpers ----------------------------------------------------------------------------


def traces(figure: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    return [trace for trace in figure["data"] if trace["uid"].startswith(prefix)]


def segments(trace: dict[str, Any]) -> Iterator[list[tuple[float, float]]]:
    """The null-separated lines of a line trace."""
    line: list[tuple[float, float]] = []
    for x, y in zip(trace["x"], trace["y"], strict=True):
        if x is None:
            yield line
            line = []
        else:
            line.append((x, y))
    yield line


def edge_lines(g: Graph, figure: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """The line trace drawing each edge, found by the edge's end points."""
    positions = by_name(layered_positions(g))
    ends = {(positions[e.source], positions[e.target]): (e.source, e.target) for e in g.edges}
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for trace in traces(figure, "edges:"):
        for line in segments(trace):
            key = ends[line[0], line[-1]]
            assert key not in found
            found[key] = trace
    return found


def node_points(figure: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each node point's trace, text, hover text, customdata and colour, by unescaped name."""
    points: dict[str, dict[str, Any]] = {}
    for trace in traces(figure, "nodes:"):
        for n, hover in enumerate(trace["hovertext"]):
            name = hover.split("</b>")[0].removeprefix("<b>")
            assert name not in points
            points[name] = {
                "trace": trace,
                "xy": (trace["x"][n], trace["y"][n]),
                "text": trace["text"][n],
                "hover": hover,
                "customdata": trace["customdata"][n],
                "colour": trace["marker"]["color"][n],
            }
    return points


# --- focus -------------------------------------------------------------------------------------


def test_focus_none_is_the_whole_graph() -> None:
    g = shop()
    shown = focus(g, None, 1)
    assert shown.nodes == g.nodes
    assert shown.edges == g.edges


def test_focus_one_hop_ignores_direction() -> None:
    g = shop()
    shown = focus(g, "checkout", 1)
    assert {n.name for n in shown.nodes} == {"checkout", "frontend", "payments", "kafka"}
    assert {(e.source, e.target) for e in shown.edges} == {
        ("frontend", "checkout"),
        ("checkout", "payments"),
        ("checkout", "kafka"),
    }


def test_focus_two_hops() -> None:
    g = shop()
    shown = focus(g, "checkout", 2)
    assert {n.name for n in shown.nodes} == {
        "checkout",
        "frontend",
        "payments",
        "kafka",
        "user",
        "cart",
        "postgres",
        "api.stripe.com",
        "batch-job",
    }
    assert {(e.source, e.target) for e in shown.edges} == {
        (e.source, e.target) for e in g.edges if "redis" not in (e.source, e.target)
    }


def test_focus_zero_hops_and_virtual_nodes() -> None:
    g = shop()
    assert [n.name for n in focus(g, "payments", 0).nodes] == ["payments"]
    assert focus(g, "payments", 0).edges == []
    shown = focus(g, "postgres", 1)  # a virtual node can be the focus too
    assert {n.name for n in shown.nodes} == {"postgres", "payments"}


def test_focus_keeps_the_graphs_order_and_objects() -> None:
    g = shop()
    shown = focus(g, "frontend", 1)
    assert shown.nodes == [n for n in g.nodes if n.name in {"frontend", "user", "cart", "checkout"}]
    assert all(any(e is original for original in g.edges) for e in shown.edges)


def test_focus_on_an_unknown_service_is_empty() -> None:
    shown = focus(shop(), "nope", 2)
    assert shown.nodes == []
    assert shown.edges == []


def test_focus_rejects_negative_hops() -> None:
    with pytest.raises(ValueError, match="hops"):
        focus(shop(), "cart", -1)


# --- layout ------------------------------------------------------------------------------------


def test_callers_left_of_callees_on_a_dag() -> None:
    g = shop()
    positions = by_name(layered_positions(g))
    assert set(positions) == {n.name for n in g.nodes}
    for e in g.edges:
        assert positions[e.source][0] < positions[e.target][0], (e.source, e.target)
    assert positions["user"][0] == 0
    assert positions["frontend"][0] == 1
    # a source that is no client sits just before its callee, not at the far left
    assert positions["batch-job"][0] == positions["payments"][0] - 1
    # virtual nodes come after their callers
    assert positions["postgres"][0] == positions["payments"][0] + 1


def test_positions_are_distinct_and_layers_centred() -> None:
    positions = layered_positions(shop())
    assert len(set(positions.values())) == len(positions)
    by_layer: dict[float, list[float]] = {}
    for x, y in positions.values():
        by_layer.setdefault(x, []).append(y)
    for ys in by_layer.values():
        assert sum(ys) == pytest.approx(0)
        assert sorted(ys) == [min(ys) + n for n in range(len(ys))]  # one unit apart


def test_clients_start_the_map_even_when_called() -> None:
    g = graph([edge("user", "frontend"), edge("frontend", "user"), edge("frontend", "cart")])
    positions = by_name(layered_positions(g))
    assert positions["user"][0] == 0
    assert positions["frontend"][0] < positions["cart"][0]


def test_a_cycle_keeps_every_node() -> None:
    g = graph(
        [
            edge("user", "a"),
            edge("a", "b"),
            edge("b", "c"),
            edge("c", "a"),
            edge("b", "b"),  # a self-call
            edge("c", "postgres"),
            edge("d", "e"),
            edge("e", "d"),  # a cycle of its own, no caller
        ],
        "lonely",
    )
    positions = by_name(layered_positions(g))
    assert set(positions) == {n.name for n in g.nodes}
    assert len(set(positions.values())) == len(positions)
    # the cycle is entered where it is called from, and only its closing edge goes back
    assert positions["user"][0] < positions["a"][0] < positions["b"][0] < positions["c"][0]
    assert positions["c"][0] < positions["postgres"][0]
    backwards = [
        (e.source, e.target)
        for e in g.edges
        if e.source != e.target and positions[e.source][0] >= positions[e.target][0]
    ]
    assert sorted(backwards) == [("c", "a"), ("e", "d")]
    assert map_figure(g)["data"]


def test_layout_is_deterministic_whatever_the_order() -> None:
    g = mesh(services=60, edges=200)
    shuffled = Graph(nodes=list(g.nodes), edges=list(g.edges))
    random.Random(3).shuffle(shuffled.nodes)
    random.Random(4).shuffle(shuffled.edges)
    assert layered_positions(g) == layered_positions(g) == layered_positions(shuffled)


def test_crossings_are_reduced() -> None:
    # two parallel chains given in crossing order: the sweeps untangle them
    g = graph(
        [
            edge("user", "a1"),
            edge("user", "b1"),
            edge("a1", "z2"),
            edge("b1", "a2"),
            edge("z2", "a3"),
            edge("a2", "z3"),
        ]
    )
    positions = by_name(layered_positions(g))
    y = {name: position[1] for name, position in positions.items()}
    assert (y["a1"] > y["b1"]) == (y["z2"] > y["a2"]) == (y["a3"] > y["z3"])


def test_a_big_mesh_is_laid_out() -> None:
    g = mesh()
    assert len(g.nodes) > 200
    assert len(g.edges) == 1000
    positions = by_name(layered_positions(g))
    assert set(positions) == {n.name for n in g.nodes}
    assert len(set(positions.values())) == len(positions)
    backwards = sum(
        1
        for e in g.edges
        if e.source != e.target and positions[e.source][0] >= positions[e.target][0]
    )
    assert backwards < 50  # only cycle-closing calls


def test_empty_graph() -> None:
    empty = Graph(nodes=[], edges=[])
    assert layered_positions(empty) == {}
    figure = map_figure(empty)
    assert figure["data"] == []
    assert figure["layout"]["height"] == 420
    orjson.dumps(figure)


# --- health ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error_rate", "expected"),
    [
        (None, "idle"),
        (float("nan"), "idle"),
        (0.0, "ok"),
        (0.0099, "ok"),
        (0.01, "warn"),
        (0.0499, "warn"),
        (0.05, "bad"),
        (1.0, "bad"),
    ],
)
def test_health(error_rate: float | None, expected: str) -> None:
    assert health(error_rate) == expected
    assert HEALTH_COLOURS[health(error_rate)].startswith("#")


# --- figure ------------------------------------------------------------------------------------


def test_one_node_point_per_node_one_trace_per_type() -> None:
    g = shop()
    figure = map_figure(g)
    points = node_points(figure)
    assert sorted(points) == sorted(n.name for n in g.nodes)
    node_traces = traces(figure, "nodes:")
    assert [t["name"] for t in node_traces] == [
        "service",
        "database",
        "messaging",
        "external",
        "client",
    ]
    symbols = {t["name"]: t["marker"]["symbol"] for t in node_traces}
    assert symbols == {
        "service": "circle",
        "database": "square",
        "messaging": "diamond",
        "external": "hexagon",
        "client": "triangle-right",
    }
    positions = by_name(layered_positions(g))
    for name, point in points.items():
        assert point["xy"] == positions[name]
        assert point["text"] == name  # labels are the names
    assert all(t["x"] == [None] for t in traces(figure, "legend:"))
    legend = [t["name"] for t in figure["data"] if t.get("showlegend", True)]
    assert legend[:5] == ["service", "database", "messaging", "external", "client"]


def test_one_edge_line_arrow_and_hover_point_per_edge() -> None:
    g = graph(
        [
            edge("user", "frontend", 60_000),
            edge("frontend", "cart", 600),
            edge("cart", "frontend", 60),  # reciprocal: bent apart
            edge("cart", "cart", 6),  # self-call: a loop
            edge("cart", "redis", 6, plaintext=6),
        ]
    )
    figure = map_figure(g)
    lines = edge_lines(g, figure)
    assert sorted(lines) == sorted((e.source, e.target) for e in g.edges)
    # the reciprocal pair is drawn as two distinct curves
    forth = [s for t in traces(figure, "edges:") for s in segments(t) if len(s) > 2]
    assert len(forth) == 3  # frontend -> cart, cart -> frontend and the loop
    positions = by_name(layered_positions(g))
    arrows = traces(figure, "arrows:")
    tips = [
        (x, y)
        for t in arrows
        for x, y, size in zip(t["x"], t["y"], t["marker"]["size"], strict=True)
        if size > 0
    ]
    assert sorted(tips) == sorted(positions[e.target] for e in g.edges)
    assert all(t["marker"]["angleref"] == "previous" for t in arrows)
    hover = [text for t in traces(figure, "edge-hover:") for text in t["hovertext"]]
    assert sorted(h.split("</b>")[0] for h in hover) == sorted(
        f"<b>{e.source} → {e.target}" for e in g.edges
    )


def test_edge_dash_by_mtls() -> None:
    g = graph(
        [
            edge("user", "frontend", 600, mutual=600),
            edge("frontend", "plain", 600, mutual=500, plaintext=100),
            edge("frontend", "oneway", 600, mutual=500, tls=100),
            edge("frontend", "both", 600, tls=300, plaintext=300),
            edge("frontend", "unknown", 600, unknown=600),
        ]
    )
    lines = edge_lines(g, map_figure(g))
    dashes = {target: trace["line"]["dash"] for (_, target), trace in lines.items()}
    assert dashes == {
        "frontend": "solid",
        "plain": "dash",
        "oneway": "dot",
        "both": "dash",
        "unknown": "solid",
    }


def test_edge_colour_by_error_ratio_and_width_by_rps() -> None:
    g = graph(
        [
            edge("user", "frontend", 600_000, 0),
            edge("frontend", "ok", 6_000, 59),
            edge("frontend", "warn", 600, 6),
            edge("frontend", "bad", 60, 3),
            edge("frontend", "idle", 0, 0),
            edge("frontend", "slow", 1, 0),
        ]
    )
    figure = map_figure(g)
    lines = edge_lines(g, figure)
    colours = {target: trace["line"]["color"] for (_, target), trace in lines.items()}
    assert colours == {
        "frontend": HEALTH_COLOURS["ok"],
        "ok": HEALTH_COLOURS["ok"],
        "warn": HEALTH_COLOURS["warn"],
        "bad": HEALTH_COLOURS["bad"],
        "idle": HEALTH_COLOURS["idle"],
        "slow": HEALTH_COLOURS["ok"],
    }
    widths = {target: trace["line"]["width"] for (_, target), trace in lines.items()}
    assert widths["frontend"] == 8  # 10,000 rps
    assert widths["idle"] == widths["slow"] == 1  # 0 and 1/60 rps
    assert widths["frontend"] > widths["ok"] > widths["warn"] > widths["bad"] > widths["slow"]
    # nodes take the health of what they answer
    points = node_points(figure)
    assert points["bad"]["colour"] == HEALTH_COLOURS["bad"]
    assert points["warn"]["colour"] == HEALTH_COLOURS["warn"]
    assert points["frontend"]["colour"] == HEALTH_COLOURS["ok"]
    assert points["user"]["colour"] == HEALTH_COLOURS["idle"]  # nothing calls the client


def test_customdata_is_the_service_page() -> None:
    g = graph(
        [
            edge("user", "pay/ments v2"),
            edge("pay/ments v2", "postgres"),
            edge("pay/ments v2", "kafka"),
            edge("pay/ments v2", "a?b#c&d%"),
        ]
    )
    points = node_points(map_figure(g, base_url="/mesh/", query="?window=1h&end=5"))
    assert points["pay/ments v2"]["customdata"] == "/mesh/services/pay%2Fments%20v2?window=1h&end=5"
    assert points["a?b#c&amp;d%"]["customdata"] == "/mesh/services/a%3Fb%23c%26d%25?window=1h&end=5"
    assert points["postgres"]["customdata"] is None
    assert points["kafka"]["customdata"] is None
    assert points["user"]["customdata"] is None
    default = node_points(map_figure(g))
    assert default["pay/ments v2"]["customdata"] == "/services/pay%2Fments%20v2"


def test_untrusted_names_are_escaped() -> None:
    reasons = Counter({'<a href="javascript:alert(1)">x</a>': 5})
    bad = Edge(
        source="frontend",
        source_type="service",
        target=XSS,
        target_type="service",
        sources=("traces", "<b>mesh</b>"),
        signals=signals(5, plaintext=5),
        plaintext_reasons=reasons,
    )
    g = graph([edge("user", "frontend"), bad, edge(XSS, 'it\'s "quoted"')])
    figure = map_figure(g)
    points = node_points(figure)
    escaped = "&lt;img src=x onerror=alert(1)&gt;"
    assert points[escaped]["text"] == escaped
    assert points[escaped]["hover"].startswith(f"<b>{escaped}</b><br>")
    assert points["it&#39;s &#34;quoted&#34;"]["text"] == "it&#39;s &#34;quoted&#34;"
    hover = "".join(text for t in traces(figure, "edge-hover:") for text in t["hovertext"])
    assert f"frontend → {escaped}" in hover
    assert "&lt;a href=&#34;javascript:alert(1)&#34;&gt;x&lt;/a&gt;" in hover
    assert "&lt;b&gt;mesh&lt;/b&gt;" in hover
    text = orjson.dumps(figure).decode()
    assert "<img" not in text
    assert "<a " not in text
    assert "<b>mesh" not in text


def test_plotly_text() -> None:
    assert plotly_text("a & <b>'\"") == "a &amp; &lt;b&gt;&#39;&#34;"
    assert plotly_text("&lt;") == "&amp;lt;"  # shown as typed, not decoded


def test_hover_text_carries_the_signals() -> None:
    e = edge("frontend", "payments", 600, 12, mutual=300, tls=100, plaintext=150, unknown=50)
    e.plaintext_reasons = Counter({"not_provided_by_remote": 150})
    e.sources = ("mesh-metrics", "traces")
    g = graph([edge("user", "frontend"), e])
    figure = map_figure(g)
    (hover,) = [
        text for t in traces(figure, "edge-hover:") for text in t["hovertext"] if "payments" in text
    ]
    lines = hover.split("<br>")
    assert lines[0] == "<b>frontend → payments</b>"
    assert "10.0/s · 600 requests" in lines
    assert "errors: 2.00 % (12)" in lines
    assert any(line.startswith("p50 / p95 / p99: ") and " ms / " in line for line in lines)
    assert "mTLS: 300 mutual · 100 one-way TLS · 150 plaintext · 50 unknown" in lines
    assert "mTLS coverage: 54.5 %" in lines
    assert "plaintext because: not_provided_by_remote" in lines
    assert "from: mesh-metrics, traces" in lines
    node = node_points(figure)["payments"]["hover"].split("<br>")
    assert node[:2] == ["<b>payments</b>", "service"]
    assert "inbound mTLS coverage: 54.5 %" in node
    idle = node_points(figure)["user"]["hover"].split("<br>")
    assert "no requests in the window" in idle


def test_layout_settings() -> None:
    figure = map_figure(shop())
    layout = figure["layout"]
    assert layout["hovermode"] == "closest"
    assert layout["dragmode"] == "pan"
    assert layout["uirevision"]
    assert layout["legend"]["orientation"] == "h"
    for axis in (layout["xaxis"], layout["yaxis"]):
        assert axis["visible"] is False
        assert axis["showgrid"] is False
    assert all(t.get("hoverinfo") in {"text", "skip"} for t in figure["data"])
    assert all("hovertemplate" not in t for t in figure["data"])
    tall = map_figure(graph(edge("user", f"s{n}") for n in range(20)))["layout"]["height"]
    assert layout["height"] == 420 < tall


def test_figure_is_json_and_deterministic() -> None:
    g = mesh(services=60, edges=200)
    first = orjson.dumps(map_figure(g, query="?window=15m"))
    assert first == orjson.dumps(map_figure(g, query="?window=15m"))
    big_mesh = mesh()
    big = map_figure(big_mesh)
    names = [t["name"] for t in traces(big, "nodes:")]
    assert names == ["service", "database", "messaging", "client"]
    assert sum(len(t["x"]) for t in traces(big, "nodes:")) == len(big_mesh.nodes)
    orjson.dumps(big)


# --- a service and a virtual node of one name ---------------------------------------------------


def same_name() -> Graph:
    """cart calls the service `redis` (a proxy) and the database `redis`; checkout calls the
    service only."""
    to_service = Edge("cart", "service", "redis", "service", ("traces",), signals(600))
    to_database = Edge("cart", "service", "redis", "database", ("traces",), signals(60, 6))
    from_checkout = Edge("checkout", "service", "redis", "service", ("traces",), signals(6))
    nodes = [
        Node("cart", "service", signals(0), "inbound-edges"),
        Node("checkout", "service", signals(0), "inbound-edges"),
        Node("redis", "service", signals(606), "entry-spans"),
        Node("redis", "database", signals(60, 6), "inbound-edges"),
    ]
    return Graph(nodes=nodes, edges=[to_service, to_database, from_checkout])


def test_a_service_and_a_database_of_one_name_are_two_points() -> None:
    g = same_name()
    positions = layered_positions(g)
    assert set(positions) == {n.key for n in g.nodes}
    assert len(set(positions.values())) == 4
    figure = map_figure(g, query="?window=15m")
    points = sorted(
        (t["uid"], t["x"][n], t["y"][n], t["customdata"][n])
        for t in traces(figure, "nodes:")
        for n in range(len(t["x"]))
    )
    service, database = positions["redis", "service"], positions["redis", "database"]
    assert [p for p in points if p[3] is None or "redis" in p[3]] == sorted(
        [
            ("nodes:service", *service, "/services/redis?window=15m"),
            ("nodes:database", *database, None),
        ]
    )
    tips = sorted(
        (x, y)
        for t in traces(figure, "arrows:")
        for x, y, size in zip(t["x"], t["y"], t["marker"]["size"], strict=True)
        if size > 0
    )
    assert tips == sorted([service, database, service])
    hovers = [text for t in traces(figure, "nodes:database") for text in t["hovertext"]]
    assert hovers[0].startswith("<b>redis</b><br>database<br>")
    assert "60 requests" in hovers[0]


def test_focus_on_a_shared_name_is_the_service() -> None:
    g = same_name()
    shown = focus(g, "redis", 1)
    assert [n.key for n in shown.nodes] == [
        ("cart", "service"),
        ("checkout", "service"),
        ("redis", "service"),
    ]
    assert [e.target_type for e in shown.edges] == ["service", "service"]
    assert {n.key for n in focus(g, "redis", 2).nodes} == {n.key for n in g.nodes}
