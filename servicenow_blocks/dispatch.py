"""Exactly-once dispatch: one flow run per change request and approval round, whoever sees it first.

The webhook receiver and the scheduled poll both call ``dispatch_change``. It asks Prefect for a run of
the ``run-change-request`` deployment with an idempotency key made of the ticket's sys_id and its
``approval_set`` time, which the platform stamps whenever approval becomes approved. A duplicated
webhook, a retried POST or a poll racing a webhook therefore get the same run; a ticket approved again
later gets a new key and can run again. ServiceNow stays the source of truth: the run re-reads the ticket.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .choices import Approval, ChangeState, ChangeType
from .client import AsyncServiceNowClient
from .query import Query

DEFAULT_DEPLOYMENT = "run-change-request/run-change-request"
DISPATCH_FIELDS = (
    "sys_id", "number", "state", "type", "approval", "approval_set", "correlation_id", "active", "on_hold",
    "std_change_producer_version", "category", "sys_updated_on",
)  # fmt: skip
RUNNABLE_STATES = (ChangeState.NEW, ChangeState.SCHEDULED)


def ready_changes_query(change_types: tuple[ChangeType, ...] = (ChangeType.STANDARD,)) -> Query:
    """Changes ready to run: of these types, New or Scheduled, approved, active, not on hold, not claimed."""
    return (
        Query()
        .in_("type", [t.value for t in change_types])
        .in_("state", [s.value for s in RUNNABLE_STATES])
        .eq("approval", Approval.APPROVED)
        .eq("active", True)
        .ne("on_hold", True)
        .is_empty("correlation_id")
        .order_by("sys_updated_on")
    )


def idempotency_key(ticket: dict[str, Any]) -> str:
    """Ticket plus approval round: the same for every path that sees the same approval."""
    round_marker = ticket.get("approval_set") or "first-approval"
    return f"servicenow:change_request:{ticket['sys_id']}:{round_marker}"


def why_not_runnable(ticket: dict[str, Any]) -> str | None:
    """None when the ticket may be dispatched; otherwise the reason, naming the field."""
    number = ticket.get("number") or ticket.get("sys_id")
    if ticket.get("approval") != Approval.APPROVED.value:
        return f"{number} is not approved (approval={ticket.get('approval')!r})"
    if str(ticket.get("active", "true")) == "false":
        return f"{number} is not active"
    if str(ticket.get("on_hold", "false")) == "true":
        return f"{number} is on hold"
    try:
        state = ChangeState(ticket.get("state"))
    except ValueError:
        return f"{number} has an unknown state {ticket.get('state')!r}"
    if state not in RUNNABLE_STATES:
        return f"{number} is in state {state.label}, not New or Scheduled"
    if ticket.get("correlation_id"):
        return f"{number} is already claimed by execution {ticket['correlation_id']}"
    return None


@dataclass
class DispatchResult:
    number: str
    sys_id: str
    dispatched: bool
    reason: str
    flow_run_id: str | None = None
    duplicate: bool = False
    idempotency_key: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


async def read_ticket(client: AsyncServiceNowClient, sys_id: str) -> dict[str, Any]:
    return await client.get("change_request", sys_id, fields=DISPATCH_FIELDS)


async def dispatch_change(
    ticket: dict[str, Any], *, deployment: str = DEFAULT_DEPLOYMENT, source: str = "poll"
) -> DispatchResult:
    """Create (or find) the one flow run for this ticket's approval round."""
    from prefect.deployments import arun_deployment

    number, sys_id = str(ticket.get("number", "")), str(ticket["sys_id"])
    reason = why_not_runnable(ticket)
    if reason:
        return DispatchResult(number, sys_id, False, reason)
    key = idempotency_key(ticket)
    asked_at = datetime.now(UTC)
    run = await arun_deployment(
        deployment,
        parameters={"sys_id": sys_id},
        idempotency_key=key,
        timeout=0,
        as_subflow=False,
        tags=["servicenow", f"change:{number}", f"dispatch:{source}"],
        flow_run_name=f"{number}",
    )
    # Prefect answers an existing key with the existing run, created before this request was made.
    duplicate = run.created is not None and run.created < asked_at
    return DispatchResult(
        number,
        sys_id,
        True,
        "already dispatched" if duplicate else f"dispatched by {source}",
        flow_run_id=str(run.id),
        duplicate=duplicate,
        idempotency_key=key,
    )
