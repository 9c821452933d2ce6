"""Derivation of one batch: in-batch pairing, halves left for PostgreSQL, service signals."""

from __future__ import annotations

import os
from typing import Any

import pytest

from collector.derive.batch import BatchDerivation
from collector.derive.classify import MTLS_MUTUAL, MTLS_PLAINTEXT, MTLS_TLS, MTLS_UNKNOWN
from collector.derive.halves import (
    CLIENT_SIDE,
    PROXY_CLIENT_SIDE,
    PROXY_ENTRY_SIDE,
    PROXY_LEG,
    SERVER_SIDE,
)
from collector.derive.span_facts import SpanFacts
from meshlens.signals.histogram import bucket_of

MINUTE_NS = 60 * 10**9
START = 29_000_000 * MINUTE_NS + 5


def _facts(
    service: str, kind: int, trace: bytes, span: bytes, parent: bytes = b"", **kw: Any
) -> SpanFacts:
    values: dict[str, Any] = {
        "links": (),
        "duration_ns": 2_000_000,
        "error": False,
        "mtls": 0,
        "operation": "GET /x",
        "version": "v1",
        "is_database": False,
        "attributes": {},
    }
    values.update(kw)
    return SpanFacts(
        trace,
        span,
        parent,
        values["links"],
        kind,
        service,
        START,
        values["duration_ns"],
        bucket_of(values["duration_ns"]),
        values["error"],
        values["mtls"],
        values["operation"],
        values["version"],
        values["is_database"],
        values["attributes"],
        values.get("proxy_leg", False),
        values.get("proxy", ""),
        values.get("gateway", False),
        values.get("weight", 1),
        values.get("unknown_rate", False),
    )


def _edges(derived: BatchDerivation) -> dict[tuple[str, str, str], tuple[int, int]]:
    return {
        (key[2], key[4], key[5]): (s.requests, s.errors)
        for key, s in derived.rollups.items()
        if key[0] == "edge"
    }


def test_halves_in_one_batch_pair_at_once_with_server_errors_and_client_latency() -> None:
    trace, client_id = os.urandom(16), os.urandom(8)
    client = _facts("web", 3, trace, client_id, duration_ns=9_000_000, error=True)
    server = _facts("api", 2, trace, os.urandom(8), client_id, error=False, mtls=3)
    derived = BatchDerivation().add_all([server, client])
    assert derived.halves == []
    assert _edges(derived) == {("web", "api", "service"): (1, 0)}
    (edge,) = [s for k, s in derived.rollups.items() if k[0] == "edge"]
    assert edge.latency.counts == {bucket_of(9_000_000): 1}
    assert edge.mtls == [0, 0, 0, 1]


@pytest.mark.parametrize(
    ("server_state", "client_state", "expected"),
    [
        (MTLS_UNKNOWN, MTLS_UNKNOWN, MTLS_UNKNOWN),
        (MTLS_UNKNOWN, MTLS_MUTUAL, MTLS_MUTUAL),  # only the client knows: its state
        (MTLS_UNKNOWN, MTLS_PLAINTEXT, MTLS_PLAINTEXT),
        (MTLS_MUTUAL, MTLS_UNKNOWN, MTLS_MUTUAL),
        (MTLS_MUTUAL, MTLS_TLS, MTLS_MUTUAL),
        (MTLS_PLAINTEXT, MTLS_MUTUAL, MTLS_PLAINTEXT),  # a terminating hop: the server saw plain
        (MTLS_TLS, MTLS_MUTUAL, MTLS_TLS),  # the server's state stands, not upgraded
        (MTLS_TLS, MTLS_PLAINTEXT, MTLS_TLS),
    ],
)
def test_a_pair_counts_the_server_halfs_mtls_state_when_it_knows_one(
    server_state: int, client_state: int, expected: int
) -> None:
    """In-batch pairing; the deriver's SQL pairing follows the same rule
    (tests/collector/test_derivation.py test_paired_halves_keep_the_server_halfs_mtls_state)."""
    trace, client_id = os.urandom(16), os.urandom(8)
    client = _facts("web", 3, trace, client_id, mtls=client_state)
    server = _facts("api", 2, trace, os.urandom(8), client_id, mtls=server_state)
    derived = BatchDerivation().add_all([client, server])
    (edge,) = [s for k, s in derived.rollups.items() if k[0] == "edge"]
    assert edge.mtls == [int(state == expected) for state in range(4)]


