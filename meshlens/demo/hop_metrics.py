"""What each proxy on a hop counts in its metrics, beside the spans `hops` gives it.

- Istio: the caller's sidecar, and the ingress gateway for a request from outside, count the
  request as `reporter="source"`, the callee's sidecar as `reporter="destination"`
  (`istio_metrics`). The caller's sidecar knows the callee from metadata exchange when a
  sidecar answers, else from the endpoint's metadata (a callee without a sidecar, a call that
  failed to connect, `UF`), and nothing but its Service when it found no endpoint (`UH`).
  Between two sidecars the connection is mutual TLS (Istio's automatic mTLS); to a pod without
  one it is plaintext.
- Linkerd: the caller's proxy counts the request outbound (its endpoint stack: the CLIENT
  leg), the callee's inbound (`linkerd_metrics`); between two meshed pods over mutual TLS.

Each function gives the proxy's count as a function of the response's status (the proxy
counts the response it saw), except for a call that failed in the caller's sidecar, whose
status is that sidecar's own 503.
"""

from __future__ import annotations

from collections.abc import Callable

from meshlens.demo import istio_metrics, linkerd_metrics
from meshlens.demo.envoy_spans import IstioProxy, fqdn
from meshlens.demo.istio_metrics import Destination, Peer, endpoint_peer, proxy_peer
from meshlens.demo.mesh import ISTIO, LINKERD, Service, Version
from meshlens.demo.pods import Proxy, deployment_of, pod_of, proxy_of
from meshlens.demo.prometheus_scrape import RequestSeries
from meshlens.demo.topology import HTTP_PORT, NAMESPACE

Counted = Callable[[int], RequestSeries]
"""A proxy's count of a request, given the response's status."""


def istio_source(reporter: IstioProxy, callee: Service, version: Version) -> Counted:
    """The caller's sidecar (or the gateway) delivered a request to `callee` at `version`."""
    own, destination = proxy_peer(reporter), _known_peer(callee, version)
    service = Destination(callee.name, NAMESPACE)
    tls = callee.proxy == ISTIO
    return lambda status: istio_metrics.source_reported(own, destination, service, status, tls=tls)


def istio_undelivered(
    sidecar: IstioProxy, callee: Service, version: Version, flags: str
) -> RequestSeries:
    """The caller's sidecar answered 503 itself: `UF` (it picked an endpoint, whose metadata
    names the workload, and could not connect) or `UH` (no healthy endpoint to pick)."""
    destination = _endpoint(callee, version) if flags == "UF" else None
    service = Destination(callee.name, NAMESPACE)
    own = proxy_peer(sidecar)
    return istio_metrics.source_reported(own, destination, service, 503, flags=flags, tls=False)


def istio_destination(sidecar: IstioProxy, caller: Proxy | None) -> Counted:
    """The callee's sidecar took a request from `caller`'s proxy (None: the caller has none)."""
    source = proxy_peer(caller) if isinstance(caller, IstioProxy) else None
    own, service = proxy_peer(sidecar), Destination(sidecar.app, sidecar.namespace)
    mtls = source is not None
    return lambda status: istio_metrics.destination_reported(
        own, source, service, status, mtls=mtls
    )


def linkerd_outbound(callee: Service, version: Version) -> Counted:
    """The caller's linkerd2-proxy sent a request to `callee` at `version`."""
    pod = pod_of(callee, version)
    endpoint = linkerd_metrics.Endpoint(
        callee.name,
        NAMESPACE,
        pod.deployment,
        pod.name,
        pod.template_hash,
        callee.name,
        f"{pod.ip}:{HTTP_PORT}",
        meshed=callee.proxy == LINKERD,
    )
    authority = f"{fqdn(callee.name, NAMESPACE)}:{HTTP_PORT}"
    return lambda status: linkerd_metrics.outbound(endpoint, authority, status)


def linkerd_inbound(callee: Service, version: Version, caller: Service | None) -> Counted:
    """The callee's linkerd2-proxy took a request from `caller` (None: from a gateway)."""
    address = f"{pod_of(callee, version).ip}:{HTTP_PORT}"
    meshed = caller is not None and caller.proxy == LINKERD
    client = linkerd_metrics.identity(caller.name, NAMESPACE) if caller and meshed else None
    return lambda status: linkerd_metrics.inbound(address, client, status)


def _known_peer(callee: Service, version: Version) -> Peer:
    """What a caller's sidecar learns of a callee that answered: its sidecar's metadata by
    exchange, else (no sidecar) its endpoint's."""
    sidecar = proxy_of(callee, version)
    if isinstance(sidecar, IstioProxy):
        return proxy_peer(sidecar)
    return _endpoint(callee, version)


def _endpoint(callee: Service, version: Version) -> Peer:
    """The endpoint's `istio.workload` metadata: the canonical service defaults to the app
    label, the revision to the version label."""
    return endpoint_peer(deployment_of(callee, version), NAMESPACE, callee.name, version.name)
