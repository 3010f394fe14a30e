"""Approval gates: a destructive step waits for a ServiceNow approval on a change task.

The gate is a ``change_task`` on the change, with ``approval=requested`` and a correlation id naming the
waiting flow run and step. People approve or reject it in ServiceNow. The decision reaches the suspended
flow run through the webhook (a Business Rule on change_task), through the scheduled poll, or through
Prefect's own resume with run input; whichever comes first resumes the run, and the others find it no
longer paused.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field

from .choices import Approval, ChangeState, ChangeTaskState
from .client import AsyncServiceNowClient
from .query import Query

GATE_PREFIX = "prefect-gate:"
GATE_DISPLAY = "Prefect approval gate"
GATE_FIELDS = (
    "sys_id", "number", "approval", "state", "correlation_id", "change_request", "change_request.number",
    "change_request.state", "active",
)  # fmt: skip
_SLUG = re.compile(r"[^a-z0-9]+")


class GateDecision(BaseModel):
    """The run input a gate waits for (also the form shown by Prefect's UI on resume)."""

    approved: bool = Field(description="True to run the destructive step, False to stop and close unsuccessful.")
    decided_by: str = Field(default="", description="Who decided (a ServiceNow user or 'prefect-ui').")
    comment: str = Field(default="", description="Why.")


def step_slug(step: str) -> str:
    return _SLUG.sub("-", step.lower()).strip("-")[:60] or "step"


def gate_correlation(flow_run_id: str, step: str) -> str:
    return f"{GATE_PREFIX}{flow_run_id}:{step_slug(step)}"


@dataclass(frozen=True)
class GateRef:
    flow_run_id: UUID
    step_slug: str


def parse_gate_correlation(correlation_id: str | None) -> GateRef | None:
    if not correlation_id or not correlation_id.startswith(GATE_PREFIX):
        return None
    body = correlation_id[len(GATE_PREFIX) :]
    run_id, _, slug = body.partition(":")
    try:
        return GateRef(UUID(run_id), slug)
    except ValueError:
        return None


async def open_gate(
    client: AsyncServiceNowClient,
    change: dict[str, Any],
    *,
    flow_run_id: str,
    step: str,
    description: str,
) -> dict[str, Any]:
    """The gate's change task, created once (look before write on its correlation id)."""
    correlation = gate_correlation(flow_run_id, step)
    existing = await client.first("change_task", Query().eq("correlation_id", correlation), fields=GATE_FIELDS)
    if existing:
        return existing
    values = {
        "change_request": change["sys_id"],
        "short_description": f"Approve '{step}' for {change.get('number', '')}",
        "description": description,
        "change_task_type": "review",
        "approval": Approval.REQUESTED.value,
        "state": ChangeTaskState.OPEN.value,
        "correlation_id": correlation,
        "correlation_display": GATE_DISPLAY,
    }
    if change.get("assignment_group"):
        values["assignment_group"] = change["assignment_group"]
    return await client.create(
        "change_task", values, fields=GATE_FIELDS, correlation=Query().eq("correlation_id", correlation)
    )


async def close_gate(client: AsyncServiceNowClient, task: dict[str, Any], decision: GateDecision) -> dict[str, Any]:
    """Close the gate task with the outcome, so that no later poll resumes the run again."""
    if str(task.get("state")) == ChangeTaskState.CLOSED.value:
        return task
    outcome = "approved" if decision.approved else "rejected"
    return await client.update(
        "change_task",
        task["sys_id"],
        {
            "state": ChangeTaskState.CLOSED.value,
            "close_code": "successful" if decision.approved else "unsuccessful",
            "close_notes": f"Gate {outcome} by {decision.decided_by or 'unknown'}. {decision.comment}".strip(),
        },
        fields=GATE_FIELDS,
    )


def decided_gates_query() -> Query:
    """Open gate tasks whose approval has been decided in ServiceNow."""
    return (
        Query()
        .starts_with("correlation_id", GATE_PREFIX)
        .in_("approval", [Approval.APPROVED.value, Approval.REJECTED.value])
        .eq("active", True)
    )


def abandoned_gates_query() -> Query:
    """Open, undecided gate tasks whose change was canceled or closed while its run waited."""
    return (
        Query()
        .starts_with("correlation_id", GATE_PREFIX)
        .eq("approval", Approval.REQUESTED.value)
        .eq("active", True)
        .in_("change_request.state", [ChangeState.CANCELED.value, ChangeState.CLOSED.value])
    )


def abandonment_decision(task: dict[str, Any], decided_by: str = "servicenow") -> GateDecision:
    """The answer that ends a run whose change went away while it waited at this gate."""
    try:
        label = ChangeState(task.get("change_request.state")).label.lower()
    except ValueError:
        label = f"moved to state {task.get('change_request.state')!r}"
    change = task.get("change_request.number") or "the change"
    return GateDecision(approved=False, decided_by=decided_by, comment=f"{change} was {label} while waiting")


def gates_to_resume_query() -> Query:
    """What the poll resumes: gates decided in ServiceNow, and undecided gates whose change went away."""
    return decided_gates_query() | abandoned_gates_query()


def poll_decision(task: dict[str, Any], decided_by: str) -> GateDecision:
    """The task's ServiceNow decision; for an undecided gate (its change went away), the abandonment."""
    return decision_from_task(task, decided_by) or abandonment_decision(task, decided_by)


def decision_from_task(task: dict[str, Any], decided_by: str = "servicenow") -> GateDecision | None:
    approval = task.get("approval")
    if approval not in (Approval.APPROVED.value, Approval.REJECTED.value):
        return None
    return GateDecision(
        approved=approval == Approval.APPROVED.value,
        decided_by=decided_by,
        comment=f"{task.get('number', 'gate task')} {approval} in ServiceNow",
    )


async def _gate_answered(client: Any, ref: GateRef) -> bool:
    """Whether the run already has an answer for this gate (Prefect keeps a suspension's run input by key)."""
    from prefect.exceptions import ObjectNotFound

    for state_name in ("suspended", "paused"):
        try:
            await client.read_flow_run_input(ref.flow_run_id, f"{state_name}-gate-{ref.step_slug}-response")
            return True
        except ObjectNotFound:
            continue
    return False


async def resume_gate(
    task: dict[str, Any],
    decided_by: str = "servicenow",
    wait_for_suspension_s: float = 8.0,
    decision: GateDecision | None = None,
) -> tuple[bool, str]:
    """Resume the flow run waiting on this gate task with its ServiceNow decision (or ``decision``);
    (resumed, reason).

    The decision can be faster than the run: between creating the gate task and suspending, the run is
    still running. Then this waits (up to ``wait_for_suspension_s``, under the Business Rule's 10 s HTTP
    timeout) for the suspension instead of dropping the decision until the next poll.
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.flow_runs import NotPausedError, aresume_flow_run

    ref = parse_gate_correlation(task.get("correlation_id"))
    if ref is None:
        return False, f"{task.get('number')} is not a Prefect approval gate"
    decision = decision or decision_from_task(task, decided_by)
    if decision is None:
        return False, f"{task.get('number')} is not decided yet (approval={task.get('approval')!r})"
    deadline = time.monotonic() + wait_for_suspension_s
    while True:
        try:
            await aresume_flow_run(ref.flow_run_id, run_input=decision.model_dump())
        except ObjectNotFound:
            return False, f"flow run {ref.flow_run_id} does not exist"
        except NotPausedError:
            async with get_client() as client:
                run = await client.read_flow_run(ref.flow_run_id)
                on_its_way = run.state is not None and run.state.is_running() and not await _gate_answered(client, ref)
            if not on_its_way or time.monotonic() >= deadline:
                return False, f"flow run {ref.flow_run_id} is not waiting any more"
            await asyncio.sleep(0.25)
            continue
        return True, f"flow run {ref.flow_run_id} resumed ({'approved' if decision.approved else 'rejected'})"
