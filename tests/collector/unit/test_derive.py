"""Derivation of one batch: in-batch pairing, halves left for PostgreSQL, service signals."""

from __future__ import annotations

import os
from typing import Any

import pytest

from collector.derive.batch import BatchDerivation
from collector.derive.classify import MTLS_MUTUAL, MTLS_PLAINTEXT, MTLS_TLS, MTLS_UNKNOWN
from collector.derive.halves import CLIENT_SIDE, SERVER_SIDE
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
