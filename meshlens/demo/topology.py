"""The simulated mesh as data: a small web shop in the Kubernetes namespace `shop`.

Thirteen services call each other over HTTP through their proxies (mutual TLS). Most run on
Istio: an Envoy sidecar beside each pod, and the ingress gateway `istio-ingressgateway`
(namespace `istio-system`) in front of `frontend`. The notification corner, `email` and
`templates`, still runs on Linkerd (a linkerd2-proxy beside each pod). `shipping` is a legacy
workload without a proxy: `checkout -> shipping` is the one plaintext edge. Around them, the
nodes meshlens draws without their own telemetry: the virtual client `user` (root requests
at the gateway), the PostgreSQL database `postgres`, the Kafka broker `kafka` (topic
`orders`, published by `checkout`, consumed by `email`) and the external API
`api.stripe.com`, which `payments` calls over one-way TLS and which fails about 15% of the
time. `reviews` runs a canary: v2 takes 10% of its traffic (a VirtualService split between
the subsets v1 and v2) and is slower and more error-prone than v1. `recommendations` runs
hot (CPU near its limit) and its pods restart now and then: 2% of the calls to it fail in
the caller's sidecar (UF, UH) and never reach it.

Latencies are lognormal: `Latency(median_ms, sigma)`; an operation's own latency is its work
outside its calls. Nothing here is random: `traffic` draws from these figures.
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

from meshlens.demo.mesh import (
    ISTIO,
    LINKERD,
    Consumer,
    ExternalCall,
    Gateway,
    Highlight,
    Latency,
    Mesh,
    Operation,
    Publish,
    Query,
    Service,
    ServiceCall,
    Version,
)

NAMESPACE = "shop"
TRUST_DOMAIN = "cluster.local"
HTTP_PORT = 8080


def _service(
    name: str,
    operations: list[Operation],
    utilization: float,
    versions: tuple[Version, ...],
    *,
    proxy: str | None = ISTIO,
    unreachable_rate: float = 0.0,
) -> Service:
    by_name = MappingProxyType({operation.name: operation for operation in operations})
    return Service(name, by_name, versions, utilization, proxy, unreachable_rate)


def _one(version: str) -> tuple[Version, ...]:
    return (Version(version),)


def shop(rollout: str = "") -> Mesh:
    """The demo's mesh; `rollout`: when every Deployment was (re)started, so that each run has
    pods of its own (and its proxies' metrics series of their own)."""
    session = ServiceCall("auth", "GET /api/session")
    currency = ServiceCall("currency", "GET /api/convert", parallel=True)
    services = [
        _service(
            "frontend",
            [
                Operation(
                    "GET",
                    "/api/products",
                    Latency(6, 0.4),
                    steps=(
                        session,
                        ServiceCall("catalog", "GET /api/products"),
                        currency,
                        ServiceCall(
                            "recommendations",
                            "GET /api/recommendations",
                            parallel=True,
                            critical=False,
                        ),
                    ),
                ),
                Operation(
                    "GET",
                    "/api/products/{id}",
                    Latency(5, 0.4),
                    steps=(
                        session,
                        ServiceCall("catalog", "GET /api/products/{id}"),
                        ServiceCall("reviews", "GET /api/reviews/{productId}", critical=False),
                        ServiceCall(
                            "recommendations",
                            "GET /api/recommendations",
                            parallel=True,
                            critical=False,
                        ),
                        currency,
                    ),
                ),
                Operation(
                    "GET",
                    "/api/cart",
                    Latency(4, 0.4),
                    steps=(session, ServiceCall("cart", "GET /api/cart"), currency),
                ),
                Operation(
                    "POST",
                    "/api/cart/items",
                    Latency(4, 0.4),
                    steps=(session, ServiceCall("cart", "POST /api/cart/items")),
                ),
                Operation(
                    "POST",
                    "/api/checkout",
                    Latency(8, 0.4),
                    steps=(session, ServiceCall("checkout", "POST /api/checkout")),
                ),
                Operation(
                    "POST",
                    "/api/login",
                    Latency(3, 0.4),
                    steps=(ServiceCall("auth", "POST /api/login"),),
                ),
            ],
            0.42,
            _one("2.14.1"),
        ),
        _service(
            "auth",
            [
                Operation("GET", "/api/session", Latency(2.5, 0.3), error_rate=0.0005),
                Operation(
                    "POST",
                    "/api/login",
                    Latency(45, 0.25),  # password hashing
                    steps=(Query("SELECT", "users", Latency(1.5)),),
                ),
            ],
            0.31,
            _one("1.9.0"),
        ),
        _service(
            "catalog",
            [
                Operation(
                    "GET",
                    "/api/products",
                    Latency(7, 0.35),
                    steps=(Query("SELECT", "products", Latency(4, 0.5)),),
                ),
                Operation(
                    "GET",
                    "/api/products/{id}",
                    Latency(3, 0.35),
                    not_found_rate=0.02,
                    steps=(Query("SELECT", "products", Latency(1.2, 0.4)),),
                ),
            ],
            0.38,
            _one("3.2.0"),
        ),
        _service(
            "inventory",
            [
                Operation(
                    "GET",
                    "/api/stock/{productId}",
                    Latency(2, 0.3),
                    steps=(Query("SELECT", "stock", Latency(1.0, 0.4)),),
                ),
                Operation(
                    "POST",
                    "/api/stock/reservations",
                    Latency(4, 0.3),
                    error_rate=0.002,
                    steps=(Query("UPDATE", "stock", Latency(3.5, 0.6)),),
                ),
            ],
            0.27,
            _one("1.4.2"),
        ),
        _service(
            "currency",
            [Operation("GET", "/api/convert", Latency(1.2, 0.3), error_rate=0.0005)],
            0.22,
            _one("1.1.5"),
        ),
        _service(
            "recommendations",
            [
                Operation(
                    "GET",
                    "/api/recommendations",
                    Latency(28, 0.45),  # model inference: CPU-bound, runs hot
                    error_rate=0.003,
                    steps=(ServiceCall("catalog", "GET /api/products"),),
                )
            ],
            0.85,
            _one("0.12.3"),
            unreachable_rate=0.02,
        ),
        _service(
            "reviews",
            [
                Operation(
                    "GET",
                    "/api/reviews/{productId}",
                    Latency(6, 0.4),
                    error_rate=0.002,
                    steps=(Query("SELECT", "reviews", Latency(2.5, 0.5)),),
                )
            ],
            0.33,
            (
                Version("v1", weight=0.9),
                Version(
                    "v2",
                    weight=0.1,
                    latency_factor=2.6,
                    extra_error_rate=0.12,
                    extra_utilization=0.15,
                ),
            ),
        ),
        _service(
            "cart",
            [
                Operation(
                    "GET",
                    "/api/cart",
                    Latency(3, 0.35),
                    steps=(Query("SELECT", "cart_items", Latency(1.5, 0.4)),),
                ),
                Operation(
                    "POST",
                    "/api/cart/items",
                    Latency(4, 0.35),
                    steps=(
                        ServiceCall("inventory", "GET /api/stock/{productId}"),
                        Query("INSERT", "cart_items", Latency(2.5, 0.5)),
                    ),
                ),
            ],
            0.29,
            _one("2.3.1"),
        ),
        _service(
            "checkout",
            [
                Operation(
                    "POST",
                    "/api/checkout",
                    Latency(12, 0.35),
                    steps=(
                        ServiceCall("cart", "GET /api/cart"),
                        ServiceCall("inventory", "POST /api/stock/reservations"),
                        ServiceCall("currency", "GET /api/convert", parallel=True),
                        ServiceCall("shipping", "POST /api/quotes", parallel=True),
                        ServiceCall("payments", "POST /api/charges"),
                        Query("INSERT", "orders", Latency(3, 0.5)),
                        Publish("orders"),
                    ),
                )
            ],
            0.36,
            _one("1.21.0"),
        ),
        _service(
            "payments",
            [
                Operation(
                    "POST",
                    "/api/charges",
                    Latency(5, 0.3),
                    steps=(
                        ExternalCall(
                            "api.stripe.com",
                            "POST",
                            "/v1/charges",
                            Latency(190, 0.45),
                            error_rate=0.15,
                            retries=1,
                        ),
                        Query("INSERT", "payments", Latency(2.5, 0.5)),
                    ),
                )
            ],
            0.24,
            _one("4.0.2"),
        ),
        _service(
            "shipping",
            [Operation("POST", "/api/quotes", Latency(14, 0.4), error_rate=0.002)],
            0.19,
            _one("0.9.8"),
            proxy=None,
        ),
        _service("email", [], 0.17, _one("1.0.4"), proxy=LINKERD),
        _service(
            "templates",
            [Operation("POST", "/api/render", Latency(6, 0.4), error_rate=0.002)],
            0.21,
            _one("2.0.1"),
            proxy=LINKERD,
        ),
    ]
    services = [replace(service, rollout=rollout) for service in services]
    return Mesh(
        services=MappingProxyType({service.name: service for service in services}),
        entry_service="frontend",
        entry_mix=(
            ("GET /api/products", 0.35),
            ("GET /api/products/{id}", 0.30),
            ("GET /api/cart", 0.15),
            ("POST /api/cart/items", 0.10),
            ("POST /api/checkout", 0.07),
            ("POST /api/login", 0.03),
        ),
        consumers=(
            Consumer(
                "email",
                "orders",
                Latency(20, 0.4),  # queues the confirmation
                steps=(
                    ServiceCall("templates", "POST /api/render"),
                    Query("INSERT", "notifications", Latency(2, 0.5)),
                ),
            ),
        ),
        database="postgres",
        database_system="postgresql",
        database_namespace=NAMESPACE,
        broker="kafka",
        broker_system="kafka",
        gateway=Gateway(
            "istio-ingressgateway", "istio-system", "shop.example.com", "/api", rollout
        ),
        highlights=(
            Highlight(
                "canary",
                "reviews v2 takes 10% of reviews' traffic; it is slower and fails more than v1 "
                "(service reviews: versions)",
            ),
            Highlight(
                "plaintext edge",
                "checkout -> shipping: shipping runs without a sidecar; every other call "
                "between services is mutual TLS (mTLS page)",
            ),
            Highlight(
                "two meshes",
                "Istio sidecars and the ingress gateway in front of most services (user -> "
                "istio-ingressgateway -> frontend), Linkerd proxies in front of email and "
                "templates (email -> templates)",
            ),
            Highlight(
                "unreachable pods",
                "2% of the calls to recommendations fail in the caller's sidecar (UF, UH) "
                "before they reach it: errors on frontend -> recommendations",
            ),
            Highlight(
                "failing dependency",
                "payments -> api.stripe.com (external) answers 503 about 15% of the time; "
                "payments retries once, so some checkouts fail too",
            ),
            Highlight(
                "running hot",
                "recommendations at about 85% of its CPU limit (saturation)",
            ),
            Highlight(
                "queue",
                "checkout publishes to the Kafka topic orders, email consumes it (an "
                "asynchronous edge through a span link)",
            ),
        ),
    )
