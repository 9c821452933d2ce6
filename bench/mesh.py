"""Realistic OTLP requests: the spans of a small service mesh of 8 services.

Each trace starts with a frontend SERVER span; then CLIENT/SERVER span pairs of calls from
random hops to other pods, with the HTTP semantic-convention attributes a mesh reports.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

SPANS_PER_TRACE = 10


@dataclass(frozen=True, slots=True)
class Service:
    """One workload of the mesh: its name, namespace and the routes it serves."""

    name: str
    namespace: str
    routes: tuple[tuple[str, str], ...]  # (method, route template)
    protocol: str  # network.protocol.version

    @property
    def address(self) -> str:
        return f"{self.name}.{self.namespace}.svc.cluster.local"


SERVICES = (  # the first one is the ingress-facing frontend: every trace starts there
    Service(
        "frontend",
        "web",
        (("GET", "/"), ("GET", "/products/{id}"), ("POST", "/cart"), ("GET", "/checkout")),
        "1.1",
    ),
    Service("checkout", "shop", (("POST", "/api/checkout"), ("GET", "/api/orders/{id}")), "2"),
    Service(
        "cart",
        "shop",
        (
            ("GET", "/api/carts/{id}"),
            ("POST", "/api/carts/{id}/items"),
            ("DELETE", "/api/carts/{id}"),
        ),
        "2",
    ),
    Service(
        "catalog",
        "shop",
        (("GET", "/api/products"), ("GET", "/api/products/{id}"), ("GET", "/api/categories/{id}")),
        "1.1",
    ),
    Service("payments", "billing", (("POST", "/api/payments"), ("GET", "/api/payments/{id}")), "2"),
    Service("shipping", "shop", (("POST", "/api/quotes"), ("GET", "/api/shipments/{id}")), "1.1"),
    Service("users", "identity", (("GET", "/api/users/{id}"), ("POST", "/api/sessions")), "2"),
    Service("recommendations", "shop", (("GET", "/api/recommendations"),), "1.1"),
)
BROWSERS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148 Safari/604.1",
)
# (http.response.status_code, weight): mostly fine, some not found, some server errors
STATUS_CODES = ((200, 93), (404, 3), (500, 2), (503, 2))
UPSTREAM_ERROR = "upstream connect error or disconnect/reset before headers"
SCOPE = InstrumentationScope(name="io.opentelemetry.instrumentation.http", version="2.9.0")


@dataclass(frozen=True, slots=True)
class Pod:
    """The one pod of a service: its resource attributes and address."""

    service: Service
    resource: Resource
    ip: str
    user_agent: str  # what its HTTP client sends


def make_pods(rng: random.Random) -> list[Pod]:
    """One pod per service, with the resource attributes a Kubernetes deployment reports."""
    pods = []
    for number, service in enumerate(SERVICES):
        suffix = "".join(rng.choices("bcdfghjklmnpqrstvwxz2456789", k=5))
        language = "go" if service.protocol == "2" else "java"
        attributes = [
            kv("service.name", service.name),
            kv("service.version", f"1.{number + 3}.{rng.randrange(10)}"),
            kv("service.namespace", service.namespace),
            kv("k8s.namespace.name", service.namespace),
            kv("k8s.deployment.name", service.name),
            kv("k8s.pod.name", f"{service.name}-7c9d{number}f8b6-{suffix}"),
            kv("k8s.node.name", f"node-{number % 3 + 1}"),
            kv("telemetry.sdk.language", language),
        ]
        pod = Pod(
            service,
            Resource(attributes=attributes),
            f"10.42.{number}.{rng.randrange(2, 250)}",
            "Go-http-client/2.0" if language == "go" else "Java-http-client/21.0.4",
        )
        pods.append(pod)
    return pods


def kv(key: str, value: str | int) -> KeyValue:
    """An OTLP attribute."""
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP call between two pods: what both its CLIENT and SERVER span describe."""

    method: str
    route: str
    path: str
    status: int


@dataclass(frozen=True, slots=True)
class Hop:
    """A SERVER span: the pod that handled a call, and when. Further calls hang under it."""

    span_id: bytes
    pod: int
    start: int
    end: int


