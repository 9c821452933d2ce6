"""Per-span rules applied at ingest: errors, virtual peers, mTLS, workload, operation, version.

Inputs are plain values (OTLP kind and status integers, decoded attribute mappings); every rule
is a handful of dict lookups. The ingest path extracts only `SPAN_KEYS` / `RESOURCE_KEYS`.
"""

from __future__ import annotations

from collections.abc import Mapping

from collector.derive.proxy_clusters import mesh_service

KIND_INTERNAL, KIND_SERVER, KIND_CLIENT, KIND_PRODUCER, KIND_CONSUMER = 1, 2, 3, 4, 5
ENTRY_KINDS = frozenset({KIND_SERVER, KIND_CONSUMER})
"""SERVER or CONSUMER: the span measures its own service's traffic."""
EXIT_KINDS = frozenset({KIND_CLIENT, KIND_PRODUCER})
"""CLIENT or PRODUCER: the span is the caller's half of an edge."""
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2
MTLS_UNKNOWN, MTLS_PLAINTEXT, MTLS_TLS, MTLS_MUTUAL = 0, 1, 2, 3

Attributes = Mapping[str, object]
"""One half of an edge: (kind, status_code, attributes)."""

_HTTP_STATUS = ("http.response.status_code", "http.status_code")
# Newest first: rpc.status_code (semconv #3921) <- rpc.response.status_code <- rpc.grpc.status_code
_RPC_STATUS_NAME = ("rpc.status_code", "rpc.response.status_code")
_GRPC_STATUS_NUMBER = ("rpc.grpc.status_code", "grpc.status_code")  # the latter: Envoy's tag
_ERROR_TYPE, _ERROR_TAG = "error.type", "error"  # semconv; OpenTracing/Envoy `error=true`
_PEER_SERVICE = ("peer.service", "service.peer.name")
_PEER_HOST = ("server.address", "net.peer.name")
_ENVOY_CLUSTER = "upstream_cluster"  # Istio: outbound|9080|v1|reviews.default.svc.cluster.local
_DB_SYSTEM = ("db.system.name", "db.system")
_DB_NAMESPACE = ("db.namespace", "db.name")
_MSG_DESTINATION = ("messaging.destination.template", "messaging.destination.name")
_MSG_OLD_DESTINATION = "messaging.destination"  # semconv <= 1.16: the destination name
_MSG_TEMPORARY = ("messaging.destination.temporary", "messaging.destination.anonymous")
_MSG_SYSTEM = "messaging.system"
_URL = ("url.full", "http.url")
_DB_KEYS = _DB_SYSTEM + _DB_NAMESPACE
_MSG_KEYS = (*_MSG_DESTINATION, _MSG_OLD_DESTINATION, _MSG_SYSTEM)
_TLS_ESTABLISHED = "tls.established"
_TLS_CLIENT_CERT = (  # what the client presented; not tls.client.server_name, ja3 (hello)
    "tls.client.subject", "tls.client.issuer", "tls.client.hash.sha256", "tls.client.hash.sha1",
    "tls.client.hash.md5", "tls.client.certificate", "tls.client.certificate_chain",
)  # fmt: skip
_ISTIO_SERVICE, _ISTIO_NAMESPACE = "istio.canonical_service", "istio.namespace"
_ISTIO_REVISION = "istio.canonical_revision"
_HTTP_ROUTE, _HTTP_METHOD = "http.route", ("http.request.method", "http.method")
_RPC_SYSTEM = ("rpc.system.name", "rpc.system")
_RPC_SERVICE, _RPC_METHOD = "rpc.service", "rpc.method"

_SERVICE_VERSION = "service.version"
_LABEL_VERSION = ("app.kubernetes.io/version", "version")  # pod labels (Linkerd proxy resource)
# Workload of a Linkerd proxy: semconv k8s.* (a Collector's k8sattributes processor), then the
# pod labels the Linkerd injector adds and the proxy copies into its resource, then app labels.
_WORKLOAD = (
    "k8s.deployment.name", "k8s.statefulset.name", "k8s.daemonset.name", "k8s.cronjob.name",
    "k8s.job.name", "linkerd.io/proxy-root-parent", "linkerd.io/proxy-deployment",
    "linkerd.io/proxy-statefulset", "linkerd.io/proxy-daemonset", "linkerd.io/proxy-cronjob",
    "linkerd.io/proxy-job", "app.kubernetes.io/name", "app",
)  # fmt: skip
_LINKERD_PROXY, _LINKERD_SUFFIX = "linkerd-proxy", "-linkerd-proxy"
_LINKERD_DIRECTION = "direction"  # linkerd2-proxy: its inbound or outbound stack
_ISTIO_UNKNOWN_SERVICE, _ISTIO_UNKNOWN_REVISION = "unknown", "latest"  # Istio's literal defaults
# Envoy's tracing tags (source/common/tracing/common_values.h TracingTagValues): every span an
# Envoy writes carries `component=proxy` and, on requests routed to a cluster, `upstream_cluster`;
# `node_id` is the proxy's node id, `<type>~<ip>~<pod>.<ns>~<ns>.svc.<domain>` in Istio, whose
# type is `sidecar` or `router` (a gateway; istio/istio pilot/pkg/model/context.go NodeType).
_ENVOY_COMPONENT, _ENVOY_PROXY, _ENVOY_NODE_ID = "component", "proxy", "node_id"
_ISTIO_ROUTER_NODE = "router~"

