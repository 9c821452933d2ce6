"""The proxy-shaped workload's mesh: the 8 services of `mesh` in two meshes, and their proxies.

- Istio: frontend (the entry, behind the ingress gateway), checkout, cart, catalog, payments,
  each with an Envoy sidecar.
- Linkerd: users (the entry), recommendations, shipping, each with a linkerd2-proxy.

The proxies' identities and resources, and the requests as they see them, in the shapes of
`meshlens/demo/envoy_spans.py` and `linkerd_spans.py` (taken from the proxies' sources, shared
with `meshlens demo`). `proxy_traces` builds the traces.
"""

from __future__ import annotations

import random
import uuid

from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from bench.mesh import Call, Pod, kv
from meshlens.demo import envoy_spans
from meshlens.demo.envoy_spans import IstioProxy
from meshlens.demo.linkerd_spans import LinkerdProxy
from meshlens.demo.proxy_span import ProxyRequest

ISTIO_APPS = ("frontend", "checkout", "cart", "catalog", "payments")  # frontend: the entry
LINKERD_APPS = ("users", "recommendations", "shipping")  # users: the entry
PORT = 8080
PUBLIC_HOST = "shop.example.com"
GATEWAY = IstioProxy(
    "istio-ingressgateway",
    "istio-system",
    "istio-ingressgateway-6d8f9c7b5-q2wzx",
    "10.42.9.10",
    "istio-ingressgateway",
    router=True,
)
SIDECAR_PEER, LINKERD_PEER = "127.0.0.6", "127.0.0.1"  # where an app sees its proxy connect from

Emitter = Pod | IstioProxy | LinkerdProxy
"""Whoever exports spans: an app (its pod's SDK), a sidecar, a linkerd2-proxy, the gateway."""


def emitter_key(emitter: Emitter) -> str | IstioProxy | LinkerdProxy:
    """A hashable key per emitter (a pod's resource is a protobuf message: unhashable)."""
    return emitter.service.name if isinstance(emitter, Pod) else emitter


def request_for(
    call: Call, authority: str, user_agent: str, rng: random.Random, scheme: str = "http"
) -> ProxyRequest:
    request_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    sent = 0 if call.method in ("GET", "DELETE") else rng.randrange(120, 900)
    return ProxyRequest(
        call.method,
        authority,
        call.path,
        call.status,
        user_agent,
        request_id,
        scheme,
        "HTTP/1.1",
        sent,
        rng.randrange(300, 6000),
    )


def sidecar_of(pod: Pod) -> IstioProxy:
    attributes = _attributes(pod.resource)
    service = pod.service.name
    return IstioProxy(
        service,
        pod.service.namespace,
        attributes["k8s.pod.name"],
        pod.ip,
        service,
        attributes["service.version"],
    )


def linkerd_proxy_of(pod: Pod) -> LinkerdProxy:
    attributes = _attributes(pod.resource)
    name = attributes["k8s.pod.name"]
    return LinkerdProxy(
        pod.service.name,
        pod.service.namespace,
        name,
        name.split("-")[-2],
        attributes["service.version"],
        pid=1,
        started_at=1_790_000_000,
    )


def _attributes(resource: Resource) -> dict[str, str]:
    return {kv.key: kv.value.string_value for kv in resource.attributes}


def resource_of(emitter: Emitter) -> Resource:
    if isinstance(emitter, Pod):
        return emitter.resource
    attributes = (
        envoy_spans.resource(emitter) if isinstance(emitter, IstioProxy) else emitter.resource()
    )
    return Resource(attributes=[kv(key, value) for key, value in attributes.items()])