class RequestBuilder:
    """Builds one OTLP request: traces of a frontend SERVER span and CLIENT/SERVER call pairs."""

    def __init__(self, rng: random.Random, pods: Sequence[Pod], token: bytes, now: int) -> None:
        self._rng = rng
        self._pods = pods
        self._token = token
        self._now = now
        self._spans: list[list[Span]] = [[] for _ in pods]
        self._ids: set[bytes] = set()

    def build(self, spans: int) -> ExportTraceServiceRequest:
        """A request of `spans` spans, SPANS_PER_TRACE to a trace (the last may be shorter)."""
        for first in range(0, spans, SPANS_PER_TRACE):
            self._trace(self._token + self._unique_id(), min(SPANS_PER_TRACE, spans - first))
        return ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    resource=pod.resource, scope_spans=[ScopeSpans(scope=SCOPE, spans=pod_spans)]
                )
                for pod, pod_spans in zip(self._pods, self._spans, strict=True)
                if pod_spans
            ]
        )

    def _trace(self, trace_id: bytes, count: int) -> None:
        """A request entering at the frontend, then calls from random hops to other pods."""
        rng = self._rng
        start = self._now - rng.randrange(2_000_000_000)
        end = start + rng.randrange(20, 400) * 1_000_000
        client_ip = f"203.0.113.{rng.randrange(1, 255)}"
        root = self._server(
            trace_id, b"", 0, self._call(0), start, end, rng.choice(BROWSERS), client_ip
        )
        hops = [root]
        made = 1
        while made < count:
            caller = rng.choice(hops)
            callee = rng.choice([n for n in range(1, len(self._pods)) if n != caller.pod])
            both = made + 2 <= count  # the last span of a trace may be a lone CLIENT span
            hop = self._exchange(trace_id, caller, callee, with_server=both)
            made += 2 if both else 1
            if hop is not None:
                hops.append(hop)

    def _exchange(
        self, trace_id: bytes, caller: Hop, callee: int, *, with_server: bool
    ) -> Hop | None:
        """The CLIENT span of `caller` calling `callee`, and the callee's SERVER span."""
        rng = self._rng
        call = self._call(callee)
        start = caller.start + int((caller.end - caller.start) * rng.uniform(0.05, 0.5))
        end = start + int((caller.end - start) * rng.uniform(0.3, 0.9))
        span_id = self._client(trace_id, caller, callee, call, start, end)
        if not with_server:
            return None
        margin = (end - start) // 20  # the network time on either side
        source = self._pods[caller.pod]
        return self._server(
            trace_id,
            span_id,
            callee,
            call,
            start + margin,
            end - margin,
            source.user_agent,
            source.ip,
        )

    def _client(
        self, trace_id: bytes, caller: Hop, callee: int, call: Call, start: int, end: int
    ) -> bytes:
        source, target = self._pods[caller.pod], self._pods[callee]
        span = Span(
            trace_id=trace_id,
            span_id=self._unique_id(),
            parent_span_id=caller.span_id,
            name=call.method,
            kind=Span.SPAN_KIND_CLIENT,
            start_time_unix_nano=start,
            end_time_unix_nano=end,
            attributes=client_attributes(source, target, call),
            status=client_status(call.status),
        )
        self._spans[caller.pod].append(span)
        return span.span_id

    def _server(
        self,
        trace_id: bytes,
        parent: bytes,
        pod: int,
        call: Call,
        start: int,
        end: int,
        user_agent: str,
        client_ip: str,
    ) -> Hop:
        span = Span(
            trace_id=trace_id,
            span_id=self._unique_id(),
            parent_span_id=parent,
            name=f"{call.method} {call.route}",
            kind=Span.SPAN_KIND_SERVER,
            start_time_unix_nano=start,
            end_time_unix_nano=end,
            attributes=server_attributes(self._pods[pod].service, call, user_agent, client_ip),
            status=server_status(call.status),
        )
        self._spans[pod].append(span)
        return Hop(span.span_id, pod, start, end)

    def _call(self, pod: int) -> Call:
        return random_call(self._rng, self._pods[pod].service)

    def _unique_id(self) -> bytes:
        """8 random bytes, never zero, unique within this request (span ids and id suffixes)."""
        while True:
            value = self._rng.randbytes(8)
            if value != bytes(8) and value not in self._ids:
                self._ids.add(value)
                return value


def random_call(rng: random.Random, service: Service) -> Call:
    """A call to one of `service`'s routes, its parameters filled in, with a drawn status."""
    method, route = rng.choice(service.routes)
    path = route
    while "{id}" in path:
        path = path.replace("{id}", str(rng.randrange(1, 100_000)), 1)
    codes, weights = zip(*STATUS_CODES, strict=True)
    return Call(method, route, path, rng.choices(codes, weights)[0])


def client_attributes(source: Pod, target: Pod, call: Call) -> list[KeyValue]:
    """An SDK's HTTP CLIENT span of `source` calling `target`."""
    address = target.service.address
    return [
        kv("http.request.method", call.method),
        kv("url.full", f"http://{address}:8080{call.path}"),
        kv("url.template", call.route),
        kv("server.address", address),
        kv("server.port", 8080),
        kv("http.response.status_code", call.status),
        kv("network.protocol.version", target.service.protocol),
        kv("network.peer.address", target.ip),
        kv("network.peer.port", 8080),
        kv("user_agent.original", source.user_agent),
    ]


def server_attributes(
    service: Service, call: Call, user_agent: str, client_ip: str
) -> list[KeyValue]:
    """An SDK's HTTP SERVER span of `service` serving `call`."""
    return [
        kv("http.request.method", call.method),
        kv("http.route", call.route),
        kv("http.response.status_code", call.status),
        kv("url.path", call.path),
        kv("url.scheme", "http"),
        kv("server.address", service.address),
        kv("server.port", 8080),
        kv("network.protocol.version", service.protocol),
        kv("user_agent.original", user_agent),
        kv("client.address", client_ip),
    ]


def client_status(code: int) -> Status:
    """Client spans fail on 4xx too."""
    return _status(code >= 400, UPSTREAM_ERROR if code == 503 else "")


def server_status(code: int) -> Status:
    """Server spans fail on 5xx only."""
    return _status(code >= 500, "")


def _status(failed: bool, message: str) -> Status:
    if failed:
        return Status(code=Status.STATUS_CODE_ERROR, message=message)
    return Status()
