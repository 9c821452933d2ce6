"""How a request crosses the mesh: the proxies' spans between the apps' own.

A call from app A to app B is A's CLIENT span, then the spans of the proxies on the way, each
the parent of the next, then B's SERVER span, whose parent is the last proxy span:

- Istio: A's sidecar outbound CLIENT span, B's sidecar inbound SERVER span (Envoy puts its
  own span id into the request it forwards).
- Linkerd: A's proxy outbound SERVER and CLIENT spans, B's proxy inbound SERVER and CLIENT.
- A side without a proxy adds nothing (`shipping`).

A request of the virtual client `user` starts at the Istio ingress gateway: its root SERVER
span, its `router <cluster> egress` CLIENT child, then the entry service's sidecar inbound
span and the entry service's SERVER span. A call the caller's sidecar cannot deliver (the
callee's `unreachable_rate`; Envoy flags `UF`, `UH`) ends in that sidecar with a 503: its
CLIENT span and no server half at all.

The proxies' spans nest evenly between the caller's span and the callee's, in the network
time on either side. Their shapes come from `envoy_spans` and `linkerd_spans`; here they get
ids and times, and go to their proxy's own pipeline (`ProxyExport`): they are exported apart
from the apps' spans, as real proxies do. Each proxy also counts the request in its metrics
(`hop_metrics`: Istio's `istio_requests_total` at both sidecars and the gateway, Linkerd's
`response_total` at both proxies), when its span ends and for as long as its span lasted.
Random choices (hop times, failures, sizes, request ids) come from the traffic's seeded
`random.Random`; span and trace ids do not repeat.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)

from meshlens.demo import envoy_spans, hop_metrics, linkerd_spans
from meshlens.demo.envoy_spans import IstioProxy
from meshlens.demo.hop_metrics import Counted
from meshlens.demo.mesh import Gateway, Latency, Mesh, Service, Version
from meshlens.demo.pods import Proxy, gateway_pod, gateway_proxy, pod_of, proxy_of
from meshlens.demo.prometheus_scrape import RequestSeries
from meshlens.demo.proxy_span import SERVER, ProxyRequest, ProxySpan
from meshlens.demo.topology import HTTP_PORT, NAMESPACE

NANOS_PER_MS = 1_000_000
HOP = Latency(0.35, 0.5)  # one way through two sidecars on a cluster network
CONNECT_FAILURE = Latency(1.0, 0.5)  # UF: the connection to the pod is refused or reset
NO_HEALTHY_UPSTREAM = Latency(0.05, 0.3)  # UH: the sidecar answers at once
LOCAL_REPLIES = {
    "UF": "upstream connect error or disconnect/reset before headers. "
    "reset reason: connection failure",
    "UH": "no healthy upstream",
}
CLIENT_AGENT = "Go-http-client/1.1"  # what the simulated apps' HTTP clients send
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"


@dataclass(frozen=True)
class Answer:
    """How a call ended: when (unix ns) and with which HTTP status."""

    end: int
    status: int


Serve = Callable[[Context, int], Answer]
"""The callee serving: (the parent context of its SERVER span, when it starts) -> Answer."""


@dataclass(frozen=True)
class Leg:
    """A proxy span on the way: its proxy, its shape given the response's status, and the
    proxy's count of the request in its metrics (None: another span of the proxy has it)."""

    proxy: Proxy
    shape: Callable[[int], ProxySpan]
    counted: Counted | None = None


class ProxyExport(Protocol):
    """Where proxy spans and counts go: each proxy's resource and export pipeline."""

    def proxy_resource(self, proxy: Proxy) -> Resource: ...

    def send_proxy_span(self, proxy: Proxy, span: ReadableSpan) -> None: ...

    def count_request(
        self, proxy: Proxy, series: RequestSeries, end_ns: int, duration_ns: int
    ) -> None:
        """`proxy` counts a request that ends at `end_ns` in its metrics."""


