"""TLS and mTLS on a real `meshlens serve`: the OTLP receivers require a client certificate
signed by MESHLENS_TLS_CLIENT_CA_FILE (a missing, untrusted or expired one fails the handshake
and nothing is stored), record its identity with what it sent, the web port serves HTTPS, and
replaced certificate files are served without a restart. The official OpenTelemetry exporters
are the senders; raw TLS clients probe what the handshake allows."""

from __future__ import annotations

import os
import ssl
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter

from harness.postgres import DatabaseFactory
from harness.waiting import wait_until
from tests.otlp_payloads import trace_request
from tests.support import RunningServer, run_meshlens, running_server
from tests.tls_certs import (
    Authority,
    Issued,
    client_context,
    served_serial,
    write_atomically,
)

SPIFFE_ID = "spiffe://cluster.local/ns/shop/sa/cart"
ADMIN_TOKEN = "admin-token-for-the-tls-tests-0042"
TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


@dataclass
class Mesh:
    """A meshlens over mTLS and the certificates around it."""

    server: RunningServer
    ca: Authority
    foreign: Authority
    server_cert: Issued
    client_ca: Path  # MESHLENS_TLS_CLIENT_CA_FILE: the first CA's certificate, at first
    cart: Issued  # SPIFFE ID
    payments: Issued  # subject only
    expired: Issued
    stranger: Issued  # signed by the foreign CA

    def grpc_credentials(self, client: Issued | None) -> grpc.ChannelCredentials:
        pair = (client.key.read_bytes(), client.cert.read_bytes()) if client else (None, None)
        return grpc.ssl_channel_credentials(self.ca.cert.read_bytes(), *pair)


@pytest.fixture(scope="module")
def mesh(databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    folder = tmp_path_factory.mktemp("tls")
    ca, foreign = Authority(folder, "mesh"), Authority(folder, "foreign")
    server_cert = ca.issue("server", "meshlens", server=True)
    client_ca = folder / "client-ca.pem"
    client_ca.write_bytes(ca.cert.read_bytes())
    env = {
        "MESHLENS_TLS_CERT_FILE": str(server_cert.cert),
        "MESHLENS_TLS_KEY_FILE": str(server_cert.key),
        "MESHLENS_TLS_CLIENT_CA_FILE": str(client_ca),
        "MESHLENS_API_TOKENS": f"admin:{ADMIN_TOKEN}",
    }
    log = folder / "meshlens.log"
    with running_server(databases.create(), log, trust=ca.cert, **env) as server:
        yield Mesh(
            server=server,
            ca=ca,
            foreign=foreign,
            server_cert=server_cert,
            client_ca=client_ca,
            cart=ca.issue("cart", "cart", organization="shop", spiffe_id=SPIFFE_ID),
            payments=ca.issue("payments", "payments", organization="shop"),
            expired=ca.issue("expired", "cart", organization="shop", expired=True),
            stranger=foreign.issue("stranger", "cart", organization="shop", spiffe_id=SPIFFE_ID),
        )


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (("server.pem", None), "MESHLENS_TLS_CERT_FILE is set but MESHLENS_TLS_KEY_FILE is not"),
        (("server.pem", "cart.key"), "cart.key is not the key of the certificate in"),
        (("missing.pem", "server.key"), "missing.pem: No such file"),
    ],
)
def test_serve_refuses_to_start_with_unusable_tls_files(
    mesh: Mesh, files: tuple[str, str | None], message: str
) -> None:
    folder = mesh.ca.folder
    env = {**os.environ, "MESHLENS_TLS_CERT_FILE": str(folder / files[0])}
    if files[1] is not None:
        env["MESHLENS_TLS_KEY_FILE"] = str(folder / files[1])
    refused = run_meshlens("serve", env=env)
    assert refused.returncode != 0
    assert message in refused.stderr


def _send_span(exporter: SpanExporter) -> str:
    service = f"tls-{uuid.uuid4().hex[:8]}"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("tests.tls").start_as_current_span("GET /cart"):
        pass
    provider.shutdown()
    return service


def _span_senders(server: RunningServer, service: str) -> list[str | None]:
    rows = server.query(
        "SELECT senders.identity FROM spans LEFT JOIN senders ON senders.id = spans.sender_id "
        "WHERE spans.service = %s",
        (service,),
    )
    return [row[0] for row in rows]


