"""How runs end, as the ticket shows it: a failing step, a step retried into success, a change cancelled or
put on hold mid-run, an unknown template, invalid inputs, and ServiceNow answering 429/503 mid-run."""

from __future__ import annotations

import re

import pytest
from dispatch_support import PATCH_HOSTS, RESTART, dispatched_runs, restart_change, run_result, unique, wait_run

from flows.stack_ops import (
    approve,
    attachment_text,
    attachments,
    host_faults,
    new_standard_change,
    set_emulator_faults,
    ticket,
    update,
    wait_note,
    wait_state,
    work_notes,
)


def notes_of(stack, sys_id: str) -> list[str]:
    return [n["value"] for n in work_notes(stack, sys_id)]


def first_lines(stack, sys_id: str) -> list[str]:
    return [n.splitlines()[0] for n in notes_of(stack, sys_id)]


def only_run(number: str):
    runs = dispatched_runs(number)
    assert len(runs) == 1, [(r.id, r.tags) for r in runs]
    return wait_run(runs[0].id)


def test_failing_step_closes_unsuccessful_with_the_error_and_the_log(stack) -> None:
    with host_faults(stack, "wiki-01", {"restart": ["wiki"]}):
        change = restart_change(stack, "wiki")
        approve(stack, change["sys_id"])
        record = wait_state(stack, change["sys_id"], {"3"})
        run = only_run(change["number"])

    assert record["close_code"]["value"] == "unsuccessful"
    error = "wiki-01: `servicectl restart wiki` exited 1: Job for wiki.service failed"
    close_notes = record["close_notes"]["value"]
    assert "restart_app_service: Step 'Restart wiki' failed: " in close_notes and error in close_notes
    assert f"/runs/flow-run/{run.id}" in close_notes
    # The Prefect run ends Failed, naming the change.
    assert run.state.type.value == "FAILED"
    assert change["number"] in run.state.message
    # Notes: the failed step (2 attempts: the runbook retries a restart once), no health check, then Closed.
    lines = first_lines(stack, change["sys_id"])
    assert lines[0].startswith("Started by Prefect")
    assert lines[1].startswith("Step 'Resolve hosts from the CMDB': succeeded")
    assert re.fullmatch(r"Step 'Restart wiki': failed in \d+\.\d s, 2 attempts", lines[2]), lines
    assert lines[3] == "Closed by Prefect: Unsuccessful." and len(lines) == 4, lines
    assert error in notes_of(stack, change["sys_id"])[2]
    # The log is attached, with both attempts.
    (log,) = attachments(stack, change["sys_id"])
    text = attachment_text(stack, log["sys_id"])
    assert "== Restart wiki: failed" in text and "attempt 1 failed" in text and "attempt 2 failed" in text


def test_step_retried_into_success_closes_successful_with_issues(stack) -> None:
    with host_faults(stack, "wiki-01", {"fail_times": {"restart:wiki": 1}}):
        change = restart_change(stack, "wiki")
        approve(stack, change["sys_id"])
        record = wait_state(stack, change["sys_id"], {"3"})
    assert record["close_code"]["value"] == "successful_issues"
    assert "- Restart wiki: retried" in record["close_notes"]["value"]
    lines = first_lines(stack, change["sys_id"])
    assert re.fullmatch(r"Step 'Restart wiki': retried in \d+\.\d s, 2 attempts", lines[2]), lines
    assert lines[-1] == "Closed by Prefect: Successful with issues."
    assert only_run(change["number"]).state.type.value == "COMPLETED"


