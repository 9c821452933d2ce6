"""The ASGI TLS extension for uvicorn, which does not fill it in itself.

`ClientCertificateProtocol` is uvicorn's httptools protocol that adds `extensions["tls"]` to
each request's scope, as the ASGI spec describes it: the connection's client certificate
(`client_cert_chain`, PEM, leaf first; empty without one) and its subject
(`client_cert_name`, RFC 4514). asyncio calls `connection_made` once the handshake is done, so
the certificate is read once per connection, not per request. The OTLP/HTTP port uses it when
client certificates are required, to record who sent what.
"""

from __future__ import annotations

import asyncio
import ssl

from cryptography import x509
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


class ClientCertificateProtocol(HttpToolsProtocol):
    """HTTP/1.1 (httptools) with the ASGI TLS extension in every request's scope."""

    _tls: dict[object, object]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._tls = tls_extension(transport.get_extra_info("ssl_object"))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope["extensions"] = {"tls": self._tls}


def tls_extension(connection: ssl.SSLObject | None) -> dict[object, object]:
    """The ASGI `tls` extension of one connection (all None and empty over plain TCP)."""
    der = connection.getpeercert(binary_form=True) if connection is not None else None
    version = connection.version() if connection is not None else None
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": x509.load_der_x509_certificate(der).subject.rfc4514_string()
        if der
        else None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(version or ""),
        "cipher_suite": None,  # the spec wants IANA numbers; Python's ssl gives names
    }