SPAN_KEYS: frozenset[str] = frozenset(
    (
        *_HTTP_STATUS, *_RPC_STATUS_NAME, *_GRPC_STATUS_NUMBER, _ERROR_TYPE, _ERROR_TAG,
        *_PEER_SERVICE, *_PEER_HOST, _ENVOY_CLUSTER, *_DB_SYSTEM, *_DB_NAMESPACE,
        *_MSG_DESTINATION, _MSG_OLD_DESTINATION, *_MSG_TEMPORARY, _MSG_SYSTEM, *_URL,
        _TLS_ESTABLISHED, *_TLS_CLIENT_CERT, _ISTIO_SERVICE, _ISTIO_NAMESPACE, _ISTIO_REVISION,
        _HTTP_ROUTE, *_HTTP_METHOD, *_RPC_SYSTEM, _RPC_SERVICE, _RPC_METHOD, _LINKERD_DIRECTION,
        _ENVOY_COMPONENT, _ENVOY_NODE_ID,
    )
)  # fmt: skip
RESOURCE_KEYS: frozenset[str] = frozenset((_SERVICE_VERSION, *_LABEL_VERSION, *_WORKLOAD))

_GRPC_CODES = {
    name: number
    for number, names in enumerate(
        ("OK", "CANCELLED CANCELED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
         "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
         "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
         "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED")
    )
    for name in names.split()
}  # fmt: skip
_GRPC_SERVER_ERRORS = frozenset({2, 4, 12, 13, 14, 15})
_LOOPBACK = frozenset({"localhost", "::1", "0.0.0.0", "::"})
_BOOLEAN_TEXT = {"true": True, "false": False}


def _text(value: object) -> str:
    """A string or integer attribute as stripped text; anything else as ""."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""


def _first(attributes: Attributes, keys: tuple[str, ...]) -> str:
    """The first non-empty text among `keys`, or ""."""
    for key in keys:
        value = attributes.get(key)
        if value is not None:  # most keys are absent: skip the call
            text = _text(value)
            if text:
                return text
    return ""


def _number(value: object) -> int | None:
    """An integer attribute, also when it arrives as a decimal string ("503")."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip()
        return int(text) if text.isascii() and text.isdigit() else None
    return None


def _flag(value: object) -> bool | None:
    """A boolean attribute, also as "true"/"false" text; None when absent or not boolean."""
    if isinstance(value, bool):
        return value
    return _BOOLEAN_TEXT.get(value.strip().lower()) if isinstance(value, str) else None


# --- errors: each side by its own semantic-convention rules ------------------------------


def _http_status(attributes: Attributes) -> int | None:
    for key in _HTTP_STATUS:
        value = attributes.get(key)
        code = None if value is None else _number(value)
        if code is not None and 100 <= code <= 599:  # Envoy writes "0" for "no response"
            return code
    return None


def _grpc_status(attributes: Attributes) -> int | None:
    for key in _RPC_STATUS_NAME:  # names ("NOT_FOUND"; Connect: "not_found"); others ignored
        value = attributes.get(key)
        code = _GRPC_CODES.get(value.strip().upper()) if isinstance(value, str) else None
        if code is not None:
            return code
    for key in _GRPC_STATUS_NUMBER:
        value = attributes.get(key)
        code = None if value is None else _number(value)
        if code is not None and 0 <= code <= 16:
            return code
    return None


def _failure_marked(attributes: Attributes) -> bool:
    """`error.type` set, or an OpenTracing-style `error` tag that is not false."""
    if _text(attributes.get(_ERROR_TYPE)):
        return True
    marker = attributes.get(_ERROR_TAG)
    return marker is True or (isinstance(marker, str) and marker.lower() not in ("", "false", "0"))


