"""The proxy-shaped workload's traces: what mesh proxies send beside SDK-instrumented apps.

Over the mesh of `proxy_mesh`:

- Istio: a trace enters at the ingress gateway (its root SERVER span and `router <cluster>
  egress` CLIENT child), then frontend's sidecar inbound SERVER span and frontend's own SERVER
  span; then calls from random hops, each the chain caller CLIENT -> caller's sidecar
  outbound CLIENT -> callee's sidecar inbound SERVER -> callee SERVER. 1% of the calls fail in
  the caller's sidecar (Envoy flags UF, UH): the app's CLIENT span and the sidecar's, no
  server half.
- Linkerd: a trace enters at users' app (a root SERVER span: the client sent no trace context,
  so users' proxy traced nothing), then calls, each caller CLIENT -> outbound SERVER ->
  outbound CLIENT (the caller's proxy) -> inbound SERVER -> inbound CLIENT (the callee's
  proxy) -> callee SERVER.

The apps' spans are the SDK workload's (`mesh.client_attributes`, `server_attributes`, with
`http.route`); the proxies' carry no route. Every emitter exports on its own, as it does in a
mesh: a request holds the spans of one resource (an app, a sidecar, a linkerd2-proxy, the
gateway), so the halves of a call arrive in different requests.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from bench.mesh import (
    BROWSERS,
    SCOPE,
    Call,
    Pod,
    client_attributes,
    client_status,
    kv,
    random_call,
    server_attributes,
    server_status,
)
from bench.proxy_mesh import (
    GATEWAY,
    ISTIO_APPS,
    LINKERD_APPS,
    LINKERD_PEER,
    PORT,
    PUBLIC_HOST,
    SIDECAR_PEER,
    Emitter,
    emitter_key,
    linkerd_proxy_of,
    request_for,
    resource_of,
    sidecar_of,
)
from meshlens.demo import envoy_spans, linkerd_spans
from meshlens.demo.envoy_spans import IstioProxy
from meshlens.demo.linkerd_spans import LinkerdProxy
from meshlens.demo.proxy_span import SERVER, ProxyRequest, ProxySpan

LINKERD_SHARE = 0.25  # of the traces
ISTIO_CALLS, LINKERD_CALLS = 4, 3  # per trace: 20 and 19 spans
UNREACHABLE_RATE = 0.01
MS = 1_000_000


@dataclass(frozen=True, slots=True)
class Hop:
    """An app's SERVER span: further calls hang under it."""

    span_id: bytes
    pod: Pod
    start: int
    end: int


