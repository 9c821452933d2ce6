"""meshlens.tls without a server: which settings and files are refused (and how they are
named), how a change on disk is picked up, and whose identity a client certificate carries."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from meshlens.tls import RECHECK_SECONDS, CertificateFiles, TlsError, TlsFiles, sender_identity
from tests.tls_certs import Authority, write_atomically


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return Authority(tmp_path, "unit")


def test_cert_and_key_come_together_and_a_client_ca_needs_them(tmp_path: Path) -> None:
    cert, key, ca = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    assert TlsFiles.from_settings(None, None, None) is None
    with pytest.raises(TlsError, match="MESHLENS_TLS_CERT_FILE is set but MESHLENS_TLS_KEY_FILE"):
        TlsFiles.from_settings(cert, None, None)
    with pytest.raises(TlsError, match="MESHLENS_TLS_KEY_FILE is set but MESHLENS_TLS_CERT_FILE"):
        TlsFiles.from_settings(None, key, None)
    with pytest.raises(TlsError, match="MESHLENS_TLS_CLIENT_CA_FILE needs"):
        TlsFiles.from_settings(None, None, ca)
    assert TlsFiles.from_settings(cert, key, ca) == TlsFiles(cert, key, ca)


def test_unusable_files_are_refused_with_the_file_named(authority: Authority) -> None:
    server = authority.issue("server", "meshlens", server=True)
    other = authority.issue("other", "someone-else")
    folder = authority.folder
    cases = [
        (TlsFiles(folder / "missing.pem", server.key), "missing.pem: No such file"),
        (TlsFiles(server.key, server.key), "server.key: no PEM certificate"),
        (TlsFiles(server.cert, server.cert), "server.pem: not a PEM private key"),
        (TlsFiles(server.cert, other.key), "other.key is not the key of the certificate"),
        (TlsFiles(server.cert, server.key, server.key), "server.key: no PEM certificate"),
    ]
    for files, message in cases:
        with pytest.raises(TlsError, match=message):
            CertificateFiles(files)


def test_an_encrypted_key_is_refused(authority: Authority) -> None:
    from cryptography.hazmat.primitives import serialization

    server = authority.issue("server", "meshlens", server=True)
    key = serialization.load_pem_private_key(server.key.read_bytes(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    server.key.write_bytes(encrypted)
    with pytest.raises(TlsError, match="encrypted"):
        CertificateFiles(TlsFiles(server.cert, server.key))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_changed_files_are_loaded_and_a_half_replaced_pair_keeps_the_old_one(
    authority: Authority, caplog: pytest.LogCaptureFixture
) -> None:
    first = authority.issue("server", "meshlens", server=True)
    clock = Clock()
    files = CertificateFiles(TlsFiles(first.cert, first.key), clock)
    assert files.current().serial == first.serial

    second = authority.issue("server", "meshlens", server=True)
    assert files.current().serial == first.serial  # checked at most every RECHECK_SECONDS
    clock.now += RECHECK_SECONDS
    loaded = files.current()
    assert (loaded.serial, loaded.version) == (second.serial, 2)

    stray = authority.issue("stray", "meshlens", server=True)
    write_atomically(first.cert, stray.cert.read_bytes())  # the certificate without its key
    clock.now += RECHECK_SECONDS
    with caplog.at_level(logging.WARNING, logger="meshlens.tls"):
        assert files.current().serial == second.serial
    assert "cannot be used" in caplog.text
    assert "is not the key of the certificate" in caplog.text

    write_atomically(first.key, stray.key.read_bytes())  # and then its key
    clock.now += RECHECK_SECONDS
    assert files.current().serial == stray.serial


def test_the_identity_is_the_spiffe_id_else_the_subject(authority: Authority) -> None:
    spiffe = authority.issue(
        "cart", "cart", organization="shop", spiffe_id="spiffe://cluster.local/ns/shop/sa/cart"
    )
    plain = authority.issue("payments", "payments", organization="shop")
    assert sender_identity(spiffe.cert.read_bytes()) == "spiffe://cluster.local/ns/shop/sa/cart"
    behind = authority.issue(
        "web", "web", other_uris=("https://web.example/",), spiffe_id="spiffe://td/ns/a/sa/web"
    )
    assert sender_identity(behind.cert.read_bytes()) == "spiffe://td/ns/a/sa/web"
    no_spiffe = authority.issue("legacy", "legacy", other_uris=("https://legacy.example/",))
    assert sender_identity(no_spiffe.cert.read_bytes()) == "CN=legacy"
    assert sender_identity(plain.cert.read_bytes()) == "CN=payments,O=shop"
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    der = x509.load_pem_x509_certificate(plain.cert.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    assert sender_identity(der) == "CN=payments,O=shop"


def test_client_certificates_stand_in_for_ingest_tokens_beyond_loopback(tmp_path: Path) -> None:
    from meshlens.serve import refuse_open_doors
    from meshlens.settings import Settings

    people = {"host": "0.0.0.0", "api_tokens": "read:a-read-token-of-16-chars"}
    with pytest.raises(SystemExit, match="MESHLENS_TLS_CLIENT_CA_FILE"):
        refuse_open_doors(Settings(**people))
    refuse_open_doors(Settings(**people, tls_client_ca_file=tmp_path / "ca.pem"))


def test_listening_beyond_loopback_without_tls_is_warned_about(tmp_path: Path) -> None:
    from meshlens.serve import clear_text_warning
    from meshlens.settings import Settings

    warning = clear_text_warning(Settings(host="0.0.0.0"))
    assert warning is not None
    assert "MESHLENS_TLS_CERT_FILE" in warning
    assert clear_text_warning(Settings(host="127.0.0.1")) is None
    over_tls = {"tls_cert_file": tmp_path / "c.pem", "tls_key_file": tmp_path / "k.pem"}
    assert clear_text_warning(Settings(host="0.0.0.0", **over_tls)) is None