@pytest.fixture
def own_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests (under the OTLP/HTTP exporters) lets REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE win
    over the exporter's certificate_file, so a machine that sets them would verify meshlens
    against the system CAs; the exporters here must use the test CA."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


def _http_exporter(mesh: Mesh, client: Issued) -> HttpSpanExporter:
    return HttpSpanExporter(
        endpoint=f"{mesh.server.otlp_http}/v1/traces",
        certificate_file=str(mesh.ca.cert),
        client_certificate_file=str(client.cert),
        client_key_file=str(client.key),
        timeout=10,
    )


@pytest.mark.usefixtures("own_ca_bundle")
def test_the_http_exporter_delivers_spans_and_points_with_its_spiffe_id(mesh: Mesh) -> None:
    service = _send_span(_http_exporter(mesh, mesh.cart))
    assert _span_senders(mesh.server, service) == [SPIFFE_ID]

    exporter = OTLPMetricExporter(
        endpoint=f"{mesh.server.otlp_http}/v1/metrics",
        certificate_file=str(mesh.ca.cert),
        client_certificate_file=str(mesh.cart.cert),
        client_key_file=str(mesh.cart.key),
        timeout=10,
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=60_000)
    provider = MeterProvider([reader], resource=Resource.create({"service.name": service}))
    provider.get_meter("tests.tls").create_counter("tls.requests").add(3)
    provider.shutdown()  # exports once
    rows = mesh.server.query(
        "SELECT senders.identity FROM metric_points p JOIN metric_series s ON s.id = p.series_id "
        "LEFT JOIN senders ON senders.id = p.sender_id WHERE s.service = %s",
        (service,),
    )
    assert rows == [(SPIFFE_ID,)]


def test_the_grpc_exporter_delivers_with_its_subject(mesh: Mesh) -> None:
    exporter = GrpcSpanExporter(
        endpoint=mesh.server.grpc_endpoint,
        credentials=mesh.grpc_credentials(mesh.payments),
        timeout=10,
    )
    service = _send_span(exporter)
    assert _span_senders(mesh.server, service) == ["CN=payments,O=shop"]


CLIENTS: dict[str, Callable[[Mesh], Issued | None]] = {
    "no certificate": lambda _mesh: None,
    "another CA's certificate": lambda mesh: mesh.stranger,
    "an expired certificate": lambda mesh: mesh.expired,
}


def _post_http(mesh: Mesh, client: Issued | None, service: str) -> int:
    body = trace_request(service).SerializeToString()
    context = client_context(mesh.ca.cert, client)
    with httpx.Client(verify=context, timeout=5) as http:
        answer = http.post(
            f"{mesh.server.otlp_http}/v1/traces",
            content=body,
            headers={"Content-Type": "application/x-protobuf"},
        )
    return answer.status_code


def _export_grpc(mesh: Mesh, client: Issued | None, service: str) -> None:
    with grpc.secure_channel(mesh.server.grpc_endpoint, mesh.grpc_credentials(client)) as channel:
        export = channel.unary_unary(
            TRACE_EXPORT,
            request_serializer=lambda message: message,
            response_deserializer=lambda raw: raw,
        )
        export(trace_request(service).SerializeToString(), timeout=5)


def _stored(server: RunningServer, service: str) -> int:
    return int(server.query("SELECT count(*) FROM spans WHERE service = %s", (service,))[0][0])


def test_a_trusted_certificate_gets_through_the_same_raw_clients(mesh: Mesh) -> None:
    """The control of the refusals below: the same requests with a good certificate work."""
    http_service, grpc_service = f"tls-ok-{uuid.uuid4().hex[:8]}", f"tls-ok-{uuid.uuid4().hex[:8]}"
    assert _post_http(mesh, mesh.cart, http_service) == 200
    _export_grpc(mesh, mesh.cart, grpc_service)
    assert _stored(mesh.server, http_service) > 0
    assert _stored(mesh.server, grpc_service) > 0


@pytest.mark.parametrize("which", list(CLIENTS))
def test_without_a_trusted_certificate_the_handshake_fails_and_nothing_is_stored(
    mesh: Mesh, which: str
) -> None:
    client = CLIENTS[which](mesh)
    http_service, grpc_service = f"tls-no-{uuid.uuid4().hex[:8]}", f"tls-no-{uuid.uuid4().hex[:8]}"
    with pytest.raises(httpx.TransportError):
        _post_http(mesh, client, http_service)
    with pytest.raises(grpc.RpcError) as refused:
        _export_grpc(mesh, client, grpc_service)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    time.sleep(0.3)
    assert _stored(mesh.server, http_service) == _stored(mesh.server, grpc_service) == 0