class ProxyTraces:
    """Builds traces of the two meshes, collecting each emitter's spans apart."""

    def __init__(self, rng: random.Random, pods: Sequence[Pod], token: bytes, now: int) -> None:
        self._rng = rng
        self._token = token
        self._now = now
        by_name = {pod.service.name: pod for pod in pods}
        self._istio = [by_name[name] for name in ISTIO_APPS]
        self._linkerd = [by_name[name] for name in LINKERD_APPS]
        self._sidecars = {pod.service.name: sidecar_of(pod) for pod in self._istio}
        self._proxies = {pod.service.name: linkerd_proxy_of(pod) for pod in self._linkerd}
        self._emitters: dict[str | IstioProxy | LinkerdProxy, tuple[Emitter, list[Span]]] = {}
        self._ids: set[bytes] = set()
        self.spans = 0
        self.traces = 0

    def build(self, spans: int) -> None:
        """Whole traces until at least `spans` spans."""
        while self.spans < spans:
            trace_id = self._token + self._unique_id()
            self.traces += 1
            if self._rng.random() < LINKERD_SHARE:
                self._linkerd_trace(trace_id)
            else:
                self._istio_trace(trace_id)

    def requests(self, spans_per_request: int) -> Iterator[ExportTraceServiceRequest]:
        """Each emitter's spans, in requests of at most `spans_per_request` spans."""
        for emitter, spans in self._emitters.values():
            resource = resource_of(emitter)
            for first in range(0, len(spans), spans_per_request):
                chunk = spans[first : first + spans_per_request]
                scope = SCOPE if isinstance(emitter, Pod) else None  # proxies send no scope
                yield ExportTraceServiceRequest(
                    resource_spans=[
                        ResourceSpans(
                            resource=resource, scope_spans=[ScopeSpans(scope=scope, spans=chunk)]
                        )
                    ]
                )

    # --- traces -------------------------------------------------------------------------

    def _istio_trace(self, trace_id: bytes) -> None:
        rng = self._rng
        start = self._now - rng.randrange(2_000_000_000)
        end = start + rng.randrange(20, 400) * MS
        entry = self._istio[0]
        call = random_call(rng, entry.service)
        public = request_for(call, PUBLIC_HOST, rng.choice(BROWSERS), rng, "https")
        cluster = envoy_spans.outbound_cluster(entry.service.name, entry.service.namespace, PORT)
        upstream = f"{entry.ip}:{PORT}"
        root = self._proxy_span(
            GATEWAY,
            trace_id,
            b"",
            start,
            end,
            envoy_spans.gateway_ingress(
                GATEWAY,
                public,
                route=f"{entry.service.address}:{PORT}/*",
                cluster=cluster,
                peer=f"203.0.113.{rng.randrange(1, 255)}",
                upstream=upstream,
            ),
        )
        child = self._proxy_span(
            GATEWAY,
            trace_id,
            root,
            start + MS // 5,
            end - MS // 5,
            envoy_spans.gateway_upstream(GATEWAY, public, cluster=cluster, upstream=upstream),
        )
        inbound = self._inbound(
            trace_id, child, entry, public, GATEWAY.ip, start + MS // 2, end - MS // 2
        )
        hops = [
            self._server(trace_id, inbound, entry, call, start + MS, end - MS, public, SIDECAR_PEER)
        ]
        for _ in range(ISTIO_CALLS):
            caller = rng.choice(hops)
            callee = rng.choice([pod for pod in self._istio[1:] if pod is not caller.pod])
            hop = self._istio_call(trace_id, caller, callee)
            if hop is not None:
                hops.append(hop)

    def _istio_call(self, trace_id: bytes, caller: Hop, callee: Pod) -> Hop | None:
        """caller CLIENT -> sidecar outbound CLIENT -> callee's sidecar inbound SERVER ->
        callee SERVER; None when the caller's sidecar could not deliver the call."""
        rng, sidecar = self._rng, self._sidecars[caller.pod.service.name]
        call = random_call(rng, callee.service)
        start, end = self._within(caller)
        request = request_for(call, f"{callee.service.name}:{PORT}", caller.pod.user_agent, rng)
        cluster = envoy_spans.outbound_cluster(callee.service.name, callee.service.namespace, PORT)
        route = envoy_spans.default_route(callee.service.name, callee.service.namespace, PORT)
        net = (end - start) // 20
        if rng.random() < UNREACHABLE_RATE:
            flags = rng.choice(envoy_spans.UNREACHABLE_FLAGS)
            failed = Call(call.method, call.route, call.path, 503)
            client = self._client(trace_id, caller, callee, failed, start, start + 4 * net)
            self._proxy_span(
                sidecar,
                trace_id,
                client,
                start + net,
                start + 3 * net,
                envoy_spans.outbound(
                    sidecar,
                    replace(request, status=503),
                    route=route,
                    cluster=cluster,
                    peer=caller.pod.ip,
                    upstream=f"{callee.ip}:{PORT}" if flags == "UF" else None,
                    flags=flags,
                ),
            )
            return None
        client = self._client(trace_id, caller, callee, call, start, end)
        outbound = self._proxy_span(
            sidecar,
            trace_id,
            client,
            start + net,
            end - net,
            envoy_spans.outbound(
                sidecar,
                request,
                route=route,
                cluster=cluster,
                peer=caller.pod.ip,
                upstream=f"{callee.ip}:{PORT}",
            ),
        )
        inbound = self._inbound(
            trace_id, outbound, callee, request, caller.pod.ip, start + 2 * net, end - 2 * net
        )
        return self._server(
            trace_id, inbound, callee, call, start + 3 * net, end - 3 * net, request, SIDECAR_PEER
        )

    def _linkerd_trace(self, trace_id: bytes) -> None:
        rng = self._rng
        start = self._now - rng.randrange(2_000_000_000)
        end = start + rng.randrange(20, 400) * MS
        entry = self._linkerd[0]
        call = random_call(rng, entry.service)
        public = request_for(call, f"{entry.service.name}:{PORT}", rng.choice(BROWSERS), rng)
        client_ip = f"203.0.113.{rng.randrange(1, 255)}"
        hops = [self._server(trace_id, b"", entry, call, start, end, public, client_ip)]
        for _ in range(LINKERD_CALLS):
            caller = rng.choice(hops)
            callee = rng.choice([pod for pod in self._linkerd[1:] if pod is not caller.pod])
            hops.append(self._linkerd_call(trace_id, caller, callee))

    def _linkerd_call(self, trace_id: bytes, caller: Hop, callee: Pod) -> Hop:
        """caller CLIENT -> its proxy's outbound SERVER and CLIENT -> the callee's proxy's
        inbound SERVER and CLIENT -> callee SERVER."""
        call = random_call(self._rng, callee.service)
        start, end = self._within(caller)
        request = request_for(
            call, f"{callee.service.name}:{PORT}", caller.pod.user_agent, self._rng
        )
        canonical = f"{callee.service.address}:{PORT}"
        out_server, out_client = linkerd_spans.outbound(request, canonical)
        in_server, in_client = linkerd_spans.inbound(linkerd_spans.canonical(request, canonical))
        legs = [
            (self._proxies[caller.pod.service.name], out_server),
            (self._proxies[caller.pod.service.name], out_client),
            (self._proxies[callee.service.name], in_server),
            (self._proxies[callee.service.name], in_client),
        ]
        parent = self._client(trace_id, caller, callee, call, start, end)
        net = (end - start) // 20
        for n, (proxy, shape) in enumerate(legs, 1):
            parent = self._proxy_span(
                proxy, trace_id, parent, start + n * net // 2, end - n * net // 2, shape
            )
        return self._server(
            trace_id, parent, callee, call, start + 3 * net, end - 3 * net, request, LINKERD_PEER
        )

    # --- spans --------------------------------------------------------------------------

    def _inbound(
        self,
        trace_id: bytes,
        parent: bytes,
        pod: Pod,
        request: ProxyRequest,
        peer: str,
        start: int,
        end: int,
    ) -> bytes:
        sidecar = self._sidecars[pod.service.name]
        route = envoy_spans.default_route(pod.service.name, pod.service.namespace, PORT)
        shape = envoy_spans.inbound(sidecar, request, route=route, port=PORT, peer=peer)
        return self._proxy_span(sidecar, trace_id, parent, start, end, shape)

    def _client(
        self, trace_id: bytes, caller: Hop, callee: Pod, call: Call, start: int, end: int
    ) -> bytes:
        return self._add(
            caller.pod,
            Span(
                trace_id=trace_id,
                span_id=self._unique_id(),
                parent_span_id=caller.span_id,
                name=call.method,
                kind=Span.SPAN_KIND_CLIENT,
                start_time_unix_nano=start,
                end_time_unix_nano=end,
                attributes=client_attributes(caller.pod, callee, call),
                status=client_status(call.status),
            ),
        )

    def _server(
        self,
        trace_id: bytes,
        parent: bytes,
        pod: Pod,
        call: Call,
        start: int,
        end: int,
        request: ProxyRequest,
        peer: str,
    ) -> Hop:
        span_id = self._add(
            pod,
            Span(
                trace_id=trace_id,
                span_id=self._unique_id(),
                parent_span_id=parent,
                name=f"{call.method} {call.route}",
                kind=Span.SPAN_KIND_SERVER,
                start_time_unix_nano=start,
                end_time_unix_nano=end,
                attributes=server_attributes(pod.service, call, request.user_agent, peer),
                status=server_status(call.status),
            ),
        )
        return Hop(span_id, pod, start, end)

    def _proxy_span(
        self,
        proxy: IstioProxy | LinkerdProxy,
        trace_id: bytes,
        parent: bytes,
        start: int,
        end: int,
        shape: ProxySpan,
    ) -> bytes:
        return self._add(
            proxy,
            Span(
                trace_id=trace_id,
                span_id=self._unique_id(),
                parent_span_id=parent,
                name=shape.name,
                kind=Span.SPAN_KIND_SERVER if shape.kind == SERVER else Span.SPAN_KIND_CLIENT,
                start_time_unix_nano=start,
                end_time_unix_nano=end,
                attributes=[kv(key, value) for key, value in shape.attributes.items()],
                status=Status(code=Status.STATUS_CODE_ERROR) if shape.error else Status(),
            ),
        )

    def _add(self, emitter: Emitter, span: Span) -> bytes:
        self._emitters.setdefault(emitter_key(emitter), (emitter, []))[1].append(span)
        self.spans += 1
        return span.span_id

    def _within(self, caller: Hop) -> tuple[int, int]:
        """A call's times inside its caller's SERVER span."""
        rng = self._rng
        start = caller.start + int((caller.end - caller.start) * rng.uniform(0.05, 0.5))
        return start, start + int((caller.end - start) * rng.uniform(0.3, 0.9))

    def _unique_id(self) -> bytes:
        """8 random bytes, never zero, unique in the whole set (span ids and id suffixes)."""
        while True:
            value = self._rng.randbytes(8)
            if value != bytes(8) and value not in self._ids:
                self._ids.add(value)
                return value
