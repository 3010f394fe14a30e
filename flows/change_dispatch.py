"""Change dispatch: standard changes run their runbook, and the ticket moves with the work.

- ``poll_change_requests`` (scheduled) lists changes ready to run and hands each to the same dispatch the
  webhook uses (``servicenow_blocks.dispatch``), so a ticket runs once whichever path sees it first. It
  also resumes runs waiting at approval gates whose change task was decided in ServiceNow.
- ``run_change_request(sys_id)`` re-reads the ticket (ServiceNow is the source of truth), checks it is
  approved, runnable and unclaimed, claims it, picks the runbook from the template, validates the inputs,
  runs the runbook subflow (a work note per step, re-checking the ticket at each step boundary), and
  closes the ticket with the real close code, the summary, the execution URL and the attached log.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote, urlencode

from prefect import flow, runtime
from prefect.artifacts import acreate_link_artifact, acreate_progress_artifact, aupdate_progress_artifact
from prefect.client.orchestration import get_client
from prefect.flow_runs import asuspend_flow_run
from prefect.logging import get_run_logger
from prefect.utilities.urls import url_for

from flows.executors import LocalExecutor
from flows.runbooks import registry
from flows.runbooks.base import InputError, Runbook, RunbookContext, RunbookInputs, RunbookOutcome
from servicenow_blocks.choices import ChangeCloseCode
from servicenow_blocks.client import AsyncServiceNowClient, BatchItem
from servicenow_blocks.credentials import ServiceNowCredentials
from servicenow_blocks.dispatch import (
    DEFAULT_DEPLOYMENT,
    DISPATCH_FIELDS,
    dispatch_change,
    ready_changes_query,
    why_not_runnable,
)
from servicenow_blocks.errors import NotFoundError, ServiceNowError
from servicenow_blocks.gates import (
    GATE_FIELDS,
    GATE_PREFIX,
    GateDecision,
    close_gate,
    gate_correlation,
    gates_to_resume_query,
    open_gate,
    poll_decision,
    resume_gate,
    step_slug,
)
from servicenow_blocks.query import Query, raw
from servicenow_blocks.tickets import Redactor, StepRecord, TicketLog, close_code_for

TICKET_FIELDS = (
    "sys_id", "number", "short_description", "type", "state", "approval", "approval_set", "on_hold", "active",
    "correlation_id", "sys_mod_count", "category", "cmdb_ci", "cmdb_ci.name", "assignment_group", "start_date",
    "end_date", "std_change_producer_version", "std_change_producer_version.name",
)  # fmt: skip
GATE_TIMEOUT_S = 7 * 24 * 3600


class RunbookFailed(RuntimeError):
    """The change was executed and failed; the ticket is closed unsuccessful (the run ends Failed)."""


def ticket_url(instance: str, sys_id: str) -> str:
    return f"{instance}/nav_to.do?uri={quote(f'change_request.do?sys_id={sys_id}', safe='')}"


async def read_change(client: AsyncServiceNowClient, sys_id: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The ticket and its template variables, in one Batch API request."""
    ticket_url_path = f"/api/now/table/change_request/{sys_id}?" + urlencode(
        {"sysparm_fields": ",".join(TICKET_FIELDS), "sysparm_exclude_reference_link": "true"}
    )
    variables_path = "/api/now/table/question_answer?" + urlencode(
        {
            "sysparm_query": Query().eq("table_sys_id", sys_id).order_by("order").encoded,
            "sysparm_fields": "question.name,value",
        }
    )
    ticket_result, variables_result = await client.batch(
        [BatchItem("GET", ticket_url_path, id="ticket"), BatchItem("GET", variables_path, id="variables")]
    )
    if ticket_result.status_code == 404:
        raise NotFoundError(f"change_request {sys_id} does not exist or is hidden from this user", status=404)
    if not ticket_result.ok:
        raise RuntimeError(f"reading change_request {sys_id} failed: HTTP {ticket_result.status_code}")
    variables = {
        row["question.name"]: row["value"]
        for row in (variables_result.body or {}).get("result", [])
        if row.get("question.name")
    }
    return ticket_result.body["result"], variables


