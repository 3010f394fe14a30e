"""Exactly-once dispatch: one flow run per change request and approval round, whoever sees it first.

The webhook receiver and the scheduled poll both call ``dispatch_change``. It asks Prefect for a run of
the ``run-change-request`` deployment (one ``create_flow_run`` request, the deployment's id being looked up
once) with an idempotency key made of the ticket's sys_id and its ``approval_set`` time, which the
platform stamps whenever approval becomes approved. A duplicated webhook, a retried POST or a poll
racing a webhook therefore get the same run; a ticket approved again later gets a new key and can run
again. ServiceNow stays the source of truth: the run re-reads the ticket.

A change approved ahead of its planned window (``start_date`` more than ``EARLY_START`` away) gets its run
scheduled for the planned start, so nobody has to approve it again when the window opens.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .choices import Approval, ChangeState, ChangeType
from .client import AsyncServiceNowClient
from .glide_time import format_glide_time, parse_glide_time
from .query import Query

DEFAULT_DEPLOYMENT = "run-change-request/run-change-request"
DISPATCH_FIELDS = (
    "sys_id", "number", "state", "type", "approval", "approval_set", "correlation_id", "active", "on_hold",
    "std_change_producer_version", "category", "sys_updated_on", "start_date",
)  # fmt: skip
EARLY_START = timedelta(minutes=15)  # how long before its planned start a change may begin
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
    if ticket.get("correlation_id"):
        return f"{number} is already claimed by execution {ticket['correlation_id']}"
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
    return None


def planned_start(ticket: dict[str, Any], now: datetime | None = None) -> datetime | None:
    """When the run should start: the planned start if it is more than EARLY_START away, else None (now).

    A start_date that does not parse is left to the run's input validation, which names the field."""
    try:
        start = parse_glide_time(ticket.get("start_date") or "")
    except ValueError:
        return None
    return start if start - EARLY_START > (now or datetime.now(UTC)) else None


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


_deployment_ids: dict[tuple[str, str], Any] = {}


async def _deployment_id(client: Any, name: str, refresh: bool = False) -> Any:
    """The deployment's id, looked up once per API and name (a dispatch is then one request to Prefect)."""
    key = (str(client.api_url), name)
    if refresh or key not in _deployment_ids:
        _deployment_ids[key] = (await client.read_deployment_by_name(name)).id
    return _deployment_ids[key]


async def dispatch_change(
    ticket: dict[str, Any],
    *,
    deployment: str = DEFAULT_DEPLOYMENT,
    source: str = "poll",
    client: Any = None,
) -> DispatchResult:
    """Create (or find) the one flow run for this ticket's approval round.

    ``client``: a PrefectClient to reuse (the receiver and the poll keep one); otherwise one is opened.
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Scheduled

    number, sys_id = str(ticket.get("number", "")), str(ticket["sys_id"])
    reason = why_not_runnable(ticket)
    if reason:
        return DispatchResult(number, sys_id, False, reason)
    key = idempotency_key(ticket)
    asked_at = datetime.now(UTC)
    start_at = planned_start(ticket, asked_at)
    async with contextlib.AsyncExitStack() as stack:
        prefect = client or await stack.enter_async_context(get_client())
        for attempt in range(2):
            try:
                run = await prefect.create_flow_run_from_deployment(
                    await _deployment_id(prefect, deployment, refresh=attempt > 0),
                    parameters={"sys_id": sys_id},
                    state=Scheduled(scheduled_time=start_at) if start_at else Scheduled(),
                    name=number,
                    tags=["servicenow", f"change:{number}", f"dispatch:{source}"],
                    idempotency_key=key,
                )
                break
            except ObjectNotFound:
                if attempt:
                    raise  # the deployment does not exist (not just re-created under a new id)
    # Prefect answers an existing key with the existing run, created before this request was made.
    duplicate = run.created is not None and run.created < asked_at
    reason = "already dispatched" if duplicate else f"dispatched by {source}"
    if start_at and not duplicate:
        reason += f", scheduled for the planned start {format_glide_time(start_at)} UTC"
    return DispatchResult(
        number,
        sys_id,
        True,
        reason,
        flow_run_id=str(run.id),
        duplicate=duplicate,
        idempotency_key=key,
    )
