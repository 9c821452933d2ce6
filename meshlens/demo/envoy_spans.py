"""The spans an Istio sidecar or ingress gateway (Envoy) exports through OpenTelemetry.

Shapes taken from the proxies' own sources:

- Envoy 1.36, `source/common/tracing/tracer_impl.cc` `TracerImpl::startSpan`: every span a
  listener starts gets `node_id` and `zone`; `source/common/tracing/http_tracer_impl.cc`
  `HttpTracerUtility::finalizeDownstreamSpan` adds `guid:x-request-id`, `http.url`
  (`<x-forwarded-proto>://<host><path>`), `http.method`, `downstream_cluster`, `user_agent`
  (`-` when absent), `http.protocol`, `peer.address` (the downstream address),
  `request_size`, `response_size`; `setCommonTags` (both kinds of span) `component=proxy`,
  `upstream_cluster`, `upstream_cluster.name`, `http.status_code` (a string, "0" without a
  response), `response_flags` (`-` for none) and `error=true` on 5xx or no response, then the
  custom tags; `finalizeUpstreamSpan` (a router's child span) `http.protocol`,
  `upstream_address` and `peer.address` (the upstream address). Every tag is a string.
- Envoy 1.36, `source/extensions/tracers/opentelemetry/tracer.cc` `Span::setTag`: tags become
  string attributes; `http.status_code` sets the span status ERROR for 5xx, and for 4xx on
  CLIENT spans only (envoyproxy/envoy#33674, Envoy 1.31); the spans carry no scope.
  `resource_detectors/resource_provider.cc`: resource `service.name` and
  `telemetry.sdk.{language,name,version}` = `cpp`, `envoy`, the Envoy version.
- Istio (istio/istio at 86c9f01, 1.31 development), `pilot/pkg/networking/core/tracing.go`:
  `service.name` is the proxy's cluster (`pkg/bootstrap/config.go` `serviceClusterOrDefault`:
  `<app label>.<namespace>`); custom tags `istio.canonical_revision` (`latest` when the pod
  has no revision label), `istio.canonical_service`, `istio.mesh_id`, `istio.namespace`,
  `istio.cluster_id`; routers (gateways) spawn an upstream span (`startChildSpan`, the
  default since Istio 1.28, istio/istio#57572), so a gateway sends a SERVER span and a CLIENT
  child named `router <cluster> egress` (Envoy `source/common/router/upstream_request.cc`).
  Sidecars: inbound = SERVER, outbound = CLIENT.
- Istio span names are the route's decorator: `pilot/pkg/networking/telemetry/telemetry.go`
  `TraceOperation` = `<host>:<port>/*` for default routes, `core/route/route.go`
  `GetRouteOperation` = `<host>:<port><path match>` for a VirtualService route with one
  destination, `<VirtualService name>:<port><path match>` when it splits traffic.
- Clusters (`pilot/pkg/model/service.go` `BuildSubsetKey`): `outbound|<port>|<subset>|<fqdn>`,
  inbound `inbound|<port>||`. Node ids (`pkg/istio-agent/agent.go` `ServiceNode`):
  `sidecar~<ip>~<pod>.<ns>~<ns>.svc.cluster.local`, `router~...` for gateways.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshlens.demo.proxy_span import CLIENT, SERVER, ProxyRequest, ProxySpan

ENVOY_VERSION = "6c72b2179f5a58988b920a55b0be8346de3f7b35/1.36.2/Clean/RELEASE/BoringSSL"
MESH_ID = "cluster.local"  # Istio's default mesh id: the trust domain
CLUSTER_ID = "Kubernetes"  # Istio's default cluster id
NO_FLAGS = "-"
# Failures that leave no server half: upstream connection failure, no healthy upstream. Not
# UT (upstream request timeout): that request did reach a pod, whose sidecar still finishes
# its inbound span when the caller's sidecar resets the stream (no response code), so a UT
# call can have a server half; the demo leaves it out.
UNREACHABLE_FLAGS = ("UF", "UH")


@dataclass(frozen=True, slots=True)
class IstioProxy:
    """One Envoy of the mesh: the sidecar of a pod, or an ingress gateway (a router)."""

    app: str  # the pod's app label: service.name `<app>.<namespace>`
    namespace: str
    pod: str
    ip: str
    canonical_service: str
    canonical_revision: str = "latest"
    router: bool = False

    @property
    def service_name(self) -> str:
        return f"{self.app}.{self.namespace}"

    @property
    def node_id(self) -> str:
        kind = "router" if self.router else "sidecar"
        return f"{kind}~{self.ip}~{self.pod}.{self.namespace}~{self.namespace}.svc.cluster.local"


def resource(proxy: IstioProxy) -> dict[str, str]:
    """The resource Envoy's OpenTelemetry tracer exports with every span of `proxy`."""
    return {
        "service.name": proxy.service_name,
        "telemetry.sdk.language": "cpp",
        "telemetry.sdk.name": "envoy",
        "telemetry.sdk.version": ENVOY_VERSION,
    }


