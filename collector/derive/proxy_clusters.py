"""The mesh service a sidecar's upstream cluster names, read the way the meshes build the names.

Envoy tags each span with the cluster it sent the request to (`upstream_cluster`). In a mesh that
name says which service the request was meant for, also when no server half exists (the
connection failed, the upstream timed out, no healthy endpoint): so a failed call counts on the
edge to that service, never on a phantom external node.

- Istio, `pilot/pkg/model/service.go` `BuildSubsetKey` (istio/istio): `<direction>|<port>|
  <subset>|<hostname>`, also in the DNS SRV form `<direction>_.<port>_.<subset>_.<hostname>`
  that `ParseSubsetKey` reads. An `outbound` cluster whose host is a Kubernetes service
  (`<svc>.<ns>.svc.<cluster domain>`) names `<svc>`; a ServiceEntry host (`api.stripe.com`)
  names no mesh service (the caller reaches an external host). `inbound|<port>||`,
  `BlackHoleCluster`, `PassthroughCluster` and `InboundPassthroughCluster*` name none either.
- Consul, `agent/connect/sni.go` (hashicorp/consul): `ServiceSNI` gives
  `[<subset>.]<svc>.<ns>.<dc>.internal.<trust domain>` in the default partition and
  `[<subset>.]<svc>.<ns>.<partition>.<dc>.internal-v1.<trust domain>` in others;
  `PeeredServiceSNI` `<svc>.<ns>.<partition>.<peer>.external.<trust domain>`; `QuerySNI`
  `<query>.default.<dc>.query.<trust domain>` (a prepared query, named by its query). The trust
  domain (`<uuid>.consul`) has dots of its own, so the service is counted back from the marker.
  Transparent-proxy clusters carry a `passthrough~` prefix; `local_app` (the sidecar's own app)
  names no upstream.
Pure: strings in, a name or None out.
"""

from __future__ import annotations

_ISTIO_NOT_A_SERVICE = ("BlackHoleCluster", "PassthroughCluster", "InboundPassthroughCluster")
_CONSUL_MARKERS = {"internal": 3, "internal-v1": 4, "external": 4, "query": 3}
"""Consul's marker label -> the position, counted back from it, of the service (or query)."""
_CONSUL_PREFIXES = ("passthrough~",)


def mesh_service(cluster: str) -> str | None:
    """The mesh service the upstream `cluster` of a sidecar's span names, else None."""
    if not cluster or cluster.startswith(_ISTIO_NOT_A_SERVICE):
        return None
    if "|" in cluster or cluster.startswith(("outbound_.", "inbound_.")):
        return _istio_service(cluster)
    return _consul_service(cluster)


def _istio_service(cluster: str) -> str | None:
    parts = cluster.split("|") if "|" in cluster else cluster.split("_.", 3)
    if len(parts) != 4 or parts[0] != "outbound":
        return None
    return kubernetes_service(parts[3])


def kubernetes_service(host: str) -> str | None:
    """`<svc>` of a Kubernetes Service's name `<svc>.<ns>.svc.<cluster domain>`, else None."""
    labels = host.lower().rstrip(".").split(".")
    if len(labels) >= 4 and labels[2] == "svc" and labels[0] and labels[1]:
        return labels[0]
    return None


def _consul_service(cluster: str) -> str | None:
    for prefix in _CONSUL_PREFIXES:
        cluster = cluster.removeprefix(prefix)
    labels = cluster.lower().split(".")
    for at, label in enumerate(labels):
        back = _CONSUL_MARKERS.get(label)
        if back is not None and at >= back and at + 1 < len(labels):
            return labels[at - back] or None
    return None
