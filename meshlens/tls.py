"""TLS on meshlens's listeners: certificate files read again when they change, and the
identity of a client certificate.

`MESHLENS_TLS_CERT_FILE` and `MESHLENS_TLS_KEY_FILE` (both or neither) put every listener on
TLS with one server certificate. `MESHLENS_TLS_CLIENT_CA_FILE` makes the two OTLP receivers
require a client certificate signed by that CA: a missing, untrusted or expired one fails the
handshake. The web port never asks for one (it keeps its tokens).

`CertificateFiles` checks the files' modification time, size and inode at a handshake, at most
every `RECHECK_SECONDS`: a changed set is loaded and serves the connections that follow, so
certificates rotate without a restart (a Kubernetes secret's symlink swap included). A set that
does not load (the certificate replaced, its key not yet) is reported and the last good one
stays in use until the files agree again.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

log = logging.getLogger("meshlens.tls")

RECHECK_SECONDS = 1.0
SPIFFE_SCHEME = "spiffe://"
_FileState = tuple[tuple[int, int, int] | None, ...]


class TlsError(ValueError):
    """A certificate, key or CA file that cannot be used; the message names the file."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """Where the server certificate (chain), its key and the optional client CA are."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    @classmethod
    def from_settings(
        cls, cert: Path | None, key: Path | None, client_ca: Path | None
    ) -> TlsFiles | None:
        """The files named by the settings; None without TLS; TlsError when they disagree."""
        if cert is None and key is None:
            if client_ca is not None:
                raise TlsError(
                    "MESHLENS_TLS_CLIENT_CA_FILE needs MESHLENS_TLS_CERT_FILE and "
                    "MESHLENS_TLS_KEY_FILE: client certificates are only asked for over TLS"
                )
            return None
        if cert is None or key is None:
            given, missing = (
                ("MESHLENS_TLS_CERT_FILE", "MESHLENS_TLS_KEY_FILE")
                if key is None
                else ("MESHLENS_TLS_KEY_FILE", "MESHLENS_TLS_CERT_FILE")
            )
            raise TlsError(f"{given} is set but {missing} is not: set both, or neither")
        return cls(cert, key, client_ca)


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """One loaded, consistent generation of the files."""

    version: int
    cert_chain: bytes
    key: bytes
    client_ca: bytes | None
    server_context: ssl.SSLContext  # asks for client certificates when client_ca is set
    web_context: ssl.SSLContext  # never asks for one
    serial: int
    not_after: str


class CertificateFiles:
    """The TLS files, loaded at start (TlsError when they cannot be used) and again whenever
    they change. Safe to call from the event loop and from gRPC's threads."""

    def __init__(self, files: TlsFiles, clock: Callable[[], float] = time.monotonic) -> None:
        self.files = files
        self._clock = clock
        self._lock = threading.Lock()
        state = self._state()
        self._material = load_material(files, version=1)
        self._state_loaded = state
        self._state_failed: _FileState | None = None
        self._checked_at = clock()

    @property
    def mutual(self) -> bool:
        """Whether the OTLP receivers require client certificates."""
        return self.files.client_ca is not None

    def current(self) -> TlsMaterial:
        """The newest material that loads; never raises."""
        with self._lock:
            now = self._clock()
            if now - self._checked_at >= RECHECK_SECONDS:
                self._checked_at = now
                self._reload_if_changed()
            return self._material

    def _reload_if_changed(self) -> None:
        state = self._state()
        if state in (self._state_loaded, self._state_failed):
            return
        try:
            material = load_material(self.files, self._material.version + 1)
        except TlsError as exc:
            self._state_failed = state  # reported once; tried again when the files change
            log.warning(
                "TLS files changed but cannot be used (%s); still serving the old ones", exc
            )
            return
        if self._state() != state:  # changed while being read: read them again next time
            return
        self._material, self._state_loaded, self._state_failed = material, state, None
        log.info(
            "TLS certificate reloaded from %s: serial %x, valid until %s",
            self.files.cert,
            material.serial,
            material.not_after,
        )

    def _state(self) -> _FileState:
        paths = (self.files.cert, self.files.key, self.files.client_ca)
        return tuple(_stat(path) for path in paths if path is not None)


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        status = os.stat(path)  # follows symlinks: a swapped target is a change
    except OSError:
        return None
    return (status.st_mtime_ns, status.st_size, status.st_ino)