class Hops:
    """The proxy spans of the mesh's requests."""

    def __init__(self, mesh: Mesh, export: ProxyExport, rng: random.Random) -> None:
        self._mesh = mesh
        self._export = export
        self._rng = rng
        self._ids = random.Random()  # fresh every run: a rerun is no resend
        self.spans = 0

    def enter(
        self, entry: Service, version: Version, method: str, path: str, at: int, serve: Serve
    ) -> Answer:
        """A request of `user` into `entry`: through the ingress gateway, if there is one."""
        gateway = self._mesh.gateway
        if gateway is None:
            return serve(Context(), at)
        proxy = gateway_proxy(gateway)
        request = ProxyRequest(
            method,
            gateway.host,
            path,
            0,
            BROWSER,
            str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            "https",
            "HTTP/2",
            *self._sizes(method),
        )
        cluster = envoy_spans.outbound_cluster(entry.name, NAMESPACE, HTTP_PORT)
        upstream = f"{pod_of(entry, version).ip}:{HTTP_PORT}"
        root = self._context(self._ids.getrandbits(128))
        child = Leg(
            proxy,
            lambda status: envoy_spans.gateway_upstream(
                proxy, replace(request, status=status), cluster=cluster, upstream=upstream
            ),
        )
        inbound = self._inbound(entry, version, request, gateway_pod(gateway).ip, proxy, None)
        answer = self._cross([child, *inbound], root, at, serve)
        ingress = envoy_spans.gateway_ingress(
            proxy,
            replace(request, status=answer.status),
            route=_gateway_route(gateway, entry),
            cluster=cluster,
            peer=f"203.0.113.{self._rng.randrange(1, 255)}",
            upstream=upstream,
        )
        self._emit(proxy, ingress, root, None, at, answer.end)
        series = hop_metrics.istio_source(proxy, entry, version)(answer.status)
        self._export.count_request(proxy, series, answer.end, answer.end - at)
        return answer

    def call(
        self,
        caller: Service,
        caller_version: Version,
        callee: Service,
        callee_version: Version,
        method: str,
        path: str,
        client: SpanContext,
        at: int,
        serve: Serve,
    ) -> Answer:
        """A call whose CLIENT span `client` started at `at`; ends when the caller has the
        answer (the callee serves through `serve`, unless the call cannot reach it)."""
        request = ProxyRequest(
            method,
            f"{callee.name}:{HTTP_PORT}",
            path,
            0,
            CLIENT_AGENT,
            str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            "http",
            "HTTP/1.1",
            *self._sizes(method),
        )
        outward = proxy_of(caller, caller_version)
        caller_ip = pod_of(caller, caller_version).ip
        if isinstance(outward, IstioProxy) and self._chance(callee.unreachable_rate):
            return self._unreachable(
                outward, callee, callee_version, request, caller_ip, client, at
            )
        legs = self._outbound(outward, callee, callee_version, request, caller_ip)
        if isinstance(outward, linkerd_spans.LinkerdProxy):
            request = linkerd_spans.canonical(request, _canonical(callee))
        legs += self._inbound(callee, callee_version, request, caller_ip, outward, caller)
        return self._cross(legs, client, at, serve)

    # --- the legs -----------------------------------------------------------------------

    def _outbound(
        self,
        proxy: Proxy | None,
        callee: Service,
        version: Version,
        request: ProxyRequest,
        caller_ip: str,
    ) -> list[Leg]:
        if isinstance(proxy, IstioProxy):
            route, cluster = _outbound_route(callee, version)
            upstream = f"{pod_of(callee, version).ip}:{HTTP_PORT}"
            sidecar = proxy
            return [
                Leg(
                    sidecar,
                    lambda status: envoy_spans.outbound(
                        sidecar,
                        replace(request, status=status),
                        route=route,
                        cluster=cluster,
                        peer=caller_ip,
                        upstream=upstream,
                    ),
                    hop_metrics.istio_source(sidecar, callee, version),
                )
            ]
        if proxy is None:
            return []
        linkerd = proxy

        def shapes(status: int) -> tuple[ProxySpan, ProxySpan]:
            return linkerd_spans.outbound(replace(request, status=status), _canonical(callee))

        return [  # the endpoint stack (CLIENT) counts the request
            Leg(linkerd, lambda status: shapes(status)[0]),
            Leg(linkerd, lambda s: shapes(s)[1], hop_metrics.linkerd_outbound(callee, version)),
        ]

    def _inbound(
        self,
        callee: Service,
        version: Version,
        request: ProxyRequest,
        caller_ip: str,
        caller_proxy: Proxy | None,
        caller: Service | None,
    ) -> list[Leg]:
        """The callee's proxy's legs, for a request from `caller` (None: the gateway) through
        `caller_proxy` (None: the caller has no proxy)."""
        proxy = proxy_of(callee, version)
        if isinstance(proxy, IstioProxy):
            sidecar = proxy
            route = envoy_spans.default_route(callee.name, NAMESPACE, HTTP_PORT)
            return [
                Leg(
                    sidecar,
                    lambda status: envoy_spans.inbound(
                        sidecar,
                        replace(request, status=status),
                        route=route,
                        port=HTTP_PORT,
                        peer=caller_ip,
                    ),
                    hop_metrics.istio_destination(sidecar, caller_proxy),
                )
            ]
        if proxy is None:
            return []
        linkerd = proxy

        def shapes(status: int) -> tuple[ProxySpan, ProxySpan]:
            return linkerd_spans.inbound(replace(request, status=status))

        counted = hop_metrics.linkerd_inbound(callee, version, caller)
        return [Leg(linkerd, lambda s: shapes(s)[0], counted), Leg(linkerd, lambda s: shapes(s)[1])]

    def _unreachable(
        self,
        sidecar: IstioProxy,
        callee: Service,
        version: Version,
        request: ProxyRequest,
        caller_ip: str,
        client: SpanContext,
        at: int,
    ) -> Answer:
        """The caller's sidecar fails the call itself: no endpoint answers (UF) or none is
        healthy (UH). Its CLIENT span is the only one after the caller's."""
        flags = self._rng.choice(envoy_spans.UNREACHABLE_FLAGS)
        route, cluster = _outbound_route(callee, version)
        upstream = f"{pod_of(callee, version).ip}:{HTTP_PORT}" if flags == "UF" else None
        took = self._latency(CONNECT_FAILURE if flags == "UF" else NO_HEALTHY_UPSTREAM)
        failed = replace(request, status=503, response_bytes=len(LOCAL_REPLIES[flags]))
        shape = envoy_spans.outbound(
            sidecar,
            failed,
            route=route,
            cluster=cluster,
            peer=caller_ip,
            upstream=upstream,
            flags=flags,
        )
        context = self._context(client.trace_id)
        end = at + 2 * took
        start, stop = at + took // 4, end - took // 4
        self._emit(sidecar, shape, context, client, start, stop)
        series = hop_metrics.istio_undelivered(sidecar, callee, version, flags)
        self._export.count_request(sidecar, series, stop, stop - start)
        return Answer(end, 503)

    # --- times and ids ------------------------------------------------------------------

    def _cross(self, legs: list[Leg], client: SpanContext, at: int, serve: Serve) -> Answer:
        """Serve under the last leg, then emit the legs, nested evenly in the network time."""
        contexts = [self._context(client.trace_id) for _ in legs]
        parent = contexts[-1] if contexts else client
        go, back = self._latency(HOP), self._latency(HOP)
        served = serve(set_span_in_context(NonRecordingSpan(_remote(parent))), at + go)
        end = served.end + back
        step_go, step_back = go // (len(legs) + 1), back // (len(legs) + 1)
        parents = [client, *contexts]
        for n, (leg, context) in enumerate(zip(legs, contexts, strict=True)):
            start, stop = at + (n + 1) * step_go, end - (n + 1) * step_back
            self._emit(leg.proxy, leg.shape(served.status), context, parents[n], start, stop)
            if leg.counted is not None:
                series = leg.counted(served.status)
                self._export.count_request(leg.proxy, series, stop, stop - start)
        return Answer(end, served.status)

    def _emit(
        self,
        proxy: Proxy,
        shape: ProxySpan,
        context: SpanContext,
        parent: SpanContext | None,
        start: int,
        end: int,
    ) -> None:
        span = ReadableSpan(
            name=shape.name,
            context=context,
            parent=None if parent is None else _remote(parent),
            resource=self._export.proxy_resource(proxy),
            attributes=shape.attributes,
            kind=SpanKind.SERVER if shape.kind == SERVER else SpanKind.CLIENT,
            status=Status(StatusCode.ERROR) if shape.error else Status(StatusCode.UNSET),
            start_time=start,
            end_time=end,
        )
        self.spans += 1
        self._export.send_proxy_span(proxy, span)

    def _context(self, trace_id: int) -> SpanContext:
        span_id = self._ids.getrandbits(64) or 1
        return SpanContext(trace_id, span_id, False, TraceFlags(TraceFlags.SAMPLED))

    def _sizes(self, method: str) -> tuple[int, int]:
        """Request and response body sizes in bytes."""
        sent = 0 if method == "GET" else self._rng.randrange(120, 900)
        return sent, self._rng.randrange(300, 6000)

    def _latency(self, latency: Latency) -> int:
        ms = self._rng.lognormvariate(math.log(latency.median_ms), latency.sigma)
        return max(1, int(ms * NANOS_PER_MS))

    def _chance(self, probability: float) -> bool:
        return probability > 0 and self._rng.random() < probability


