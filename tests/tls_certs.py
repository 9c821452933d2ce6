"""Certificates for the TLS tests, made with `cryptography`: certificate authorities, a server
certificate for 127.0.0.1 and localhost, and client certificates (with a SPIFFE ID, with a
subject only, expired), written as PEM files the way a secret mount holds them."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_PKCS8 = serialization.PrivateFormat.PKCS8


@dataclass(frozen=True)
class Issued:
    """A certificate and its key on disk."""

    cert: Path
    key: Path
    serial: int


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization is not None:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` in one step, as a rotation tool (or a secret mount's swap) does."""
    temporary = path.with_name(path.name + ".new")
    temporary.write_bytes(data)
    os.replace(temporary, path)


class Authority:
    """A CA whose certificate is `folder/<name>-ca.pem`; it issues into `folder`."""

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name(f"{name} CA")
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.cert = folder / f"{name}-ca.pem"
        self.cert.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        file_name: str,
        common_name: str,
        *,
        organization: str | None = None,
        spiffe_id: str | None = None,
        other_uris: tuple[str, ...] = (),
        server: bool = False,
        expired: bool = False,
    ) -> Issued:
        """Issue a certificate into `file_name`.pem / .key, replacing what was there."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        start, end = (
            (now - datetime.timedelta(days=10), now - datetime.timedelta(days=1))
            if expired
            else (now - datetime.timedelta(hours=1), now + datetime.timedelta(days=10))
        )
        serial = x509.random_serial_number()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, organization))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        names: list[x509.GeneralName] = []
        if server:
            names += [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        names += [x509.UniformResourceIdentifier(uri) for uri in other_uris]
        if spiffe_id is not None:
            names.append(x509.UniformResourceIdentifier(spiffe_id))
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        certificate = builder.sign(self._key, hashes.SHA256())
        issued = Issued(self.folder / f"{file_name}.pem", self.folder / f"{file_name}.key", serial)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, _PKCS8, serialization.NoEncryption()
        )
        write_atomically(issued.key, key_pem)
        write_atomically(issued.cert, certificate.public_bytes(serialization.Encoding.PEM))
        return issued


def client_context(trust: Path, client: Issued | None = None) -> ssl.SSLContext:
    """A client TLS context trusting `trust`, presenting `client` when given."""
    context = ssl.create_default_context(cafile=trust)
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    return context


def served_serial(port: int, context: ssl.SSLContext, alpn: list[str] | None = None) -> int:
    """The serial number of the certificate a fresh TLS connection to 127.0.0.1:`port` gets."""
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number