@pytest.mark.parametrize(
    ("action", "values", "reason"),
    [
        ("cancel", {"state": "4"}, "was canceled in ServiceNow"),
        ("hold", {"on_hold": "true", "on_hold_reason": "Freeze: quarter end"}, "was put on hold in ServiceNow"),
    ],
)
def test_change_cancelled_or_held_mid_run_stops_at_the_next_step_boundary(
    stack, action: str, values: dict, reason: str
) -> None:
    with host_faults(stack, "wiki-01", {"slow_start_s": 4}):  # the restart step takes 4 s
        change = restart_change(stack, "wiki")
        approve(stack, change["sys_id"])
        wait_note(stack, change["sys_id"], "Step 'Resolve hosts from the CMDB'")
        update(stack, change["sys_id"], values)  # while the restart runs
        stop = wait_note(stack, change["sys_id"], "Prefect stopped at a step boundary")
    assert f"{change['number']} {reason}" in stop["value"] and "Steps done: 2" in stop["value"]
    run = only_run(change["number"])
    assert run.state.type.value == "COMPLETED"
    assert run_result(run)["status"] == "stopped"
    lines = first_lines(stack, change["sys_id"])
    assert [line.split(":")[0] for line in lines] == [
        "Started by Prefect",
        "Step 'Resolve hosts from the CMDB'",
        "Step 'Restart wiki'",  # the step that was running finishes and is reported
        "Prefect stopped at a step boundary",
    ], lines
    record = ticket(stack, change["sys_id"])
    assert record["close_code"]["value"] == ""
    assert record["state"]["value"] == ("4" if action == "cancel" else "-1")
    assert [a["file_name"] for a in attachments(stack, change["sys_id"])] == [f"prefect-run-{run.id}.log"]


def test_change_cancelled_during_the_last_step_is_not_closed(stack) -> None:
    """The last step finishes, but the change was cancelled meanwhile: Prefect must not try to close it."""
    with host_faults(stack, "wiki-01", {"fail_times": {"status:wiki": 3}}):  # the health check takes ~3 s
        change = restart_change(stack, "wiki")
        approve(stack, change["sys_id"])
        wait_note(stack, change["sys_id"], "Step 'Restart wiki'")
        update(stack, change["sys_id"], {"state": "4"})
        stop = wait_note(stack, change["sys_id"], "Prefect stopped")
    assert f"{change['number']} was canceled in ServiceNow" in stop["value"]
    run = only_run(change["number"])
    assert run.state.type.value == "COMPLETED" and run_result(run)["status"] == "stopped"
    lines = first_lines(stack, change["sys_id"])
    assert lines[3].startswith("Step 'Health check wiki': succeeded") and len(lines) == 5, lines
    assert "The runbook had completed: Restarted wiki on 1 host(s)" in stop["value"]
    assert ticket(stack, change["sys_id"])["state"]["value"] == "4"


def test_unknown_template_leaves_the_change_unclaimed_with_a_note(stack) -> None:
    change = new_standard_change(
        stack, PATCH_HOSTS, "wiki", unique("Patch wiki hosts"), {"patch_baseline": "2026-11", "max_parallel": "1"}
    )
    approve(stack, change["sys_id"])
    note = wait_note(stack, change["sys_id"], "No runbook for template")["value"]
    assert "'Patch Linux hosts - 1' (std_change_producer_version) or category 'Software'" in note
    assert f"left {change['number']} unclaimed" in note
    assert "Fix: use a standard change template with a runbook (Restart application service, Rotate TLS" in note
    run = only_run(change["number"])
    assert run.state.type.value == "COMPLETED" and run_result(run)["status"] == "not_runnable"
    record = ticket(stack, change["sys_id"])
    assert record["correlation_id"]["value"] == "" and record["state"]["value"] == "-5"
    assert len(notes_of(stack, change["sys_id"])) == 1 and attachments(stack, change["sys_id"]) == []