async def decided_gates(client: AsyncServiceNowClient, run_id: str) -> dict[str, tuple[dict[str, Any], GateDecision]]:
    """Gates this run already waited at, with their decisions (a run resumed re-executes from the top)."""
    tasks = await client.get_records(
        "change_task", Query().starts_with("correlation_id", f"{GATE_PREFIX}{run_id}:"), fields=GATE_FIELDS
    )
    decided = {}
    for task in tasks:
        slug = task["correlation_id"].rsplit(":", 1)[-1]
        # The stored run input of the pause with this key: returns at once for a resumed run.
        decision = await asuspend_flow_run(wait_for_input=GateDecision, key=f"gate-{slug}", timeout=GATE_TIMEOUT_S)
        decided[slug] = (task, decision)
    return decided


@flow(name="run-change-request", persist_result=True, log_prints=True)
async def run_change_request(
    sys_id: str, credentials_block: str = "servicenow", executor_root: str | None = None
) -> dict[str, Any]:
    """Execute one change request's runbook and keep the ticket in step with the work."""
    logger = get_run_logger()
    run_id = str(runtime.flow_run.id)
    # Prefect's runtime.flow_run.ui_url points at /flow-runs/flow-run/<id>; the UI's route (and the link the
    # engine logs as "View at") is /runs/flow-run/<id>.
    run_url = url_for("flow-run", obj_id=run_id)
    credentials = await ServiceNowCredentials.load(credentials_block)
    redact = Redactor.for_credentials(credentials)
    async with credentials.get_async_client(logger=logger) as client:
        try:
            ticket, variables = await read_change(client, sys_id)
        except NotFoundError as exc:
            logger.warning("%s", exc)
            return {"status": "skipped", "reason": str(exc)}
        number = ticket["number"]
        tl = TicketLog(client, ticket, run_id=run_id, run_url=run_url, redact=redact)
        resumed = tl.claimed_by_us
        if not resumed:
            reason = why_not_runnable(ticket)
            if reason:
                logger.warning("Not running: %s", reason)
                return {"status": "skipped", "number": number, "reason": reason}

        template = ticket.get("std_change_producer_version.name") or ""
        runbook = registry.resolve(template, ticket.get("category"))
        if runbook is None:
            known = ", ".join(registry.known_templates())
            problem = (
                f"No runbook for template {template!r} (std_change_producer_version) or category "
                f"{ticket.get('category')!r}. Prefect did not run anything and left {number} unclaimed. "
                f"Fix: use a standard change template with a runbook ({known}), or add a runbook for this one."
            )
            await tl.note(problem)
            logger.error(problem)
            return {"status": "not_runnable", "number": number, "reason": problem}
        try:
            inputs = runbook.inputs.from_ticket(ticket, variables)
        except InputError as exc:
            problem = (
                f"Prefect cannot run '{runbook.name}' for {number}: the ticket's inputs are invalid. "
                + " | ".join(exc.problems)
                + f". Nothing was executed and {number} is left unclaimed; fix the fields and approve again."
            )
            await tl.note(problem)
            logger.error(problem)
            return {"status": "invalid_inputs", "number": number, "problems": exc.problems}

        if not resumed:
            await acreate_link_artifact(
                link=ticket_url(credentials.base_url, sys_id),
                link_text=f"{number}: {ticket.get('short_description', '')}",
                key=f"servicenow-{number.lower()}",
                description=f"The ServiceNow change request this run executes ({runbook.name}).",
            )
        await tl.start()
        logger.info("%s claimed; running %s", number, runbook.name)
        try:
            return await _execute(client, tl, ticket, inputs, runbook, resumed=resumed, executor_root=executor_root)
        except RunbookFailed:
            raise
        except Exception as exc:  # outside the steps: Prefect or ServiceNow unreachable, a bug
            await _close_after_error(client, tl, runbook.name, exc, logger)
            raise