def _side_error(status_code: int, attributes: Attributes, *, client: bool) -> bool:
    if status_code != STATUS_UNSET:  # ERROR is an error; OK means the owner suppressed it
        return status_code == STATUS_ERROR
    http, grpc = _http_status(attributes), _grpc_status(attributes)
    if http is None and grpc is None:
        return _failure_marked(attributes)
    if http is not None and (http >= 500 or (client and http >= 400)):
        return True
    return grpc is not None and (grpc in _GRPC_SERVER_ERRORS or (client and grpc != 0))


def server_side_error(status_code: int, attributes: Attributes) -> bool:
    """Error by the server rules: 5xx; gRPC UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, ..."""
    return _side_error(status_code, attributes, client=False)


def client_side_error(status_code: int, attributes: Attributes) -> bool:
    """Error by the client rules: 4xx and 5xx; every non-OK gRPC code."""
    return _side_error(status_code, attributes, client=True)


def is_error(kind: int, status_code: int, attributes: Attributes) -> bool:
    """Error by the rules of the span's own side (INTERNAL/unspecified: server rules)."""
    return _side_error(status_code, attributes, client=is_exit(kind))


def is_exit(kind: int) -> bool:
    """CLIENT or PRODUCER: the span is the caller's half of an edge."""
    return kind in EXIT_KINDS


# --- virtual peers: the nodes of calls to uninstrumented peers ---------------------------


def _host(value: str) -> str:
    """A host name usable as a node name: lowercase, no port, no `.svc[.cluster.local]`.

    Loopback and wildcard addresses name a different thing for every caller: "".
    """
    host = value.strip().lower().rstrip(".")
    if host.startswith("["):
        host = host[1 : host.find("]")]
    elif host.count(":") == 1 and host.rpartition(":")[2].isdigit():
        host = host.rpartition(":")[0]
    host = host.removesuffix(".svc.cluster.local").removesuffix(".svc")
    return "" if host in _LOOPBACK or host.startswith("127.") else host


def host_name(value: str) -> str:
    """A host (or host:port, or Kubernetes service FQDN) as a node name; "" for loopback."""
    return _host(value)


def _url_host(url: str) -> str:
    authority = url.partition("://")[2]
    for stop in "/?#":
        authority = authority.partition(stop)[0]
    return _host(authority.rpartition("@")[2])


def _peer_host(attributes: Attributes) -> str:
    for key in _PEER_HOST:
        value = attributes.get(key)
        host = _host(value) if isinstance(value, str) else ""
        if host:
            return host
    cluster = attributes.get(_ENVOY_CLUSTER)
    parts = cluster.split("|") if isinstance(cluster, str) else ()
    return _host(parts[3]) if len(parts) == 4 and parts[0] == "outbound" else ""


def _destination(attributes: Attributes) -> str:
    """The messaging destination, unless temporary or anonymous (one node per reply queue)."""
    if any(_flag(attributes.get(key)) for key in _MSG_TEMPORARY):
        return ""
    return _first(attributes, _MSG_DESTINATION) or _text(attributes.get(_MSG_OLD_DESTINATION))


def _peer_type(attributes: Attributes) -> str:
    if _first(attributes, _DB_KEYS):
        return "database"
    if _first(attributes, _MSG_KEYS):
        return "messaging"
    return "external"


def is_database_call(attributes: Attributes) -> bool:
    """Whether the span calls a database (`db.system.name`, old `db.system`)."""
    return bool(_first(attributes, _DB_SYSTEM))


def virtual_peer(attributes: Attributes) -> tuple[str, str]:
    """(name, type) of the node an unpaired CLIENT/PRODUCER span calls.

    A sidecar's upstream cluster that names a mesh service (`proxy_clusters`) is that service
    (unless the span calls a database or a broker): the call never reached it (connection
    failure, timeout, no healthy upstream) but was meant for it. Else the uninstrumented node.
    Name: the declared peer service; the server host (server.address, net.peer.name, Istio's
    outbound upstream_cluster: a database cluster is its server, not the caller's view of it);
    the database namespace; the messaging destination; the URL host; the bare system name.
    Never the caller's connection details (peer IP, port, user, a loopback address).
    """
    peer_type = _peer_type(attributes)
    cluster = attributes.get(_ENVOY_CLUSTER)
    if peer_type == "external" and isinstance(cluster, str) and (service := mesh_service(cluster)):
        return service, "service"  # the mesh service the request was meant for
    name = (
        _first(attributes, _PEER_SERVICE)
        or _peer_host(attributes)
        or _first(attributes, _DB_NAMESPACE)
        or _destination(attributes)
        or _url_host(_first(attributes, _URL))
        or _first(attributes, (*_DB_SYSTEM, _MSG_SYSTEM))
    )
    return (name, peer_type) if name else ("unknown", "external")


# --- mTLS: what the TLS attributes of a span say ------------------------------------------


