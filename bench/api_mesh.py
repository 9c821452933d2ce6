"""A layered service mesh for `bench/api_queries.py`: services, their calls, their resources.

Services sit in four layers; about a tenth are entry points, whose root SERVER spans are
requests from the virtual client `user`. Each service calls 2-4 services of deeper layers, so
the calls form a layered graph, and some also call a database, a message queue (PRODUCER
spans) or an external API: CLIENT spans without a server half, which become virtual nodes.
Every service runs two versions (a canary takes about 10 % of its requests) and serves three
routes; some calls fail (5xx, some 404); each edge has an mTLS state (mostly mutual).

`bench.api_traces` builds the requests of traces through this mesh.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

LAYERS = 4
NAMES = (
    "frontend", "api-gateway", "mobile-bff", "web-bff", "admin-portal", "checkout", "cart",
    "catalog", "search", "pricing", "inventory", "payments", "shipping", "users", "auth",
    "sessions", "recommendations", "reviews", "ratings", "notifications", "email", "sms",
    "orders", "invoices", "billing", "tax", "currency", "fraud", "loyalty", "coupons",
    "promotions", "wishlist", "profile", "preferences", "media", "images", "thumbnails", "geo",
    "stores", "delivery", "returns", "warehouse", "suppliers", "analytics", "audit",
    "feature-flags", "config", "ledger", "accounts", "ads",
)  # fmt: skip
DATABASES = (
    ("orders-postgres", "postgresql"), ("catalog-postgres", "postgresql"),
    ("users-postgres", "postgresql"), ("sessions-redis", "redis"), ("cache-redis", "redis"),
    ("events-mongodb", "mongodb"),
)  # fmt: skip
TOPICS = ("order-events", "user-events", "audit-log")
EXTERNAL_APIS = ("api.stripe.com", "maps.googleapis.com", "api.sendgrid.com")
MTLS_STATES = ("mutual", "plaintext", "tls", "unknown")
MTLS_WEIGHTS = (85, 7, 4, 4)  # % of service-to-service edges in each state
SCOPE = InstrumentationScope(name="io.opentelemetry.instrumentation.http", version="2.9.0")


def kv(key: str, value: str | int | bool) -> KeyValue:
    """An OTLP attribute."""
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def mtls_attributes(state: str, caller: str) -> list[KeyValue]:
    """What a proxy records of the connection: TLS, and the client's certificate."""
    if state == "unknown":
        return []
    attributes = [kv("tls.established", state != "plaintext")]
    if state == "mutual":
        attributes.append(kv("tls.client.subject", f"spiffe://cluster.local/ns/mesh/sa/{caller}"))
    return attributes


@dataclass(frozen=True, slots=True)
class VirtualCall:
    """A call to an uninstrumented node: a database, a queue (PRODUCER) or an external API."""

    kind: Span.SpanKind.ValueType
    name: str
    attributes: tuple[KeyValue, ...]
    probability: float


@dataclass(slots=True)
class MeshService:
    """One workload: where it sits, what it serves and calls, how fast and how reliably."""

    name: str
    layer: int
    versions: tuple[str, str]  # stable, canary
    routes: tuple[tuple[str, str], ...]
    latency_ms: float
    error_rate: float
    callees: list[int] = field(default_factory=list)
    virtual: list[VirtualCall] = field(default_factory=list)
    resources: tuple[Resource, Resource] | None = None


@dataclass(slots=True)
class Mesh:
    """The services and the mTLS state of each edge between them."""

    services: list[MeshService]
    mtls: dict[tuple[int, int], str]

    @property
    def entries(self) -> list[int]:
        return [n for n, service in enumerate(self.services) if service.layer == 0]

    def edge_count(self) -> int:
        return sum(len(s.callees) for s in self.services)


