"""A sidecar and its instrumented app are one hop; a call without a server half shows at once.

A real `meshlens serve` pair (two collector processes on one database) deriving fast; spans as
Istio's Envoy and an OpenTelemetry SDK write them (`proxy_spans`), sent the way they really
travel: each exporter on its own, in an order the test chooses.
"""

from __future__ import annotations

import os
import time

from harness.waiting import wait_until
from meshlens.signals.histogram import bucket_of
from tests.collector.proxy_spans import (
    CLIENT,
    SERVER,
    edge_latency_keys,
    edges,
    envoy,
    outbound,
    sdk,
    send,
    served,
)
from tests.support import RunningServer, unique_names

MS = 1_000_000


def _chain(name: object, now: int) -> dict[str, object]:
    """gateway CLIENT -> shop sidecar SERVER -> shop app SERVER -> app CLIENT -> shop sidecar
    CLIENT -> inventory sidecar SERVER: one request into shop, one call shop -> inventory."""
    assert callable(name)
    gateway, shop, inventory = name("gw"), name("shop"), name("inventory")
    trace = os.urandom(16)
    a, b, c, d, e, f = (os.urandom(8) for _ in range(6))
    return {
        "names": (gateway, shop, inventory),
        "caller": [envoy(gateway, CLIENT, (trace, a, b""), outbound(shop), start=now,
                         duration_ns=90 * MS, node_type="router")],
        "shop_sidecar": [
            envoy(shop, SERVER, (trace, b, a), "inbound|8080||", start=now + MS,
                  duration_ns=85 * MS),
            envoy(shop, CLIENT, (trace, e, d), outbound(inventory), start=now + 11 * MS,
                  duration_ns=30 * MS),
        ],
        "shop_app": [
            sdk(shop, SERVER, (trace, c, b), start=now + 2 * MS, duration_ns=80 * MS),
            sdk(shop, CLIENT, (trace, d, c), start=now + 10 * MS, duration_ns=60 * MS,
                peer=f"{inventory}.shop-ns"),
        ],
        "inventory_sidecar": [
            envoy(inventory, SERVER, (trace, f, e), "inbound|8080||", start=now + 12 * MS,
                  duration_ns=25 * MS, revision="v2"),
        ],
    }  # fmt: skip


def _assert_one_hop(first: RunningServer, names: tuple[str, str, str]) -> None:
    gateway, shop, inventory = names
    assert edges(first, shop) == {(inventory, "service"): (1, 0)}  # no virtual node
    assert edges(first, gateway) == {(shop, "service"): (1, 0)}
    assert served(first, shop) == {shop: 1}
    assert served(first, shop, "operation") == {"GET /items/{id}": 1}  # the app's route
    assert served(first, shop, "version") == {"v1": 1}  # Istio's label: the app has none
    assert served(first, inventory) == {inventory: 1}
    # what shop experienced: its app's client span, not its sidecar's
    assert edge_latency_keys(first, shop, inventory) == {bucket_of(60 * MS): 1}


def test_a_sidecar_and_its_app_count_one_request_and_one_call(
    twin_servers: tuple[RunningServer, RunningServer],
) -> None:
    first, second = twin_servers
    chain = _chain(unique_names(), time.time_ns())
    send(first, chain["inventory_sidecar"])  # type: ignore[arg-type]
    send(second, chain["shop_app"])  # type: ignore[arg-type]
    send(first, chain["shop_sidecar"])  # type: ignore[arg-type]
    send(second, chain["caller"])  # type: ignore[arg-type]
    names = chain["names"]
    assert isinstance(names, tuple)
    wait_until(lambda: bool(edges(first, names[1])), timeout=15, what="an edge from shop")
    time.sleep(4)  # past the wait before counting alone, and the pairing window
    _assert_one_hop(first, names)


def test_an_app_span_after_its_sidecars_call_was_counted_moves_nothing_but_latency(
    twin_servers: tuple[RunningServer, RunningServer],
) -> None:
    """The app's exporter is slow: its spans arrive after the sidecars' were paired and the
    request counted. The count stays one; the app's route and latency take over."""
    first, second = twin_servers
    chain = _chain(unique_names(), time.time_ns())
    names = chain["names"]
    assert isinstance(names, tuple)
    for part in ("caller", "shop_sidecar", "inventory_sidecar"):
        send(first, chain[part])  # type: ignore[arg-type]
    wait_until(lambda: bool(edges(first, names[1])), timeout=15, what="an edge from shop")
    assert served(first, names[1], "operation") == {
        f"{names[1]}.shop-ns.svc.cluster.local:8080/*": 1
    }
    send(second, chain["shop_app"])  # type: ignore[arg-type]
    wait_until(
        lambda: served(first, names[1], "operation") == {"GET /items/{id}": 1},
        timeout=15,
        what="the app's route to replace the sidecar's",
    )
    time.sleep(4)
    _assert_one_hop(first, names)


def test_an_old_gateways_single_client_span_is_a_request_from_user_and_one_to_the_service(
    twin_servers: tuple[RunningServer, RunningServer],
) -> None:
    """Older Istio gateways write one root CLIENT span per request (grafana/tempo#1418)."""
    first, _ = twin_servers
    name = unique_names()
    gateway, shop = name("ingress"), name("shop")
    trace, a, b = os.urandom(16), os.urandom(8), os.urandom(8)
    now = time.time_ns()
    send(first, [
        envoy(gateway, CLIENT, (trace, a, b""), outbound(shop), start=now, duration_ns=20 * MS,
              node_type="router"),
        envoy(shop, SERVER, (trace, b, a), "inbound|8080||", start=now + MS, duration_ns=15 * MS),
    ])  # fmt: skip
    wait_until(lambda: bool(edges(first, gateway)), timeout=15, what="an edge from the gateway")
    time.sleep(4)
    assert edges(first, "user").get((gateway, "service")) == (1, 0)
    assert edges(first, gateway) == {(shop, "service"): (1, 0)}
    assert served(first, gateway) == {gateway: 1}
    assert served(first, shop) == {shop: 1}


def test_a_gateway_with_a_server_span_and_an_egress_child(
    twin_servers: tuple[RunningServer, RunningServer],
) -> None:
    """Istio >= 1.28 gateways: a root SERVER span and a `router <cluster> egress` CLIENT child."""
    first, second = twin_servers
    name = unique_names()
    gateway, shop = name("ingress"), name("shop")
    trace, g, r, b = os.urandom(16), os.urandom(8), os.urandom(8), os.urandom(8)
    now = time.time_ns()
    entry = envoy(gateway, SERVER, (trace, g, b""), outbound(shop), start=now,
                  duration_ns=20 * MS, node_type="router")  # fmt: skip
    egress = envoy(gateway, CLIENT, (trace, r, g), outbound(shop), start=now + MS,
                   duration_ns=18 * MS, node_type="router")  # fmt: skip
    egress.name = f"router {outbound(shop)} egress"
    send(first, [entry, egress])
    send(second, [envoy(shop, SERVER, (trace, b, r), "inbound|8080||", start=now + 2 * MS,
                        duration_ns=15 * MS)])  # fmt: skip
    wait_until(lambda: bool(edges(first, gateway)), timeout=15, what="an edge from the gateway")
    time.sleep(4)
    assert edges(first, "user").get((gateway, "service")) == (1, 0)
    assert edges(first, gateway) == {(shop, "service"): (1, 0)}
    assert served(first, gateway) == {gateway: 1}
    assert served(first, shop) == {shop: 1}
