"""A local CA and a server certificate for the emulator's HTTPS listener (localhost, 127.0.0.1, ::1).

``ensure_local_ca(directory)`` creates them once and reuses them while they stay valid for more than
seven days. Clients trust ``ca_cert`` (e.g. ``httpx.Client(verify=str(tls.ca_cert))``,
``NODE_EXTRA_CA_CERTS``); the system trust store does not know this CA. Private keys are written 0600.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CA_COMMON_NAME", "LocalTLS", "ensure_local_ca"]

CA_COMMON_NAME = "prefect-servicenow emulator local CA"
CA_VALIDITY = dt.timedelta(days=3650)
SERVER_VALIDITY = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=7)
BACKDATE = dt.timedelta(hours=1)
SERVER_DNS = ("localhost",)
SERVER_IPS = ("127.0.0.1", "::1")

CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
SERVER_CERT_FILE = "server.pem"
SERVER_KEY_FILE = "server-key.pem"


@dataclass(frozen=True)
class LocalTLS:
    """Paths of the PEM files; ``server_cert`` + ``server_key`` go to the listener, ``ca_cert`` to clients."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    ca_key: Path


def ensure_local_ca(directory: Path | str, *, now: dt.datetime | None = None) -> LocalTLS:
    """Create (or reuse) the local CA and the localhost server certificate under ``directory``.

    The CA is regenerated (and with it the server certificate) when missing, unreadable or expiring
    within 7 days; the server certificate alone when it is missing, expiring, or not issued by the CA.
    ``now`` overrides the clock (tests).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = now or dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    paths = LocalTLS(
        ca_cert=directory / CA_CERT_FILE,
        server_cert=directory / SERVER_CERT_FILE,
        server_key=directory / SERVER_KEY_FILE,
        ca_key=directory / CA_KEY_FILE,
    )
    with _locked(directory):
        ca = _load_ca(paths, now)
        if ca is None:
            ca = _write_ca(paths, now)
            _write_server(paths, ca, now)
        elif not _server_ok(paths, ca[0], now):
            _write_server(paths, ca, now)
    return paths


# ---------------------------------------------------------------------------------------------- internals


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialise concurrent callers (several test workers) on POSIX; a no-op elsewhere."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fd = os.open(directory / ".lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.chmod(path, mode)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _valid_until(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= now and cert.not_valid_after_utc - RENEW_BEFORE > now


def _load_ca(paths: LocalTLS, now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    try:
        cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
        key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        return None
    if not _valid_until(cert, now):
        return None
    return cert, key


def _server_ok(paths: LocalTLS, ca_cert: x509.Certificate, now: dt.datetime) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(paths.server_cert.read_bytes())
        key = serialization.load_pem_private_key(paths.server_key.read_bytes(), password=None)
        cert.verify_directly_issued_by(ca_cert)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    names_ok = set(SERVER_DNS) <= set(san.get_values_for_type(x509.DNSName)) and {
        ipaddress.ip_address(ip) for ip in SERVER_IPS
    } <= set(san.get_values_for_type(x509.IPAddress))
    return names_ok and key.public_key() == cert.public_key() and _valid_until(cert, now)


def _write_ca(paths: LocalTLS, now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_atomic(paths.ca_key, _key_pem(key), 0o600)
    _write_atomic(paths.ca_cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert, key


def _write_server(paths: LocalTLS, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], now: dt.datetime) -> None:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    not_after = min(now + SERVER_VALIDITY, ca_cert.not_valid_after_utc)
    san = [x509.DNSName(n) for n in SERVER_DNS] + [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVER_IPS]
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_atomic(paths.server_key, _key_pem(key), 0o600)
    _write_atomic(paths.server_cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
