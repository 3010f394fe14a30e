"""The webhook path end to end: approval in the emulator -> outbound Business Rule -> receiver -> Prefect
deployment -> runbook on the sandboxed host -> the ticket walked to Closed with notes, log and links."""

from __future__ import annotations

import re

from dispatch_support import artifacts_of, dispatched_runs, outbound_deliveries, restart_change, wait_run

from flows.stack_ops import approve, attachment_text, attachments, ticket, wait_state, work_notes


def test_approval_runs_the_runbook_and_closes_the_ticket(stack) -> None:
    change = restart_change(stack, "wiki")
    sys_id, number = change["sys_id"], change["number"]
    approve(stack, sys_id)

    record = wait_state(stack, sys_id, {"3"})
    runs = dispatched_runs(number)
    assert len(runs) == 1, [r.id for r in runs]
    run = wait_run(runs[0].id)
    run_id = str(run.id)
    run_link = f"{stack.prefect.url}/runs/flow-run/{run_id}"

    # The ticket carries the run; the run carries the ticket.
    assert record["close_code"]["value"] == "successful"
    assert record["correlation_id"]["value"] == run_id
    assert record["correlation_display"]["value"] == "Prefect"
    assert run.state.type.value == "COMPLETED"
    assert f"change:{number}" in run.tags and "dispatch:webhook" in run.tags
    assert run.parameters["sys_id"] == sys_id

    # Close notes: the runbook's summary and the execution URL.
    close_notes = record["close_notes"]["value"]
    assert "Restarted wiki on 1 host(s) (wiki-01); all healthy." in close_notes
    assert f"Execution: {run_link}" in close_notes

    # Work notes, in order: Started (with the URL), one per step with outcome and duration, Closed.
    notes = [n["value"] for n in work_notes(stack, sys_id)]
    assert len(notes) == 5, notes
    assert notes[0].startswith(f"Started by Prefect: flow run {run_id}") and run_link in notes[0]
    step_line = re.compile(r"^Step '(.+)': succeeded in \d+\.\d s")
    assert [step_line.match(n).group(1) for n in notes[1:4]] == [
        "Resolve hosts from the CMDB",
        "Restart wiki",
        "Health check wiki",
    ]
    assert notes[1].splitlines()[1] == "Hosts: wiki-01"
    assert notes[4].startswith("Closed by Prefect: Successful.") and run_link in notes[4]

    # The step log is attached as a text file.
    files = attachments(stack, sys_id)
    assert [f["file_name"] for f in files] == [f"prefect-run-{run_id}.log"]
    assert files[0]["content_type"].startswith("text/plain")
    log = attachment_text(stack, files[0]["sys_id"])
    assert f"{number} restart_app_service - Prefect flow run {run_id}" in log
    assert "== Restart wiki: succeeded" in log and "wiki-01: `servicectl restart wiki` exited 0" in log

    # The run links to the ticket.
    links = [a for a in artifacts_of(run_id) if a.type == "markdown" and a.key == f"servicenow-{number.lower()}"]
    assert links, [(a.key, a.type) for a in artifacts_of(run_id)]
    assert f"{stack.emulator.url}/nav_to.do?uri=change_request.do%3Fsys_id%3D{sys_id}" in links[0].data
    assert number in links[0].data

    # The emulator's Business Rule delivered once and the receiver answered 202 with that run.
    deliveries = [d for d in outbound_deliveries(stack, sys_id) if d["source_business_rule"].endswith("approved")]
    assert [d["response_status"] for d in deliveries] == ["202"]
    assert deliveries[0]["response"]["flow_run_id"] == run_id

    # The sandboxed host really restarted the service.
    state = (stack.sandbox / "wiki-01" / "services" / "wiki.json").read_text()
    assert '"restarts":' in state


def test_the_ticket_passes_through_implement_and_review(stack) -> None:
    """Start moves the change to Implement; close walks Review -> Closed, which this instance enforces."""
    with stack.sn() as sn:
        properties = sn.get("/emulator/admin/properties").raise_for_status().json()["result"]
    assert properties["emulator.change.strict_state_transitions"] == "true"  # Implement -> Closed is refused
    change = restart_change(stack, "wiki")
    approve(stack, change["sys_id"])
    wait_state(stack, change["sys_id"], {"3"})
    record = ticket(stack, change["sys_id"], fields="state,work_start,work_end,closed_at,active")
    assert record["state"]["display_value"] == "Closed" and record["active"]["value"] == "false"
    assert record["work_start"]["value"] and record["work_end"]["value"]  # stamped on Implement and Review
