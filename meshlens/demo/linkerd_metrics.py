"""The HTTP metrics of a linkerd2-proxy, as a Collector scraping it passes them on.

Shapes taken from linkerd2-proxy v2.366.0 (linkerd/linkerd2-proxy at 29637b6):

- `linkerd/http/metrics/src/requests/report.rs`: per endpoint, `request_total` (labels: the
  endpoint's), `response_latency_ms` (histogram, plus `status_code`) and `response_total`
  (plus `status_code` and the classification); `linkerd/metrics/src/latency.rs` `BOUNDS`:
  1, 2, 3, 4, 5, 10, 20, ... 50000 ms; `linkerd/app/core/src/classify.rs`: a 5xx is a
  `failure`; `linkerd/app/core/src/metrics.rs` `Class`: `classification`, `grpc_status` and
  `error` (both empty for an HTTP response: no label).
- `linkerd/app/core/src/metrics.rs` `OutboundEndpointLabels`: `direction="outbound"`,
  `authority` (the logical authority, `templates.shop.svc.cluster.local:8080`),
  `target_addr`, `target_ip`, `target_port`, the TLS labels
  (`linkerd/app/core/src/transport/labels.rs` `TlsConnect`: `tls="true"` and `server_id`, or
  `tls="no_identity"` and `no_tls_reason`), then the destination's labels with the prefix
  `dst_`, in key order (`linkerd/proxy/api-resolve/src/metadata.rs`: a `BTreeMap`). The
  destination controller sends the Service's `namespace` and `service` and, per pod
  (linkerd/linkerd2 `pkg/k8s` `GetPodLabels`, `controller/api/destination/
  endpoint_translator.go` `createWeightedAddr`): `pod`, the owner (`deployment`),
  `serviceaccount`, `control_plane_ns`, `pod_template_hash`, and `zone` (empty: no label).
  The server's identity: `<serviceaccount>.<namespace>.serviceaccount.identity.<control
  plane namespace>.<trust domain>`.
- `InboundEndpointLabels` (`linkerd/app/inbound/src/http/router.rs` `endpoint_labels`):
  `direction="inbound"`, no `authority` (only with the unsafe authority-labels option),
  `target_addr`, `target_ip`, `target_port`, `TlsAccept` (`tls="true"` and `client_id`, or
  `tls="no_identity"` and `no_tls_reason`, `no_tls_from_remote` for a plaintext client), then
  the policy that admitted the request: `srv_*`, `route_*`, `authz_*`; with the cluster's
  default policy (`linkerd/app/inbound/src/policy/defaults.rs`) the server and authorization
  are the default `all-unauthenticated` and the route the default `default` (group empty).
- Scraping: linkerd-viz's `linkerd-proxy` job (linkerd/linkerd2 `viz/charts/linkerd-viz`
  Prometheus configuration) keeps the `linkerd-proxy` container's `linkerd-admin` port
  (4191) and adds `namespace`, `pod`, the pod's `linkerd.io/proxy-*` labels without their
  prefix (`deployment`), its other `linkerd.io/*` labels without theirs (`control_plane_ns`,
  `workload_ns`) and its remaining labels (`app`, `pod_template_hash`, `version`).

Plain data: the demo's `hops` says which requests each proxy saw, `proxy_metrics` counts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from meshlens.demo.linkerd_spans import LinkerdProxy
from meshlens.demo.prometheus_scrape import (
    COUNTER,
    HISTOGRAM,
    Family,
    LabelSet,
    RequestSeries,
    Target,
    label_set,
)
from meshlens.demo.topology import TRUST_DOMAIN

REQUEST_TOTAL = Family("request_total", COUNTER, "Total count of HTTP requests.")
RESPONSE_TOTAL = Family("response_total", COUNTER, "Total count of HTTP responses.")
RESPONSE_LATENCY = Family(
    "response_latency_ms",
    HISTOGRAM,
    "Elapsed times between a request's headers being received and its response stream "
    "completing",
    bounds=(
        1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500, 1000, 2000, 3000, 4000,
        5000, 10000, 20000, 30000, 40000, 50000,
    ),
)  # fmt: skip
CONTROL_PLANE_NS = "linkerd"
JOB = "linkerd-proxy"
ADMIN_PORT = 4191
DEFAULT_POLICY = "all-unauthenticated"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A meshed pod a proxy sends requests to, as the destination controller describes it."""

    service: str  # the Kubernetes Service
    namespace: str
    deployment: str
    pod: str
    pod_template_hash: str
    service_account: str
    address: str  # "10.42.3.4:8080"
    meshed: bool = True  # a Linkerd proxy in front of it: mutual TLS, a control plane

    @property
    def identity(self) -> str:
        return identity(self.service_account, self.namespace)

    def dst_labels(self) -> list[tuple[str, str]]:
        labels = {
            "control_plane_ns": CONTROL_PLANE_NS if self.meshed else "",
            "deployment": self.deployment,
            "namespace": self.namespace,
            "pod": self.pod,
            "pod_template_hash": self.pod_template_hash,
            "service": self.service,
            "serviceaccount": self.service_account,
            "zone": "",
        }
        return [(f"dst_{key}", value) for key, value in sorted(labels.items())]