def test_unpaired_halves_go_to_postgresql() -> None:
    trace = os.urandom(16)
    client = _facts("web", 3, trace, os.urandom(8), attributes={"server.address": "x.example"})
    server = _facts("api", 2, os.urandom(16), os.urandom(8), os.urandom(8))
    derived = BatchDerivation().add_all([client, server])
    sides = sorted((h[2], h[3], h[8]) for h in derived.halves)
    assert sides == [(CLIENT_SIDE, "web", "x.example"), (SERVER_SIDE, "api", "")]
    assert _edges(derived) == {}


def test_same_service_pairs_are_not_edges_and_roots_come_from_user() -> None:
    trace, client_id = os.urandom(16), os.urandom(8)
    derived = BatchDerivation().add_all(
        [
            _facts("api", 3, trace, client_id),
            _facts("api", 2, trace, os.urandom(8), client_id),
            _facts("front", 2, os.urandom(16), os.urandom(8)),
        ]
    )
    assert _edges(derived) == {("user", "front", "service"): (1, 0)}
    assert derived.halves == []


def test_database_calls_are_edges_at_once() -> None:
    call = _facts(
        "api",
        3,
        os.urandom(16),
        os.urandom(8),
        is_database=True,
        attributes={"db.system": "postgresql", "server.address": "pg-main"},
    )
    derived = BatchDerivation().add_all([call])
    assert _edges(derived) == {("api", "pg-main", "database"): (1, 0)}


def test_consumer_pairs_with_its_producer_through_a_link() -> None:
    producer_trace, producer_id = os.urandom(16), os.urandom(8)
    producer = _facts("orders", 4, producer_trace, producer_id)
    consumer = _facts(
        "billing", 5, os.urandom(16), os.urandom(8), links=((producer_trace, producer_id),)
    )
    derived = BatchDerivation().add_all([consumer, producer])
    assert _edges(derived) == {("orders", "billing", "service"): (1, 0)}


def test_service_signals_count_for_total_operation_and_version() -> None:
    spans = [
        _facts(
            "api",
            2,
            os.urandom(16),
            os.urandom(8),
            version="v2" if n < 1 else "v1",
            operation=f"op{n % 2}",
            error=n == 0,
        )
        for n in range(10)
    ]
    derived = BatchDerivation().add_all(spans)
    services = {
        (k[3], k[4]): (s.requests, s.errors)
        for k, s in derived.rollups.items()
        if k[0] == "service"
    }
    assert services == {
        ("", ""): (10, 1),
        ("op0", ""): (5, 1),
        ("op1", ""): (5, 0),
        ("", "v1"): (9, 0),
        ("", "v2"): (1, 1),
    }


def _sides(derived: BatchDerivation) -> list[tuple[int, bytes, bytes | None, bool]]:
    """(side, key span id, via span id, counted) of every half, in order."""
    return [(row[2], row[1], row[12], row[13]) for row in derived.halves]


def test_a_sidecars_entry_span_waits_under_its_own_id_for_its_apps() -> None:
    trace, caller, sidecar = os.urandom(16), os.urandom(8), os.urandom(8)
    entry = _facts("shop", 2, trace, sidecar, caller, proxy="envoy")
    derived = BatchDerivation().add_all([entry])
    assert _sides(derived) == [
        (PROXY_ENTRY_SIDE, sidecar, None, False),
        (SERVER_SIDE, caller, None, False),
    ]
    app = _facts("shop", 2, trace, os.urandom(8), sidecar)  # the app's own: no proxy half
    assert _sides(BatchDerivation().add_all([app])) == [(SERVER_SIDE, sidecar, None, False)]


