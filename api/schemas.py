"""Response models of the JSON API (`/api/v1`): the contract, documented field by field.

Built from the query layer's dataclasses (`meshlens.read.results`) by `api.responses`.

A node is its name and its type (`NODE_IDENTITY`): a service `redis` and a database `redis` (a
client span with `db.system=redis`, `server.address=redis`) are two nodes, each with its edges.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class LatencyMs(BaseModel):
    """Latency percentiles in milliseconds (log-bucketed histograms, within 2% relative error)."""

    p50: float | None = Field(description="Median, ms; null without requests.")
    p95: float | None = Field(description="95th percentile, ms; null without requests.")
    p99: float | None = Field(description="99th percentile, ms; null without requests.")


class MtlsCounts(BaseModel):
    """Requests by mTLS state."""

    mutual: int = Field(description="Requests over mutually authenticated TLS.")
    tls: int = Field(description="Requests over one-way TLS (no client certificate).")
    plaintext: int = Field(description="Requests without TLS.")
    unknown: int = Field(description="Requests no signal tells about.")
    coverage: float | None = Field(
        description="mutual / (mutual + tls + plaintext); null when every request is unknown."
    )


class WindowModel(BaseModel):
    """The window answered for: whole minutes [start, end)."""

    start: str = Field(description="Start (inclusive), RFC 3339 UTC.")
    end: str = Field(description="End (exclusive), RFC 3339 UTC; the minute holding `end`.")
    start_unix: int = Field(description="Start, unix seconds.")
    end_unix: int = Field(description="End, unix seconds.")
    seconds: float = Field(
        description="Seconds of the window that have passed (less than end - start while the "
        "current minute runs): the divisor of rps."
    )


class SamplingModel(BaseModel):
    """Whether the counts are the true ones: where they come from, and how many come from
    spans sampled at a rate nobody declared (a proxy's spans without an OpenTelemetry threshold
    `ot=th` when `MESHLENS_SPAN_SAMPLING_PERCENT` is unset: each counts one request, yet stands
    for more)."""

    source: Literal["mesh-metrics", "traces", "mixed"] | None = Field(
        description="Where requests, errors, rps and mTLS counts come from: `mesh-metrics` (the "
        "proxies' request counters, not sampled: they win wherever they describe the edge or "
        "service in the window), `traces` (spans, each counting the requests it stands for: "
        "its OpenTelemetry adjusted count, or 100 / MESHLENS_SPAN_SAMPLING_PERCENT), `mixed` "
        "(a node summing edges of both); null without requests."
    )
    unknown_rate_share: float | None = Field(
        description="Share in [0, 1] of the requests counted from spans sampled at an unknown "
        "rate; 0 for mesh metrics; null without requests."
    )
    rate_is_lower_bound: bool = Field(
        description="True when unknown_rate_share > 0: requests, errors and rps are lower "
        "bounds of the true ones (error_rate and latency are estimates from the sampled "
        "requests, not bounds). Never true for counts from mesh metrics."
    )


class SignalFields(BaseModel):
    requests: int = Field(description="Requests in the window.")
    errors: int = Field(
        description="Failed requests: by the server's rules (5xx; gRPC server-fault codes), "
        "else, with no server half, by the caller's (also 4xx, every non-zero gRPC code)."
    )
    error_rate: float | None = Field(description="errors / requests; null without requests.")
    rps: float = Field(description="Requests per second: requests / window seconds.")
    latency_ms: LatencyMs
    sampling: SamplingModel = Field(
        description="Where the counts come from and whether they are lower bounds (sampled "
        "spans of unknown rate)."
    )


class NodeSignals(SignalFields):
    saturation: float | None = Field(
        description="Highest utilization in [0, 1] of the service's utilization gauges "
        "(MESHLENS_SATURATION_METRICS) over the window; null when none was reported."
    )
    mtls_coverage: float | None = Field(description="Inbound mTLS coverage; null when unknown.")
    mtls: MtlsCounts = Field(description="Inbound requests by mTLS state.")
    signals_from: str = Field(
        description="`entry-spans` (the service's SERVER/CONSUMER spans) or `inbound-edges` "
        "(sum of the edges into it: mesh-metrics-only services and virtual nodes). A service "
        "with mesh metrics into it in the window takes requests, errors and mTLS from them "
        "(`sampling.source` `mesh-metrics`: the sum of its inbound mesh-metric edges) and keeps "
        "its entry spans' latency."
    )


class ServiceModel(NodeSignals):
    name: str = Field(description="Service name.")


class ServicesResponse(BaseModel):
    window: WindowModel
    services: list[ServiceModel] = Field(description="Services with requests, by name.")


NODE_IDENTITY = (
    "A node is its name and its type: a service and a virtual node (or two virtual nodes of "
    "different types) may share a name and are then two nodes, with edges of their own."
)
NODE_TYPES = "service, database, messaging, external or client."


class NodeModel(NodeSignals):
    id: str = Field(
        description="Unique among the answer's nodes: the node's name, unless several nodes of "
        "the answer have that name; then the first of them by type (service, client, database, "
        "messaging, external, then others by name) keeps the name as id and each other one has "
        "`<type>:<name>` (e.g. `database:redis` beside the service `redis`). "
        "Edges refer to it as `source_id` and `target_id`. " + NODE_IDENTITY
    )
    name: str = Field(description="Node name (a service, or a virtual node's name).")
    type: str = Field(description=NODE_TYPES)


class EdgeModel(SignalFields):
    source: str = Field(
        description="Calling node's name; with `source_type`, the calling node. " + NODE_IDENTITY
    )
    source_type: str = Field(description="Type of the calling node: " + NODE_TYPES)
    target: str = Field(description="Called node's name; with `target_type`, the called node.")
    target_type: str = Field(description="Type of the called node: " + NODE_TYPES)
    mtls: MtlsCounts
    sources: list[str] = Field(
        description="Where the edge is seen: `mesh-metrics` and/or `traces` (sorted). With "
        "both, counts come from mesh metrics only (they are not sampled)."
    )
    plaintext_reasons: dict[str, int] = Field(
        description="Plaintext requests by the reason the mesh gave (Linkerd `no_tls_reason`); "
        "empty when it gave none."
    )


class GraphEdgeModel(EdgeModel):
    source_id: str = Field(
        description="`id` of the calling node in `nodes` (its name when no other node of the "
        "graph has that name)."
    )
    target_id: str = Field(description="`id` of the called node in `nodes`.")


class GraphResponse(BaseModel):
    window: WindowModel
    nodes: list[NodeModel] = Field(
        description="Every node of an edge or with requests, by name, then type (service, "
        "client, database, messaging, external, then others)."
    )
    edges: list[GraphEdgeModel] = Field(
        description="Edges by source, then target (then their types, as nodes)."
    )


class OperationModel(SignalFields):
    operation: str = Field(description="Span name or http.route of the entry spans.")
    share: float | None = Field(description="Share of the service's entry-span requests.")


class VersionModel(SignalFields):
    version: str = Field(description="service.version (Istio *_version); `unknown` if unset.")
    share: float | None = Field(
        description="Share of the service's entry-span requests, in [0, 1]. Versions come from "
        "entry spans only (mesh metrics keep no version), even when the service's own counts "
        "come from mesh metrics."
    )


class ServiceDetailResponse(NodeSignals):
    window: WindowModel
    name: str = Field(description="Node name.")
    type: str = Field(
        description=NODE_TYPES + " The node asked for with `type`, else the first node of the "
        "name by type (the service, when there is one)."
    )
    upstream: list[EdgeModel] = Field(
        description="Edges into this node (target = name, target_type = type)."
    )
    downstream: list[EdgeModel] = Field(
        description="Edges out of this node (source = name, source_type = type)."
    )
    operations: list[OperationModel] = Field(description="Per operation, most requests first.")
    versions: list[VersionModel] = Field(description="Per version, most requests first.")


class PointModel(SignalFields):
    start: str = Field(description="Point start, RFC 3339 UTC.")
    start_unix: int = Field(description="Point start, unix seconds (a multiple of the step).")
    seconds: float = Field(description="Seconds the point covers (edges of the window: less).")
    saturation: float | None = Field(
        description="Highest utilization in [0, 1] within the point; null when none was reported."
    )
    mtls_coverage: float | None = Field(description="mTLS coverage of the point's requests.")


class SeriesResponse(BaseModel):
    window: WindowModel
    name: str
    type: str = Field(description="The node's type (as in the service's answer).")
    step_seconds: int = Field(description="Point spacing; points align to multiples of it.")
    signals_from: str = Field(description="`entry-spans` or `inbound-edges`.")
    points: list[PointModel]


class MtlsEdgeModel(EdgeModel):
    reason: str | None = Field(
        description="The reason the mesh gave for most of the edge's plaintext requests (ties: "
        "the first by name); null when it gave none."
    )
    reasons: dict[str, int] = Field(
        description="Plaintext requests by the reason the mesh gave (Linkerd `no_tls_reason`)."
    )


class CoveragePointModel(MtlsCounts):
    start: str = Field(description="Point start, RFC 3339 UTC.")
    start_unix: int = Field(description="Point start, unix seconds.")
    seconds: float = Field(description="Seconds the point covers.")


class MtlsResponse(MtlsCounts):
    window: WindowModel
    edges: list[EdgeModel] = Field(description="Every edge with its mTLS counts.")
    plaintext_edges: list[MtlsEdgeModel] = Field(description="Edges with plaintext requests.")
    tls_edges: list[MtlsEdgeModel] = Field(description="Edges with one-way TLS requests.")
    step_seconds: int = Field(description="Spacing of `series`.")
    series: list[CoveragePointModel] = Field(description="Mesh-wide coverage per point.")


class ErrorResponse(BaseModel):
    status: int = Field(description="The HTTP status.")
    message: str = Field(description="What is wrong.")