def identity(service_account: str, namespace: str) -> str:
    """A workload's Linkerd identity (the DNS-like name in its certificate)."""
    return (
        f"{service_account}.{namespace}.serviceaccount.identity.{CONTROL_PLANE_NS}.{TRUST_DOMAIN}"
    )


@cache  # the same few hundred label sets over and over
def outbound(endpoint: Endpoint, authority: str, status: int) -> RequestSeries:
    """A request the calling pod's proxy sent to `endpoint`: over mutual TLS when it is meshed,
    else in plaintext (`NoClientTls::NotProvidedByServiceDiscovery`)."""
    if endpoint.meshed:
        tls = [("tls", "true"), ("server_id", endpoint.identity)]
    else:
        tls = [("tls", "no_identity"), ("no_tls_reason", "not_provided_by_service_discovery")]
    labels = label_set(
        [("direction", "outbound"), ("authority", authority)],
        _address(endpoint.address),
        tls,
        endpoint.dst_labels(),
    )
    return _series(labels, status)


@cache  # the same few hundred label sets over and over
def inbound(address: str, client_identity: str | None, status: int) -> RequestSeries:
    """A request the called pod's proxy took for its app at `address`, from a meshed client
    with `client_identity` (None: a client that sent plaintext)."""
    port = address.rpartition(":")[2]
    if client_identity is None:
        tls = [("tls", "no_identity"), ("no_tls_reason", "no_tls_from_remote")]
    else:
        tls = [("tls", "true"), ("client_id", client_identity)]
    labels = label_set(
        [("direction", "inbound")],
        _address(address),
        tls,
        [
            ("srv_group", ""),
            ("srv_kind", "default"),
            ("srv_name", DEFAULT_POLICY),
            ("srv_port", port),
            ("route_group", ""),
            ("route_kind", "default"),
            ("route_name", "default"),
            ("authz_group", ""),
            ("authz_kind", "default"),
            ("authz_name", DEFAULT_POLICY),
        ],
    )
    return _series(labels, status)


def target(proxy: LinkerdProxy) -> Target:
    """The pod of a linkerd2-proxy as the `linkerd-proxy` job scrapes it."""
    labels = label_set(
        [("namespace", proxy.namespace), ("pod", proxy.pod), ("deployment", proxy.deployment)],
        [("control_plane_ns", CONTROL_PLANE_NS), ("workload_ns", proxy.namespace)],
        sorted(
            {
                "app": proxy.deployment,
                "pod_template_hash": proxy.pod_template_hash,
                "version": proxy.version,
            }.items()
        ),
    )
    replicaset = f"{proxy.deployment}-{proxy.pod_template_hash}"
    address = f"{proxy.ip}:{ADMIN_PORT}"
    return Target(JOB, address, proxy.pod, proxy.namespace, replicaset, labels, "linkerd-proxy")


def _address(address: str) -> list[tuple[str, str]]:
    ip, _, port = address.rpartition(":")
    return [("target_addr", address), ("target_ip", ip), ("target_port", port)]


def _series(endpoint: LabelSet, status: int) -> RequestSeries:
    with_status = (*endpoint, ("status_code", str(status)))
    classification = "failure" if status >= 500 else "success"
    response = label_set(with_status, [("classification", classification)])  # no grpc_status
    return RequestSeries(
        ((REQUEST_TOTAL, endpoint), (RESPONSE_TOTAL, response)),
        ((RESPONSE_LATENCY, with_status),),
    )