def test_a_sidecars_client_span_waits_under_its_apps_client_span() -> None:
    trace, app_client, sidecar = os.urandom(16), os.urandom(8), os.urandom(8)
    call = _facts("shop", 3, trace, sidecar, app_client, proxy="envoy")
    assert _sides(BatchDerivation().add_all([call])) == [
        (CLIENT_SIDE, sidecar, app_client, False),
        (PROXY_CLIENT_SIDE, app_client, sidecar, False),
    ]
    server = _facts("inventory", 2, trace, os.urandom(8), sidecar, proxy="envoy")
    derived = BatchDerivation().add_all([call, server])  # paired here: where it counted
    assert (PROXY_CLIENT_SIDE, app_client, sidecar, True) in _sides(derived)
    (counted,) = [row for row in derived.halves if row[2] == PROXY_CLIENT_SIDE]
    assert (counted[8], counted[9]) == ("inventory", "service")


def test_a_gateways_egress_span_leaves_no_proxy_client_half() -> None:
    trace, entry, egress = os.urandom(16), os.urandom(8), os.urandom(8)
    span = _facts("ingress", 3, trace, egress, entry, proxy="envoy", gateway=True,
                  operation="router outbound|80||shop.shop.svc.cluster.local egress")  # fmt: skip
    assert _sides(BatchDerivation().add_all([span])) == [(CLIENT_SIDE, egress, entry, False)]


def test_an_old_gateways_root_client_span_is_a_request_from_user() -> None:
    span = _facts("ingress", 3, os.urandom(16), os.urandom(8), proxy="envoy", gateway=True)
    derived = BatchDerivation().add_all([span])
    assert _edges(derived) == {("user", "ingress", "service"): (1, 0)}
    totals = [s.requests for k, s in derived.rollups.items() if k[:1] == ("service",)]
    assert totals == [1, 1, 1]  # the gateway, its operation, its version


def test_an_app_span_under_its_linkerd_proxys_leg_is_handed_to_the_inbound_span() -> None:
    trace, inbound, leg, app = (os.urandom(8) for _ in range(4))
    trace = os.urandom(16)
    to_app = _facts("emoji", 3, trace, leg, inbound, proxy="linkerd", proxy_leg=True)
    served = _facts("emoji", 2, trace, app, leg)
    derived = BatchDerivation().add_all([to_app, served])
    assert _sides(derived) == [(SERVER_SIDE, inbound, None, False)]
    proxy_own = _facts("emoji", 2, trace, app, leg, proxy="linkerd", proxy_leg=True)
    derived = BatchDerivation().add_all([to_app, proxy_own])  # the app's request to its proxy
    assert _sides(derived) == []


def test_a_sampled_span_counts_its_weight_and_a_proxys_unknown_rate() -> None:
    trace = os.urandom(16)
    root = _facts("shop", 2, trace, os.urandom(8), weight=4)
    proxy = _facts("cart", 2, trace, os.urandom(8), proxy="envoy", unknown_rate=True)
    derived = BatchDerivation().add_all([root, proxy])
    edges = {k[4]: s for k, s in derived.rollups.items() if k[0] == "edge"}
    assert (edges["shop"].requests, edges["shop"].unknown_rate) == (4, 0)
    assert edges["shop"].latency.counts == {bucket_of(2_000_000): 4}
    assert (edges["cart"].requests, edges["cart"].unknown_rate) == (1, 1)
    assert [row[14:] for row in derived.halves if row[2] == PROXY_ENTRY_SIDE] == [(1, True)]
    assert PROXY_LEG == "proxy"