def test_plaintext_clients_get_nothing_from_the_tls_ports(mesh: Mesh) -> None:
    service = f"tls-plain-{uuid.uuid4().hex[:8]}"
    body = trace_request(service).SerializeToString()
    for port in (mesh.server.otlp_http_port, mesh.server.web_port):
        with pytest.raises(httpx.TransportError):
            httpx.post(f"http://127.0.0.1:{port}/v1/traces", content=body, timeout=5)
    with grpc.insecure_channel(mesh.server.grpc_endpoint) as channel:
        export = channel.unary_unary(TRACE_EXPORT, lambda m: m, lambda raw: raw)
        with pytest.raises(grpc.RpcError) as refused:
            export(body, timeout=5)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    assert _stored(mesh.server, service) == 0


def test_the_web_port_serves_https_with_tokens_and_a_secure_cookie(mesh: Mesh) -> None:
    with mesh.server.web_client(timeout=10) as web:
        assert web.get("/readyz").status_code == 200
        assert web.get("/").status_code in (302, 303, 401)  # a token is still asked for
        page = web.get("/", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        signed_in = web.post("/login", data={"token": ADMIN_TOKEN, "next": "/"})
    assert signed_in.status_code == 303
    cookie = signed_in.headers["set-cookie"].lower()
    assert "; secure" in cookie
    assert "httponly" in cookie
    # no client certificate is asked for on the web port
    assert served_serial(mesh.server.web_port, client_context(mesh.ca.cert)) > 0


def _wait_for_serial(port: int, context: ssl.SSLContext, serial: int, alpn: bool = False) -> int:
    """The serial `port` serves, once it is `serial` (within 20 s)."""

    def renewed() -> int | None:
        served = served_serial(port, context, ["h2"] if alpn else None)
        return served if served == serial else None

    return wait_until(renewed, timeout=20, what=f"port {port} to serve the serial {serial}")


@pytest.mark.usefixtures("own_ca_bundle")
def test_a_replaced_certificate_is_served_without_a_restart(mesh: Mesh) -> None:
    old = mesh.server_cert.serial
    assert served_serial(mesh.server.web_port, client_context(mesh.ca.cert)) == old
    renewed = mesh.ca.issue("server", "meshlens", server=True)  # same paths, new serial
    assert renewed.serial != old
    ports = {
        "OTLP/HTTP": (mesh.server.otlp_http_port, False),
        "OTLP/gRPC": (mesh.server.grpc_port, True),
        "web": (mesh.server.web_port, False),
    }
    for name, (port, alpn) in ports.items():
        context = client_context(mesh.ca.cert, mesh.cart)
        assert _wait_for_serial(port, context, renewed.serial, alpn) == renewed.serial, name
    service = _send_span(_http_exporter(mesh, mesh.cart))  # new connections work as before
    assert _span_senders(mesh.server, service) == [SPIFFE_ID]
    assert mesh.server.process.poll() is None


def test_a_replaced_client_ca_is_used_without_a_restart(mesh: Mesh) -> None:
    """Last in the module: from here on only the foreign CA's clients are trusted."""
    write_atomically(mesh.client_ca, mesh.foreign.cert.read_bytes())
    service = f"tls-stranger-{uuid.uuid4().hex[:8]}"

    def accepted() -> int | None:
        try:
            status = _post_http(mesh, mesh.stranger, service)
        except httpx.TransportError:
            return None
        return status if status == 200 else None

    status = wait_until(accepted, timeout=20, what="a client of the new CA to be accepted")
    assert status == 200
    stored = _stored(mesh.server, service)
    _export_grpc(mesh, mesh.stranger, f"{service}-grpc")
    assert stored > 0
    assert _stored(mesh.server, f"{service}-grpc") == stored
    with pytest.raises(httpx.TransportError):
        _post_http(mesh, mesh.cart, f"tls-old-{uuid.uuid4().hex[:8]}")
    with pytest.raises(grpc.RpcError):
        _export_grpc(mesh, mesh.cart, f"tls-old-{uuid.uuid4().hex[:8]}")
