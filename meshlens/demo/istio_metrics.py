"""The Istio standard metrics of a sidecar or gateway, as a Collector scraping it passes them on.

Shapes taken from the sources:

- Istio's stats filter (envoyproxy/envoy `contrib/istio/filters/http/istio_stats/source/
  istio_stats.cc`, moved there from istio/proxy; label sets as in istio/proxy at 86a72d0
  `testdata/metric/{client,server}_request_total.yaml.tmpl`): every HTTP request a proxy
  handles adds one to `istio_requests_total` and its duration in whole milliseconds to
  `istio_request_duration_milliseconds`, with the same labels, in this order: `reporter`,
  eight `source_*`, eleven `destination_*`, `request_protocol`, `response_code`,
  `grpc_response_status` (empty for HTTP), `response_flags`, `connection_security_policy`.
- `reporter`: `destination` on a sidecar's inbound listener, `source` on its outbound
  listener and on a gateway (a gateway listener is not INBOUND, so `Reporter::ClientSidecar`;
  `waypoint` is for ambient waypoints only). The reporter's own side comes from its node
  metadata (labels that are not set are empty); the peer's from metadata exchange, unknown
  (`unknown`, a revision `latest`) without it, except that a source reporter falls back to
  the endpoint's `istio.workload` metadata (workload;namespace;canonical name;canonical
  revision;cluster: no app, no version, no identity), which istiod sends for every endpoint
  (istio/istio `pilot/pkg/networking/util/util.go` `AppendLbEndpointMetadata`: "server does
  not have sidecar injected, and request fails to reach server"). No endpoint at all (`UH`):
  nothing is known of the destination but its service.
- Principals are the TLS certificates' SANs: a source reporter has them only when its
  connection upstream is TLS, a destination reporter when the request came over TLS.
  `connection_security_policy`: `mutual_tls` at the destination when both SANs are there,
  `none` when not, and always `unknown` at the source (only a server sees the client's
  certificate; /work/shared/DOMAIN.md section 10).
- `destination_service`, `_name`, `_namespace`: the cluster's `istio.services` metadata (the
  Service's host, name and namespace), on both sides.
- Buckets: Envoy's defaults (`api/envoy/config/metrics/v3/stats.proto`
  `HistogramBucketSettings`; Istio sets none of its own).
- Scraping: pilot-agent merges Envoy's and the app's metrics at `:15020/stats/prometheus`
  (the pod's `prometheus.io/*` annotations); Istio's sample Prometheus configuration
  (istio/istio `samples/addons/prometheus.yaml`, job `kubernetes-pods`) adds the pod's labels
  (`labelmap __meta_kubernetes_pod_label_(.+)`), `namespace` and `pod` to every sample.

Plain data: the demo's `hops` says which requests each proxy saw, `proxy_metrics` counts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from meshlens.demo.envoy_spans import CLUSTER_ID, IstioProxy, fqdn
from meshlens.demo.prometheus_scrape import (
    COUNTER,
    HISTOGRAM,
    Family,
    LabelSet,
    RequestSeries,
    Target,
    label_set,
    pod_parts,
)
from meshlens.demo.topology import TRUST_DOMAIN

REQUESTS = Family("istio_requests_total", COUNTER)
DURATION = Family(
    "istio_request_duration_milliseconds",
    HISTOGRAM,
    bounds=(
        0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000,
        600000, 1800000, 3600000,
    ),
)  # fmt: skip
SOURCE, DESTINATION = "source", "destination"
UNKNOWN, LATEST = "unknown", "latest"
MUTUAL_TLS, NONE = "mutual_tls", "none"
NO_FLAGS = "-"
JOB = "kubernetes-pods"
MERGED_METRICS_PORT = 15020


@dataclass(frozen=True, slots=True)
class Peer:
    """A workload as Istio's labels name it ("" for what its pod does not say)."""

    workload: str
    namespace: str
    canonical_service: str
    canonical_revision: str
    app: str = ""
    version: str = ""
    principal: str = ""  # its certificate's SPIFFE id
    cluster: str = CLUSTER_ID


@dataclass(frozen=True, slots=True)
class Destination:
    """The Kubernetes Service a request is for (the cluster's `istio.services` metadata)."""

    name: str
    namespace: str

    @property
    def host(self) -> str:
        return fqdn(self.name, self.namespace)


def spiffe_id(account: str, namespace: str) -> str:
    return f"spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/{account}"


@cache  # the same few hundred label sets over and over
def proxy_peer(proxy: IstioProxy) -> Peer:
    """The workload of a sidecar or gateway, as its node metadata and exchange name it.

    Service accounts as the spans' certificates name them (`span_attributes`): the app's name,
    `<gateway>-service-account` for the istio/gateway chart's gateway, which has no version.
    """
    workload, _ = pod_parts(proxy.pod)
    account = f"{proxy.app}-service-account" if proxy.router else proxy.app
    return Peer(
        workload,
        proxy.namespace,
        proxy.canonical_service,
        proxy.canonical_revision,
        app=proxy.app,
        version="" if proxy.router else proxy.canonical_revision,
        principal=spiffe_id(account, proxy.namespace),
    )


def endpoint_peer(workload: str, namespace: str, canonical_service: str, revision: str) -> Peer:
    """A workload as its endpoint's `istio.workload` metadata names it (no app, version or
    identity): what a source reporter knows of a destination without a sidecar."""
    return Peer(workload, namespace, canonical_service, revision)


