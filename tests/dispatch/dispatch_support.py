"""Helpers for the dispatch tests: changes in a known shape, signed webhooks, Prefect run lookups."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun

from flows.local_stack import LocalStack
from flows.stack_ops import flow_runs_for, new_standard_change, wait_for
from servicenow_blocks import signing

RESTART = "Restart application service"
ROTATE = "Rotate TLS certificate"
PATCH_HOSTS = "Patch Linux hosts"  # a template without a runbook
RUN_DEPLOYMENT = "run-change-request/run-change-request"
POLL_DEPLOYMENT = "poll-change-requests/poll-change-requests"


def unique(text: str) -> str:
    return f"{text} [{uuid.uuid4().hex[:8]}]"


def restart_change(stack: LocalStack, app: str = "wiki", **variables: str) -> dict[str, Any]:
    """A 'Restart application service' change for ``app`` (one host for wiki and payments-worker)."""
    values = {"service_name": app, "restart_timeout_s": "10", **variables}
    return new_standard_change(stack, RESTART, app, unique(f"Restart {app}"), values)


def rotate_change(stack: LocalStack, app: str = "wiki", common_name: str = "wiki.example.com") -> dict[str, Any]:
    return new_standard_change(
        stack, ROTATE, app, unique(f"Rotate {common_name}"), {"common_name": common_name, "validity_days": "30"}
    )


# --- the webhook, as ServiceNow sends it --------------------------------------------------------------------
def receiver_url(stack: LocalStack, path: str = "/servicenow/webhook") -> str:
    return f"http://127.0.0.1:{stack.receiver_port}{path}"


def payload(record: dict[str, Any], table: str = "change_request", **changed: str) -> dict[str, Any]:
    """The Business Rule's payload for an update of ``record`` (a change or a change task)."""
    return {
        "table": table,
        "sys_id": record["sys_id"],
        "number": record.get("number", ""),
        "operation": "update",
        "sys_updated_on": record.get("sys_updated_on", ""),
        "sys_mod_count": str(record.get("sys_mod_count", "1")),
        "changed": changed or {"approval": "approved"},
        "rule": "Prefect webhook: change approved",
    }


def signed_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    return signing.build_headers(secret, body, timestamp=int(time.time()) if timestamp is None else timestamp)


def post_webhook(
    stack: LocalStack,
    body: dict[str, Any] | bytes,
    *,
    secret: str | None = None,
    timestamp: int | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST a body to the live receiver, signed with the stack's secret unless ``headers`` say otherwise."""
    raw = body if isinstance(body, bytes) else signing.canonical_body(body)
    sent = signed_headers(secret or stack.secret, raw, timestamp) if headers is None else headers
    return httpx.post(receiver_url(stack), content=raw, headers=sent, timeout=30)


# --- Prefect ------------------------------------------------------------------------------------------------
def dispatched_runs(number: str) -> list[FlowRun]:
    """The run-change-request runs of a change (its subflows carry no deployment)."""
    return [run for run in flow_runs_for(number) if run.deployment_id is not None]


def read_run(run_id: str | uuid.UUID) -> FlowRun:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(uuid.UUID(str(run_id)))


def wait_run(run_id: str | uuid.UUID, states: set[str] | None = None, timeout_s: float = 90) -> FlowRun:
    """The flow run once its state type is one of ``states`` (default: any final state)."""
    wanted = states or {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}

    def check() -> FlowRun | None:
        run = read_run(run_id)
        return run if run.state and run.state.type.value in wanted else None

    return wait_for(check, timeout_s, f"flow run {run_id} to reach {sorted(wanted)}")


def run_result(run: FlowRun) -> Any:
    """The persisted return value of a completed run."""
    assert run.state is not None
    return run.state.result(raise_on_failure=False)


def run_logs(run_id: str | uuid.UUID) -> list[str]:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[uuid.UUID(str(run_id))])))
    return [log.message for log in logs]


def artifacts_of(run_id: str | uuid.UUID) -> list[Any]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(str(run_id))]))
        )


def outbound_deliveries(stack: LocalStack, sys_id: str) -> list[dict[str, Any]]:
    """The emulator's log of webhook deliveries for a record (sys_outbound_http_log)."""
    with stack.sn() as sn:
        rows = (
            sn.get(
                "/api/now/table/sys_outbound_http_log",
                params={
                    "sysparm_query": f"source_record={sys_id}^ORDERBYsys_created_on",
                    "sysparm_fields": "response_status,response_body,source_business_rule,attempt,error,delivery_id",
                },
            )
            .raise_for_status()
            .json()["result"]
        )
    for row in rows:
        try:
            row["response"] = json.loads(row.get("response_body") or "null")
        except json.JSONDecodeError:
            row["response"] = None
    return rows