def _remote(context: SpanContext) -> SpanContext:
    """`context` as a process that received it in a request sees it."""
    return SpanContext(context.trace_id, context.span_id, True, context.trace_flags)


def _canonical(callee: Service) -> str:
    return f"{envoy_spans.fqdn(callee.name, NAMESPACE)}:{HTTP_PORT}"


def _outbound_route(callee: Service, version: Version) -> tuple[str, str]:
    """(span name, upstream cluster) of a sidecar's call to `callee` at `version`.

    A service with several versions has a VirtualService named after it splitting its
    traffic between subsets named after the versions: the route's name is the
    VirtualService's, the cluster the subset's.
    """
    if len(callee.versions) > 1:
        cluster = envoy_spans.outbound_cluster(callee.name, NAMESPACE, HTTP_PORT, version.name)
        return f"{callee.name}:{HTTP_PORT}/*", cluster
    route = envoy_spans.default_route(callee.name, NAMESPACE, HTTP_PORT)
    return route, envoy_spans.outbound_cluster(callee.name, NAMESPACE, HTTP_PORT)


def _gateway_route(gateway: Gateway, entry: Service) -> str:
    """The gateway's VirtualService route to `entry`: one destination, a prefix match."""
    return f"{envoy_spans.fqdn(entry.name, NAMESPACE)}:{HTTP_PORT}{gateway.path_prefix}*"
