"""Request templates: a few requests serialized once, every trace id starting with a placeholder.

Each send replaces the placeholder (one `bytes.replace`) with a fresh 8-byte prefix from
`id_prefix`, so the load generator stays cheap and leaves the CPU to the server.

Two workloads (`--workload`): `sdk`, TEMPLATES requests of whole traces of SDK spans
(`mesh`), each sent with a prefix of its own; `proxy`, the spans of Istio sidecars, the
ingress gateway and Linkerd proxies around SDK apps (`proxy_traces`), every emitter's spans in
requests of their own, so a trace is spread over several requests: the whole set is sent with
one prefix per round through it (`TemplateSet.grouped`), which keeps its traces whole.
"""

from __future__ import annotations

import math
import random
import secrets
import time
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.mesh import SPANS_PER_TRACE, RequestBuilder, make_pods
from bench.proxy_traces import ProxyTraces

WORKLOADS = ("sdk", "proxy")
TEMPLATES = 4  # distinct pre-serialized requests of the sdk workload, sent in turn
PROXY_REQUESTS = 32  # the proxy workload's set holds this many requests' worth of spans
TOKEN_LENGTH = 8  # placeholder = the first 8 bytes of every trace id in a template
MIX = 0x9E3779B97F4A7C15  # odd, so multiplying by it permutes the 64-bit integers


@dataclass(frozen=True, slots=True)
class Template:
    """A serialized request; every trace id in it is TOKEN + 8 bytes unique in the request."""

    body: bytes
    spans: int


@dataclass(frozen=True, slots=True)
class TemplateSet:
    """The requests of a workload and their placeholder."""

    name: str  # the workload: one of WORKLOADS
    token: bytes
    templates: list[Template]
    traces: int
    grouped: bool  # the requests share traces: send them all with one prefix per round

    @property
    def spans(self) -> int:
        return sum(template.spans for template in self.templates)


def id_prefix(counter: int) -> bytes:
    """The 8 bytes replacing the token for send number `counter`: unique, and well spread.

    Multiplying by an odd constant modulo 2**64 is a bijection, so distinct counters give
    distinct prefixes, scattered over the index like random trace ids would be.
    """
    return (counter * MIX % (1 << 64)).to_bytes(8, "big")


def build_workload(workload: str, spans_per_request: int, seed: int = 20261126) -> TemplateSet:
    """The requests of `workload` (one of WORKLOADS), timed now."""
    if workload == "proxy":
        token, templates, traces = build_proxy_templates(spans_per_request, seed)
        return TemplateSet(workload, token, templates, traces, grouped=True)
    token, templates = build_templates(spans_per_request, seed)
    traces = TEMPLATES * math.ceil(spans_per_request / SPANS_PER_TRACE)
    return TemplateSet(workload, token, templates, traces, grouped=False)


def build_templates(spans_per_request: int, seed: int = 20261126) -> tuple[bytes, list[Template]]:
    """The placeholder token and TEMPLATES requests of `spans_per_request` spans, timed now."""
    rng = random.Random(seed)
    pods = make_pods(rng)
    now = time.time_ns()
    for _ in range(100):
        token = secrets.token_bytes(TOKEN_LENGTH)
        bodies = [
            RequestBuilder(rng, pods, token, now).build(spans_per_request).SerializeToString()
            for _ in range(TEMPLATES)
        ]
        if all(_token_only_in_trace_ids(body, token, spans_per_request) for body in bodies):
            return token, [Template(body, spans_per_request) for body in bodies]
    raise RuntimeError("could not find a placeholder token that occurs only in trace ids")


def build_proxy_templates(
    spans_per_request: int, seed: int = 20261126
) -> tuple[bytes, list[Template], int]:
    """The placeholder token, the proxy workload's requests and their number of traces: whole
    traces of about PROXY_REQUESTS * `spans_per_request` spans, each emitter's in requests of
    at most `spans_per_request` spans, timed now."""
    now = time.time_ns()
    for attempt in range(100):
        rng = random.Random(seed + attempt)
        token = secrets.token_bytes(TOKEN_LENGTH)
        traces = ProxyTraces(rng, make_pods(rng), token, now)
        traces.build(PROXY_REQUESTS * spans_per_request)
        templates = []
        for request in traces.requests(spans_per_request):
            body = request.SerializeToString()
            spans = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
            templates.append(Template(body, spans))
        if all(_token_only_in_trace_ids(t.body, token, t.spans) for t in templates):
            return token, templates, traces.traces
    raise RuntimeError("could not find a placeholder token that occurs only in trace ids")


def _token_only_in_trace_ids(body: bytes, token: bytes, spans: int) -> bool:
    """True when replacing `token` in `body` changes exactly the trace ids, and nothing else."""
    if body.count(token) != spans:
        return False
    probe = id_prefix(7)
    request = ExportTraceServiceRequest.FromString(body.replace(token, probe))
    ids = [s.trace_id for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    return len(ids) == spans and all(trace_id[:TOKEN_LENGTH] == probe for trace_id in ids)
