"""A call without a server half counts within seconds on its virtual node, and moves when its
server half comes: later, from another process, after a restart, a minute on.

Real `meshlens serve` processes deriving fast (a call waits 2 s alone before it counts).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import psycopg

from harness.postgres import DatabaseFactory
from harness.waiting import wait_until
from meshlens.signals.histogram import bucket_of
from tests.collector.proxy_spans import CLIENT, SERVER, edge_latency_keys, edges, sdk, send
from tests.support import FAST_DERIVATION, RunningServer, running_server, unique_names

MS = 1_000_000


def test_a_call_without_server_half_shows_at_once_and_moves_when_the_half_comes(
    twin_servers: tuple[RunningServer, RunningServer],
) -> None:
    """The server half comes after the call was counted on its virtual node (another
    process wrote it): the call moves to the service edge, counted once."""
    first, second = twin_servers
    name = unique_names()
    web, orders = name("web"), name("orders")
    trace, client_id = os.urandom(16), os.urandom(8)
    now = time.time_ns()
    call = sdk(web, CLIENT, (trace, client_id, b""), start=now, duration_ns=40 * MS,
               peer=f"{orders}.shop-ns")  # fmt: skip
    send(first, [call])
    wait_until(lambda: bool(edges(first, web)), timeout=15, what="the call on a virtual edge")
    assert edges(first, web) == {(f"{orders}.shop-ns", "external"): (1, 0)}
    server_half = sdk(orders, SERVER, (trace, os.urandom(8), client_id), start=now + MS,
                      duration_ns=30 * MS)  # fmt: skip
    send(second, [server_half])
    wait_until(
        lambda: edges(first, web) == {(orders, "service"): (1, 0)},
        timeout=15,
        what="the call to move to web -> orders",
    )
    assert edge_latency_keys(first, web, orders) == {bucket_of(40 * MS): 1}
    assert edge_latency_keys(first, web, f"{orders}.shop-ns") == {}


def test_a_server_half_after_a_restart_and_a_minute_moves_the_call(
    databases: DatabaseFactory, tmp_path: Path
) -> None:
    url = databases.create()
    name = unique_names()
    web, orders = name("web"), name("orders")
    trace, client_id = os.urandom(16), os.urandom(8)
    now = time.time_ns()
    slow = {**FAST_DERIVATION, "MESHLENS_PAIRING_WINDOW_SECONDS": "300"}
    with running_server(url, tmp_path / "1.log", **slow) as server:
        send(server, [sdk(web, CLIENT, (trace, client_id, b""), start=now, duration_ns=40 * MS,
                          peer=f"{orders}.shop-ns")])  # fmt: skip
        wait_until(lambda: bool(edges(server, web)), timeout=15, what="the call counted alone")
    with psycopg.connect(url, autocommit=True) as conn:  # a minute later, as far as it knows
        moved = conn.execute(
            "UPDATE edge_halves SET arrived_at = arrived_at - interval '61 seconds'"
            " WHERE trace_id = %s AND counted",
            (trace,),
        )
        assert moved.rowcount == 1
    with running_server(url, tmp_path / "2.log", **slow) as server:
        send(server, [sdk(orders, SERVER, (trace, os.urandom(8), client_id), start=now + MS,
                          duration_ns=30 * MS)])  # fmt: skip
        wait_until(
            lambda: edges(server, web) == {(orders, "service"): (1, 0)},
            timeout=15,
            what=lambda: f"the call to move to web -> orders, edges {edges(server, web)}",
        )


def test_an_in_mesh_name_of_a_known_service_is_that_service(
    twin_servers: tuple[RunningServer, RunningServer],
) -> None:
    """A call with no server half (its server's spans were not sampled, or it failed) to
    `<svc>`, `<svc>.<ns>` or `<svc>.<ns>.svc.cluster.local` of a service that served requests
    counts on the edge to that service; a host outside the mesh stays an external node."""
    first, _ = twin_servers
    name = unique_names()
    web, orders = name("web"), name("orders")
    now = time.time_ns()
    send(first, [sdk(orders, SERVER, (os.urandom(16), os.urandom(8), b""), start=now,
                     duration_ns=5 * MS)])  # fmt: skip
    wait_until(lambda: bool(edges(first, "user").get((orders, "service"))), timeout=15,
               what="orders to have served a request")  # fmt: skip
    hosts = (orders, f"{orders}.shop-ns", f"{orders}.shop-ns.svc.cluster.local", "api.stripe.com")
    send(first, [sdk(web, CLIENT, (os.urandom(16), os.urandom(8), b""), start=now,
                     duration_ns=20 * MS, peer=host) for host in hosts])  # fmt: skip
    wait_until(lambda: sum(n for n, _ in edges(first, web).values()) == 4, timeout=15,
               what=lambda: f"four calls from web, found {edges(first, web)}")  # fmt: skip
    assert edges(first, web) == {
        (orders, "service"): (3, 0),
        ("api.stripe.com", "external"): (1, 0),
    }
