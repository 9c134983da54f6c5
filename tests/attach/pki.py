"""A throwaway PKI for TLS tests: a CA, a server certificate for 127.0.0.1, client certs.

An MKE client bundle authenticates with a client certificate over HTTPS and trusts the
cluster CA; these certificates let the fake API server demand exactly that.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pair:
    cert_pem: bytes
    key_pem: bytes

    def b64(self) -> tuple[str, str]:
        return base64.b64encode(self.cert_pem).decode(), base64.b64encode(self.key_pem).decode()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class CA:
    def __init__(self, cn: str = "test-ca") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        self.cert = (
            x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, cn: str, *, server: bool) -> Pair:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(self.cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ), critical=False)
        )
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return Pair(cert.public_bytes(serialization.Encoding.PEM), _pem_key(key))


def server_context(ca: CA, server: Pair, tmp: Path) -> ssl.SSLContext:
    """TLS for the fake API server: its certificate, and client certificates of ``ca``."""
    cert, key, cafile = tmp / "server.crt", tmp / "server.key", tmp / "ca.crt"
    cert.write_bytes(server.cert_pem)
    key.write_bytes(server.key_pem)
    cafile.write_bytes(ca.pem)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(cafile)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def cert_dir(ca: CA, path: Path, cn: str = "server") -> Path:
    """``path`` holding ``tls.crt``/``tls.key`` for 127.0.0.1 signed by ``ca``, as a mounted
    kubernetes.io/tls Secret (what shared.tls.ServingCert reads)."""
    pair = ca.issue(cn, server=True)
    path.mkdir(parents=True, exist_ok=True)
    (path / "tls.crt").write_bytes(pair.cert_pem)
    (path / "tls.key").write_bytes(pair.key_pem)
    return path