async def _close_after_error(
    client: AsyncServiceNowClient, tl: TicketLog, runbook_name: str, error: Exception, logger: Any
) -> None:
    """The run broke outside a step's own failure handling: attach the log and close the change unsuccessful
    with the error, so that it is not left claimed in Implement (unless it moved on in ServiceNow)."""
    problem = f"Prefect could not complete the run: {type(error).__name__}: {error}"
    try:
        await tl.refresh()
        if not tl.claimed_by_us:
            return
        header = [f"{tl.number} {runbook_name} - Prefect flow run {tl.run_id}", f"Execution: {tl.run_url}", problem]
        await tl.attach_log(tl.log_text(header))
        stop = tl.stop_reason()
        if stop is not None:
            await tl.note(f"{problem}. {stop}; not closing it.")
            return
        steps_text = "\n".join(f"- {r.name}: {r.outcome} ({r.duration_s:.1f} s)" for r in tl.steps)
        await tl.close(ChangeCloseCode.UNSUCCESSFUL, f"{runbook_name}: {problem}\n{steps_text}")
    except Exception:
        logger.exception("%s: could not record the error on the ticket", tl.number)


async def _execute(
    client: AsyncServiceNowClient,
    tl: TicketLog,
    ticket: dict[str, Any],
    inputs: RunbookInputs,
    runbook: Runbook,
    *,
    resumed: bool,
    executor_root: str | None,
) -> dict[str, Any]:
    """The claimed part of a run: gates decided earlier, the runbook, the log, the close."""
    logger = get_run_logger()
    number, run_id, run_url = tl.number, tl.run_id, tl.run_url
    progress_id = await acreate_progress_artifact(
        progress=0.0, key=f"progress-{number.lower()}", description=f"{number}: {runbook.name} steps"
    )

    async def on_step(record: StepRecord) -> None:
        done = len(ctx.records)
        await aupdate_progress_artifact(progress_id, progress=min(99.0, 100.0 * done / (done + 1)))

    approved: set[str] = set()
    rejected: dict[str, str] = {}
    for slug, (task, decision) in (await decided_gates(client, run_id) if resumed else {}).items():
        await close_gate(client, task, decision)
        if decision.approved:
            approved.add(slug)
        else:
            rejected[slug] = (
                f"Rejected at the approval gate ({task.get('number')}) by {decision.decided_by}: {decision.comment}"
            )

    executor = LocalExecutor(executor_root)
    while True:
        # A resumed run re-executes from the top: finished steps come back from Prefect's cache.
        ctx = RunbookContext(
            inputs=inputs, client=client, ticket_log=tl, executor=executor, run_key=run_id,
            approved_gates=approved, on_step=on_step,
        )  # fmt: skip
        outcome = await runbook.flow(inputs, ctx)
        if outcome.status != "awaiting_approval":
            break
        step = outcome.gate_step or "destructive step"
        if step_slug(step) in rejected:
            outcome = RunbookOutcome("failed", summary=rejected[step_slug(step)], records=outcome.records)
            break
        task = await open_gate(client, ticket, flow_run_id=run_id, step=step, description=outcome.gate_description)
        await tl.note(
            f"Waiting for approval before '{step}': {outcome.gate_description}.\n"
            f"Approve change task {task.get('number')} (set Approval to Approved) to continue, or reject it to "
            f"stop and close {number} unsuccessful. Prefect: resume {run_url or 'the flow run'} with approved=true."
        )
        logger.info("%s waits at the approval gate %s (%s)", number, task.get("number"), gate_correlation(run_id, step))
        # Suspends (the process exits); on resume the run re-executes and finds the decision above.
        decision = await asuspend_flow_run(
            wait_for_input=GateDecision, key=f"gate-{step_slug(step)}", timeout=GATE_TIMEOUT_S
        )
        await close_gate(client, task, decision)
        if not decision.approved:
            outcome = RunbookOutcome(
                "failed", summary=f"Rejected at the approval gate before '{step}'", records=outcome.records
            )
            break
        approved.add(step_slug(step))

    tl.steps = list(outcome.records)
    await aupdate_progress_artifact(progress_id, progress=100.0)
    header = [f"{number} {runbook.name} - Prefect flow run {run_id}", f"Execution: {run_url}"]
    await tl.attach_log(tl.log_text(header))
    if outcome.status == "stopped":
        await tl.note(f"Prefect stopped at a step boundary: {outcome.summary}. Steps done: {len(tl.steps)}.")
        logger.warning("%s stopped: %s", number, outcome.summary)
        return {"status": "stopped", "number": number, "reason": outcome.summary}
    failed = outcome.status == "failed"
    code = close_code_for(tl.steps, failed)
    summary = outcome.summary or ("Completed." if not failed else "Failed.")
    steps_text = "\n".join(f"- {r.name}: {r.outcome} ({r.duration_s:.1f} s)" for r in tl.steps)
    # The change may have been cancelled or put on hold while the last step ran: then it is not ours to close.
    stop = tl.stop_reason()
    if stop is None:
        try:
            await tl.close(code, f"{runbook.name}: {summary}\n{steps_text}")
        except ServiceNowError:
            await tl.refresh()  # moved in ServiceNow between the last step and the close?
            stop = tl.stop_reason()
            if stop is None:
                raise
    if stop is not None:
        await tl.note(
            f"Prefect stopped before closing {number}: {stop}. The runbook "
            f"{'failed' if failed else 'had completed'}: {summary} Steps done: {len(tl.steps)}."
        )
        logger.warning("%s not closed: %s", number, stop)
        if failed:
            raise RunbookFailed(f"{number} {runbook.name}: {summary}")
        return {"status": "stopped", "number": number, "reason": stop, "summary": summary}
    logger.info("%s closed %s", number, code.value)
    if failed:
        raise RunbookFailed(f"{number} {runbook.name}: {summary}")
    return {"status": "closed", "number": number, "close_code": code.value, "summary": summary}


