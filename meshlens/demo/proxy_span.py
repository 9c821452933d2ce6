"""What a mesh proxy records of one HTTP request, shared by the proxy span shapes.

`envoy_spans` (Istio sidecars and gateways) and `linkerd_spans` (linkerd2-proxy) turn a
`ProxyRequest` into `ProxySpan`s: a span's name, kind, attributes and whether its status is
ERROR, as the proxy exports it, with no ids and no times. The demo gives them ids and times
and exports them through the OpenTelemetry SDK (`demo.proxies`); the ingest benchmark builds
OTLP protobuf from them (`bench/proxy_mesh.py`). Nothing here imports the SDK or protobuf.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

SERVER, CLIENT = 2, 3  # OTLP span kinds (opentelemetry/proto/trace/v1/trace.proto)

AttributeMap = Mapping[str, str | int]
"""Span or resource attributes; proxies send their span attributes as strings only."""


@dataclass(frozen=True, slots=True)
class ProxyRequest:
    """One HTTP request as a proxy on its path sees it (headers as the client sent them)."""

    method: str
    authority: str  # the Host header: "reviews:8080"
    path: str  # with the query, if any: "/api/reviews/1234"
    status: int  # the response's status code
    user_agent: str = "-"
    request_id: str = ""  # x-request-id, which Envoy generates at the edge of the mesh
    scheme: str = "http"  # x-forwarded-proto
    protocol: str = "HTTP/1.1"
    request_bytes: int = 0
    response_bytes: int = 0

    @property
    def host(self) -> str:
        """The authority without its port."""
        return self.authority.rsplit(":", 1)[0] if ":" in self.authority else self.authority

    @property
    def port(self) -> str:
        """The authority's port, or "" when it names none."""
        return self.authority.rsplit(":", 1)[1] if ":" in self.authority else ""

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.authority}{self.path}"


@dataclass(frozen=True, slots=True)
class ProxySpan:
    """A span as a proxy exports it, without ids and times."""

    name: str
    kind: int  # SERVER or CLIENT
    attributes: dict[str, str]
    error: bool  # status ERROR; else the status is Unset (proxies never say OK)
