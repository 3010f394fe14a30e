"""The certificate rotation's steps against sandboxed hosts (``LocalExecutor`` + ``simhost certctl``), without
the stack: the key and certificate are staged on every host before the gate, made live atomically after
it, and verified as a matching pair; the private key never appears in what the steps return or log."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from flows.executors import LocalExecutor
from flows.runbooks.base import StepResult
from flows.runbooks.rotate_tls_certificate import install_certificate, stage_certificate, verify_certificate
from servicenow_blocks.cmdb import RelatedCI

NAME = "portal.example.com"


def hosts(*names: str) -> list[RelatedCI]:
    return [RelatedCI({"sys_id": str(i), "name": n}, 1, "Runs on::Runs") for i, n in enumerate(names)]


def key_body(pem: bytes) -> list[str]:
    """The base64 lines of a private key PEM (long enough not to match anything by chance)."""
    return [line for line in pem.decode().splitlines() if len(line) >= 40 and not line.startswith("-----")]


def public_der(obj) -> bytes:
    return obj.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def check_pair(directory: Path) -> str:
    """The directory's key matches its certificate and is mode 0600; returns the certificate's fingerprint."""
    key_path = directory / "key.pem"
    assert key_path.stat().st_mode & 0o777 == 0o600
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    cert = x509.load_pem_x509_certificate((directory / "cert.pem").read_bytes())
    assert public_der(key.public_key()) == public_der(cert.public_key())
    assert cert.subject.rfc4514_string() == f"CN={NAME}"
    return f"sha256:{cert.fingerprint(hashes.SHA256()).hex()}"


def certctl(root: Path, host: str, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "flows.executors.simhost", "--root", str(root), "--host", host, "certctl", *args]
    return subprocess.run(argv, input=stdin, capture_output=True, timeout=60)


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    return tmp_path / "hosts"


def run(coroutine):
    return asyncio.run(coroutine)


def test_stage_then_install_makes_a_matching_key_and_certificate_live(sandbox: Path) -> None:
    targets = hosts("web-01", "web-02")
    executor = LocalExecutor(sandbox)
    lines: list[str] = []

    staged = run(stage_certificate(lines.append, executor, targets, NAME, 30))
    fingerprint = staged.value["fingerprint"]
    assert set(staged.value) == {"fingerprint", "not_after"}
    for host in ("web-01", "web-02"):
        store = sandbox / host / "certs"
        assert check_pair(store / "staged" / NAME) == fingerprint
        assert not (store / "live" / NAME).exists()  # staging changes nothing for clients
        assert (store / "staged").stat().st_mode & 0o777 == 0o700
    key_lines = key_body((sandbox / "web-01" / "certs" / "staged" / NAME / "key.pem").read_bytes())
    assert (sandbox / "web-02" / "certs" / "staged" / NAME / "key.pem").read_bytes() == (
        sandbox / "web-01" / "certs" / "staged" / NAME / "key.pem"
    ).read_bytes()  # one certificate for the name, behind the load balancer

    installed = run(install_certificate(lines.append, executor, targets, NAME, fingerprint))
    verified = run(verify_certificate(lines.append, executor, targets, NAME, fingerprint))
    assert verified.detail == f"All 2 host(s) serve {fingerprint[:23]}… with a matching private key"
    for host in ("web-01", "web-02"):
        store = sandbox / host / "certs"
        live = store / "live" / NAME
        assert live.is_symlink() and check_pair(live) == fingerprint
        assert not (store / "staged" / NAME).exists()

    # Nothing the steps hand to Prefect (results, details, log lines) carries the key.
    said = json.dumps([staged.value, staged.detail, installed.detail, verified.detail, lines])
    assert "PRIVATE KEY" not in said and not any(line in said for line in key_lines)
    assert fingerprint in staged.detail and "mode 0600" in staged.detail


def test_a_second_rotation_keeps_the_previous_pair_and_a_retried_install_is_a_no_op(sandbox: Path) -> None:
    targets = hosts("web-01")
    executor = LocalExecutor(sandbox)
    log: list[str] = []
    first = run(stage_certificate(log.append, executor, targets, NAME, 30)).value["fingerprint"]
    run(install_certificate(log.append, executor, targets, NAME, first))
    second = run(stage_certificate(log.append, executor, targets, NAME, 30)).value["fingerprint"]
    assert second != first
    live = sandbox / "web-01" / "certs" / "live" / NAME
    assert check_pair(live) == first  # staged, not live, until the install
    run(install_certificate(log.append, executor, targets, NAME, second))
    again = run(install_certificate(log.append, executor, targets, NAME, second))  # a retried step
    assert isinstance(again, StepResult) and "already live" in log[-1]
    assert check_pair(live) == second
    assert check_pair(live.with_name(f"{NAME}.previous")) == first  # for a rollback
    third = run(stage_certificate(log.append, executor, targets, NAME, 30)).value["fingerprint"]
    run(install_certificate(log.append, executor, targets, NAME, third))
    releases = sorted(p.name for p in (sandbox / "web-01" / "certs" / "releases" / NAME).iterdir())
    assert releases == sorted([second.removeprefix("sha256:")[:32], third.removeprefix("sha256:")[:32]])


def test_install_refuses_a_staging_it_was_not_given(sandbox: Path) -> None:
    targets = hosts("web-01")
    executor = LocalExecutor(sandbox)
    log: list[str] = []
    run(stage_certificate(log.append, executor, targets, NAME, 30))
    with pytest.raises(RuntimeError, match=r"web-01: `certctl install .*` exited 1: certctl: the staged certificate"):
        run(install_certificate(log.append, executor, targets, NAME, "sha256:" + "0" * 64))
    assert not (sandbox / "web-01" / "certs" / "live" / NAME).exists()


def test_install_failure_names_the_host(sandbox: Path) -> None:
    targets = hosts("web-01", "web-02")
    executor = LocalExecutor(sandbox)
    log: list[str] = []
    fingerprint = run(stage_certificate(log.append, executor, targets, NAME, 30)).value["fingerprint"]
    (sandbox / "web-02" / "faults.json").write_text(json.dumps({"certctl": ["install"]}))
    with pytest.raises(RuntimeError, match=r"web-02: .* permission denied") as failed:
        run(install_certificate(log.append, executor, targets, NAME, fingerprint))
    assert "web-01" not in str(failed.value)
    assert check_pair(sandbox / "web-01" / "certs" / "live" / NAME) == fingerprint
    assert check_pair(sandbox / "web-02" / "certs" / "staged" / NAME) == fingerprint  # still staged: retry


def test_verify_catches_a_key_that_does_not_match_or_is_readable(sandbox: Path) -> None:
    targets = hosts("web-01")
    executor = LocalExecutor(sandbox)
    log: list[str] = []
    fingerprint = run(stage_certificate(log.append, executor, targets, NAME, 30)).value["fingerprint"]
    run(install_certificate(log.append, executor, targets, NAME, fingerprint))
    key_path = sandbox / "web-01" / "certs" / "live" / NAME / "key.pem"
    os.chmod(key_path, 0o644)
    with pytest.raises(RuntimeError, match="web-01: the live private key has mode 0644, not 0600"):
        run(verify_certificate(log.append, executor, targets, NAME, fingerprint))
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_path.write_bytes(other)
    with pytest.raises(RuntimeError, match="web-01: the live private key does not match the live certificate"):
        run(verify_certificate(log.append, executor, targets, NAME, fingerprint))
    with pytest.raises(RuntimeError, match=r"web-01: serves sha256:\w{16}…, not sha256:0000000000000000…"):
        run(verify_certificate(log.append, executor, targets, NAME, "sha256:" + "0" * 64))


def test_certctl_stage_checks_its_input_and_never_echoes_it(sandbox: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    r = certctl(sandbox, "web-01", "stage", NAME, stdin=key_pem)
    assert r.returncode == 2 and r.stderr.decode().strip() == "certctl: stdin has no PEM certificate"
    # A certificate for another key: refused, and the answer does not contain the key.
    staged = run(stage_certificate([].append, LocalExecutor(sandbox), hosts("web-02"), NAME, 30))
    other_cert_pem = (sandbox / "web-02" / "certs" / "staged" / NAME / "cert.pem").read_bytes()
    r = certctl(sandbox, "web-01", "stage", NAME, stdin=key_pem + other_cert_pem)
    assert r.returncode == 2 and b"does not match" in r.stderr
    for output in (r.stdout, r.stderr):
        assert b"PRIVATE KEY" not in output and not any(line.encode() in output for line in key_body(key_pem))
    assert not (sandbox / "web-01" / "certs" / "staged" / NAME).exists()
    assert staged.value["fingerprint"].startswith("sha256:")
    r = certctl(sandbox, "web-01", "install", NAME)
    assert r.returncode == 2 and b"--fingerprint" in r.stderr
