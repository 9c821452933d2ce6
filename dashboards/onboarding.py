"""Ready-to-copy ways to send telemetry to meshlens, with the host and ports it listens on.

Shown where a page has no data: the empty state teaches how to fill it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Snippet:
    """One way to send telemetry: a title, what it does, and the text to copy."""

    key: str
    title: str
    note: str
    language: str
    text: str


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where meshlens receives OTLP, as a sender should write it."""

    host: str
    grpc_port: int
    http_port: int
    web_port: int
    tls: bool = False  # the OTLP ports speak TLS
    client_certificates: bool = False  # and require a client certificate (mTLS)

    @property
    def http_scheme(self) -> str:
        """The scheme of the OTLP/HTTP endpoint."""
        return "https" if self.tls else "http"

    @property
    def local_only(self) -> bool:
        """meshlens was reached on loopback: senders elsewhere need its reachable address."""
        return self.host in {"127.0.0.1", "localhost", "::1", "[::1]"}


def snippets(at: Endpoints) -> list[Snippet]:
    """SDK, Collector sidecar, Istio and Linkerd, in that order."""
    grpc = f"{at.host}:{at.grpc_port}"
    http = f"{at.http_scheme}://{at.host}:{at.http_port}"
    return [
        Snippet(
            "sdk",
            "OpenTelemetry SDK",
            "Any language's SDK reads these variables; restart the service after setting them.",
            "sh",
            f"export OTEL_EXPORTER_OTLP_ENDPOINT={http}\n"
            f"{_sdk_tls(at)}"
            "export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf\n"
            "export OTEL_SERVICE_NAME=checkout\n"
            "export OTEL_RESOURCE_ATTRIBUTES=service.version=v1",
        ),
        Snippet(
            "collector",
            "OpenTelemetry Collector sidecar",
            "Add the exporter and list it in the pipelines of the Collector's configuration.",
            "yaml",
            "exporters:\n"
            "  otlp/meshlens:\n"
            f"    endpoint: {grpc}\n"
            f"{_collector_tls(at)}"
            "service:\n"
            "  pipelines:\n"
            "    traces:\n"
            "      receivers: [otlp]\n"
            "      exporters: [otlp/meshlens]\n"
            "    metrics:\n"
            "      receivers: [otlp]\n"
            "      exporters: [otlp/meshlens]",
        ),
        Snippet(
            "istio",
            "Istio (Telemetry API)",
            "Register meshlens as an OpenTelemetry tracing provider in meshConfig, then turn it "
            "on mesh-wide. For edges without tracing, let a Collector's Prometheus receiver "
            "scrape the sidecars (port 15020, /stats/prometheus) and export to meshlens.",
            "yaml",
            "meshConfig:\n"
            "  extensionProviders:\n"
            "  - name: meshlens\n"
            "    opentelemetry:\n"
            f"      service: {at.host}\n"
            f"      port: {at.grpc_port}\n"
            "---\n"
            "apiVersion: telemetry.istio.io/v1\n"
            "kind: Telemetry\n"
            "metadata:\n"
            "  name: mesh-default\n"
            "  namespace: istio-system\n"
            "spec:\n"
            "  tracing:\n"
            "  - providers:\n"
            "    - name: meshlens\n"
            "    randomSamplingPercentage: 100",
        ),
        Snippet(
            "linkerd",
            "Linkerd",
            "Linkerd's proxies count every request (response_total, response_latency_ms, with "
            "tls and no_tls_reason): let a Collector's Prometheus receiver scrape them on their "
            "admin port and send the series to meshlens. Applications' own spans go straight "
            "to meshlens with the SDK settings above.",
            "yaml",
            "receivers:\n"
            "  prometheus:\n"
            "    config:\n"
            "      scrape_configs:\n"
            "      - job_name: linkerd-proxy\n"
            "        kubernetes_sd_configs: [{role: pod}]\n"
            "        relabel_configs:\n"
            "        - source_labels: [__meta_kubernetes_pod_container_port_name]\n"
            "          action: keep\n"
            "          regex: linkerd-admin\n"
            "exporters:\n"
            "  otlp/meshlens:\n"
            f"    endpoint: {grpc}\n"
            f"{_collector_tls(at)}"
            "service:\n"
            "  pipelines:\n"
            "    metrics:\n"
            "      receivers: [prometheus]\n"
            "      exporters: [otlp/meshlens]",
        ),
    ]


def _sdk_tls(at: Endpoints) -> str:
    """The SDK variables for meshlens's certificate (and the sender's own, over mTLS)."""
    lines = ""
    if at.tls:
        lines += "export OTEL_EXPORTER_OTLP_CERTIFICATE=/etc/meshlens-ca/ca.crt\n"
    if at.client_certificates:
        lines += (
            "export OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE=/etc/tls/tls.crt\n"
            "export OTEL_EXPORTER_OTLP_CLIENT_KEY=/etc/tls/tls.key\n"
        )
    return lines


def _collector_tls(at: Endpoints) -> str:
    """The `tls` block of a Collector's OTLP exporter to meshlens."""
    if not at.tls:
        return "    tls:\n      insecure: true\n"
    block = "    tls:\n      ca_file: /etc/meshlens-ca/ca.crt\n"
    if at.client_certificates:
        block += "      cert_file: /etc/tls/tls.crt\n      key_file: /etc/tls/tls.key\n"
    return block
