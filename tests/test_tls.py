"""The emulator's local CA: generation, reuse, renewal, and real TLS handshakes with Python's ssl."""

from __future__ import annotations

import ast
import datetime as dt
import ipaddress
import socket
import ssl
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509

from servicenow_emulator import tls as tls_module
from servicenow_emulator.tls import CA_COMMON_NAME, LocalTLS, ensure_local_ca


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _ipv6_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@contextmanager
def tls_echo_server(tls: LocalTLS, host: str = "127.0.0.1") -> Iterator[int]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls.server_cert, tls.server_key)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.listen()
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    with ctx.wrap_socket(conn, server_side=True) as tconn:
                        tconn.sendall(tconn.recv(1024))
                except (ssl.SSLError, OSError):
                    pass  # e.g. the client rejected our certificate

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        sock.close()


def _echo(port: int, ctx: ssl.SSLContext, server_hostname: str, host: str = "127.0.0.1") -> bytes:
    with (
        socket.create_connection((host, port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=server_hostname) as conn,
    ):
        conn.sendall(b"ping")
        return conn.recv(1024)


def test_generates_ca_and_server_cert(tmp_path: Path) -> None:
    tls = ensure_local_ca(tmp_path / "tls")
    for path in (tls.ca_cert, tls.server_cert, tls.server_key, tls.ca_key):
        assert path.is_file() and path.parent == tmp_path / "tls"
    for key in (tls.server_key, tls.ca_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert b"PRIVATE KEY" in key.read_bytes()

    ca = _cert(tls.ca_cert)
    assert ca.subject.rfc4514_string() == f"CN={CA_COMMON_NAME}"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign is True
    assert ca.not_valid_after_utc - ca.not_valid_before_utc >= dt.timedelta(days=3650)

    server = _cert(tls.server_cert)
    server.verify_directly_issued_by(ca)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    assert server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    validity = server.not_valid_after_utc - server.not_valid_before_utc
    assert dt.timedelta(days=365) <= validity <= dt.timedelta(days=366)


def test_reuses_existing_files(tmp_path: Path) -> None:
    first = ensure_local_ca(tmp_path)
    before = {p: p.read_bytes() for p in (first.ca_cert, first.ca_key, first.server_cert, first.server_key)}
    second = ensure_local_ca(tmp_path)
    assert second == first
    assert {p: p.read_bytes() for p in before} == before


def test_renews_server_cert_expiring_within_7_days(tmp_path: Path) -> None:
    year_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=360)
    old = ensure_local_ca(tmp_path, now=year_ago)  # server cert expires in ~5 days, CA in ~9 years
    ca_before, server_before = old.ca_cert.read_bytes(), old.server_cert.read_bytes()
    new = ensure_local_ca(tmp_path)
    assert new.ca_cert.read_bytes() == ca_before
    assert new.server_cert.read_bytes() != server_before
    assert _cert(new.server_cert).not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=300)
    assert stat.S_IMODE(new.server_key.stat().st_mode) == 0o600


def test_regenerates_everything_when_ca_is_unusable(tmp_path: Path) -> None:
    tls = ensure_local_ca(tmp_path)
    ca_before = tls.ca_cert.read_bytes()
    tls.ca_key.write_text("garbage")
    ensure_local_ca(tmp_path)
    assert tls.ca_cert.read_bytes() != ca_before
    _cert(tls.server_cert).verify_directly_issued_by(_cert(tls.ca_cert))


def test_client_trusting_only_the_ca_connects(tmp_path: Path) -> None:
    tls = ensure_local_ca(tmp_path)
    trusting = ssl.create_default_context(cafile=str(tls.ca_cert))
    with tls_echo_server(tls) as port:
        assert _echo(port, trusting, "127.0.0.1") == b"ping"
        assert _echo(port, trusting, "localhost") == b"ping"
        with pytest.raises(ssl.SSLCertVerificationError):
            _echo(port, trusting, "example.com")  # the name is checked, too
        with pytest.raises(ssl.SSLCertVerificationError):
            _echo(port, ssl.create_default_context(), "localhost")  # system trust store only


@pytest.mark.skipif(not _ipv6_available(), reason="no IPv6 loopback on this host")
def test_client_connects_over_ipv6_loopback(tmp_path: Path) -> None:
    tls = ensure_local_ca(tmp_path)
    with tls_echo_server(tls, host="::1") as port:
        assert _echo(port, ssl.create_default_context(cafile=str(tls.ca_cert)), "::1", host="::1") == b"ping"


def test_tls_module_imports_nothing_from_servicenow_blocks() -> None:
    tree = ast.parse(Path(tls_module.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert not any(name.split(".")[0] in {"servicenow_blocks", "flows"} for name in imported)
