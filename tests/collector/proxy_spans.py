"""Spans as sidecar proxies write them, and what the deriver left in the rollups, for tests.

Envoy's tags are those of its OpenTelemetry tracer (`TracingTagValues`,
source/common/tracing/common_values.h: `component=proxy`, `node_id`, `upstream_cluster`,
`http.status_code` as a string, `response_flags`); Istio adds `istio.canonical_service`,
`istio.namespace`, `istio.canonical_revision` and names the proxy's `service.name`
`<app>.<namespace>`; its node ids are `<type>~<ip>~<pod>.<ns>~<ns>.svc.cluster.local`, type
`sidecar` or `router` (pilot/pkg/model/context.go `NodeType`); clusters are
`outbound|<port>|<subset>|<host>` and `inbound|<port>||` (pilot/pkg/model/service.go
`BuildSubsetKey`).
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.otlp_payloads import SpanSpec, spans_request
from tests.support import RunningServer

SERVER, CLIENT = 2, 3
NAMESPACE = "shop-ns"


def send(server: RunningServer, specs: list[SpanSpec]) -> None:
    """POST `specs` as one OTLP/HTTP protobuf request."""
    answer = httpx.post(
        f"{server.otlp_http}/v1/traces",
        content=spans_request(specs).SerializeToString(),
        headers={"content-type": "application/x-protobuf"},
    )
    assert answer.status_code == 200, answer.text


def edges(server: RunningServer, source: str) -> dict[tuple[str, str], tuple[int, int]]:
    """(target, target type) -> (requests, errors) of the edges from `source`, where any."""
    rows = server.query(
        "SELECT target, target_type, sum(requests), sum(errors) FROM edge_rollups"
        " WHERE resolution = 60 AND source = %s GROUP BY 1, 2 HAVING sum(requests) > 0",
        (source,),
    )
    return {(r[0], r[1]): (int(r[2]), int(r[3])) for r in rows}


def edge_latency_keys(server: RunningServer, source: str, target: str) -> dict[int, int]:
    """The latency histogram (bucket key -> count) of the edge source -> target."""
    rows = server.query(
        "SELECT latency_keys, latency_counts FROM edge_rollups"
        " WHERE resolution = 60 AND source = %s AND target = %s",
        (source, target),
    )
    found: dict[int, int] = {}
    for keys, counts in rows:
        for key, count in zip(keys, counts, strict=True):
            found[key] = found.get(key, 0) + count
    return {key: count for key, count in found.items() if count}


def served(server: RunningServer, service: str, column: str = "") -> dict[str, int]:
    """Requests into `service`: its total (column ""), or per 'operation' or 'version'."""
    if column:
        other = "version" if column == "operation" else "operation"
        where = f"{column} <> '' AND {other} = ''"
    else:
        column, where = "service", "operation = '' AND version = ''"
    rows = server.query(
        f"SELECT {column}, sum(requests) FROM service_rollups WHERE resolution = 60"
        f" AND service = %s AND {where} GROUP BY 1 HAVING sum(requests) <> 0",
        (service,),
    )
    return {str(r[0]): int(r[1]) for r in rows}


def envoy(
    app: str,
    kind: int,
    ids: tuple[bytes, bytes, bytes],
    cluster: str,
    *,
    start: int,
    duration_ns: int,
    status: str = "200",
    flags: str = "-",
    node_type: str = "sidecar",
    revision: str = "v1",
) -> SpanSpec:
    """A span of the Envoy in front of `app` (an Istio sidecar, or a gateway: `router`)."""
    trace_id, span_id, parent = ids
    host = f"{app}.{NAMESPACE}.svc.cluster.local"
    attributes: dict[str, Any] = {
        "component": "proxy",
        "node_id": f"{node_type}~10.0.0.7~{app}-5d8f7c.{NAMESPACE}~{NAMESPACE}.svc.cluster.local",
        "upstream_cluster": cluster,
        "upstream_cluster.name": cluster,
        "http.method": "GET",
        "http.url": f"http://{host}:8080/items/7",
        "http.protocol": "HTTP/1.1",
        "http.status_code": status,
        "response_flags": flags,
        "istio.canonical_service": app,
        "istio.canonical_revision": revision,
        "istio.namespace": NAMESPACE,
        "istio.mesh_id": "cluster.local",
    }
    if status.startswith("5"):
        attributes["error"] = "true"
    return SpanSpec(
        f"{app}.{NAMESPACE}",
        kind,
        trace_id,
        span_id,
        parent,
        name=f"{host}:8080/*",
        duration_ns=duration_ns,
        start_unix_nano=start,
        attributes=attributes,
    )


def outbound(app: str) -> str:
    """Istio's outbound cluster of `app`'s service."""
    return f"outbound|8080||{app}.{NAMESPACE}.svc.cluster.local"


def sdk(
    app: str,
    kind: int,
    ids: tuple[bytes, bytes, bytes],
    *,
    start: int,
    duration_ns: int,
    peer: str = "",
) -> SpanSpec:
    """A span of `app`'s own OpenTelemetry SDK (HTTP semantic conventions)."""
    trace_id, span_id, parent = ids
    attributes: dict[str, Any] = {"http.request.method": "GET", "http.response.status_code": 200}
    if kind == SERVER:
        attributes["http.route"] = "/items/{id}"
    else:
        attributes["server.address"] = peer
        attributes["url.full"] = f"http://{peer}:8080/stock/7"
    return SpanSpec(
        app,
        kind,
        trace_id,
        span_id,
        parent,
        name="GET /items/{id}" if kind == SERVER else "GET",
        duration_ns=duration_ns,
        start_unix_nano=start,
        attributes=attributes,
    )
