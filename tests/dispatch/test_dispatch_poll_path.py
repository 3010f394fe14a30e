"""The poll path end to end: with the webhook lost, the poll-change-requests deployment (served by
flows.serve, on a schedule) finds approved, runnable, unclaimed standard changes and dispatches each
through the same exactly-once dispatch; the runs close the tickets."""

from __future__ import annotations

from datetime import timedelta

from dispatch_support import POLL_DEPLOYMENT, RESTART, dispatched_runs, restart_change, unique
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment

from flows.change_dispatch import poll_change_requests
from flows.stack_ops import approve, new_standard_change, rule_off, ticket, update, wait_state, work_notes
from servicenow_blocks.dispatch import ready_changes_query


def test_default_query_is_ready_standard_changes() -> None:
    default = poll_change_requests.parameters.properties["query"]["default"]
    assert default == ready_changes_query().encoded
    assert default == (
        "typeINstandard^stateIN-5,-2^approval=approved^active=true^on_hold!=true^correlation_idISEMPTY"
        "^ORDERBYsys_updated_on"
    )


def test_poll_deployment_is_scheduled(stack) -> None:
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(POLL_DEPLOYMENT)
    (schedule,) = deployment.schedules
    assert schedule.active and schedule.schedule.interval == timedelta(seconds=3600)  # the stack's interval


def test_poll_dispatches_ready_changes_and_only_those(stack) -> None:
    with rule_off(stack):  # the webhook is lost: only the poll can see these approvals
        new = restart_change(stack, "wiki")
        approve(stack, new["sys_id"])
        scheduled = new_standard_change(
            stack, RESTART, "wiki", unique("Scheduled restart"), {"service_name": "wiki"}, state="-2"
        )
        approve(stack, scheduled["sys_id"])
        not_approved = restart_change(stack, "wiki")
        claimed = restart_change(stack, "wiki")
        update(stack, claimed["sys_id"], {"correlation_id": "someone-else", "approval": "approved"})
        held = restart_change(stack, "wiki")
        update(stack, held["sys_id"], {"on_hold": "true", "on_hold_reason": "Vendor", "approval": "approved"})
        changes = [new, scheduled, not_approved, claimed, held]
        query = ready_changes_query().in_("sys_id", [c["sys_id"] for c in changes]).encoded

        poll = run_deployment(POLL_DEPLOYMENT, parameters={"query": query}, timeout=120)
        assert poll.state.type.value == "COMPLETED", poll.state

        for change in (new, scheduled):
            record = wait_state(stack, change["sys_id"], {"3"})
            (run,) = dispatched_runs(change["number"])
            assert "dispatch:poll" in run.tags and f"change:{change['number']}" in run.tags
            assert record["close_code"]["value"] == "successful"
            assert record["correlation_id"]["value"] == str(run.id)
            assert work_notes(stack, change["sys_id"])[0]["value"].startswith(f"Started by Prefect: flow run {run.id}")
        for change in (not_approved, claimed, held):
            assert dispatched_runs(change["number"]) == []
            assert ticket(stack, change["sys_id"])["state"]["value"] == "-5"
            assert work_notes(stack, change["sys_id"]) == []