def test_invalid_inputs_name_each_field_and_the_fix(stack) -> None:
    change = new_standard_change(
        stack, RESTART, "wiki", unique("Restart with bad inputs"), {"restart_timeout_s": "3"}
    )  # no service_name; a timeout below the minimum
    approve(stack, change["sys_id"])
    note = wait_note(stack, change["sys_id"], "inputs are invalid")["value"]
    assert "service_name: Field required. Fix: set the template variable service_name" in note
    assert "restart_timeout_s: Input should be greater than or equal to 5 (got '3'). Fix: set restart_timeout_s" in note
    assert f"Nothing was executed and {change['number']} is left unclaimed" in note
    run = only_run(change["number"])
    assert run_result(run)["problems"][0].startswith("service_name: Field required")
    record = ticket(stack, change["sys_id"])
    assert record["correlation_id"]["value"] == "" and record["state"]["value"] == "-5"
    assert len(notes_of(stack, change["sys_id"])) == 1 and attachments(stack, change["sys_id"]) == []
    services = stack.sandbox / "wiki-01" / "services"
    assert not any(p.stem == "" for p in services.glob("*.json"))  # no restart of an empty name


def test_servicenow_429_and_503_mid_run_are_retried_without_duplicate_notes(stack, no_emulator_faults) -> None:
    change = restart_change(stack, "wiki")
    approve(stack, change["sys_id"])
    path = f"/api/now/table/change_request/{change['sys_id']}"
    set_emulator_faults(
        stack,
        script=[
            # the step notes (one PATCH each): the first rate limited twice, a later one unavailable twice
            {"status": 429, "times": 2, "method": "PATCH", "path": path, "retry_after": 1},
            {"status": 503, "times": 2, "method": "PATCH", "path": path, "skip": 1},
            {"status": 503, "times": 1, "method": "GET", "path": "/api/now/table/cmdb_rel_ci"},
            {"status": 503, "times": 1, "method": "POST", "path": "/api/now/attachment/file"},
        ],
    )
    record = wait_state(stack, change["sys_id"], {"3"}, timeout_s=120)
    with stack.sn() as sn:
        left = sn.get("/emulator/admin/faults").raise_for_status().json()["result"]["script"]
    assert [f["times"] for f in left] == [0, 0, 0, 0], left  # every fault was served to the run
    assert record["close_code"]["value"] == "successful"  # HTTP retries are not step retries
    lines = first_lines(stack, change["sys_id"])
    assert [line.split(":")[0] for line in lines] == [
        "Started by Prefect",
        "Step 'Resolve hosts from the CMDB'",
        "Step 'Restart wiki'",
        "Step 'Health check wiki'",
        "Closed by Prefect",
    ], lines
    assert len(attachments(stack, change["sys_id"])) == 1
    assert only_run(change["number"]).state.type.value == "COMPLETED"


def test_servicenow_failing_past_the_retries_mid_run_closes_unsuccessful(stack, no_emulator_faults) -> None:
    """A step note that cannot be written (six 503s: the client's retry budget) breaks the run outside the
    step's own handling: the change is still closed unsuccessful with the error and the log, not left
    claimed in Implement, and the Prefect run ends Failed."""
    change = restart_change(stack, "wiki")
    approve(stack, change["sys_id"])
    path = f"/api/now/table/change_request/{change['sys_id']}"
    set_emulator_faults(
        stack, script=[{"status": 503, "times": 6, "method": "PATCH", "path": path, "skip": 1, "retry_after": 0}]
    )  # the first step's note gets through; the second step's does not
    record = wait_state(stack, change["sys_id"], {"3"})
    run = only_run(change["number"])
    assert run.state.type.value == "FAILED"
    assert record["close_code"]["value"] == "unsuccessful"
    close_notes = record["close_notes"]["value"]
    assert "Prefect could not complete the run: " in close_notes and "HTTP 503" in close_notes
    assert "- Resolve hosts from the CMDB: succeeded" in close_notes
    lines = first_lines(stack, change["sys_id"])
    assert lines[0].startswith("Started by Prefect") and lines[-1] == "Closed by Prefect: Unsuccessful."
    (log,) = attachments(stack, change["sys_id"])
    assert "Prefect could not complete the run" in attachment_text(stack, log["sys_id"])