@cache  # the same few hundred label sets over and over
def source_reported(
    reporter: Peer,
    destination: Peer | None,
    service: Destination,
    status: int,
    *,
    flags: str = NO_FLAGS,
    tls: bool = True,
) -> RequestSeries:
    """A request as the caller's sidecar (or a gateway) counts it.

    `destination`: what it learnt of the destination (None: nothing); `tls`: its connection
    upstream was (mutual) TLS, so both certificates' SANs are known.
    """
    peer = destination or Peer("", "", "", "")
    peer_principal = peer.principal if tls else ""
    labels = label_set(
        [("reporter", SOURCE)],
        _own("source", reporter, reporter.principal if tls else ""),
        [
            ("destination_workload", peer.workload or UNKNOWN),
            ("destination_workload_namespace", _namespace(peer_principal, peer) or UNKNOWN),
            ("destination_principal", peer_principal or UNKNOWN),
            ("destination_app", peer.app or UNKNOWN),
            ("destination_version", peer.version or UNKNOWN),
            ("destination_service", service.host),
            ("destination_canonical_service", peer.canonical_service or UNKNOWN),
            ("destination_canonical_revision", peer.canonical_revision or LATEST),
            ("destination_service_name", service.name),
            ("destination_service_namespace", service.namespace),
            ("destination_cluster", peer.cluster or UNKNOWN),
        ],
        _outcome(status, flags, UNKNOWN),
    )
    return _series(labels)


@cache  # the same few hundred label sets over and over
def destination_reported(
    reporter: Peer, source: Peer | None, service: Destination, status: int, *, mtls: bool
) -> RequestSeries:
    """A request as the callee's sidecar counts it; `source`: the caller's workload, known by
    metadata exchange when a sidecar or gateway sent it (None: no Istio proxy did)."""
    peer = source or Peer("", "", "", "")
    peer_principal = peer.principal if mtls else ""
    labels = label_set(
        [("reporter", DESTINATION)],
        [
            ("source_workload", peer.workload or UNKNOWN),
            ("source_canonical_service", peer.canonical_service or UNKNOWN),
            ("source_canonical_revision", peer.canonical_revision or LATEST),
            ("source_workload_namespace", _namespace(peer_principal, peer) or UNKNOWN),
            ("source_principal", peer_principal or UNKNOWN),
            ("source_app", peer.app or UNKNOWN),
            ("source_version", peer.version or UNKNOWN),
            ("source_cluster", peer.cluster or UNKNOWN),
        ],
        _own("destination", reporter, reporter.principal if mtls else "", service),
        _outcome(status, NO_FLAGS, MUTUAL_TLS if mtls else NONE),
    )
    return _series(labels)


def target(proxy: IstioProxy) -> Target:
    """The pod of a sidecar or gateway as the `kubernetes-pods` job scrapes it."""
    deployment, template_hash = pod_parts(proxy.pod)
    if proxy.router:  # the istio/gateway chart's pod labels
        pod_labels = {"app": proxy.app, "istio": "ingressgateway"}
    else:  # the app's labels, and the ones injection adds
        pod_labels = {
            "app": proxy.app,
            "version": proxy.canonical_revision,
            "security_istio_io_tlsMode": "istio",
            "service_istio_io_canonical_name": proxy.canonical_service,
            "service_istio_io_canonical_revision": proxy.canonical_revision,
        }
    pod_labels["pod_template_hash"] = template_hash
    labels = label_set(
        sorted(pod_labels.items()), [("namespace", proxy.namespace), ("pod", proxy.pod)]
    )
    address = f"{proxy.ip}:{MERGED_METRICS_PORT}"
    return Target(JOB, address, proxy.pod, proxy.namespace, f"{deployment}-{template_hash}", labels)


def _own(
    side: str, peer: Peer, principal: str, service: Destination | None = None
) -> list[tuple[str, str]]:
    """The reporter's own labels, from its node metadata (empty when its pod has no such
    label: Prometheus then has no such label either)."""
    if side == "source":
        return [
            ("source_workload", peer.workload),
            ("source_canonical_service", peer.canonical_service),
            ("source_canonical_revision", peer.canonical_revision),
            ("source_workload_namespace", peer.namespace),
            ("source_principal", principal or UNKNOWN),
            ("source_app", peer.app),
            ("source_version", peer.version),
            ("source_cluster", peer.cluster),
        ]
    assert service is not None
    return [
        ("destination_workload", peer.workload),
        ("destination_workload_namespace", peer.namespace),
        ("destination_principal", principal or UNKNOWN),
        ("destination_app", peer.app),
        ("destination_version", peer.version),
        ("destination_service", service.host),
        ("destination_canonical_service", peer.canonical_service),
        ("destination_canonical_revision", peer.canonical_revision),
        ("destination_service_name", service.name),
        ("destination_service_namespace", peer.namespace),
        ("destination_cluster", peer.cluster),
    ]


def _namespace(principal: str, peer: Peer) -> str:
    """The peer's namespace: from its SAN (`.../ns/<ns>/sa/...`), else its metadata."""
    if "/ns/" in principal:
        return principal.split("/ns/", 1)[1].split("/", 1)[0]
    return peer.namespace


def _outcome(status: int, flags: str, policy: str) -> list[tuple[str, str]]:
    return [
        ("request_protocol", "http"),
        ("response_code", str(status)),
        ("grpc_response_status", ""),  # HTTP: empty, so no label
        ("response_flags", flags),
        ("connection_security_policy", policy),
    ]


def _series(labels: LabelSet) -> RequestSeries:
    return RequestSeries(((REQUESTS, labels),), ((DURATION, labels),))
