"""OTLP requests of whole traces through a `bench.api_mesh` mesh, for `bench/api_queries.py`.

A trace enters at an entry service (a root SERVER span: a request from `user`); each hop calls
each of its callees with CALL_PROBABILITY, one after the other, and its virtual nodes with
their own probability. Every call between services is a CLIENT span and the callee's SERVER
span in the same request, so they pair in the same batch. Trace ids are TOKEN + the trace's
number in the request, and times start at `base_ns`: the loader swaps both per copy
(`bench.api_load`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from bench.api_mesh import SCOPE, Mesh, VirtualCall, kv, mtls_attributes

TOKEN = b"apibench"  # the first 8 bytes of every template trace id
CANARY_SHARE = 0.1
CALL_PROBABILITY = 0.5  # a hop calls each of its callees with this probability
MAX_TRACE_NS = 5_000_000_000  # longer traces are refused (the loader keeps a margin)
MS = 1_000_000


@dataclass(frozen=True, slots=True)
class Template:
    """One serialized request, and what it must add to the rollups."""

    body: bytes
    spans: int
    servers: int  # SERVER spans: requests of services
    virtual_calls: int  # CLIENT/PRODUCER spans without a server half
    fractions: tuple[float, ...]  # where each trace starts in the request's time slice

    @property
    def edge_requests(self) -> int:
        """Requests on edges: every SERVER span has a caller (or `user`), plus virtual calls."""
        return self.servers + self.virtual_calls


class TraceBuilder:
    """Builds requests of whole traces; times start at `base_ns`."""

    def __init__(self, mesh: Mesh, rng: random.Random, base_ns: int) -> None:
        self._mesh, self._rng, self._base = mesh, rng, base_ns
        self._spans: dict[tuple[int, int], list[Span]] = {}
        self._servers = self._virtual = self._span_id = 0

    def template(self, spans: int) -> Template:
        """A request of whole traces holding at least `spans` spans."""
        self._spans, self._servers, self._virtual = {}, 0, 0
        fractions: list[float] = []
        while sum(map(len, self._spans.values())) < spans:
            trace_id = TOKEN + (len(fractions) + 1).to_bytes(8, "big")
            end, _ = self._hop(trace_id, self._rng.choice(self._mesh.entries), b"", self._base, -1)
            if end - self._base > MAX_TRACE_NS:
                raise RuntimeError("a trace lasts longer than MAX_TRACE_NS")
            fractions.append(self._rng.random())
        request = ExportTraceServiceRequest(
            resource_spans=[
                ResourceSpans(
                    resource=self._resource(service, canary),
                    scope_spans=[ScopeSpans(scope=SCOPE, spans=spans)],
                )
                for (service, canary), spans in sorted(self._spans.items())
            ]
        )
        total = sum(map(len, self._spans.values()))
        return Template(
            request.SerializeToString(), total, self._servers, self._virtual, tuple(fractions)
        )

    def _resource(self, service: int, canary: int) -> Resource:
        resources = self._mesh.services[service].resources
        assert resources is not None
        return resources[canary]

    def _hop(
        self, trace_id: bytes, n: int, parent: bytes, start: int, caller: int
    ) -> tuple[int, int]:
        """The SERVER span of service `n` (caller -1: `user`) and everything it calls;
        returns its end and HTTP status."""
        rng, service = self._rng, self._mesh.services[n]
        canary = int(rng.random() < CANARY_SHARE)
        span_id = self._new_id()
        own = int(min(service.latency_ms * rng.lognormvariate(0, 0.5), 100.0) * MS)
        t = start + own // 2
        for m in service.callees:
            if rng.random() < CALL_PROBABILITY:
                t = self._call(trace_id, n, canary, span_id, m, t)
        for call in service.virtual:
            if rng.random() < call.probability:
                t = self._virtual_call(trace_id, n, canary, span_id, call, t)
        end = t + own - own // 2
        method, route = rng.choice(service.routes)
        status = self._status(service.error_rate)
        attributes = [
            kv("http.request.method", method),
            kv("http.route", route),
            kv("http.response.status_code", status),
            kv("url.path", route.replace("{id}", str(rng.randrange(1, 100_000)))),
            kv("server.address", f"{service.name}.mesh.svc.cluster.local"),
            kv("network.protocol.version", "2"),
        ]
        if caller >= 0:
            state = self._mesh.mtls[(caller, n)]
            attributes += mtls_attributes(state, self._mesh.services[caller].name)
        else:
            attributes.append(kv("client.address", f"203.0.113.{rng.randrange(1, 255)}"))
        self._append(n, canary, Span(
            trace_id=trace_id, span_id=span_id, parent_span_id=parent,
            name=f"{method} {route}", kind=Span.SPAN_KIND_SERVER,
            start_time_unix_nano=start, end_time_unix_nano=end, attributes=attributes,
            status=_status(status >= 500),
        ))  # fmt: skip
        self._servers += 1
        return end, status

    def _call(self, trace_id: bytes, n: int, canary: int, parent: bytes, m: int, t: int) -> int:
        """A CLIENT span of `n` calling `m`, and `m`'s SERVER span; returns the client's end."""
        network = int(self._rng.uniform(0.2, 1.0) * MS)
        span_id = self._new_id()
        server_end, status = self._hop(trace_id, m, span_id, t + network, n)
        end = server_end + network
        callee = self._mesh.services[m]
        self._append(n, canary, Span(
            trace_id=trace_id, span_id=span_id, parent_span_id=parent,
            name="GET", kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=t,
            end_time_unix_nano=end,
            attributes=[
                kv("http.request.method", "GET"),
                kv("server.address", f"{callee.name}.mesh.svc.cluster.local"),
                kv("server.port", 8080),
                kv("http.response.status_code", status),
            ],
            status=_status(status >= 400),
        ))  # fmt: skip
        return end

    def _virtual_call(
        self, trace_id: bytes, n: int, canary: int, parent: bytes, call: VirtualCall, t: int
    ) -> int:
        end = t + int(self._rng.lognormvariate(0, 0.6) * 2 * MS)
        self._append(n, canary, Span(
            trace_id=trace_id, span_id=self._new_id(), parent_span_id=parent, name=call.name,
            kind=call.kind, start_time_unix_nano=t, end_time_unix_nano=end,
            attributes=call.attributes,
        ))  # fmt: skip
        self._virtual += 1
        return end

    def _append(self, n: int, canary: int, span: Span) -> None:
        self._spans.setdefault((n, canary), []).append(span)

    def _new_id(self) -> bytes:
        self._span_id += 1
        return self._span_id.to_bytes(8, "big")

    def _status(self, error_rate: float) -> int:
        draw = self._rng.random()
        if draw < error_rate:
            return self._rng.choice((500, 503))
        return 404 if draw < error_rate + 0.01 else 200


def _status(failed: bool) -> Status:
    return Status(code=Status.STATUS_CODE_ERROR) if failed else Status()
