"""Runbook ``restart_app_service``: restart an application's service on the hosts it runs on.

Template: "Restart application service". Inputs: the change's Configuration item (the application),
and the template variables ``service_name`` and ``restart_timeout_s``. Steps: resolve the hosts through
the CMDB, restart the service on each, wait until every host reports it healthy.
"""

from __future__ import annotations

from pydantic import Field

from .base import ApplicationInputs, Runbook, RunbookContext, runbook_flow
from .steps import on_each_host, resolve_hosts, wait_healthy


class Inputs(ApplicationInputs):
    service_name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9._@-]{0,63}$",
        description="The service unit to restart, e.g. payments-api.",
        json_schema_extra={"fix": "set the template variable service_name to a unit name such as payments-api"},
    )
    restart_timeout_s: int = Field(
        default=60,
        ge=5,
        le=900,
        description="Seconds to wait for the service to report healthy.",
        json_schema_extra={"fix": "set restart_timeout_s to a number of seconds between 5 and 900"},
    )


@runbook_flow(name="runbook-restart-app-service")
async def restart_app_service(inputs: Inputs, ctx: RunbookContext) -> str:
    hosts = await ctx.step(
        "Resolve hosts from the CMDB", resolve_hosts, ctx.client, inputs.cmdb_ci, inputs.cmdb_ci_name
    )
    await ctx.step(
        f"Restart {inputs.service_name}",
        on_each_host,
        ctx.executor,
        hosts,
        ["servicectl", "restart", inputs.service_name],
        retries=1,
        retry_delay_s=1.0,
    )
    await ctx.step(
        f"Health check {inputs.service_name}",
        wait_healthy,
        ctx.executor,
        hosts,
        inputs.service_name,
        timeout_s=inputs.restart_timeout_s,
    )
    return f"Restarted {inputs.service_name} on {len(hosts)} host(s) ({', '.join(h.name for h in hosts)}); all healthy."


RUNBOOK = Runbook(
    name="restart_app_service",
    inputs=Inputs,
    flow=restart_app_service,
    templates=("Restart application service", "restart_app_service"),
    description="Restart an application's service on its hosts, then check health.",
)
