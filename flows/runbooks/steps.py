"""Steps shared by runbooks: resolving a CI's hosts, running a command on each host, health checks."""

from __future__ import annotations

import asyncio
import time

from flows.executors import CommandResult, Executor
from servicenow_blocks.client import AsyncServiceNowClient
from servicenow_blocks.cmdb import RelatedCI, related_cis

from .base import StepLog, StepResult

HOST_CLASSES = ("cmdb_ci_server", "cmdb_ci_vm_instance")


async def resolve_hosts(log: StepLog, client: AsyncServiceNowClient, ci_sys_id: str, ci_name: str) -> StepResult:
    """The servers an application runs on, through cmdb_rel_ci ("Runs on::Runs")."""
    traversal = await related_cis(client, ci_sys_id, rel_types=("Runs on::Runs",), classes=HOST_CLASSES, max_depth=2)
    hosts = [ci for ci in traversal.found if ci.class_name != "cmdb_ci_vm_instance"] or traversal.found
    if not hosts:
        raise RuntimeError(
            f"{ci_name or ci_sys_id} has no hosts in the CMDB (no 'Runs on::Runs' relationship to a server); "
            "add the relationship or set the change's Configuration item to the application"
        )
    log(f"{ci_name}: {len(hosts)} host(s): {', '.join(h.name for h in hosts)}")
    return StepResult(hosts, detail=f"Hosts: {', '.join(h.name for h in hosts)}")


async def on_each_host(
    log: StepLog, executor: Executor, hosts: list[RelatedCI], command: list[str], *, timeout_s: float = 300
) -> StepResult:
    """Run a command on every host at once; fail naming each host where it failed."""
    results: list[CommandResult] = await asyncio.gather(
        *(executor.run(h.name, command, timeout_s=timeout_s) for h in hosts)
    )
    for result in results:
        log(result.summary())
    failed = [r for r in results if not r.ok]
    if failed:
        raise RuntimeError("; ".join(r.summary() for r in failed))
    return StepResult(results, detail=f"`{' '.join(command)}` succeeded on {len(results)} host(s)")


async def wait_healthy(
    log: StepLog, executor: Executor, hosts: list[RelatedCI], service: str, *, timeout_s: float, interval_s: float = 1.0
) -> StepResult:
    """Poll ``servicectl status`` until every host reports healthy, or fail at the timeout."""
    deadline = time.monotonic() + timeout_s
    pending = list(hosts)
    while True:
        results = await asyncio.gather(*(executor.run(h.name, ["servicectl", "status", service]) for h in pending))
        pending = [h for h, r in zip(pending, results, strict=True) if not r.ok]
        if not pending:
            log(f"{service} healthy on {len(hosts)} host(s)")
            return StepResult(True, detail=f"{service} healthy on {len(hosts)} host(s)")
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"{service} not healthy after {timeout_s:.0f} s on: {', '.join(h.name for h in pending)}"
            )
        log(f"waiting for {service} on {', '.join(h.name for h in pending)}")
        await asyncio.sleep(interval_s)
