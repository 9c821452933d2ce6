"""The service graph and signals derived from spans, as the deriver leaves them in the rollups.

A real `meshlens serve` (two of them for the split-collector case) with a short pairing window;
spans are hand-made OTLP so each case controls ids, order and timing exactly.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx

from harness.postgres import DatabaseFactory
from harness.waiting import wait_until
from meshlens.signals.histogram import LatencyHistogram
from tests.otlp_payloads import SpanSpec, new_ids, spans_request
from tests.support import FAST_DERIVATION, RunningServer, running_server, unique_names

SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5


def _send(server: RunningServer, specs: list[SpanSpec]) -> None:
    body = spans_request(specs).SerializeToString()
    answer = httpx.post(
        f"{server.otlp_http}/v1/traces",
        content=body,
        headers={"content-type": "application/x-protobuf"},
    )
    assert answer.status_code == 200, answer.text


def _edges(server: RunningServer, source: str) -> dict[tuple[str, str], dict[str, Any]]:
    rows = server.query(
        "SELECT target, target_type, sum(requests), sum(errors), sum(mtls_mutual),"
        " sum(mtls_tls), sum(mtls_plaintext), sum(mtls_unknown) FROM edge_rollups"
        " WHERE resolution = 60 AND source = %s GROUP BY 1, 2",
        (source,),
    )
    keys = ("requests", "errors", "mutual", "tls", "plaintext", "unknown")
    return {(r[0], r[1]): dict(zip(keys, map(int, r[2:]), strict=True)) for r in rows}


def test_halves_in_reverse_order_across_two_collectors(
    twin_servers: tuple[RunningServer, RunningServer],
) -> None:
    first, second = twin_servers
    name = unique_names()
    trace_id, client_id = new_ids()
    server_half = SpanSpec(name("orders"), SERVER, trace_id, os.urandom(8), client_id)
    client_half = SpanSpec(name("web"), CLIENT, trace_id, client_id, duration_ns=40_000_000)
    _send(second, [server_half])  # the server half first, through the other process
    time.sleep(1.0)
    _send(first, [client_half])
    wait_until(lambda: bool(_edges(first, name("web"))), timeout=15, what="an edge from web")
    time.sleep(4)  # past the pairing window: nothing more may appear
    assert _edges(first, name("web")) == {
        (name("orders"), "service"): {
            "requests": 1,
            "errors": 0,
            "mutual": 0,
            "tls": 0,
            "plaintext": 0,
            "unknown": 1,
        }
    }


def test_resent_halves_count_once(twin_servers: tuple[RunningServer, RunningServer]) -> None:
    first, second = twin_servers
    name = unique_names()
    specs = []
    for _ in range(3):
        trace_id, client_id = new_ids()
        specs.append(SpanSpec(name("web"), CLIENT, trace_id, client_id))
        specs.append(SpanSpec(name("cart"), SERVER, trace_id, os.urandom(8), client_id))
    for server in (first, second, first):
        _send(server, specs)
    time.sleep(4)
    assert _edges(first, name("web"))[(name("cart"), "service")]["requests"] == 3
    totals = first.query(
        "SELECT resolution, sum(requests) FROM service_rollups WHERE service = %s"
        " AND operation = '' AND version = '' GROUP BY 1 ORDER BY 1",
        (name("cart"),),
    )
    assert totals == [(60, 3), (600, 3), (3600, 3)]  # every resolution the API reads


def test_unpaired_client_span_becomes_a_virtual_node(
    twin_servers: tuple[RunningServer, RunningServer],
) -> None:
    first, _ = twin_servers
    name = unique_names()
    trace_id, span_id = new_ids()
    payments = SpanSpec(
        name("checkout"),
        CLIENT,
        trace_id,
        span_id,
        attributes={"server.address": "api.stripe.com", "http.response.status_code": 503},
    )
    _send(first, [payments])
    time.sleep(1)
    assert _edges(first, name("checkout")) == {}  # still waiting for a server half
    wait_until(
        lambda: bool(_edges(first, name("checkout"))),
        timeout=15,
        what="an edge from checkout",
    )
    edge = _edges(first, name("checkout"))[("api.stripe.com", "external")]
    assert (edge["requests"], edge["errors"]) == (1, 1)  # client rules: 5xx


def test_a_sidecar_call_that_never_reached_its_server_counts_on_the_service_edge(
    twin_servers: tuple[RunningServer, RunningServer],
) -> None:
    """Envoy's outbound CLIENT span of a failed connection (response_flags UF, 503 on the
    client only, no server half) counts as a request and an error on caller -> the service its
    cluster names, never on a phantom external node. Tags as Envoy's OpenTelemetry tracer
    writes them (`TracingTagValues`, source/common/tracing/common_values.h: `upstream_cluster`,
    `response_flags`, `http.status_code` as a string); the cluster as Istio builds it
    (pilot/pkg/model/service.go `BuildSubsetKey`)."""
    first, _ = twin_servers
    name = unique_names()
    trace_id, span_id = new_ids()
    cluster = f"outbound|9080||{name('ratings')}.bookinfo.svc.cluster.local"
    envoy_client = SpanSpec(
        f"{name('reviews')}.bookinfo",
        CLIENT,
        trace_id,
        span_id,
        attributes={
            "component": "proxy",
            "istio.canonical_service": name("reviews"),
            "istio.namespace": "bookinfo",
            "http.method": "GET",
            "http.url": f"http://{name('ratings')}.bookinfo:9080/ratings/0",
            "http.status_code": "503",
            "response_flags": "UF",
            "upstream_cluster": cluster,
            "upstream_cluster.name": cluster,
            "error": "true",
        },
    )
    _send(first, [envoy_client])
    wait_until(
        lambda: bool(_edges(first, name("reviews"))),
        timeout=15,
        what="an edge from reviews",
    )
    edges = _edges(first, name("reviews"))
    assert set(edges) == {(name("ratings"), "service")}
    edge = edges[(name("ratings"), "service")]
    assert (edge["requests"], edge["errors"]) == (1, 1)


_WAITING_HALVES = (
    "SELECT (SELECT count(*) FROM edge_halves WHERE trace_id = %s)"
    " + (SELECT count(*) FROM edge_halves_inbox WHERE trace_id = %s)"
)


def _linkerd_span(
    workload: str, kind: int, direction: str, ids: tuple[bytes, bytes, bytes], host: str
) -> SpanSpec:
    """A span as linkerd2-proxy exports it (linkerd/opentelemetry/src/lib.rs `convert_span`:
    status always Unset, the stack's `direction` label as an attribute; labels of
    linkerd/trace-context/src/service.rs, every value a string; resource `service.name`
    `linkerd-proxy` with the pod's labels, linkerd/app/src/env/trace.rs)."""
    trace_id, span_id, parent = ids
    return SpanSpec(
        "linkerd-proxy",
        kind,
        trace_id,
        span_id,
        parent,
        name="/api/list",
        attributes={
            "direction": direction,
            "http.request.method": "GET",
            "url.scheme": "http",
            "url.path": "/api/list",
            "url.full": f"http://{host}/api/list",
            "server.address": host,
            "server.port": "8080",
            "network.transport": "tcp",
            "http.response.status_code": "200",
        },
        resource={"linkerd.io/proxy-deployment": workload, "linkerd.io/workload-ns": "emojivoto"},
    )


def test_linkerds_four_spans_per_hop_are_one_request_on_one_edge(
    twin_servers: tuple[RunningServer, RunningServer],
) -> None:
    """web's proxy: outbound SERVER (the app's request to its own proxy) and outbound CLIENT;
    emoji's proxy: inbound SERVER and inbound CLIENT (to its own app, uninstrumented). One
    request web -> emoji: web serves none of it, and emoji's own address is no node."""
    first, second = twin_servers
    name = unique_names()
    web, emoji = name("web"), name("emoji")
    host = f"{emoji}-svc.emojivoto.svc.cluster.local"
    trace_id = os.urandom(16)
    app_leg, hop, inbound, to_app = (os.urandom(8) for _ in range(4))
    web_proxy = [
        _linkerd_span(web, SERVER, "outbound", (trace_id, app_leg, b""), host),
        _linkerd_span(web, CLIENT, "outbound", (trace_id, hop, app_leg), host),
    ]
    emoji_proxy = [
        _linkerd_span(emoji, SERVER, "inbound", (trace_id, inbound, hop), host),
        _linkerd_span(emoji, CLIENT, "inbound", (trace_id, to_app, inbound), host),
    ]
    _send(first, web_proxy)
    _send(second, emoji_proxy)  # another collector: the hop pairs in PostgreSQL
    wait_until(lambda: bool(_edges(first, web)), timeout=15, what="an edge from web")
    wait_until(  # past the pairing window: the inbound CLIENT half expires
        lambda: first.query(_WAITING_HALVES, (trace_id, trace_id)) == [(0,)],
        timeout=15,
        what="the proxy's half to its own app to expire",
    )
    assert _edges(first, web) == {
        (emoji, "service"): {
            "requests": 1, "errors": 0, "mutual": 0, "tls": 0, "plaintext": 0, "unknown": 1
        }
    }  # fmt: skip
    assert _edges(first, emoji) == {}  # no phantom node for emoji's own address
    served = first.query(
        "SELECT service, sum(requests) FROM service_rollups WHERE resolution = 60"
        " AND operation = '' AND version = '' AND service IN (%s, %s) GROUP BY 1",
        (web, emoji),
    )
    assert dict(served) == {emoji: 1}  # web served nothing: its proxy's SERVER span is its app's


def test_database_calls_count_at_once_and_roots_come_from_user(
    twin_servers: tuple[RunningServer, RunningServer],
) -> None:
    first, _ = twin_servers
    name = unique_names()
    trace_id, root_id = new_ids()
    root = SpanSpec(name("api"), SERVER, trace_id, root_id, attributes={"http.route": "/x"})
    query = SpanSpec(
        name("api"),
        CLIENT,
        trace_id,
        os.urandom(8),
        root_id,
        attributes={"db.system": "postgresql", "db.namespace": "orders"},
    )
    _send(first, [root, query])
    wait_until(
        lambda: bool(_edges(first, name("api"))) and bool(_edges(first, "user")),
        timeout=15,
        what="the edges from api and from user",
    )
    assert (name("api"), "service") in _edges(first, "user")
    edges = _edges(first, name("api"))
    assert [key[1] for key in edges] == ["database"]


def test_producer_and_consumer_joined_by_a_link(
    twin_servers: tuple[RunningServer, RunningServer],
) -> None:
    first, _ = twin_servers
    name = unique_names()
    producer_trace, producer_id = new_ids()
    consumer_trace, consumer_id = new_ids()
    producer = SpanSpec(
        name("orders"),
        PRODUCER,
        producer_trace,
        producer_id,
        attributes={"messaging.system": "kafka", "messaging.destination.name": "orders"},
    )
    consumer = SpanSpec(
        name("billing"),
        CONSUMER,
        consumer_trace,
        consumer_id,
        links=[(producer_trace, producer_id)],
    )
    _send(first, [consumer])
    _send(first, [producer])
    wait_until(lambda: bool(_edges(first, name("orders"))), timeout=15, what="an edge from orders")
    time.sleep(4)
    assert set(_edges(first, name("orders"))) == {(name("billing"), "service")}


def test_proxy_spans_count_for_the_workload_they_front(
    twin_servers: tuple[RunningServer, RunningServer],
) -> None:
    first, _ = twin_servers
    name = unique_names()
    trace_id, client_id = new_ids()
    envoy_client = SpanSpec(
        f"{name('productpage')}.default",
        CLIENT,
        trace_id,
        client_id,
        attributes={"istio.canonical_service": name("productpage")},
    )
    envoy_server = SpanSpec(
        f"{name('reviews')}.default",
        SERVER,
        trace_id,
        os.urandom(8),
        client_id,
        attributes={"istio.canonical_service": name("reviews")},
    )
    _send(first, [envoy_client, envoy_server])
    wait_until(
        lambda: bool(_edges(first, name("productpage"))),
        timeout=15,
        what="an edge from productpage",
    )
    assert set(_edges(first, name("productpage"))) == {(name("reviews"), "service")}


def test_mtls_states_from_span_attributes(
    twin_servers: tuple[RunningServer, RunningServer],
) -> None:
    first, _ = twin_servers
    name = unique_names()
    tls_states: list[dict[str, object]] = [
        {"tls.established": True, "tls.client.subject": "CN=web"},
        {"tls.established": True},
        {"tls.established": False},
        {},
    ]
    specs = []
    for attributes in tls_states:
        trace_id, client_id = new_ids()
        specs.append(SpanSpec(name("web"), CLIENT, trace_id, client_id))
        specs.append(
            SpanSpec(
                name("db-api"), SERVER, trace_id, os.urandom(8), client_id, attributes=attributes
            )
        )
    _send(first, specs)
    wait_until(lambda: bool(_edges(first, name("web"))), timeout=15, what="an edge from web")
    edge = _edges(first, name("web"))[(name("db-api"), "service")]
    assert (edge["mutual"], edge["tls"], edge["plaintext"], edge["unknown"]) == (1, 1, 1, 1)


def test_paired_halves_keep_the_server_halfs_mtls_state(
    twin_servers: tuple[RunningServer, RunningServer],
) -> None:
    """Halves paired by the deriver (each half through another process): the request counts the
    server half's mTLS state when that half knows one, else the client half's; a certificate
    the client saw go out does not make a server's one-way TLS mutual."""
    first, second = twin_servers
    name = unique_names()
    mutual = {"tls.established": True, "tls.client.subject": "CN=web"}
    halves = [  # (server half, client half): counted as
        ({"tls.established": True}, mutual),  # tls
        ({"tls.established": False}, mutual),  # plaintext
        ({}, mutual),  # mutual
        ({}, {}),  # unknown
    ]
    servers, clients = [], []
    for server_attributes, client_attributes in halves:
        trace_id, client_id = new_ids()
        clients.append(
            SpanSpec(name("web"), CLIENT, trace_id, client_id, attributes=client_attributes)
        )
        servers.append(
            SpanSpec(
                name("tls-api"),
                SERVER,
                trace_id,
                os.urandom(8),
                client_id,
                attributes=server_attributes,
            )
        )
    _send(second, servers)
    _send(first, clients)

    def four_requests() -> dict[str, Any] | None:
        edge = _edges(first, name("web")).get((name("tls-api"), "service"))
        return edge if edge is not None and edge["requests"] == 4 else None

    edge = wait_until(four_requests, timeout=15, what="the four requests from web to tls-api")
    assert (edge["mutual"], edge["tls"], edge["plaintext"], edge["unknown"]) == (1, 1, 1, 1)


def test_versions_split_90_10_and_percentiles(
    twin_servers: tuple[RunningServer, RunningServer],
) -> None:
    first, _ = twin_servers
    name = unique_names()
    durations = [(n % 50 + 1) * 1_000_000 for n in range(100)]
    specs = [
        SpanSpec(
            name("reviews"),
            SERVER,
            *new_ids(),
            duration_ns=duration,
            resource={"service.version": "v2" if n % 10 == 0 else "v1"},
            status_code=2 if n % 10 == 0 else 0,
        )
        for n, duration in enumerate(durations)
    ]
    _send(first, specs)

    def versions() -> dict[str, tuple[int, int]]:
        rows = first.query(
            "SELECT version, sum(requests), sum(errors) FROM service_rollups WHERE resolution = 60"
            " AND service = %s AND operation = '' AND version <> '' GROUP BY version",
            (name("reviews"),),
        )
        return {r[0]: (int(r[1]), int(r[2])) for r in rows}

    wait_until(
        lambda: sum(v[0] for v in versions().values()) == 100,
        timeout=15,
        what="100 requests over the versions",
    )
    assert versions() == {"v1": (90, 0), "v2": (10, 10)}
    rows = first.query(
        "SELECT latency_keys, latency_counts FROM service_rollups WHERE resolution = 60"
        " AND service = %s AND operation = '' AND version = ''",
        (name("reviews"),),
    )
    merged = LatencyHistogram()
    for keys, counts in rows:
        merged.merge(LatencyHistogram.from_arrays(keys, counts))
    exact = sorted(durations)
    for q, rank in ((0.5, 50), (0.95, 95), (0.99, 99)):
        estimate = merged.quantile(q)
        assert estimate is not None
        assert abs(estimate - exact[rank - 1]) <= 0.05 * exact[rank - 1]


def test_deriver_state_survives_a_restart(databases: DatabaseFactory, tmp_path: Path) -> None:
    """A client half written before a restart pairs with a server half sent after it."""
    url = databases.create()
    name = unique_names()
    trace_id, client_id = new_ids()
    slow = {**FAST_DERIVATION, "MESHLENS_PAIRING_WINDOW_SECONDS": "60"}
    with running_server(url, tmp_path / "1.log", **slow) as server:
        _send(server, [SpanSpec(name("web"), CLIENT, trace_id, client_id)])
    with running_server(url, tmp_path / "2.log", **slow) as server:
        _send(server, [SpanSpec(name("api"), SERVER, trace_id, os.urandom(8), client_id)])
        wait_until(  # the first process may have counted it alone already: it moves
            lambda: (
                {k for k, v in _edges(server, name("web")).items() if v["requests"]}
                == {(name("api"), "service")}
            ),
            timeout=15,
            what="web -> api",
        )
