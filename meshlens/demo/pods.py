"""Where the simulated workloads run, and the proxies beside them.

Each workload (a service at a version) is one pod of one Deployment, named and addressed the
way Kubernetes would (`reviews-v2-5f7c9b8d4-x7k2p`, `10.42.x.y`), from a hash of the
deployment's name and its rollout: every run of the demo restarts the Deployments when its
history starts (`topology.shop(rollout)`), so its pods, and its proxies' metrics series, are
its own, as its span ids are (a rerun's backfill goes back over the minutes of an earlier run:
the same series would go back in time). Its proxy (`proxy_of`) is an Istio sidecar, a
linkerd2-proxy or nothing, as the service declares; the ingress gateway runs in a pod of its
own. The proxies' span shapes are in `envoy_spans` and `linkerd_spans`; the metrics endpoint of
each proxy's pod, as a Collector scrapes it, in `istio_metrics` and `linkerd_metrics`
(`scrape_target`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from meshlens.demo import istio_metrics, linkerd_metrics
from meshlens.demo.envoy_spans import IstioProxy
from meshlens.demo.linkerd_spans import LinkerdProxy
from meshlens.demo.mesh import ISTIO, LINKERD, Gateway, Mesh, Service, Version
from meshlens.demo.prometheus_scrape import Target
from meshlens.demo.topology import NAMESPACE

Proxy = IstioProxy | LinkerdProxy


@dataclass(frozen=True)
class Pod:
    """A pod of a Deployment."""

    deployment: str
    template_hash: str  # the ReplicaSet's pod-template-hash
    name: str
    ip: str


def _pod(deployment: str, rollout: str) -> Pod:
    """The pod of `deployment` since its `rollout` (a restart changes the pod template: a new
    ReplicaSet, new pods)."""
    key = f"{deployment}@{rollout}" if rollout else deployment
    digest = hashlib.sha256(key.encode()).digest()
    template_hash = digest[:5].hex()[:9]
    suffix = digest[5:10].hex()[:5]
    ip = f"10.42.{digest[10] % 250 + 1}.{digest[11] % 250 + 2}"
    return Pod(deployment, template_hash, f"{deployment}-{template_hash}-{suffix}", ip)


def deployment_of(service: Service, version: Version) -> str:
    """`reviews-v2` when the service runs several versions, else the service name."""
    if len(service.versions) == 1:
        return service.name
    return f"{service.name}-{version.name}"


def pod_of(service: Service, version: Version) -> Pod:
    """The pod of a workload."""
    return _pod(deployment_of(service, version), service.rollout)


def proxy_of(service: Service, version: Version) -> Proxy | None:
    """The proxy beside the workload's pod, if it has one."""
    pod = pod_of(service, version)
    if service.proxy == ISTIO:
        return IstioProxy(service.name, NAMESPACE, pod.name, pod.ip, service.name, version.name)
    if service.proxy == LINKERD:
        return LinkerdProxy(
            pod.deployment,
            NAMESPACE,
            pod.name,
            pod.template_hash,
            version.name,
            pid=1,
            ip=pod.ip,
        )  # its process's start is the run's (`pipelines.proxy_resource`)
    return None


def gateway_pod(gateway: Gateway) -> Pod:
    return _pod(gateway.name, gateway.rollout)


def gateway_proxy(gateway: Gateway) -> IstioProxy:
    """The ingress gateway's Envoy (canonical revision `latest`: no version label)."""
    pod = gateway_pod(gateway)
    return IstioProxy(gateway.name, gateway.namespace, pod.name, pod.ip, gateway.name, router=True)


def all_proxies(mesh: Mesh) -> list[Proxy]:
    """Every proxy of the mesh: the gateway's, then each workload's."""
    proxies: list[Proxy] = [gateway_proxy(mesh.gateway)] if mesh.gateway else []
    for service in mesh.services.values():
        for version in service.versions:
            proxy = proxy_of(service, version)
            if proxy is not None:
                proxies.append(proxy)
    return proxies


def scrape_target(proxy: Proxy) -> Target:
    """The metrics endpoint of the proxy's pod, as the mesh's Prometheus job scrapes it."""
    if isinstance(proxy, IstioProxy):
        return istio_metrics.target(proxy)
    return linkerd_metrics.target(proxy)
