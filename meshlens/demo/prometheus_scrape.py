"""What an OpenTelemetry Collector's `prometheus` receiver makes of a proxy's metrics endpoint.

Mesh proxies expose Prometheus text; a Collector scrapes every pod's endpoint and sends the
samples on over OTLP. The shapes here, taken from the Collector's sources:

- opentelemetry-collector-contrib `receiver/prometheusreceiver/internal/prom_to_otlp.go`
  `CreateResource`: one resource per scrape target, `service.name` = the scrape job,
  `service.instance.id` = the target's address, `server.address`, `server.port`, `url.scheme`
  (the legacy `net.host.*` and `http.scheme` are gone with the feature gate
  `receiver.prometheusreceiver.RemoveLegacyResourceAttributes`, beta since v0.101.0), and from
  Kubernetes service discovery `k8s.pod.name`, `k8s.namespace.name` and the pod's controller
  (`k8s.replicaset.name` for a Deployment's pod).
- The sample's labels, after the job's relabelling, become point attributes; a label whose
  value is empty is no label at all in Prometheus, so it is left out (Envoy writes
  `grpc_response_status=""` for HTTP, linkerd2-proxy `error=""`).
- Counters become monotonic cumulative sums of doubles, histograms cumulative explicit-bucket
  histograms (bucket counts per bucket, sum, count; a Prometheus histogram has no min or
  max); one instrumentation scope, the receiver's.
- Start times: the receiver leaves them unset; the Collector's `metricstarttime` processor
  (`processor/metricstarttimeprocessor/internal/starttimemetric/adjuster.go`, strategy
  `start_time_metric`) sets every series' start to the scrape's `process_start_time_seconds`,
  the proxy process's start (a series that reset: its point time less 1 ms).

Plain data: no SDK, no protobuf (`demo.proxy_metrics` builds the OTLP points).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

RECEIVER_SCOPE = (
    "github.com/open-telemetry/opentelemetry-collector-contrib/receiver/prometheusreceiver"
)
RECEIVER_VERSION = "0.141.0"  # the Collector release the demo pretends to run
SCRAPE_INTERVAL_SECONDS = 15  # Prometheus' usual interval (Istio's sample configuration's)

COUNTER, HISTOGRAM = "counter", "histogram"

LabelSet = tuple[tuple[str, str], ...]
"""A sample's labels in the order the proxy writes them (hashable: a series' identity)."""


@dataclass(frozen=True, slots=True)
class Family:
    """A Prometheus metric family: its name, type, help text and histogram bounds."""

    name: str
    kind: str  # COUNTER or HISTOGRAM
    description: str = ""
    bounds: tuple[float, ...] = ()  # a histogram's `le` bounds, +Inf left out


@dataclass(frozen=True, slots=True)
class RequestSeries:
    """The series a proxy's metrics add one request to: counters, and histograms that take its
    duration."""

    counters: tuple[tuple[Family, LabelSet], ...]
    histograms: tuple[tuple[Family, LabelSet], ...]


@dataclass(frozen=True, slots=True)
class Target:
    """A scrape target: a pod's metrics endpoint, as Kubernetes service discovery found it.

    `labels` are the ones the job's relabelling adds to every sample of the target.
    """

    job: str
    address: str  # "10.42.3.4:15020"
    pod: str
    namespace: str
    replicaset: str  # the pod's controller
    labels: LabelSet
    container: str = ""  # known when the job keeps one container's port only

    def resource(self) -> dict[str, str]:
        """The resource of every sample of this target (`CreateResource`)."""
        host, _, port = self.address.rpartition(":")
        attributes = {
            "service.name": self.job,
            "server.address": host,
            "service.instance.id": self.address,
            "server.port": port,
            "url.scheme": "http",
            "k8s.pod.name": self.pod,
            "k8s.namespace.name": self.namespace,
            "k8s.replicaset.name": self.replicaset,
        }
        if self.container:
            attributes["k8s.container.name"] = self.container
        return attributes


def label_set(*parts: Iterable[tuple[str, str]] | Mapping[str, str]) -> LabelSet:
    """Labels in order, without the empty ones (Prometheus has no empty label values)."""
    pairs: list[tuple[str, str]] = []
    for part in parts:
        items = part.items() if isinstance(part, Mapping) else part
        pairs.extend((key, value) for key, value in items if value != "")
    return tuple(pairs)


def sanitized(label: str) -> str:
    """A Kubernetes label name as Prometheus service discovery names it (`pod-template-hash`
    -> `pod_template_hash`, `security.istio.io/tlsMode` -> `security_istio_io_tlsMode`)."""
    return "".join(c if c.isalnum() or c == "_" else "_" for c in label)


def pod_parts(pod: str) -> tuple[str, str]:
    """(deployment, pod-template-hash) of a Deployment's pod named `<deployment>-<hash>-<id>`."""
    deployment, template_hash, _ = pod.rsplit("-", 2)
    return deployment, template_hash