@flow(name="poll-change-requests", log_prints=True)
async def poll_change_requests(
    query: str = ready_changes_query().encoded,
    credentials_block: str = "servicenow",
    deployment: str = DEFAULT_DEPLOYMENT,
    limit: int = 500,
) -> dict[str, Any]:
    """Dispatch every change matching ``query`` (an encoded query; build it with servicenow_blocks.query).

    The parameter is a JSON string written by whoever deploys the flow: it is taken as ``raw(query)``, the
    client's explicit opt-in for an encoded query. Never build it from ticket data or other input."""
    logger = get_run_logger()
    credentials = await ServiceNowCredentials.load(credentials_block)
    async with credentials.get_async_client(logger=logger) as client:
        tickets = await client.get_records("change_request", raw(query), fields=DISPATCH_FIELDS, limit=limit)
        gates = await client.get_records("change_task", gates_to_resume_query(), fields=GATE_FIELDS, limit=limit)
    semaphore = asyncio.Semaphore(8)
    async with get_client() as prefect:

        async def dispatch(ticket: dict[str, Any]) -> dict[str, Any]:
            async with semaphore:
                return (await dispatch_change(ticket, deployment=deployment, source="poll", client=prefect)).to_json()

        results = await asyncio.gather(*(dispatch(t) for t in tickets))
    # A gate whose change was canceled or closed while its run waited resumes too: the run stops and says so.
    resumed = [await resume_gate(task, decision=poll_decision(task, "servicenow (poll)")) for task in gates]
    new = [r for r in results if r.get("dispatched") and not r.get("duplicate")]
    logger.info(
        "%d ready change(s): %d new run(s), %d already dispatched, %d not runnable; %d gate(s) resumed",
        len(tickets),
        len(new),
        sum(1 for r in results if r.get("duplicate")),
        sum(1 for r in results if not r.get("dispatched")),
        sum(1 for ok, _ in resumed if ok),
    )
    return {"dispatched": results, "gates": [reason for _, reason in resumed]}
