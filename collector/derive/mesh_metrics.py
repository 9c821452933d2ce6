"""What one Istio or Linkerd metric series says about an edge (edges without traces).

Series are mapped once, from their labels (the point attributes a Collector's Prometheus
receiver produces) and their resource, to an `EdgeSeries`: the edge source -> target, and, for
request counters, whether its requests failed and their mTLS state. The deriver turns the
series' points into deltas (`collector.derive.cumulative`) and counts them on that edge.

Count each request once:
- Istio reports every request twice, at the source and at the destination proxy. Requests,
  errors and mTLS come from `reporter="destination"` (or `"waypoint"`, ambient mode's
  destination-side proxy). A source-reported counter counts only for requests no destination
  proxy saw: the destination is outside the mesh (`destination_workload` and
  `destination_canonical_service` unknown: no peer metadata came back, so no sidecar answered),
  or Envoy never sent the request on (`response_flags` with an injected abort `FI`, circuit
  breaking `UO`, no healthy upstream `UH`, connection failure `UF`, no route `NR`, no cluster
  `NC`).
- Latency is what the caller sees (as for trace edges): source-reported duration histograms,
  and destination-reported ones only when the source is outside the mesh (unknown source
  labels: there is no source proxy).
- Linkerd: `direction="outbound"` series (the caller's proxy) only; inbound series would
  count the same requests again.
Names: Istio `*_canonical_service`, else `*_workload`; an unknown source is the virtual client
`user`; an unknown destination is the service its `destination_service` names when that is a
Kubernetes Service (`<svc>.<ns>.svc.<domain>`), else an `external` node named by that host.
Linkerd: the source is the proxy's own workload (point labels `deployment`, ... as Prometheus
relabelling adds them, else the resource's `k8s.*.name` attributes); the target is the
`dst_deployment` (or other `dst_` workload, or `dst_service`), else an external node named by
the `authority` host. A series from a service to itself is ignored, as for traces.
Errors: Istio destination side by the server rules (5xx; gRPC UNKNOWN, DEADLINE_EXCEEDED, ...
from `grpc_response_status`), source side by the client rules (`classify`); Linkerd
`classification="failure"`. mTLS: Istio `connection_security_policy` at the destination side
(`mutual_tls` mutual, `none` plaintext, else unknown; source side: unknown); Linkerd `tls="true"`
mutual, another `tls` value plaintext with `no_tls_reason` as its reason, no `tls` label unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from collector.derive import classify
from collector.derive.proxy_clusters import kubernetes_service
from meshlens.timeunits import NANOS_PER_SECOND

ISTIO_REQUESTS = "istio_requests_total"
ISTIO_DURATION = "istio_request_duration_milliseconds"
LINKERD_RESPONSES = "response_total"
LINKERD_LATENCY = "response_latency_ms"
REQUESTS, LATENCY = "requests", "latency"
NANOS_PER_MS = 1_000_000

# metric name -> (role, OTLP series type, mesh)
METRICS: dict[str, tuple[str, str, str]] = {
    ISTIO_REQUESTS: (REQUESTS, "sum", "istio"),
    ISTIO_DURATION: (LATENCY, "histogram", "istio"),
    LINKERD_RESPONSES: (REQUESTS, "sum", "linkerd"),
    LINKERD_LATENCY: (LATENCY, "histogram", "linkerd"),
}
USER, CLIENT, SERVICE, EXTERNAL, UNKNOWN = "user", "client", "service", "external", "unknown"

_DESTINATION_REPORTERS = frozenset({"destination", "waypoint"})
_NEVER_SENT_ON = frozenset({"FI", "UO", "UH", "UF", "NR", "NC"})
_ISTIO_MTLS = {"mutual_tls": classify.MTLS_MUTUAL, "none": classify.MTLS_PLAINTEXT}
_LINKERD_OWN_WORKLOAD = ("deployment", "statefulset", "daemonset", "cronjob", "replicaset")
_LINKERD_DESTINATION = (
    "dst_deployment", "dst_statefulset", "dst_daemonset", "dst_cronjob", "dst_replicaset",
    "dst_service",
)  # fmt: skip

Labels = Mapping[str, object]


@dataclass(frozen=True, slots=True)
class EdgeSeries:
    """The edge one mesh series describes, and what its requests were."""

    role: str  # REQUESTS (a counter: requests, errors, mTLS) or LATENCY (a histogram)
    source: str
    source_type: str
    target: str
    target_type: str
    error: bool = False
    mtls: int = classify.MTLS_UNKNOWN
    plaintext_reason: str = ""
    bound_ns: int = NANOS_PER_MS  # nanoseconds per histogram bound unit


def is_mesh_metric(name: str, series_type: str, monotonic: bool | None) -> bool:
    """Whether meshlens derives edges from this metric (name, type and monotonicity)."""
    known = METRICS.get(name)
    return known is not None and known[1] == series_type and monotonic is not False


def edge_series(
    name: str, labels: Labels, resource: Labels, service: str, unit: str = ""
) -> EdgeSeries | None:
    """The edge of one series of a mesh metric; None when it is not counted (see above)."""
    role, _, mesh = METRICS[name]
    edge = _istio(role, labels) if mesh == "istio" else _linkerd(role, labels, resource, service)
    if edge is None or (edge.source, edge.source_type) == (edge.target, edge.target_type):
        return None
    if role == LATENCY and unit in ("s", "us"):
        return replace(edge, bound_ns=NANOS_PER_SECOND if unit == "s" else 1_000)
    return edge


def _label(labels: Labels, key: str) -> str:
    value = labels.get(key)
    return value.strip() if isinstance(value, str) else ""


def _known(labels: Labels, *keys: str) -> str:
    """The first label among `keys` that names something (not empty, not "unknown")."""
    for key in keys:
        value = _label(labels, key)
        if value and value != UNKNOWN:
            return value
    return ""


# --- Istio --------------------------------------------------------------------------------


def _istio(role: str, labels: Labels) -> EdgeSeries | None:
    reporter = _label(labels, "reporter")
    source = _known(labels, "source_canonical_service", "source_workload")
    destination = _known(labels, "destination_canonical_service", "destination_workload")
    at_destination = reporter in _DESTINATION_REPORTERS
    if not at_destination and reporter != "source":
        return None
    if role == LATENCY:
        if at_destination and source:  # the source proxy reports the caller's latency
            return None
    elif not at_destination and destination and not _never_sent_on(labels):
        return None  # the destination proxy counted it
    source_node = (source, SERVICE) if source else (USER, CLIENT)
    target_node = (destination, SERVICE) if destination else _istio_external(labels)
    if role == LATENCY:
        return EdgeSeries(role, *source_node, *target_node)
    status = {
        "http.response.status_code": _label(labels, "response_code"),
        "rpc.grpc.status_code": _label(labels, "grpc_response_status"),
    }
    if at_destination:
        error = classify.server_side_error(classify.STATUS_UNSET, status)
        policy = _label(labels, "connection_security_policy")
        mtls = _ISTIO_MTLS.get(policy, classify.MTLS_UNKNOWN)
    else:
        error = classify.client_side_error(classify.STATUS_UNSET, status)
        mtls = classify.MTLS_UNKNOWN  # the source side cannot tell: only a server sees client certs
    return EdgeSeries(role, *source_node, *target_node, error=error, mtls=mtls)


def _never_sent_on(labels: Labels) -> bool:
    flags = _label(labels, "response_flags")
    return any(flag.strip() in _NEVER_SENT_ON for flag in flags.split(","))


def _istio_external(labels: Labels) -> tuple[str, str]:
    """The node of a destination no workload answered for: a Kubernetes Service in the mesh
    (`<svc>.<ns>.svc.<domain>`, e.g. a request with no healthy endpoint, `UH`) is that
    service, as for traces (`proxy_clusters`); anything else an external node by its host."""
    fqdn = _known(labels, "destination_service")
    service = kubernetes_service(fqdn)
    if service:
        return _known(labels, "destination_service_name") or service, SERVICE
    host = classify.host_name(fqdn)
    return (host or _known(labels, "destination_service_name") or UNKNOWN), EXTERNAL


# --- Linkerd ------------------------------------------------------------------------------


def _linkerd(role: str, labels: Labels, resource: Labels, service: str) -> EdgeSeries | None:
    if _label(labels, "direction") != "outbound":
        return None
    source = (
        _known(labels, *_LINKERD_OWN_WORKLOAD)
        or classify.resource_workload(resource)
        or classify.workload_service(service, {}, resource)
    )
    destination = _known(labels, *_LINKERD_DESTINATION)
    if destination:
        target = (destination, SERVICE)
    else:
        host = classify.host_name(_known(labels, "authority") or _known(labels, "target_addr"))
        target = (host or UNKNOWN, EXTERNAL)
    if role == LATENCY:
        return EdgeSeries(role, source, SERVICE, *target)
    tls = _label(labels, "tls")
    if tls == "true":
        mtls, reason = classify.MTLS_MUTUAL, ""
    elif tls:
        mtls, reason = classify.MTLS_PLAINTEXT, _label(labels, "no_tls_reason")
    else:
        mtls, reason = classify.MTLS_UNKNOWN, ""
    error = _label(labels, "classification") == "failure"
    return EdgeSeries(role, source, SERVICE, *target, error, mtls, reason)
