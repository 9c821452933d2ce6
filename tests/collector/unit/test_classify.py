"""Per-span rules: errors, virtual peers, mTLS, workload, operation, version, and their keys.

The spans below are shaped like what the emitters send: Envoy (Istio sidecars) writes every tag
as a string, the Linkerd proxy copies pod labels into its resource, OpenTelemetry SDKs use the
old or the new semantic conventions.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PB2Span

from collector.derive.batch import BatchDerivation
from collector.derive.classify import (
    ENTRY_KINDS,
    MTLS_MUTUAL,
    MTLS_PLAINTEXT,
    MTLS_TLS,
    MTLS_UNKNOWN,
    RESOURCE_KEYS,
    SPAN_KEYS,
    client_side_error,
    is_database_call,
    is_envoy,
    is_error,
    is_exit,
    is_gateway,
    is_proxy_leg,
    mtls_state,
    operation,
    server_side_error,
    version,
    virtual_peer,
    workload_service,
)
from collector.derive.span_facts import SpanClassifier

Attrs = Mapping[str, object]
INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER = 1, 2, 3, 4, 5
UNSET, OK, ERROR = 0, 1, 2

# --- realistic spans -------------------------------------------------------------------------

ISTIO_TAGS = {
    "component": "proxy",
    "node_id": "sidecar~10.244.0.12~reviews-v2-5b667bcbf8-xk2nb.bookinfo~bookinfo.svc.cluster.local",  # noqa: E501
    "guid:x-request-id": "4c5b2b44-7f8e-9b0a-a1b2-c3d4e5f60718",
    "http.protocol": "HTTP/1.1",
    "peer.address": "10.244.0.9",
    "response_flags": "-",
    "istio.canonical_service": "reviews",
    "istio.canonical_revision": "v2",
    "istio.namespace": "bookinfo",
    "istio.mesh_id": "cluster.local",
    "istio.cluster_id": "Kubernetes",
}
ENVOY_INBOUND = {
    **ISTIO_TAGS,
    "http.method": "GET",
    "http.url": "http://reviews:9080/reviews/0",
    "upstream_cluster": "inbound|9080||",
    "http.status_code": "200",
}
ENVOY_INBOUND_404 = {**ENVOY_INBOUND, "http.status_code": "404"}
ENVOY_INBOUND_503 = {**ENVOY_INBOUND, "http.status_code": "503", "error": "true"}
ENVOY_GRPC_NOT_FOUND = {  # Envoy tags error=true for every non-OK gRPC status, on both sides
    **ISTIO_TAGS,
    "http.method": "POST",
    "http.url": "http://ratings:9080/bookinfo.Ratings/Get",
    "http.status_code": "200",
    "grpc.status_code": "5",
    "grpc.message": "rating not found",
    "error": "true",
}
ENVOY_GRPC_UNAVAILABLE = {**ENVOY_GRPC_NOT_FOUND, "grpc.status_code": "14"}
ENVOY_NO_RESPONSE = {**ENVOY_INBOUND, "http.status_code": "0", "response_flags": "DC"}
ENVOY_NO_RESPONSE_ERROR = {**ENVOY_NO_RESPONSE, "error": "true"}
ENVOY_OUTBOUND = {
    **ISTIO_TAGS,
    "istio.canonical_service": "productpage",
    "istio.canonical_revision": "v1",
    "http.method": "GET",
    "http.url": "http://reviews:9080/reviews/0",
    "upstream_cluster": "outbound|9080|v2|reviews.bookinfo.svc.cluster.local",
    "upstream_cluster.name": "outbound|9080|v2|reviews.bookinfo.svc.cluster.local",
    "http.status_code": "503",
    "response_flags": "UF",
    "error": "true",
}
ENVOY_PASSTHROUGH = {
    **ENVOY_OUTBOUND,
    "upstream_cluster": "PassthroughCluster",
    "http.url": "https://api.github.com/repos/istio/istio",
    "http.status_code": "200",
}
ENVOY_BLACKHOLE = {  # REGISTRY_ONLY outbound policy: Envoy answers 502 itself
    **ENVOY_OUTBOUND,
    "upstream_cluster": "BlackHoleCluster",
    "upstream_cluster.name": "BlackHoleCluster",
    "http.url": "http://blocked.example.org/",
    "http.status_code": "502",
    "response_flags": "-",
}
ENVOY_NO_ROUTE = {  # NR: no route, so no cluster; the host is what the caller asked for (the
    # deriver then names a known service `ratings` by it: KNOWN_SERVICES in pairing_sql)
    key: value
    for key, value in ENVOY_OUTBOUND.items()
    if not key.startswith("upstream_cluster")
} | {
    "http.url": "http://ratings.bookinfo.svc.cluster.local:9080/ratings/0",
    "http.status_code": "404",
    "response_flags": "NR",
}
CONSUL_LOCAL_UPSTREAM = {  # an app's call to its sidecar's local upstream listener
    "http.request.method": "GET",
    "url.full": "http://localhost:9191/api",
    "server.address": "localhost",
    "server.port": 9191,
}
LINKERD_INBOUND = {
    "http.request.method": "GET",
    "url.scheme": "http",
    "url.path": "/api/list",
    "server.address": "web-svc.emojivoto",
    "server.port": "8080",
    "http.response.status_code": "500",
}
LINKERD_RESOURCE = {
    "service.name": "linkerd-proxy",
    "host.name": "web-66bdd4d96d-xk2nb",
    "process.pid": 1,
    "app": "web-svc",
    "linkerd.io/control-plane-ns": "linkerd",
    "linkerd.io/proxy-deployment": "web",
    "linkerd.io/workload-ns": "emojivoto",
    "pod-template-hash": "66bdd4d96d",
    "version": "v11",
    "k8s.pod.uid": "00000000-0000-0000-0000-000000000000",
    "k8s.container.name": "linkerd-proxy",
}
HTTP_SERVER_404 = {
    "http.request.method": "GET",
    "http.route": "/orders/{id}",
    "url.path": "/orders/42",
    "url.scheme": "https",
    "http.response.status_code": 404,
    "server.address": "orders.shop",
    "client.address": "10.1.2.3",
    "network.protocol.version": "1.1",
}
HTTP_SERVER_503 = {**HTTP_SERVER_404, "http.response.status_code": 503, "error.type": "503"}
OLD_HTTP_SERVER_502 = {
    "http.method": "POST",
    "http.target": "/checkout",
    "http.route": "/checkout",
    "http.status_code": 502,
    "net.host.name": "checkout",
}
HTTP_CLIENT_402 = {
    "http.request.method": "POST",
    "url.full": "https://api.stripe.com/v1/charges",
    "server.address": "api.stripe.com",
    "server.port": 443,
    "http.response.status_code": 402,
    "error.type": "402",
}
OLD_HTTP_CLIENT = {
    "http.method": "GET",
    "http.url": "https://user:secret@Maps.Example.COM:8443/geo?q=berlin",
    "http.status_code": "200",
}
HTTP_CLIENT_REFUSED = {
    "http.request.method": "GET",
    "url.full": "http://inventory:8080/stock",
    "server.address": "inventory",
    "error.type": "java.net.ConnectException",
}
GRPC_SERVER_NOT_FOUND = {
    "rpc.system": "grpc",
    "rpc.service": "hipstershop.CartService",
    "rpc.method": "GetCart",
    "rpc.grpc.status_code": 5,
    "net.peer.ip": "10.4.0.17",
}
GRPC_SERVER_DEADLINE = {**GRPC_SERVER_NOT_FOUND, "rpc.grpc.status_code": 4}
GRPC_SERVER_PERMISSION = {**GRPC_SERVER_NOT_FOUND, "rpc.grpc.status_code": 7}
GRPC_CLIENT_NEW = {
    "rpc.system.name": "grpc",
    "rpc.method": "hipstershop.CartService/GetCart",
    "rpc.response.status_code": "UNAVAILABLE",
    "server.address": "cart.shop.svc.cluster.local",
    "server.port": 7070,
    "error.type": "UNAVAILABLE",
}
GRPC_CLIENT_NEWEST_NOT_FOUND = {
    "rpc.system.name": "grpc",
    "rpc.method": "hipstershop.CartService/GetCart",
    "rpc.status_code": "NOT_FOUND",
}
CONNECT_SERVER_INTERNAL = {"rpc.system": "connect_rpc", "rpc.response.status_code": "internal"}
JSONRPC_CLIENT = {"rpc.system.name": "jsonrpc", "rpc.response.status_code": "-32602"}
POSTGRES_ORDERS = {
    "db.system.name": "postgresql",
    "db.namespace": "app",
    "db.operation.name": "SELECT",
    "db.collection.name": "orders",
    "db.query.text": "SELECT * FROM orders WHERE id = $1",
    "server.address": "pg-orders.data.svc.cluster.local",
    "server.port": 5432,
    "network.peer.address": "10.0.7.21",
    "network.peer.port": 5432,
}
POSTGRES_BILLING = {**POSTGRES_ORDERS, "server.address": "pg-billing.data.svc.cluster.local"}
POSTGRES_ORDERS_OTHER_CALLER = {  # same database: other replica IP, port, user, FQDN spelling
    **POSTGRES_ORDERS,
    "server.address": "PG-Orders.data.svc.",
    "network.peer.address": "10.0.7.22",
    "db.user": "reporting_ro",
}
OLD_POSTGRES_ORDERS = {
    "db.system": "postgresql",
    "db.name": "app",
    "db.user": "orders_rw",
    "db.statement": "SELECT 1",
    "net.peer.name": "pg-orders.data",
    "net.peer.port": 5432,
    "net.sock.peer.addr": "10.0.7.23",
}
CLOUD_SQL_PROXY = {  # every caller's own sidecar at 127.0.0.1: the address names nothing
    "db.system.name": "postgresql",
    "db.namespace": "inventory",
    "server.address": "127.0.0.1",
    "server.port": 5432,
}
OLD_REDIS = {
    "db.system": "redis",
    "db.redis.database_index": 0,
    "db.statement": "GET session:8f1c",
    "net.peer.name": "redis-cache:6379",
}
MONGO_ONLY_SYSTEM = {"db.system.name": "mongodb", "db.operation.name": "find"}
PEER_SERVICE_REDIS = {
    "peer.service": "AuthTokenCache",
    "db.system": "redis",
    "net.peer.name": "10.0.0.5",
}
SERVICE_PEER_NAME = {"service.peer.name": "shoppingcart", "server.address": "10.1.0.4"}
KAFKA_PRODUCER = {
    "messaging.system": "kafka",
    "messaging.destination.name": "orders",
    "messaging.operation.type": "send",
    "messaging.kafka.message.key": "42",
    "server.address": "kafka-bootstrap.kafka.svc.cluster.local",
    "server.port": 9092,
}
KAFKA_PRODUCER_NO_BROKER = {k: v for k, v in KAFKA_PRODUCER.items() if not k.startswith("server")}
RABBIT_REPLY_QUEUE = {
    "messaging.system": "rabbitmq",
    "messaging.destination.name": "amq.gen-JzTY20BRgKO-HjmUJj0wLg",
    "messaging.destination.temporary": True,
    "messaging.operation.type": "publish",
}
OLD_RABBIT = {
    "messaging.system": "rabbitmq",
    "messaging.destination": "invoices",
    "messaging.destination_kind": "queue",
}
SQS_TEMPLATED = {
    "messaging.system": "aws_sqs",
    "messaging.destination.name": "/customers/123",
    "messaging.destination.template": "/customers/{customerId}",
}
MTLS_SERVER = {
    **HTTP_SERVER_404,
    "tls.established": True,
    "tls.protocol.name": "tls",
    "tls.protocol.version": "1.3",
    "tls.client.subject": "CN=orders,OU=shop",
    "tls.server.subject": "CN=payments",
}
TLS_CLIENT_NO_CERT = {
    **HTTP_CLIENT_402,
    "tls.established": True,
    "tls.protocol.version": "1.2",
    "tls.server.subject": "CN=api.stripe.com",
    "tls.client.server_name": "api.stripe.com",  # SNI and JA3 are the hello, not a certificate
    "tls.client.ja3": "d4e5b18d6b55c71272893221c96ba240",
}

# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "attributes", "expected"),
    [
        pytest.param(SERVER, ERROR, {}, True, id="status ERROR"),
        pytest.param(INTERNAL, ERROR, {"code.function.name": "charge"}, True, id="internal ERROR"),
        pytest.param(SERVER, OK, HTTP_SERVER_503, False, id="status OK suppresses (OTel API)"),
        pytest.param(SERVER, UNSET, HTTP_SERVER_404, False, id="4xx on server is not an error"),
        pytest.param(CLIENT, UNSET, HTTP_CLIENT_402, True, id="4xx on client is an error"),
        pytest.param(PRODUCER, UNSET, HTTP_CLIENT_402, True, id="4xx on producer is an error"),
        pytest.param(SERVER, UNSET, HTTP_SERVER_503, True, id="5xx on server"),
        pytest.param(SERVER, UNSET, OLD_HTTP_SERVER_502, True, id="old http.status_code 5xx"),
        pytest.param(SERVER, UNSET, ENVOY_INBOUND, False, id="envoy string 200"),
        pytest.param(SERVER, UNSET, ENVOY_INBOUND_404, False, id="envoy string 404 inbound"),
        pytest.param(CLIENT, UNSET, ENVOY_INBOUND_404, True, id="string 404 on client"),
        pytest.param(SERVER, UNSET, ENVOY_INBOUND_503, True, id="envoy string 503"),
        pytest.param(CLIENT, UNSET, ENVOY_OUTBOUND, True, id="envoy outbound 503 UF"),
        pytest.param(SERVER, UNSET, LINKERD_INBOUND, True, id="linkerd string 500"),
        pytest.param(SERVER, UNSET, GRPC_SERVER_NOT_FOUND, False, id="grpc NOT_FOUND on server"),
        pytest.param(CLIENT, UNSET, GRPC_SERVER_NOT_FOUND, True, id="grpc NOT_FOUND on client"),
        pytest.param(SERVER, UNSET, GRPC_SERVER_DEADLINE, True, id="grpc DEADLINE_EXCEEDED"),
        pytest.param(SERVER, UNSET, GRPC_SERVER_PERMISSION, False, id="grpc 7 on server"),
        pytest.param(CONSUMER, UNSET, GRPC_SERVER_NOT_FOUND, False, id="consumer: server rules"),
        pytest.param(CLIENT, UNSET, GRPC_CLIENT_NEW, True, id="rpc.response.status_code name"),
        pytest.param(SERVER, UNSET, GRPC_CLIENT_NEWEST_NOT_FOUND, False, id="rpc.status_code"),
        pytest.param(CLIENT, UNSET, GRPC_CLIENT_NEWEST_NOT_FOUND, True, id="rpc.status_code cl"),
        pytest.param(SERVER, UNSET, CONNECT_SERVER_INTERNAL, True, id="connect lowercase name"),
        pytest.param(CLIENT, UNSET, {"rpc.grpc.status_code": "14"}, True, id="grpc code string"),
        pytest.param(CLIENT, UNSET, {"rpc.grpc.status_code": 0}, False, id="grpc OK"),
        pytest.param(SERVER, UNSET, ENVOY_GRPC_NOT_FOUND, False, id="envoy grpc 5 + error=true"),
        pytest.param(CLIENT, UNSET, ENVOY_GRPC_NOT_FOUND, True, id="envoy grpc 5 outbound"),
        pytest.param(SERVER, UNSET, ENVOY_GRPC_UNAVAILABLE, True, id="envoy grpc 14 in HTTP 200"),
        pytest.param(SERVER, UNSET, ENVOY_NO_RESPONSE, False, id="envoy code 0, no error tag"),
        pytest.param(SERVER, UNSET, ENVOY_NO_RESPONSE_ERROR, True, id="envoy code 0 error=true"),
        pytest.param(CLIENT, UNSET, HTTP_CLIENT_REFUSED, True, id="no code, error.type"),
        pytest.param(CLIENT, UNSET, JSONRPC_CLIENT, False, id="non-gRPC code left to status"),
        pytest.param(SERVER, UNSET, {"error": False}, False, id="error tag false"),
        pytest.param(SERVER, UNSET, {"http.status_code": True}, False, id="bool is not a code"),
        pytest.param(SERVER, UNSET, {"http.status_code": "5xx"}, False, id="garbage code"),
        pytest.param(INTERNAL, UNSET, HTTP_CLIENT_402, False, id="internal: server rules"),
        pytest.param(SERVER, UNSET, POSTGRES_ORDERS, False, id="db span, no error"),
    ],
)
def test_is_error(kind: int, status: int, attributes: Attrs, expected: bool) -> None:
    assert is_error(kind, status, attributes) is expected


def test_side_rules_ignore_kind() -> None:
    assert server_side_error(UNSET, HTTP_CLIENT_402) is False
    assert client_side_error(UNSET, HTTP_SERVER_404) is True
    assert server_side_error(UNSET, GRPC_SERVER_NOT_FOUND) is False
    assert client_side_error(UNSET, GRPC_SERVER_NOT_FOUND) is True


SpanHalf = tuple[int, int, Attrs]  # kind, status code, attributes


def _half(kind: int, status: int, attributes: Attrs) -> SpanHalf:
    return (kind, status, attributes)


def _span(kind: int, status: int, trace: bytes, span: bytes, parent: bytes = b"") -> PB2Span:
    start = 1_700_000_000 * 10**9
    pb = PB2Span(trace_id=trace, span_id=span, parent_span_id=parent, kind=kind, name="GET /x")
    pb.start_time_unix_nano, pb.end_time_unix_nano = start, start + 2_000_000
    pb.status.code = status
    return pb


def _derived_edge_error(server_half: SpanHalf | None, client_half: SpanHalf | None) -> bool:
    """Whether the product counts the request as failed: both halves of one request go through
    classification and one batch's derivation; a lone client half is queued for pairing with
    its error (what its virtual node counts when it expires); a lone server half counts for its
    service."""
    classifier = SpanClassifier()
    trace, client_id = os.urandom(16), os.urandom(8)
    client = server = None
    if client_half is not None:
        kind, status, attributes = client_half
        span = _span(kind, status, trace, client_id)
        client = classifier.facts(span, 1, "web", attributes, {}, ())
    if server_half is not None:
        kind, status, attributes = server_half
        span = _span(kind, status, trace, os.urandom(8), client_id)
        server = classifier.facts(span, 2, "shop", attributes, {}, ())
    derived = BatchDerivation().add_all([f for f in (client, server) if f is not None])
    minute = 1_700_000_000 // 60 * 60
    if client is not None and server is not None:
        edge = ("edge", minute, client.service, "service", server.service, "service", "traces")
        return derived.rollups[edge].errors == 1
    if client is not None:
        (queued,) = derived.halves
        return queued[6]
    if server is not None:
        service = ("service", minute, server.service, "", "", "", "traces")
        return derived.rollups[service].errors == 1
    return bool(derived.rollups or derived.halves)


@pytest.mark.parametrize(
    ("server_half", "client_half", "expected"),
    [
        pytest.param(
            _half(SERVER, UNSET, HTTP_SERVER_404),
            _half(CLIENT, UNSET, {"http.response.status_code": 404}),
            False,
            id="404 with server half: server rules",
        ),
        pytest.param(
            None, _half(CLIENT, UNSET, {"http.response.status_code": 404}), True, id="404 no server"
        ),
        pytest.param(
            _half(SERVER, UNSET, GRPC_SERVER_NOT_FOUND),
            _half(CLIENT, UNSET, {"rpc.grpc.status_code": 5}),
            False,
            id="NOT_FOUND with server half",
        ),
        pytest.param(
            None, _half(CLIENT, UNSET, {"rpc.grpc.status_code": 5}), True, id="NOT_FOUND no server"
        ),
        pytest.param(
            _half(SERVER, UNSET, ENVOY_INBOUND_503), None, True, id="server 503, client unsampled"
        ),
        pytest.param(
            _half(SERVER, UNSET, ENVOY_INBOUND),
            _half(CLIENT, ERROR, {"error.type": "timeout"}),
            False,
            id="server succeeded: client timeout does not fail the edge",
        ),
        pytest.param(
            None, _half(CLIENT, ERROR, HTTP_CLIENT_REFUSED), True, id="refused, no server half"
        ),
        pytest.param(None, None, False, id="no halves"),
    ],
)
def test_edge_error(
    server_half: SpanHalf | None, client_half: SpanHalf | None, expected: bool
) -> None:
    """A request fails by its server half's server rules, else by its client half's."""
    assert _derived_edge_error(server_half, client_half) is expected


@pytest.mark.parametrize(
    ("kind", "entry", "exit_"),
    [
        (0, False, False),
        (INTERNAL, False, False),
        (SERVER, True, False),
        (CLIENT, False, True),
        (PRODUCER, False, True),
        (CONSUMER, True, False),
    ],
)
def test_entry_and_exit(kind: int, entry: bool, exit_: bool) -> None:
    assert (kind in ENTRY_KINDS, is_exit(kind)) == (entry, exit_)


# --- virtual peers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        (POSTGRES_ORDERS, True),
        (OLD_POSTGRES_ORDERS, True),
        (OLD_REDIS, True),
        (KAFKA_PRODUCER, False),
        (HTTP_CLIENT_402, False),
        ({"db.system.name": ""}, False),
        ({}, False),
    ],
)
def test_is_database_call(attributes: Attrs, expected: bool) -> None:
    assert is_database_call(attributes) is expected


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        pytest.param(PEER_SERVICE_REDIS, ("AuthTokenCache", "database"), id="peer.service"),
        pytest.param(SERVICE_PEER_NAME, ("shoppingcart", "external"), id="service.peer.name"),
        pytest.param(POSTGRES_ORDERS, ("pg-orders.data", "database"), id="pg cluster A"),
        pytest.param(POSTGRES_BILLING, ("pg-billing.data", "database"), id="pg cluster B"),
        pytest.param(POSTGRES_ORDERS_OTHER_CALLER, ("pg-orders.data", "database"), id="pg A again"),
        pytest.param(OLD_POSTGRES_ORDERS, ("pg-orders.data", "database"), id="old semconv pg A"),
        pytest.param(CLOUD_SQL_PROXY, ("inventory", "database"), id="loopback skipped"),
        pytest.param(OLD_REDIS, ("redis-cache", "database"), id="net.peer.name with port"),
        pytest.param(MONGO_ONLY_SYSTEM, ("mongodb", "database"), id="only db.system.name"),
        pytest.param({"db.system": "sqlite"}, ("sqlite", "database"), id="only old db.system"),
        pytest.param(KAFKA_PRODUCER, ("kafka-bootstrap.kafka", "messaging"), id="broker"),
        pytest.param(KAFKA_PRODUCER_NO_BROKER, ("orders", "messaging"), id="topic"),
        pytest.param(RABBIT_REPLY_QUEUE, ("rabbitmq", "messaging"), id="temporary queue"),
        pytest.param(OLD_RABBIT, ("invoices", "messaging"), id="old messaging.destination"),
        pytest.param(SQS_TEMPLATED, ("/customers/{customerId}", "messaging"), id="template"),
        pytest.param(HTTP_CLIENT_402, ("api.stripe.com", "external"), id="server.address"),
        pytest.param(OLD_HTTP_CLIENT, ("maps.example.com", "external"), id="http.url host"),
        pytest.param({"url.full": "http://[2001:db8::1]:8080/x"}, ("2001:db8::1", "external")),
        pytest.param(ENVOY_OUTBOUND, ("reviews", "service"), id="istio cluster: the service meant"),
        pytest.param(ENVOY_PASSTHROUGH, ("api.github.com", "external"), id="passthrough"),
        pytest.param(ENVOY_BLACKHOLE, ("blocked.example.org", "external"), id="blackhole"),
        pytest.param(ENVOY_NO_ROUTE, ("ratings.bookinfo", "external"), id="NR: the host"),
        pytest.param(CONSUL_LOCAL_UPSTREAM, ("unknown", "external"), id="consul localhost"),
        pytest.param({"server.address": "localhost"}, ("unknown", "external"), id="localhost"),
        pytest.param({"http.method": "GET"}, ("unknown", "external"), id="nothing names it"),
        pytest.param({}, ("unknown", "external"), id="empty"),
    ],
)
def test_virtual_peer(attributes: Attrs, expected: tuple[str, str]) -> None:
    assert virtual_peer(attributes) == expected


# --- mTLS ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        pytest.param(MTLS_SERVER, MTLS_MUTUAL, id="client subject"),
        pytest.param(
            {"tls.established": True, "tls.client.hash.sha256": "0687F666A054EF17A08E2F2162E"},
            MTLS_MUTUAL,
            id="client hash",
        ),
        pytest.param(
            {"tls.established": True, "tls.client.certificate_chain": ["MII..."]},
            MTLS_MUTUAL,
            id="client chain",
        ),
        pytest.param(TLS_CLIENT_NO_CERT, MTLS_TLS, id="one-way: SNI is not a certificate"),
        pytest.param(
            {"tls.established": True, "tls.client.certificate_chain": []}, MTLS_TLS, id="no chain"
        ),
        pytest.param({"tls.established": "true"}, MTLS_TLS, id="stringified true"),
        pytest.param({"tls.established": False}, MTLS_PLAINTEXT, id="plaintext"),
        pytest.param({"tls.established": "False"}, MTLS_PLAINTEXT, id="stringified false"),
        pytest.param({"tls.client.subject": "CN=x"}, MTLS_UNKNOWN, id="no tls.established"),
        pytest.param(ENVOY_INBOUND, MTLS_UNKNOWN, id="envoy: no tls attributes on spans"),
        pytest.param(LINKERD_INBOUND, MTLS_UNKNOWN, id="linkerd: no tls attributes"),
        pytest.param({"tls.established": "yes"}, MTLS_UNKNOWN, id="not a boolean"),
    ],
)
def test_mtls_state(attributes: Attrs, expected: int) -> None:
    assert mtls_state(attributes) == expected


# --- workload, operation, version ------------------------------------------------------------


@pytest.mark.parametrize(
    ("service_name", "attributes", "resource", "expected"),
    [
        pytest.param("reviews.bookinfo", ENVOY_INBOUND, {}, "reviews", id="istio canonical"),
        pytest.param(
            "details.bookinfo",
            {**ENVOY_INBOUND, "istio.canonical_service": "unknown"},
            {},
            "details",
            id="istio default 'unknown': strip istio.namespace",
        ),
        pytest.param(
            "details.bookinfo",
            {k: v for k, v in ENVOY_INBOUND.items() if k != "istio.canonical_service"},
            {},
            "details",
            id="no canonical service",
        ),
        pytest.param("orders.eu", ENVOY_INBOUND | {"istio.canonical_service": ""}, {}, "orders.eu"),
        pytest.param("com.example.orders", HTTP_SERVER_404, {}, "com.example.orders", id="sdk"),
        pytest.param("linkerd-proxy", LINKERD_INBOUND, LINKERD_RESOURCE, "web", id="linkerd"),
        pytest.param(
            "linkerd-proxy",
            LINKERD_INBOUND,
            {**LINKERD_RESOURCE, "k8s.deployment.name": "web-v2"},
            "web-v2",
            id="k8sattributes processor first",
        ),
        pytest.param(
            "linkerd-proxy",
            LINKERD_INBOUND,
            {"service.name": "linkerd-proxy", "linkerd.io/proxy-statefulset": "redis"},
            "redis",
            id="linkerd statefulset",
        ),
        pytest.param(
            "web-svc-linkerd-proxy", LINKERD_INBOUND, LINKERD_RESOURCE, "web", id="newer proxy"
        ),
        pytest.param("emoji-linkerd-proxy", LINKERD_INBOUND, {}, "emoji", id="newer, no labels"),
        pytest.param("linkerd-proxy", LINKERD_INBOUND, {}, "linkerd-proxy", id="nothing better"),
        pytest.param(
            "emoji-svc", HTTP_SERVER_404, {"k8s.deployment.name": "emoji"}, "emoji-svc", id="app"
        ),
    ],
)
def test_workload_service(
    service_name: str, attributes: Attrs, resource: Attrs, expected: str
) -> None:
    assert workload_service(service_name, attributes, resource) == expected


@pytest.mark.parametrize(
    ("name", "attributes", "expected"),
    [
        ("GET /orders/{id}", HTTP_SERVER_404, "GET /orders/{id}"),
        ("HTTP POST", OLD_HTTP_SERVER_502, "POST /checkout"),
        ("/health", {"http.route": "/health"}, "/health"),
        ("GET", {"http.request.method": "GET"}, "GET"),
        ("CartService/GetCart", GRPC_SERVER_NOT_FOUND, "grpc hipstershop.CartService/GetCart"),
        ("CartService/GetCart", GRPC_CLIENT_NEW, "grpc hipstershop.CartService/GetCart"),
        ("Calc/Add", {"rpc.service": "Calc", "rpc.method": "Add"}, "Calc/Add"),
        ("reviews.bookinfo.svc:9080/*", ENVOY_INBOUND, "reviews.bookinfo.svc:9080/*"),
        ("/api/list", LINKERD_INBOUND, "/api/list"),
        ("orders publish", KAFKA_PRODUCER, "orders publish"),
    ],
)  # fmt: skip
def test_operation(name: str, attributes: Attrs, expected: str) -> None:
    assert operation(name, attributes) == expected


@pytest.mark.parametrize(
    ("attributes", "resource", "expected"),
    [
        pytest.param(ENVOY_INBOUND, {"service.version": "1.4.2"}, "1.4.2", id="service.version"),
        pytest.param(ENVOY_INBOUND, {"service.name": "reviews.bookinfo"}, "v2", id="istio"),
        pytest.param(
            {**ENVOY_INBOUND, "istio.canonical_revision": "latest"}, {}, "", id="istio default"
        ),
        pytest.param(LINKERD_INBOUND, LINKERD_RESOURCE, "v11", id="linkerd pod label"),
        pytest.param({}, {"app.kubernetes.io/version": "2.0.1"}, "2.0.1", id="k8s label"),
        pytest.param(HTTP_SERVER_404, {"service.name": "orders"}, "", id="unknown"),
    ],
)
def test_version(attributes: Attrs, resource: Attrs, expected: str) -> None:
    assert version(attributes, resource) == expected


# --- the keys the ingest path extracts -------------------------------------------------------


def test_semantic_convention_keys_are_pinned() -> None:
    """Renaming a key in the code must be a deliberate change here too."""
    assert {
        "http.response.status_code", "http.status_code", "rpc.status_code",
        "rpc.response.status_code", "rpc.grpc.status_code", "grpc.status_code", "error.type",
        "error", "peer.service", "service.peer.name", "server.address", "net.peer.name",
        "upstream_cluster", "db.system.name", "db.system", "db.namespace", "db.name",
        "messaging.destination.template", "messaging.destination.name", "messaging.destination",
        "messaging.destination.temporary", "messaging.destination.anonymous", "messaging.system",
        "url.full", "http.url", "tls.established", "tls.client.subject", "tls.client.issuer",
        "tls.client.hash.sha256", "tls.client.hash.sha1", "tls.client.hash.md5",
        "tls.client.certificate", "tls.client.certificate_chain", "istio.canonical_service",
        "istio.namespace", "istio.canonical_revision", "http.route", "http.request.method",
        "http.method", "rpc.system.name", "rpc.system", "rpc.service", "rpc.method", "direction",
        "component", "node_id",
    } == SPAN_KEYS  # fmt: skip
    assert {
        "service.version", "app.kubernetes.io/version", "version", "k8s.deployment.name",
        "k8s.statefulset.name", "k8s.daemonset.name", "k8s.cronjob.name", "k8s.job.name",
        "linkerd.io/proxy-root-parent", "linkerd.io/proxy-deployment",
        "linkerd.io/proxy-statefulset", "linkerd.io/proxy-daemonset", "linkerd.io/proxy-cronjob",
        "linkerd.io/proxy-job", "app.kubernetes.io/name", "app",
    } == RESOURCE_KEYS  # fmt: skip


CORPUS: list[tuple[str, int, int, Attrs, Attrs]] = [
    ("reviews.bookinfo", SERVER, UNSET, ENVOY_INBOUND, {"service.name": "reviews.bookinfo"}),
    ("reviews.bookinfo", SERVER, UNSET, ENVOY_INBOUND_503, {}),
    ("ratings.bookinfo", SERVER, UNSET, ENVOY_GRPC_NOT_FOUND, {}),
    ("ratings.bookinfo", SERVER, UNSET, ENVOY_NO_RESPONSE_ERROR, {}),
    ("productpage.bookinfo", CLIENT, UNSET, ENVOY_OUTBOUND, {}),
    ("productpage.bookinfo", CLIENT, UNSET, ENVOY_PASSTHROUGH, {}),
    ("linkerd-proxy", SERVER, UNSET, LINKERD_INBOUND, LINKERD_RESOURCE),
    ("web-svc-linkerd-proxy", CLIENT, UNSET, LINKERD_INBOUND, LINKERD_RESOURCE),
    ("orders", SERVER, UNSET, MTLS_SERVER, {"service.version": "3.1.0"}),
    ("checkout", SERVER, UNSET, OLD_HTTP_SERVER_502, {}),
    ("payments", CLIENT, UNSET, TLS_CLIENT_NO_CERT, {}),
    ("geo", CLIENT, UNSET, OLD_HTTP_CLIENT, {}),
    ("frontend", CLIENT, ERROR, HTTP_CLIENT_REFUSED, {}),
    ("cart", SERVER, UNSET, GRPC_SERVER_NOT_FOUND, {}),
    ("frontend", CLIENT, UNSET, GRPC_CLIENT_NEW, {}),
    ("frontend", CLIENT, UNSET, GRPC_CLIENT_NEWEST_NOT_FOUND, {}),
    ("orders", CLIENT, UNSET, POSTGRES_ORDERS, {}),
    ("reporting", CLIENT, UNSET, POSTGRES_ORDERS_OTHER_CALLER, {}),
    ("orders", CLIENT, UNSET, OLD_POSTGRES_ORDERS, {}),
    ("inventory", CLIENT, UNSET, CLOUD_SQL_PROXY, {}),
    ("sessions", CLIENT, UNSET, OLD_REDIS, {}),
    ("auth", CLIENT, UNSET, PEER_SERVICE_REDIS, {}),
    ("orders", PRODUCER, UNSET, KAFKA_PRODUCER, {}),
    ("orders", PRODUCER, UNSET, KAFKA_PRODUCER_NO_BROKER, {}),
    ("billing", PRODUCER, UNSET, RABBIT_REPLY_QUEUE, {}),
    ("billing", PRODUCER, UNSET, OLD_RABBIT, {}),
    ("crm", PRODUCER, UNSET, SQS_TEMPLATED, {}),
]


def _everything(
    service: str,
    kind: int,
    status: int,
    attributes: Mapping[str, object],
    resource: Mapping[str, object],
) -> tuple[object, ...]:
    return (
        is_error(kind, status, attributes),
        server_side_error(status, attributes),
        client_side_error(status, attributes),
        is_database_call(attributes),
        virtual_peer(attributes),
        mtls_state(attributes),
        workload_service(service, attributes, resource),
        operation("span name", attributes),
        version(attributes, resource),
    )  # fmt: skip


@pytest.mark.parametrize(("service", "kind", "status", "attributes", "resource"), CORPUS)
def test_restricted_to_declared_keys_changes_nothing(
    service: str, kind: int, status: int, attributes: Attrs, resource: Attrs
) -> None:
    """What the ingest path keeps (SPAN_KEYS / RESOURCE_KEYS) is enough for every rule."""
    span_only = {k: v for k, v in attributes.items() if k in SPAN_KEYS}
    resource_only = {k: v for k, v in resource.items() if k in RESOURCE_KEYS}
    assert _everything(service, kind, status, span_only, resource_only) == _everything(
        service, kind, status, attributes, resource
    )


class RecordingMapping(Mapping[str, object]):
    """A mapping that remembers every key it was asked for."""

    def __init__(self, data: Mapping[str, object]) -> None:
        self.data, self.asked = dict(data), set[str]()

    def __getitem__(self, key: str) -> object:
        self.asked.add(key)
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("rules look keys up; they never scan all attributes")

    def __len__(self) -> int:
        return len(self.data)


@pytest.mark.parametrize(("service", "kind", "status", "attributes", "resource"), CORPUS)
def test_rules_ask_only_for_declared_keys(
    service: str, kind: int, status: int, attributes: Attrs, resource: Attrs
) -> None:
    span, res = RecordingMapping(attributes), RecordingMapping(resource)
    _everything(service, kind, status, span, res)
    assert span.asked <= SPAN_KEYS
    assert res.asked <= RESOURCE_KEYS


@pytest.mark.parametrize(
    ("kind", "service", "direction", "expected"),
    [
        pytest.param(SERVER, "linkerd-proxy", "outbound", True, id="app -> own proxy"),
        pytest.param(CLIENT, "linkerd-proxy", "inbound", True, id="proxy -> own app"),
        pytest.param(CLIENT, "web-linkerd-proxy", "inbound", True, id="newer service.name"),
        pytest.param(CLIENT, "linkerd-proxy", "outbound", False, id="the hop out"),
        pytest.param(SERVER, "linkerd-proxy", "inbound", False, id="the hop in"),
        pytest.param(SERVER, "checkout", "outbound", False, id="an SDK's own attribute"),
        pytest.param(SERVER, "linkerd-proxy", None, False, id="no direction"),
    ],
)
def test_proxy_legs_of_linkerd(
    kind: int, service: str, direction: str | None, expected: bool
) -> None:
    """linkerd2-proxy labels each stack's spans `direction` (linkerd/app/outbound/src/lib.rs,
    linkerd/app/inbound/src/http.rs `trace_labels`)."""
    attributes = {} if direction is None else {"direction": direction}
    assert is_proxy_leg(kind, service, attributes) is expected


ISTIO_GATEWAY_NODE = "router~10.1.2.3~istio-ingressgateway-7d9.istio-system~istio-system.svc"
SIDECAR_NODE = "sidecar~10.1.2.4~web-1.shop~shop.svc.cluster.local"


@pytest.mark.parametrize(
    ("attributes", "envoy", "gateway"),
    [
        pytest.param(ENVOY_OUTBOUND, True, False, id="istio sidecar"),
        pytest.param({"component": "proxy"}, True, False, id="component tag only"),
        pytest.param({"upstream_cluster": "local_app"}, True, False, id="cluster tag only"),
        pytest.param(
            {"component": "proxy", "node_id": ISTIO_GATEWAY_NODE}, True, True, id="istio gateway"
        ),
        pytest.param({"component": "proxy", "node_id": SIDECAR_NODE}, True, False, id="sidecar"),
        pytest.param({"http.route": "/x"}, False, False, id="an app's span"),
        pytest.param({"node_id": 7}, False, False, id="node_id not text"),
    ],
)
def test_envoy_and_gateway_spans(attributes: Attrs, envoy: bool, gateway: bool) -> None:
    assert is_envoy(attributes) is envoy
    assert is_gateway(attributes) is gateway
