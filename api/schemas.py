"""Response models of the JSON API (`/api/v1`): the contract, documented field by field.

Built from the query layer's dataclasses (`meshlens.read.results`) by the `from_*` functions below.

A node is its name and its type (`NODE_IDENTITY`): a service `redis` and a database `redis` (a
client span with `db.system=redis`, `server.address=redis`) are two nodes, each with its edges.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from meshlens.read import results
from meshlens.read.windows import Series, Window, rfc3339


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


class SignalFields(BaseModel):
    requests: int = Field(description="Requests in the window.")
    errors: int = Field(
        description="Failed requests: by the server's rules (5xx; gRPC server-fault codes), "
        "else, with no server half, by the caller's (also 4xx, every non-zero gRPC code)."
    )
    error_rate: float | None = Field(description="errors / requests; null without requests.")
    rps: float = Field(description="Requests per second: requests / window seconds.")
    latency_ms: LatencyMs


class NodeSignals(SignalFields):
    saturation: float | None = Field(
        description="Highest utilization in [0, 1] of the service's utilization gauges "
        "(MESHLENS_SATURATION_METRICS) over the window; null when none was reported."
    )
    mtls_coverage: float | None = Field(description="Inbound mTLS coverage; null when unknown.")
    mtls: MtlsCounts = Field(description="Inbound requests by mTLS state.")
    signals_from: str = Field(
        description="`entry-spans` (the service's SERVER/CONSUMER spans) or `inbound-edges` "
        "(sum of the edges into it: mesh-metrics-only services and virtual nodes)."
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
    share: float | None = Field(description="Share of the service's requests.")


class VersionModel(SignalFields):
    version: str = Field(description="service.version (Istio *_version); `unknown` if unset.")
    share: float | None = Field(description="Share of the service's requests, in [0, 1].")


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


# --- from the query layer ----------------------------------------------------------------------


def window_model(window: Window) -> WindowModel:
    return WindowModel(
        start=rfc3339(window.start_unix),
        end=rfc3339(window.end_unix),
        start_unix=window.start_unix,
        end_unix=window.end_unix,
        seconds=window.seconds,
    )


def mtls_counts(mtls: results.Mtls) -> MtlsCounts:
    return MtlsCounts(
        mutual=mtls.mutual,
        tls=mtls.tls,
        plaintext=mtls.plaintext,
        unknown=mtls.unknown,
        coverage=mtls.coverage,
    )


def signal_fields(signals: results.Signals) -> dict[str, object]:
    return {
        "requests": signals.requests,
        "errors": signals.errors,
        "error_rate": signals.error_rate,
        "rps": signals.rps,
        "latency_ms": LatencyMs.model_validate(signals.latency_ms()),
    }


def node_fields(node: results.Node) -> dict[str, object]:
    return {
        **signal_fields(node.signals),
        "saturation": node.signals.saturation,
        "mtls_coverage": node.signals.mtls.coverage,
        "mtls": mtls_counts(node.signals.mtls),
        "signals_from": node.signals_from,
    }


def edge_fields(edge: results.Edge) -> dict[str, object]:
    return {
        **signal_fields(edge.signals),
        "source": edge.source,
        "source_type": edge.source_type,
        "target": edge.target,
        "target_type": edge.target_type,
        "mtls": mtls_counts(edge.signals.mtls),
        "sources": list(edge.sources),
        "plaintext_reasons": dict(sorted(edge.plaintext_reasons.items())),
    }


def edge_model(edge: results.Edge) -> EdgeModel:
    return EdgeModel.model_validate(edge_fields(edge))


def services_response(window: Window, nodes: list[results.Node]) -> ServicesResponse:
    services = [ServiceModel.model_validate({**node_fields(n), "name": n.name}) for n in nodes]
    return ServicesResponse(window=window_model(window), services=services)


def graph_response(window: Window, graph: results.Graph) -> GraphResponse:
    ids = graph.node_ids()
    return GraphResponse(
        window=window_model(window),
        nodes=[
            NodeModel.model_validate(
                {**node_fields(n), "id": ids[n.key], "name": n.name, "type": n.type}
            )
            for n in graph.nodes
        ],
        edges=[
            GraphEdgeModel.model_validate(
                {
                    **edge_fields(edge),
                    "source_id": ids[edge.source_key],
                    "target_id": ids[edge.target_key],
                }
            )
            for edge in graph.edges
        ],
    )


def detail_response(window: Window, detail: results.ServiceDetail) -> ServiceDetailResponse:
    return ServiceDetailResponse.model_validate(
        {
            **node_fields(detail.node),
            "window": window_model(window),
            "name": detail.node.name,
            "type": detail.node.type,
            "upstream": [edge_model(edge) for edge in detail.upstream],
            "downstream": [edge_model(edge) for edge in detail.downstream],
            "operations": [
                {**signal_fields(s.signals), "operation": s.name, "share": s.share}
                for s in detail.operations
            ],
            "versions": [
                {**signal_fields(s.signals), "version": s.name, "share": s.share}
                for s in detail.versions
            ],
        }
    )


def series_response(result: results.ServiceSeries) -> SeriesResponse:
    points = [
        PointModel.model_validate(
            {
                **signal_fields(p.signals),
                "start": rfc3339(p.start_unix),
                "start_unix": p.start_unix,
                "seconds": p.signals.seconds,
                "saturation": p.signals.saturation,
                "mtls_coverage": p.signals.mtls.coverage,
            }
        )
        for p in result.points
    ]
    return SeriesResponse(
        window=window_model(result.series.window),
        name=result.node_name,
        type=result.node_type,
        step_seconds=result.series.step_seconds,
        signals_from=result.signals_from,
        points=points,
    )


def mtls_response(summary: results.MtlsSummary) -> MtlsResponse:
    series: Series = summary.series
    return MtlsResponse(
        **mtls_counts(summary.totals).model_dump(),
        window=window_model(series.window),
        edges=[edge_model(edge) for edge in summary.edges],
        plaintext_edges=[_mtls_edge(edge) for edge in summary.plaintext_edges],
        tls_edges=[_mtls_edge(edge) for edge in summary.tls_edges],
        step_seconds=series.step_seconds,
        series=[
            CoveragePointModel(
                **mtls_counts(p.mtls).model_dump(),
                start=rfc3339(p.start_unix),
                start_unix=p.start_unix,
                seconds=series.window.covered(p.start_unix, p.end_unix),
            )
            for p in summary.points
        ],
    )


def _mtls_edge(edge: results.Edge) -> MtlsEdgeModel:
    fields = edge_fields(edge)
    return MtlsEdgeModel.model_validate(
        {**fields, "reason": edge.plaintext_reason, "reasons": fields["plaintext_reasons"]}
    )
