"""The spans linkerd2-proxy exports through OpenTelemetry: four per meshed hop.

Shapes taken from linkerd2-proxy v2.366.0 (linkerd/linkerd2-proxy at 29637b6):

- `linkerd/trace-context/src/service.rs` `TraceContext`: a span only when the request carries
  trace context (else it passes untraced); each proxy layer gives the request a new span id
  (`increment_span_id`), so the spans chain; span name = the request URI's path; labels
  `http.request.method`, `url.scheme`, `url.path` (`url.query` with a query), `url.full`,
  `network.transport=tcp`, `server.address` and `server.port` from the Host header,
  `user_agent.original` when sent, and `http.response.status_code`: all strings.
- `linkerd/app/inbound/src/http.rs` and `linkerd/app/outbound/src/lib.rs` `trace_labels`: the
  label `direction` = `inbound` | `outbound`; `linkerd/app/core/src/http_tracing.rs`: each
  stack has a SERVER span (`inbound/src/http/server.rs`, outbound's server) and a CLIENT span
  (`inbound/src/http/router.rs`, `outbound/src/http/endpoint.rs`). So a hop app -> app is
  outbound SERVER (the app's request to its own proxy) -> outbound CLIENT -> inbound SERVER
  -> inbound CLIENT (the proxy's request to its own app). The outbound endpoint stack
  rewrites the Host header to the canonical destination (`NewOverrideAuthority`) before its
  CLIENT span, so every span after the outbound SERVER names `<svc>.<ns>.svc.cluster.local`.
- `linkerd/opentelemetry/src/lib.rs` `convert_span`: status always Unset, no scope, the labels
  as attributes; the resource (`linkerd/app/src/trace_collector/otel_collector.rs`,
  `linkerd/app/src/env/trace.rs`): `process.pid`, `process.start_timestamp`, `host.name`,
  `service.name` (`LINKERD2_PROXY_TRACE_SERVICE_NAME`, `linkerd-proxy`) and the pod's labels
  from the downward API (`app`, `linkerd.io/proxy-deployment`, `linkerd.io/workload-ns`,
  `pod-template-hash`, `version`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from meshlens.demo.proxy_span import CLIENT, SERVER, ProxyRequest, ProxySpan

SERVICE_NAME = "linkerd-proxy"
INBOUND, OUTBOUND = "inbound", "outbound"


@dataclass(frozen=True, slots=True)
class LinkerdProxy:
    """The linkerd2-proxy of one pod."""

    deployment: str
    namespace: str
    pod: str
    pod_template_hash: str
    version: str  # the pod's `version` label
    pid: int = 1
    started_at: int = 0  # unix seconds
    ip: str = ""  # the pod's address (its metrics endpoint's)

    def resource(self) -> dict[str, str | int]:
        """The resource the proxy exports with every span."""
        return {
            "process.pid": self.pid,
            "process.start_timestamp": self.started_at,
            "host.name": self.pod,
            "service.name": SERVICE_NAME,
            "app": self.deployment,
            "linkerd.io/control-plane-ns": "linkerd",
            "linkerd.io/proxy-deployment": self.deployment,
            "linkerd.io/workload-ns": self.namespace,
            "pod-template-hash": self.pod_template_hash,
            "version": self.version,
        }


def outbound(request: ProxyRequest, canonical_authority: str) -> tuple[ProxySpan, ProxySpan]:
    """The calling pod's proxy: its outbound SERVER span (the request from its own app, as the
    app sent it) and its outbound CLIENT span (after the Host header is made canonical:
    `canonical_authority`, `templates.shop.svc.cluster.local:8080`), parent first."""
    return (
        span(OUTBOUND, SERVER, request),
        span(OUTBOUND, CLIENT, canonical(request, canonical_authority)),
    )


def inbound(request: ProxyRequest) -> tuple[ProxySpan, ProxySpan]:
    """The called pod's proxy: its inbound SERVER span and its inbound CLIENT span (the
    request to its own app), parent first; `request` as it arrived."""
    return span(INBOUND, SERVER, request), span(INBOUND, CLIENT, request)


def canonical(request: ProxyRequest, authority: str) -> ProxyRequest:
    """`request` with the Host header the outbound endpoint stack sets."""
    return replace(request, authority=authority)


def span(direction: str, kind: int, request: ProxyRequest) -> ProxySpan:
    """One linkerd2-proxy span of `request`."""
    path, _, query = request.path.partition("?")
    attributes = {
        "direction": direction,
        "http.request.method": request.method,
        "url.scheme": request.scheme,
        "url.path": path,
        "url.full": request.url,
        "network.transport": "tcp",
        "server.address": request.host,
        "http.response.status_code": str(request.status),
    }
    if query:
        attributes["url.query"] = query
    if request.port:
        attributes["server.port"] = request.port
    if request.user_agent != "-":
        attributes["user_agent.original"] = request.user_agent
    return ProxySpan(path, kind, attributes, error=False)
