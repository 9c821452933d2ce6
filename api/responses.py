"""The JSON API's answers (`api.schemas`) built from the query layer's results
(`meshlens.read.results`)."""

from __future__ import annotations

from api.schemas import (
    CoveragePointModel,
    EdgeModel,
    GraphEdgeModel,
    GraphResponse,
    LatencyMs,
    MtlsCounts,
    MtlsEdgeModel,
    MtlsResponse,
    NodeModel,
    PointModel,
    SamplingModel,
    SeriesResponse,
    ServiceDetailResponse,
    ServiceModel,
    ServicesResponse,
    WindowModel,
)
from meshlens.read import results
from meshlens.read.windows import Series, Window, rfc3339


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


def sampling(signals: results.Signals) -> SamplingModel:
    return SamplingModel.model_validate(
        {
            "source": signals.counted_from,
            "unknown_rate_share": signals.unknown_rate_share,
            "rate_is_lower_bound": signals.rate_is_lower_bound,
        }
    )


def signal_fields(signals: results.Signals) -> dict[str, object]:
    return {
        "requests": signals.requests,
        "errors": signals.errors,
        "error_rate": signals.error_rate,
        "rps": signals.rps,
        "latency_ms": LatencyMs.model_validate(signals.latency_ms()),
        "sampling": sampling(signals),
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
