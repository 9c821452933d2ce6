"""A node is its name and its type: ids that stay the name where it is unique."""

from __future__ import annotations

from meshlens.read.results import (
    Edge,
    Graph,
    Node,
    Signals,
    node_ids,
    node_order,
    type_rank,
)


def test_unique_names_are_their_own_ids() -> None:
    keys = [("cart", "service"), ("postgres", "database"), ("user", "client")]
    assert node_ids(keys) == {key: key[0] for key in keys}


def test_the_service_keeps_the_name_and_the_virtual_nodes_are_qualified() -> None:
    keys = [
        ("redis", "database"),
        ("redis", "service"),
        ("payments", "external"),
        ("payments", "service"),
        ("kafka", "external"),
        ("kafka", "messaging"),
        ("kafka", "broker-ish"),  # a type meshlens does not know sorts after the known ones
    ]
    assert node_ids(keys) == {
        ("redis", "service"): "redis",
        ("redis", "database"): "database:redis",
        ("payments", "service"): "payments",
        ("payments", "external"): "external:payments",
        ("kafka", "messaging"): "kafka",
        ("kafka", "external"): "external:kafka",
        ("kafka", "broker-ish"): "broker-ish:kafka",
    }


def test_a_qualified_id_that_is_another_nodes_name_gets_a_suffix() -> None:
    keys = [("redis", "service"), ("redis", "database"), ("database:redis", "service")]
    ids = node_ids(keys)
    assert ids == {
        ("redis", "service"): "redis",
        ("database:redis", "service"): "database:redis",
        ("redis", "database"): "database:redis~2",
    }
    assert len(set(ids.values())) == len(ids)


def test_ids_do_not_depend_on_the_order_given() -> None:
    keys = [("a", "external"), ("a", "database"), ("a", "client"), ("a", "service")]
    assert node_ids(keys) == node_ids(reversed(keys)) == node_ids(keys + keys)
    assert node_ids(keys)[("a", "client")] == "client:a"


def test_nodes_sort_by_name_then_type_rank() -> None:
    keys = [("b", "service"), ("a", "external"), ("a", "zzz"), ("a", "service"), ("a", "client")]
    assert sorted(keys, key=node_order) == [
        ("a", "service"),
        ("a", "client"),
        ("a", "external"),
        ("a", "zzz"),
        ("b", "service"),
    ]
    assert type_rank("service") < type_rank("client") < type_rank("database")
    assert type_rank("messaging") < type_rank("external") < type_rank("aaa") < type_rank("zzz")


def test_a_graph_gives_ids_to_edge_ends_without_a_node() -> None:
    signals = Signals(seconds=60.0)
    edge = Edge("cart", "service", "redis", "database", ("traces",), signals)
    graph = Graph(nodes=[Node("redis", "service", signals, "entry-spans")], edges=[edge])
    assert graph.node_ids() == {
        ("redis", "service"): "redis",
        ("redis", "database"): "database:redis",
        ("cart", "service"): "cart",
    }
    assert edge.key == ("cart", "service", "redis", "database")
    assert (edge.source_key, edge.target_key) == (("cart", "service"), ("redis", "database"))