def fqdn(service: str, namespace: str) -> str:
    return f"{service}.{namespace}.svc.cluster.local"


def outbound_cluster(service: str, namespace: str, port: int, subset: str = "") -> str:
    """`outbound|8080|v2|reviews.shop.svc.cluster.local`."""
    return f"outbound|{port}|{subset}|{fqdn(service, namespace)}"


def inbound_cluster(port: int) -> str:
    """`inbound|8080||`: a sidecar's cluster to its own app."""
    return f"inbound|{port}||"


def default_route(service: str, namespace: str, port: int) -> str:
    """The span name of a route no VirtualService shapes: `<fqdn>:<port>/*`."""
    return f"{fqdn(service, namespace)}:{port}/*"


def outbound(
    proxy: IstioProxy,
    request: ProxyRequest,
    *,
    route: str,
    cluster: str,
    peer: str,
    upstream: str | None,
    flags: str = NO_FLAGS,
) -> ProxySpan:
    """A sidecar's CLIENT span of a request its app sent (`peer`: the app's address).

    `upstream` is the address of the endpoint it reached (None when none was picked, `UH`);
    with `flags` `UF` or `UH` the request never reached a server and the sidecar answered
    503 itself.
    """
    return _downstream(proxy, request, CLIENT, route, cluster, peer, upstream, flags)


def inbound(
    proxy: IstioProxy, request: ProxyRequest, *, route: str, port: int, peer: str
) -> ProxySpan:
    """A sidecar's SERVER span of a request for its app (`peer`: the caller's address)."""
    upstream = f"{proxy.ip}:{port}"
    return _downstream(
        proxy, request, SERVER, route, inbound_cluster(port), peer, upstream, NO_FLAGS
    )


def gateway_ingress(
    gateway: IstioProxy,
    request: ProxyRequest,
    *,
    route: str,
    cluster: str,
    peer: str,
    upstream: str,
) -> ProxySpan:
    """A gateway's SERVER span of a request from outside the mesh (Istio >= 1.28)."""
    return _downstream(gateway, request, SERVER, route, cluster, peer, upstream, NO_FLAGS)


def gateway_upstream(
    gateway: IstioProxy, request: ProxyRequest, *, cluster: str, upstream: str
) -> ProxySpan:
    """The CLIENT child of a gateway's SERVER span: its request to the upstream cluster."""
    attributes = {
        "http.protocol": "HTTP/1.1",  # gateways speak HTTP/1.1 or istio-h2 to sidecars
        "upstream_address": upstream,
        "peer.address": upstream,
        **_common(request, cluster, NO_FLAGS),
        **_istio_tags(gateway),
    }
    return ProxySpan(
        f"router {cluster} egress", CLIENT, attributes, _failed(CLIENT, request.status)
    )


def _downstream(
    proxy: IstioProxy,
    request: ProxyRequest,
    kind: int,
    route: str,
    cluster: str,
    peer: str,
    upstream: str | None,
    flags: str,
) -> ProxySpan:
    attributes = {
        "node_id": proxy.node_id,
        "zone": "",
        "guid:x-request-id": request.request_id,
        "http.url": request.url,
        "http.method": request.method,
        "downstream_cluster": "-",
        "user_agent": request.user_agent,
        "http.protocol": request.protocol,
        "peer.address": peer,
        "request_size": str(request.request_bytes),
        "response_size": str(request.response_bytes),
        **_common(request, cluster, flags),
        **_istio_tags(proxy),
    }
    if upstream is not None:
        attributes["upstream_address"] = upstream
    return ProxySpan(route, kind, attributes, _failed(kind, request.status))


def _common(request: ProxyRequest, cluster: str, flags: str) -> dict[str, str]:
    """`HttpTracerUtility::setCommonTags`."""
    tags = {
        "component": "proxy",
        "upstream_cluster": cluster,
        "upstream_cluster.name": cluster,  # its observability name: Istio sets no alt_stat_name
        "http.status_code": str(request.status),
        "response_flags": flags,
    }
    if request.status == 0 or request.status >= 500:
        tags["error"] = "true"
    return tags


def _istio_tags(proxy: IstioProxy) -> dict[str, str]:
    """Istio's custom tags (`buildServiceTags`)."""
    return {
        "istio.canonical_revision": proxy.canonical_revision,
        "istio.canonical_service": proxy.canonical_service,
        "istio.mesh_id": MESH_ID,
        "istio.namespace": proxy.namespace,
        "istio.cluster_id": CLUSTER_ID,
    }


def _failed(kind: int, status: int) -> bool:
    """The OpenTelemetry tracer's span status: 5xx fails both kinds, 4xx CLIENT spans only."""
    return status >= 500 or (kind == CLIENT and status >= 400)
