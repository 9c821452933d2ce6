"""Alert instances when a service and a virtual node share a name (no database needed).

Edge rules label their instances by names (`source`, `target`): the edges from one caller to the
service `redis` and to the database `redis` are one instance, their signals added up, so an
alert keeps one state and its fingerprint stays what it was. A service's plaintext edges are
those into the service itself, not into a virtual node of its name.
"""

from __future__ import annotations

from alerting.model import Rule, Scope, Signal
from alerting.readings import graph_instances
from meshlens.read.results import Edge, Graph, Mtls, Node, Signals


def _signals(requests: int, errors: int, plaintext: int = 0) -> Signals:
    mutual = requests - plaintext
    return Signals(seconds=60.0, requests=requests, errors=errors, mtls=Mtls(mutual, 0, plaintext))


def _graph() -> Graph:
    edges = [
        Edge("cart", "service", "redis", "service", ("traces",), _signals(30, 0)),
        Edge("cart", "service", "redis", "database", ("traces",), _signals(10, 10, 10)),
        Edge("user", "client", "cart", "service", ("traces",), _signals(5, 0)),
    ]
    nodes = [
        Node("cart", "service", _signals(5, 0), "entry-spans"),
        Node("redis", "service", _signals(30, 0), "entry-spans"),
        Node("redis", "database", _signals(10, 10, 10), "inbound-edges"),
        Node("user", "client", _signals(0, 0), "inbound-edges"),
    ]
    return Graph(nodes=nodes, edges=edges)


def test_an_edge_rule_has_one_instance_per_pair_of_names() -> None:
    rule = Rule("EdgeErrors", Signal.ERROR_RATE, Scope.EDGE, ">", 0.1)
    found = {
        (i.labels["source"], i.labels["target"]): (i.value, i.requests)
        for i in graph_instances(rule, _graph())
    }
    assert found == {("cart", "redis"): (10 / 40, 40), ("user", "cart"): (0.0, 5)}


def test_a_services_plaintext_edges_are_into_the_service_itself() -> None:
    rule = Rule("Plaintext", Signal.PLAINTEXT_EDGES, Scope.SERVICE, ">", 0)
    found = {i.labels["service"]: i.value for i in graph_instances(rule, _graph())}
    assert found == {"cart": 0.0, "redis": 0.0}
    edge_rule = Rule("PlaintextEdge", Signal.PLAINTEXT_EDGES, Scope.EDGE, ">", 0)
    by_edge = {
        (i.labels["source"], i.labels["target"]): i.value
        for i in graph_instances(edge_rule, _graph())
    }
    assert by_edge == {("cart", "redis"): 1.0, ("user", "cart"): 0.0}
