"""Runbook ``rotate_tls_certificate``: issue a new key and certificate and install them on the application's hosts.

Template: "Rotate TLS certificate". Destructive: installing replaces the live key and certificate, so the
run waits at an approval gate (a change task to approve) before that step. Steps: resolve the hosts; stage
a new key + certificate on every host (not live, nothing changes for clients); [gate]; install: switch
each host's live pair to the staged one atomically; verify: every host's live certificate is the staged
fingerprint and its live key matches it. The private key goes to the hosts only: Prefect results, logs,
work notes and the attached log carry the fingerprint and expiry.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json

from pydantic import Field

from flows.executors import Executor
from servicenow_blocks.cmdb import RelatedCI
from servicenow_blocks.glide_time import format_glide_time

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


async def stage_certificate(
    log: StepLog, executor: Executor, hosts: list[RelatedCI], common_name: str, validity_days: int
) -> StepResult:
    """Issue a new key and certificate and stage both on every host, next to the live pair (not live yet).

    Self-signed here; a real deployment asks its CA in this step (Vault PKI, ACME, ...). The private key
    exists only in this function's memory and in the hosts' staging area (mode 0600): the step returns and
    logs the certificate's fingerprint and expiry, never the key, so no task result, log, work note or
    attachment holds it.
    """
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
    bundle = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ) + cert.public_bytes(serialization.Encoding.PEM)
    del key
    fingerprint = f"sha256:{cert.fingerprint(hashes.SHA256()).hex()}"
    expires = format_glide_time(cert.not_valid_after_utc)
    log(f"issued {common_name}, valid {validity_days} days, {fingerprint[:23]}…, expires {expires} UTC")
    try:
        results = await asyncio.gather(
            *(executor.run(h.name, ["certctl", "stage", common_name], stdin=bundle) for h in hosts)
        )
    finally:
        del bundle
    failures = []
    for result in results:
        log(_without_keys(result.summary()))
        staged = _json(result.stdout).get("fingerprint")
        if not result.ok:
            failures.append(_without_keys(result.summary()))
        elif staged != fingerprint:
            failures.append(f"{result.host}: staged {staged or 'nothing'}, not {fingerprint[:23]}…")
    if failures:
        raise RuntimeError("; ".join(failures))
    return StepResult(
        {"fingerprint": fingerprint, "not_after": expires},
        detail=f"Staged on {len(hosts)} host(s), not live yet: certificate for {common_name}, {fingerprint}, "
        f"expires {expires} UTC; its private key was written only to the hosts (mode 0600)",
    )


async def install_certificate(
    log: StepLog, executor: Executor, hosts: list[RelatedCI], common_name: str, fingerprint: str
) -> StepResult:
    """Make the staged key + certificate live on each host, in one atomic switch per host."""
    failures = []
    for host in hosts:
        result = await executor.run(host.name, ["certctl", "install", common_name, "--fingerprint", fingerprint])
        log(_without_keys(result.summary()))
        if not result.ok:
            failures.append(_without_keys(result.summary()))
    if failures:
        raise RuntimeError("; ".join(failures))
    return StepResult(detail=f"Installed {fingerprint[:23]}… on {len(hosts)} host(s)")


async def verify_certificate(
    log: StepLog, executor: Executor, hosts: list[RelatedCI], common_name: str, fingerprint: str
) -> StepResult:
    """Each host's live certificate is the staged one, and its live private key matches it (mode 0600)."""
    wrong = []
    for host in hosts:
        result = await executor.run(host.name, ["certctl", "show", common_name])
        live = _json(result.stdout)
        if not result.ok or not live:
            problem = _without_keys(result.summary())
        elif live.get("fingerprint") != fingerprint:
            problem = f"serves {str(live.get('fingerprint'))[:23]}…, not {fingerprint[:23]}…"
        elif not live.get("key_matches_cert"):
            problem = "the live private key does not match the live certificate"
        elif live.get("key_mode") != "0600":
            problem = f"the live private key has mode {live.get('key_mode')}, not 0600"
        else:
            problem = ""
        log(f"{host.name}: {problem or 'live ' + fingerprint[:23] + '…, key matches, mode 0600'}")
        if problem:
            wrong.append(f"{host.name}: {problem}")
    if wrong:
        raise RuntimeError("; ".join(wrong))
    return StepResult(detail=f"All {len(hosts)} host(s) serve {fingerprint[:23]}… with a matching private key")


def _json(text: str) -> dict:
    try:
        value = json.loads(text.strip().splitlines()[-1]) if text.strip() else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _without_keys(text: str) -> str:
    """Host output bound for logs and notes, withheld if it ever carries key material."""
    return "(output withheld: it contained key material)" if "PRIVATE KEY" in text else text


@runbook_flow(name="runbook-rotate-tls-certificate")
async def rotate_tls_certificate(inputs: Inputs, ctx: RunbookContext) -> str:
    hosts = await ctx.step(
        "Resolve hosts from the CMDB", resolve_hosts, ctx.client, inputs.cmdb_ci, inputs.cmdb_ci_name
    )
    staged = await ctx.step(
        "Stage certificate", stage_certificate, ctx.executor, hosts, inputs.common_name, inputs.validity_days
    )
    fingerprint = staged["fingerprint"]
    await ctx.gate(
        "Install certificate",
        f"Replace the live certificate for {inputs.common_name} on {len(hosts)} host(s): "
        f"{', '.join(h.name for h in hosts)} with the staged {fingerprint[:23]}…",
    )
    await ctx.step("Install certificate", install_certificate, ctx.executor, hosts, inputs.common_name, fingerprint)
    await ctx.step("Verify certificate", verify_certificate, ctx.executor, hosts, inputs.common_name, fingerprint)
    return (
        f"Rotated the certificate for {inputs.common_name} on {len(hosts)} host(s). "
        f"Live: {fingerprint}, expires {staged['not_after']} UTC."
    )


RUNBOOK = Runbook(
    name="rotate_tls_certificate",
    inputs=Inputs,
    flow=rotate_tls_certificate,
    templates=("Rotate TLS certificate", "rotate_tls_certificate"),
    description="Stage a new key and certificate on the application's hosts, then make them live after approval.",
    destructive=True,
)
