"""Which mesh service a sidecar's upstream cluster names, for each form the meshes build.

Forms copied from the meshes' own naming code:
- Istio `pilot/pkg/model/service.go` (istio/istio): `BuildSubsetKey` is
  `direction|port|subset|hostname`; `ParseSubsetKey` also reads the DNS SRV form
  `outbound_.<port>_.<subset>_.<hostname>`; `BlackHoleCluster`, `PassthroughCluster` and
  `InboundPassthroughCluster` are Istio's fixed cluster names.
- Consul `agent/connect/sni.go` (hashicorp/consul, fd5e97d): `ServiceSNI` (default partition:
  `internal`, other partitions: `internal-v1`, an optional subset first), `PeeredServiceSNI`
  (`external`), `QuerySNI` (`query`). The trust domain is `<cluster id>.consul`.
"""

from __future__ import annotations

import pytest

from collector.derive.proxy_clusters import mesh_service

TRUST = "7b5a5e7c-0000-4d3e-9a1c-2f2f6f1f0a11.consul"


@pytest.mark.parametrize(
    ("cluster", "expected"),
    [
        ("outbound|9080||ratings.bookinfo.svc.cluster.local", "ratings"),
        ("outbound|9080|v2|reviews.bookinfo.svc.cluster.local", "reviews"),
        ("outbound|80||web.shop.svc.corp.example", "web"),  # a custom cluster domain
        ("outbound_.9080_.v1_.reviews.bookinfo.svc.cluster.local", "reviews"),
        ("outbound|443||api.stripe.com", None),  # a ServiceEntry host: external
        ("outbound|5432||db.internal.example.com", None),
        ("inbound|9080||", None),
        ("inbound_.9080_._.", None),
        ("BlackHoleCluster", None),
        ("PassthroughCluster", None),
        ("InboundPassthroughClusterIpv4", None),
        ("outbound|9080||", None),
        ("", None),
    ],
)
def test_istio_clusters(cluster: str, expected: str | None) -> None:
    assert mesh_service(cluster) == expected


@pytest.mark.parametrize(
    ("cluster", "expected"),
    [
        (f"api.default.dc1.internal.{TRUST}", "api"),
        (f"v2.api.default.dc1.internal.{TRUST}", "api"),  # a subset first
        (f"api.billing.team-a.dc1.internal-v1.{TRUST}", "api"),  # a non-default partition
        (f"v2.api.billing.team-a.dc1.internal-v1.{TRUST}", "api"),
        (f"api.default.default.cluster-02.external.{TRUST}", "api"),  # a peered cluster
        (f"geo-db.default.dc1.query.{TRUST}", "geo-db"),  # a prepared query
        (f"passthrough~api.default.dc1.internal.{TRUST}", "api"),  # transparent proxy
        (f"tcp.api-2.bar.foo.dc1.internal-v1.{TRUST}", "api-2"),
        ("local_app", None),  # the sidecar's own app
        ("dc1.internal." + TRUST, None),  # a datacenter (mesh gateway), no service
        ("api.stripe.com", None),
    ],
)
def test_consul_clusters(cluster: str, expected: str | None) -> None:
    assert mesh_service(cluster) == expected
