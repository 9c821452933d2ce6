"""The attributes of the demo's spans, per kind of hop, as instrumentations record them.

They follow the OpenTelemetry semantic conventions that `collector.derive.classify` reads:
`http.route`, `http.request.method`, `http.response.status_code`, span status ERROR for
failures; `db.system.name`, `db.namespace`; `messaging.system`, `messaging.destination.name`;
`server.address`; and the `tls.*` attributes of the connection (`tls.client.subject` present:
mutual TLS; `tls.established=false`: plaintext).
"""

from __future__ import annotations

from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from meshlens.demo.mesh import ISTIO, ExternalCall, Gateway, Mesh, Operation, Query, Service
from meshlens.demo.topology import HTTP_PORT, NAMESPACE, TRUST_DOMAIN

KAFKA_PORT = 9092
POSTGRES_PORT = 5432

Attributes = dict[str, AttributeValue]


# --- connections -----------------------------------------------------------------------


def spiffe_id(workload: str, namespace: str = NAMESPACE) -> str:
    """The mesh identity of a workload, as its certificate names it."""
    return f"spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/{workload}"


def mutual_tls(client: str, server: str, client_namespace: str = NAMESPACE) -> Attributes:
    """A connection over mutual TLS: the client presented its certificate."""
    return {
        "tls.established": True,
        "tls.protocol.version": "1.3",
        "tls.client.subject": spiffe_id(client, client_namespace),
        "tls.server.subject": spiffe_id(server),
    }


def one_way_tls(server_host: str) -> Attributes:
    """A connection over TLS where only the server has a certificate."""
    return {
        "tls.established": True,
        "tls.protocol.version": "1.3",
        "tls.server.subject": f"CN={server_host}",
    }


PLAINTEXT: Attributes = {"tls.established": False}


def connection(caller: Service, callee: Service) -> Attributes:
    """TLS of a call between two services: mutual through proxies of one mesh, else none."""
    if caller.mutual_tls_with(callee):
        return mutual_tls(caller.name, callee.name)
    return PLAINTEXT


def from_gateway(gateway: Gateway, callee: Service) -> Attributes:
    """TLS of the ingress gateway's call to `callee`: mutual when an Istio sidecar fronts it."""
    if callee.proxy == ISTIO:
        account = f"{gateway.name}-service-account"  # the istio/gateway chart's account
        return mutual_tls(account, callee.name, gateway.namespace)
    return PLAINTEXT


def tls_to(caller: Service, backend: str) -> Attributes:
    """TLS to a backend inside the mesh (the database, the broker)."""
    return mutual_tls(caller.name, backend) if caller.sidecar else PLAINTEXT


# --- HTTP, database, external API, broker ----------------------------------------------


def served(operation: Operation, service: Service, path: str) -> Attributes:
    """The SERVER span of `operation` (without the connection: the caller's side adds it)."""
    return {
        "http.request.method": operation.method,
        "http.route": operation.route,
        "url.path": path,
        "server.address": service.name,
        "server.port": HTTP_PORT,
    }


def service_call(caller: Service, operation: Operation, callee: Service, path: str) -> Attributes:
    """The CLIENT span of a call from `caller` to `callee`'s `operation`."""
    return {
        "http.request.method": operation.method,
        "url.template": operation.route,
        "url.full": f"http://{callee.name}:{HTTP_PORT}{path}",
        "server.address": callee.name,
        "server.port": HTTP_PORT,
        **connection(caller, callee),
    }


def database_query(caller: Service, mesh: Mesh, query: Query) -> Attributes:
    """The CLIENT span of a statement on the mesh's database."""
    return {
        "db.system.name": mesh.database_system,
        "db.system": mesh.database_system,  # older semantic conventions
        "db.namespace": mesh.database_namespace,
        "db.collection.name": query.table,
        "db.operation.name": query.operation,
        "db.query.text": _statement(query),
        "server.address": mesh.database,
        "server.port": POSTGRES_PORT,
        **tls_to(caller, mesh.database),
    }


def external_call(call: ExternalCall, attempt: int) -> Attributes:
    """The CLIENT span of one attempt (0: the first) at an external API."""
    attributes: Attributes = {
        "http.request.method": call.method,
        "url.template": call.path,
        "url.full": f"https://{call.host}{call.path}",
        "server.address": call.host,
        "server.port": 443,
        **one_way_tls(call.host),
    }
    if attempt:
        attributes["http.request.resend_count"] = attempt
    return attributes


def messaging(
    mesh: Mesh, topic: str, operation_type: str, name: str, *, group: str | None = None
) -> Attributes:
    """A messaging span on `topic`: its system, the consumer group if any, its operation."""
    attributes: Attributes = {
        "messaging.system": mesh.broker_system,
        "messaging.destination.name": topic,
    }
    if group is not None:
        attributes["messaging.consumer.group.name"] = group
    attributes["messaging.operation.type"] = operation_type
    attributes["messaging.operation.name"] = name
    return attributes


def to_broker(client: Service, mesh: Mesh) -> Attributes:
    """The connection of `client` to the mesh's broker."""
    return {
        "server.address": mesh.broker,
        "server.port": KAFKA_PORT,
        **tls_to(client, mesh.broker),
    }


def set_http_status(span: Span, status: int, *, client: bool) -> None:
    """HTTP status and span status: 5xx fails both sides, 4xx only the client side."""
    span.set_attribute("http.response.status_code", status)
    if status >= 500 or (client and status >= 400):
        span.set_attribute("error.type", str(status))
        span.set_status(Status(StatusCode.ERROR))


def _statement(query: Query) -> str:
    """A parameterized statement, as database instrumentations record it."""
    table = query.table
    if query.operation == "SELECT":
        return f"SELECT * FROM {table} WHERE id = $1"
    if query.operation == "INSERT":
        return f"INSERT INTO {table} VALUES ($1, $2, $3)"
    return f"UPDATE {table} SET quantity = quantity - $1 WHERE id = $2"
