"""Runbook ``rotate_tls_certificate``: issue a new certificate and install it on the application's hosts.

Template: "Rotate TLS certificate". Destructive: installing replaces the live certificate, so the run
waits at an approval gate (a change task to approve) before that step. Steps: resolve the hosts, issue
the certificate, [gate], install it on every host, verify every host serves the new fingerprint.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from pydantic import Field

from flows.executors import Executor
from servicenow_blocks.cmdb import RelatedCI

from .base import ApplicationInputs, Runbook, RunbookContext, StepLog, StepResult, runbook_flow
from .steps import resolve_hosts


class Inputs(ApplicationInputs):
    common_name: str = Field(
        pattern=r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,}$",
        description="DNS name the certificate is for.",
        json_schema_extra={"fix": "set the template variable common_name to a DNS name such as portal.example.com"},
    )
    validity_days: int = Field(
        default=90, ge=1, le=398, json_schema_extra={"fix": "set validity_days between 1 and 398"}
    )


async def issue_certificate(log: StepLog, common_name: str, validity_days: int) -> StepResult:
    """A new key and certificate (self-signed here; a real deployment asks its CA in this step)."""
    # Imported here: the flow module's import path stays light (each flow run process imports it).
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=validity_days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    fingerprint = hashlib.sha256(pem).hexdigest()
    log(f"issued {common_name}, valid {validity_days} days, sha256:{fingerprint[:16]}…")
    return StepResult(
        pem, detail=f"Certificate for {common_name}, sha256:{fingerprint}, expires {cert.not_valid_after_utc:%Y-%m-%d}"
    )


async def install_certificate(
    log: StepLog, executor: Executor, hosts: list[RelatedCI], common_name: str, pem: bytes
) -> StepResult:
    failures = []
    for host in hosts:
        result = await executor.run(host.name, ["certctl", "install", common_name], stdin=pem)
        log(result.summary())
        if not result.ok:
            failures.append(result.summary())
    if failures:
        raise RuntimeError("; ".join(failures))
    return StepResult(detail=f"Installed on {len(hosts)} host(s)")


async def verify_certificate(
    log: StepLog, executor: Executor, hosts: list[RelatedCI], common_name: str, pem: bytes
) -> StepResult:
    expected = f"sha256:{hashlib.sha256(pem).hexdigest()}"
    wrong = []
    for host in hosts:
        result = await executor.run(host.name, ["certctl", "show", common_name])
        served = result.stdout.strip()
        log(f"{host.name}: {served or result.summary()}")
        if served != expected:
            wrong.append(host.name)
    if wrong:
        raise RuntimeError(f"hosts not serving the new certificate: {', '.join(wrong)}")
    return StepResult(detail=f"All {len(hosts)} host(s) serve {expected[:23]}…")


@runbook_flow(name="runbook-rotate-tls-certificate")
async def rotate_tls_certificate(inputs: Inputs, ctx: RunbookContext) -> str:
    hosts = await ctx.step(
        "Resolve hosts from the CMDB", resolve_hosts, ctx.client, inputs.cmdb_ci, inputs.cmdb_ci_name
    )
    pem = await ctx.step("Issue certificate", issue_certificate, inputs.common_name, inputs.validity_days)
    await ctx.gate(
        "Install certificate",
        f"Replace the live certificate for {inputs.common_name} on {len(hosts)} host(s): "
        f"{', '.join(h.name for h in hosts)}",
    )
    await ctx.step("Install certificate", install_certificate, ctx.executor, hosts, inputs.common_name, pem)
    await ctx.step("Verify certificate", verify_certificate, ctx.executor, hosts, inputs.common_name, pem)
    return f"Rotated the certificate for {inputs.common_name} on {len(hosts)} host(s)."


RUNBOOK = Runbook(
    name="rotate_tls_certificate",
    inputs=Inputs,
    flow=rotate_tls_certificate,
    templates=("Rotate TLS certificate", "rotate_tls_certificate"),
    description="Issue a certificate and install it on the application's hosts, after approval.",
    destructive=True,
)