def load_material(files: TlsFiles, version: int) -> TlsMaterial:
    """Read and check the files; TlsError says which file is wrong and how."""
    cert_chain, key = _read(files.cert), _read(files.key)
    client_ca = _read(files.client_ca) if files.client_ca is not None else None
    leaf = _certificates(cert_chain, files.cert)[0]
    _check_key(key, leaf, files)
    if client_ca is not None and files.client_ca is not None:
        _certificates(client_ca, files.client_ca)
    return TlsMaterial(
        version=version,
        cert_chain=cert_chain,
        key=key,
        client_ca=client_ca,
        server_context=_context(files, client_ca),
        web_context=_context(files, None),
        serial=leaf.serial_number,
        not_after=leaf.not_valid_after_utc.isoformat(),
    )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsError(f"{path}: {exc.strerror or exc}") from exc


def _certificates(pem: bytes, path: Path) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise TlsError(f"{path}: no PEM certificate in it ({exc})") from exc


def _check_key(pem: bytes, leaf: x509.Certificate, files: TlsFiles) -> None:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError as exc:  # encrypted
        raise TlsError(f"{files.key}: the key is encrypted; meshlens needs it unencrypted") from exc
    except ValueError as exc:
        raise TlsError(f"{files.key}: not a PEM private key ({exc})") from exc
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != leaf.public_key().public_bytes(*spki):
        raise TlsError(f"{files.key} is not the key of the certificate in {files.cert}")


def _context(files: TlsFiles, client_ca: bytes | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(files.cert, files.key)
        if client_ca is not None:
            context.load_verify_locations(cadata=client_ca.decode("ascii", "replace"))
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(f"{files.cert}, {files.key}: {exc}") from exc
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class ServerTls:
    """TLS for the listeners, from one `CertificateFiles`."""

    def __init__(self, files: CertificateFiles) -> None:
        self.files = files

    @property
    def mutual(self) -> bool:
        """Whether the OTLP receivers require client certificates."""
        return self.files.mutual

    def ssl_context(self, *, client_certificates: bool) -> ssl.SSLContext:
        """The context a uvicorn server listens with. Every handshake switches to the newest
        material's context (the SNI callback runs for every ClientHello, SNI or not)."""
        first = self.files.current()
        listening = first.server_context if client_certificates else first.web_context

        def switch(connection: ssl.SSLObject, _name: str | None, _context: ssl.SSLContext) -> None:
            newest = self.files.current()
            connection.context = (
                newest.server_context if client_certificates else newest.web_context
            )

        listening.sni_callback = switch
        return listening

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """Credentials of the OTLP/gRPC port; gRPC asks for the newest files at each handshake."""
        first = self.files.current()
        handed = [first.version]

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            newest = self.files.current()
            if newest.version == handed[0]:
                return None  # keep the configuration in use
            handed[0] = newest.version
            return _grpc_configuration(newest)

        return grpc.dynamic_ssl_server_credentials(
            _grpc_configuration(first),
            fetch,  # type: ignore[arg-type]  # None keeps the configuration (gRPC's docs)
            require_client_authentication=self.mutual,
        )


def _grpc_configuration(material: TlsMaterial) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration(
        [(material.key, material.cert_chain)], root_certificates=material.client_ca
    )


@functools.lru_cache(maxsize=1024)
def sender_identity(certificate: bytes) -> str:
    """Who a client certificate (PEM or DER) names: its SPIFFE ID (the first `spiffe://` URI
    SAN), else its subject as an RFC 4514 string, else its SHA-256 fingerprint."""
    if certificate.lstrip().startswith(b"-----"):
        parsed = x509.load_pem_x509_certificate(certificate)
    else:
        parsed = x509.load_der_x509_certificate(certificate)
    try:
        names = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        uris: list[str] = []
    else:
        uris = names.value.get_values_for_type(x509.UniformResourceIdentifier)
    for uri in uris:
        if uri.lower().startswith(SPIFFE_SCHEME):
            return uri
    subject = parsed.subject.rfc4514_string()
    if subject:
        return subject
    der = parsed.public_bytes(serialization.Encoding.DER)
    return "sha256:" + hashlib.sha256(der).hexdigest()
