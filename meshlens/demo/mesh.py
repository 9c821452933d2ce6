"""The vocabulary of a simulated mesh: services, their operations and the steps they take.

A `Mesh` is plain frozen data: services serving HTTP operations, each operation's own latency
and errors and the steps it takes (calls to other services, database queries, calls to an
external API, messages to a queue), the consumers of the queue, the proxy in front of each
service (an Istio sidecar, a Linkerd proxy, or none), the ingress gateway, and what to look
for. `topology` declares the demo's mesh in these terms; `traffic` turns it into spans.

Latencies are lognormal: `Latency(median_ms, sigma)`; an operation's own latency is its work
outside its calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Latency:
    """A lognormal latency: its median in milliseconds and its shape (sigma of the log)."""

    median_ms: float
    sigma: float = 0.35


@dataclass(frozen=True)
class ServiceCall:
    """An HTTP call to another service's operation (a key of its `operations`)."""

    service: str
    operation: str
    probability: float = 1.0
    parallel: bool = False  # starts together with the step before it (a fan-out)
    critical: bool = True  # a failure fails the caller; otherwise the caller degrades


@dataclass(frozen=True)
class Query:
    """A statement on the shop's PostgreSQL database."""

    operation: str  # SELECT, INSERT, UPDATE
    table: str
    latency: Latency
    probability: float = 1.0
    parallel: bool = False
    critical: bool = True


@dataclass(frozen=True)
class ExternalCall:
    """An HTTPS call to an API outside the mesh: no server half, one-way TLS."""

    host: str
    method: str
    path: str
    latency: Latency
    error_rate: float  # answered 503
    retries: int = 0  # further attempts after a 5xx
    probability: float = 1.0
    parallel: bool = False
    critical: bool = True


@dataclass(frozen=True)
class Publish:
    """A message to a Kafka topic: created (PRODUCER) and sent to the broker (CLIENT)."""

    topic: str
    probability: float = 1.0
    parallel: bool = False
    critical: bool = False


Step = ServiceCall | Query | ExternalCall | Publish


@dataclass(frozen=True)
class Operation:
    """An HTTP route a service serves, its own latency and errors, and the calls it makes."""

    method: str
    route: str
    latency: Latency
    error_rate: float = 0.001  # answered 500 by the service itself
    not_found_rate: float = 0.0  # answered 404 (not an error on the server side)
    steps: tuple[Step, ...] = ()

    @property
    def name(self) -> str:
        """`GET /api/cart`: the SERVER span's name and the key in `Service.operations`."""
        return f"{self.method} {self.route}"


@dataclass(frozen=True)
class Version:
    """A deployed version of a service and its share of the service's traffic."""

    name: str
    weight: float = 1.0
    latency_factor: float = 1.0
    extra_error_rate: float = 0.0
    extra_utilization: float = 0.0


ISTIO, LINKERD = "istio", "linkerd"


@dataclass(frozen=True)
class Service:
    """An instrumented workload, and the mesh proxy in front of it."""

    name: str
    operations: Mapping[str, Operation]
    versions: tuple[Version, ...]
    utilization: float  # typical CPU limit utilization of its pods, in [0, 1]
    proxy: str | None = ISTIO  # ISTIO, LINKERD, or None: no proxy, its connections are plaintext
    unreachable_rate: float = 0.0  # calls to it its caller's sidecar cannot deliver (UF, UH)
    rollout: str = ""  # when its Deployment was last restarted: which pods run it (`pods`)

    @property
    def sidecar(self) -> bool:
        """Whether a mesh proxy fronts it."""
        return self.proxy is not None

    def mutual_tls_with(self, other: Service) -> bool:
        """Whether calls between the two are mutual TLS: proxies of the same mesh at both ends."""
        return self.proxy is not None and self.proxy == other.proxy


@dataclass(frozen=True)
class Gateway:
    """The Istio ingress gateway every request of the virtual client `user` enters through.

    A VirtualService on `host` routes the prefix `path_prefix` to the entry service.
    """

    name: str  # its app label and canonical service: istio-ingressgateway
    namespace: str
    host: str  # the public host name
    path_prefix: str
    rollout: str = ""  # when its Deployment was last restarted: which pod runs it (`pods`)


@dataclass(frozen=True)
class Consumer:
    """A service processing the messages of a topic (CONSUMER span linked to the producer)."""

    service: str
    topic: str
    latency: Latency
    steps: tuple[Step, ...] = ()
    error_rate: float = 0.001


@dataclass(frozen=True)
class Highlight:
    """Something to look for in the dashboards, printed when the demo starts."""

    title: str
    detail: str


@dataclass(frozen=True)
class Mesh:
    """The whole simulated mesh."""

    services: Mapping[str, Service]
    entry_service: str
    entry_mix: tuple[tuple[str, float], ...]  # operations of `entry_service` by weight
    consumers: tuple[Consumer, ...]
    database: str  # server.address of the database: its node's name
    database_system: str
    database_namespace: str
    broker: str  # server.address of the broker: its node's name
    broker_system: str
    gateway: Gateway | None = None
    highlights: tuple[Highlight, ...] = field(default=())

    def consumer_of(self, topic: str) -> Consumer | None:
        """The consumer of `topic`, if a simulated service consumes it."""
        return next((c for c in self.consumers if c.topic == topic), None)

    def external_hosts(self) -> list[str]:
        """Hosts of the external APIs some operation calls."""
        hosts = {
            step.host
            for service in self.services.values()
            for operation in service.operations.values()
            for step in operation.steps
            if isinstance(step, ExternalCall)
        }
        return sorted(hosts)

    def plaintext_edges(self) -> list[tuple[str, str]]:
        """(caller, callee) of the service calls without TLS: one side has no mesh proxy."""
        return sorted(
            {
                (caller, call.service)
                for caller, call in self.calls()
                if not self.services[caller].mutual_tls_with(self.services[call.service])
            }
        )

    def calls(self) -> list[tuple[str, ServiceCall]]:
        """(caller, call) of every call between services, the consumers' included."""
        steps = [
            (service.name, step)
            for service in self.services.values()
            for operation in service.operations.values()
            for step in operation.steps
        ]
        steps += [
            (consumer.service, step) for consumer in self.consumers for step in consumer.steps
        ]
        return [(caller, step) for caller, step in steps if isinstance(step, ServiceCall)]