def mtls_state(attributes: Attributes) -> int:
    """MUTUAL when TLS was established and the client presented a certificate."""
    established = _flag(attributes.get(_TLS_ESTABLISHED))
    if established is None:
        return MTLS_UNKNOWN
    if not established:
        return MTLS_PLAINTEXT
    presented = any(attributes.get(key) for key in _TLS_CLIENT_CERT)
    return MTLS_MUTUAL if presented else MTLS_TLS


# --- identity, operation, version -------------------------------------------------------


def workload_service(service_name: str, attributes: Attributes, resource: Attributes) -> str:
    """The service a (proxy) span belongs to: the workload the proxy fronts.

    Istio: `istio.canonical_service`; without it, `reviews.default` loses the `.default` that
    `istio.namespace` names. Linkerd (`linkerd-proxy`, newer `web-linkerd-proxy`): the workload
    from the resource, else the name before `-linkerd-proxy`. Anything else: unchanged.
    """
    canonical = _text(attributes.get(_ISTIO_SERVICE))
    if canonical and canonical != _ISTIO_UNKNOWN_SERVICE:
        return canonical
    if is_linkerd_proxy(service_name):
        return _first(resource, _WORKLOAD) or service_name.removesuffix(_LINKERD_SUFFIX)
    namespace = _text(attributes.get(_ISTIO_NAMESPACE))
    if namespace and service_name.endswith("." + namespace):
        return service_name[: -len(namespace) - 1]
    return service_name


def is_linkerd_proxy(service_name: str) -> bool:
    """Whether `service.name` is a linkerd2-proxy: `linkerd-proxy`, or `<app>-linkerd-proxy`."""
    return service_name == _LINKERD_PROXY or service_name.endswith(_LINKERD_SUFFIX)


def is_proxy_leg(kind: int, service_name: str, attributes: Attributes) -> bool:
    """Whether the span covers the leg between a Linkerd proxy and its own app.

    linkerd2-proxy traces both of its stacks with a SERVER and a CLIENT span each, labelled
    `direction` (`linkerd/app/outbound/src/lib.rs` and `linkerd/app/inbound/src/http.rs`
    `trace_labels`; `http_tracing::server` in each stack's server, `::client` in its endpoint):
    the outbound stack's SERVER span is the app's request to its own proxy, the inbound stack's
    CLIENT span the proxy's request to its own app. Neither is a request between services.
    """
    direction = attributes.get(_LINKERD_DIRECTION)
    if direction is None or not is_linkerd_proxy(service_name):
        return False
    return (kind == KIND_SERVER and direction == "outbound") or (
        kind == KIND_CLIENT and direction == "inbound"
    )


def is_envoy(attributes: Attributes) -> bool:
    """Whether an Envoy wrote the span (`component=proxy`, or an `upstream_cluster` tag)."""
    return attributes.get(_ENVOY_COMPONENT) == _ENVOY_PROXY or _ENVOY_CLUSTER in attributes


def is_gateway(attributes: Attributes) -> bool:
    """Whether the span is an Istio gateway's: its Envoy's `node_id` is of type `router`."""
    node = attributes.get(_ENVOY_NODE_ID)
    return isinstance(node, str) and node.startswith(_ISTIO_ROUTER_NODE)


def resource_workload(resource: Attributes) -> str:
    """The Kubernetes workload a resource describes (`k8s.deployment.name`, ..., the pod
    labels a Linkerd proxy copies, `app`); "" when it names none."""
    return _first(resource, _WORKLOAD)


def operation(name: str, attributes: Attributes) -> str:
    """The HTTP route with its method ("GET /orders/{id}"), the RPC method
    ("grpc pkg.Service/Method"), else the span name."""
    route = _text(attributes.get(_HTTP_ROUTE))
    if route:
        method = _first(attributes, _HTTP_METHOD)
        return f"{method} {route}" if method else route
    method = _text(attributes.get(_RPC_METHOD))
    if not method:
        return name
    service = _text(attributes.get(_RPC_SERVICE))
    qualified = f"{service}/{method}" if service else method  # newer semconv: already qualified
    system = _first(attributes, _RPC_SYSTEM)
    return f"{system} {qualified}" if system else qualified


def version(attributes: Attributes, resource: Attributes) -> str:
    """`service.version`; Istio's `istio.canonical_revision` (its "latest" means none); pod
    version labels a Linkerd proxy copies into its resource; "" when unknown."""
    found = _text(resource.get(_SERVICE_VERSION))
    if found:
        return found
    revision = _text(attributes.get(_ISTIO_REVISION))
    if revision and revision != _ISTIO_UNKNOWN_REVISION:
        return revision
    return _first(resource, _LABEL_VERSION)