def make_mesh(count: int, rng: random.Random) -> Mesh:
    """`count` services in LAYERS layers, each calling 2-4 services deeper down."""
    entries = max(1, count // 10)
    services = []
    for n in range(count):
        name = NAMES[n] if n < len(NAMES) else f"service-{n}"
        layer = 0 if n < entries else 1 + (n - entries) * (LAYERS - 1) // max(1, count - entries)
        major, minor = rng.randrange(1, 4), rng.randrange(20)
        segment = name.split("-")[0]
        routes = (
            ("GET", f"/api/{segment}"),
            ("GET", f"/api/{segment}/{{id}}"),
            ("POST", f"/api/{segment}"),
        )
        services.append(
            MeshService(
                name,
                layer,
                (f"{major}.{minor}.{rng.randrange(10)}", f"{major}.{minor + 1}.0"),
                routes,
                latency_ms=rng.uniform(1.0, 15.0),
                error_rate=0.05 if rng.random() < 0.1 else 0.005,
            )
        )
    mtls: dict[tuple[int, int], str] = {}
    for n, service in enumerate(services):
        deeper = [m for m, other in enumerate(services) if other.layer > service.layer]
        nearest = [m for m in deeper if services[m].layer == service.layer + 1]
        if deeper:
            wanted = min(len(deeper), rng.randint(2, 4))
            picked = rng.sample(nearest, min(len(nearest), wanted))
            picked += rng.sample([m for m in deeper if m not in picked], wanted - len(picked))
            service.callees = sorted(picked)
        _add_virtual_calls(service, rng)
        service.resources = (_resource(service, 0, n, rng), _resource(service, 1, n, rng))
    for m, service in enumerate(services):  # every non-entry service has a caller
        if service.layer and not any(m in other.callees for other in services):
            callers = [s for s in services if s.layer == service.layer - 1]
            rng.choice([s for s in callers if len(s.callees) < 4] or callers).callees.append(m)
    for n, service in enumerate(services):
        for m in service.callees:
            mtls[(n, m)] = rng.choices(MTLS_STATES, MTLS_WEIGHTS)[0]
    return Mesh(services, mtls)


def _add_virtual_calls(service: MeshService, rng: random.Random) -> None:
    if rng.random() < 0.4:
        name, system = rng.choice(DATABASES)
        attributes: tuple[KeyValue, ...] = (
            kv("db.system.name", system),
            kv("db.namespace", name.split("-")[0]),
            kv("db.operation.name", "SELECT" if system != "redis" else "GET"),
            kv("server.address", f"{name}.data.svc.cluster.local"),
            kv("server.port", 5432 if system == "postgresql" else 6379),
        )
        service.virtual.append(VirtualCall(Span.SPAN_KIND_CLIENT, name, attributes, 0.7))
    if rng.random() < 0.15:
        topic = rng.choice(TOPICS)
        attributes = (
            kv("messaging.system", "kafka"),
            kv("messaging.destination.name", topic),
            kv("messaging.operation.type", "send"),
            *mtls_attributes("mutual", service.name),
        )
        service.virtual.append(VirtualCall(Span.SPAN_KIND_PRODUCER, topic, attributes, 0.3))
    if rng.random() < 0.1:
        host = rng.choice(EXTERNAL_APIS)
        attributes = (
            kv("http.request.method", "POST"),
            kv("url.full", f"https://{host}/v1/requests"),
            kv("server.address", host),
            kv("http.response.status_code", 200),
            *mtls_attributes("tls", service.name),
        )
        service.virtual.append(VirtualCall(Span.SPAN_KIND_CLIENT, host, attributes, 0.2))


def _resource(service: MeshService, canary: int, number: int, rng: random.Random) -> Resource:
    suffix = "".join(rng.choices("bcdfghjklmnpqrstvwxz2456789", k=5))
    return Resource(
        attributes=[
            kv("service.name", service.name),
            kv("service.version", service.versions[canary]),
            kv("service.namespace", "mesh"),
            kv("k8s.namespace.name", "mesh"),
            kv("k8s.deployment.name", service.name + ("-canary" if canary else "")),
            kv("k8s.pod.name", f"{service.name}-{number:x}{canary}f8b6-{suffix}"),
            kv("telemetry.sdk.language", "go" if number % 2 else "java"),
        ]
    )
