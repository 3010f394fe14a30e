"""The change's planned window, end to end (emulator Business Rule -> receiver -> Prefect -> runbook): a change
whose window has ended gets a work note naming end_date and the fix, is left unclaimed and nothing runs; a
change inside its window runs; a change approved ahead of its window gets its run scheduled for the planned
start; a window that ends while a destructive step waits at its gate stops the
run before that step, and the change closes unsuccessful."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

from dispatch_support import RESTART, ROTATE, dispatched_runs, read_run, run_result, unique, wait_run

from flows.change_dispatch import poll_change_requests
from flows.stack_ops import (
    approve,
    attachments,
    gate_tasks,
    new_standard_change,
    ticket,
    wait_for,
    wait_note,
    wait_state,
    work_notes,
)
from servicenow_blocks.glide_time import format_glide_time as glide_time


def window(start: dt.timedelta, end: dt.timedelta) -> dict[str, str]:
    now = dt.datetime.now(dt.UTC)
    return {"start_date": glide_time(now + start), "end_date": glide_time(now + end)}


def first_lines(stack, sys_id: str) -> list[str]:
    return [n["value"].splitlines()[0] for n in work_notes(stack, sys_id)]


def test_a_change_whose_window_has_ended_is_not_run(stack) -> None:
    fields = window(-dt.timedelta(hours=3), -dt.timedelta(hours=1))
    change = new_standard_change(
        stack, RESTART, "wiki", unique("Restart wiki, window over"), {"service_name": "wiki"}, **fields
    )
    assert change["end_date"] == fields["end_date"]  # stored as given: UTC
    restarts_before = _restarts(stack)
    approve(stack, change["sys_id"])
    note = wait_note(stack, change["sys_id"], "inputs are invalid")["value"]
    assert f"end_date: the planned end date {fields['end_date']} UTC has passed" in note
    assert "Fix: reschedule the change (set start_date and end_date to the new window) and approve again" in note
    assert f"Nothing was executed and {change['number']} is left unclaimed" in note
    (run,) = dispatched_runs(change["number"])
    result = run_result(wait_run(run.id))
    assert result["status"] == "invalid_inputs" and result["problems"][0].startswith("end_date: ")
    record = ticket(stack, change["sys_id"])
    assert record["correlation_id"]["value"] == "" and record["state"]["value"] == "-5"
    assert len(work_notes(stack, change["sys_id"])) == 1 and attachments(stack, change["sys_id"]) == []
    assert _restarts(stack) == restarts_before  # nothing ran on the host


def test_a_change_inside_its_window_runs(stack) -> None:
    fields = window(-dt.timedelta(minutes=30), dt.timedelta(hours=2))
    change = new_standard_change(
        stack, RESTART, "wiki", unique("Restart wiki in its window"), {"service_name": "wiki"}, **fields
    )
    approve(stack, change["sys_id"])
    record = wait_state(stack, change["sys_id"], {"3"})
    assert record["close_code"]["value"] == "successful"
    assert first_lines(stack, change["sys_id"])[-1] == "Closed by Prefect: Successful."


def test_a_change_approved_ahead_of_its_window_runs_at_its_planned_start(stack) -> None:
    fields = window(dt.timedelta(hours=2), dt.timedelta(hours=3))
    change = new_standard_change(
        stack, RESTART, "wiki", unique("Restart wiki tonight"), {"service_name": "wiki"}, **fields
    )
    approve(stack, change["sys_id"])
    (run,) = wait_for(lambda: dispatched_runs(change["number"]), 30, "the scheduled run")
    start = dt.datetime.strptime(fields["start_date"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)
    assert run.state.type.value == "SCHEDULED" and run.state.state_details.scheduled_time == start
    # The poll sees the same approval round: the same run, not a second one, and still nothing on the ticket.
    result = asyncio.run(poll_change_requests(query=f"sys_id={change['sys_id']}"))
    (seen,) = result["dispatched"]
    assert seen["duplicate"] and seen["flow_run_id"] == str(run.id)
    assert read_run(run.id).state.type.value == "SCHEDULED"
    record = ticket(stack, change["sys_id"])
    assert record["correlation_id"]["value"] == "" and work_notes(stack, change["sys_id"]) == []


def test_a_window_ending_while_waiting_at_the_gate_stops_before_the_destructive_step(stack) -> None:
    name = "late.wiki.example.com"
    fields = window(-dt.timedelta(minutes=10), dt.timedelta(seconds=25))
    change = new_standard_change(
        stack, ROTATE, "wiki", unique(f"Rotate {name}"), {"common_name": name, "validity_days": "30"}, **fields
    )
    approve(stack, change["sys_id"])
    task = wait_for(lambda: gate_tasks(stack, change["sys_id"]), 20, "the approval gate task")[0]
    waiting = wait_note(stack, change["sys_id"], "Waiting for approval")["value"]
    assert f"(the planned window ends {fields['end_date']} UTC: approve before then)" in waiting
    end = dt.datetime.strptime(fields["end_date"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)
    wait_for(lambda: dt.datetime.now(dt.UTC) > end + dt.timedelta(seconds=1), 60, "the window to end")
    approve(stack, task["sys_id"], table="change_task")  # approved, but too late

    record = wait_state(stack, change["sys_id"], {"3"})
    assert record["close_code"]["value"] == "unsuccessful"
    close_notes = record["close_notes"]["value"]
    assert (
        f"rotate_tls_certificate: Not running 'Install certificate': the planned end date {fields['end_date']} UTC "
        "(end_date) has passed" in close_notes
    )
    assert "nothing destructive was done. Fix: raise the change again for a new window" in close_notes
    lines = first_lines(stack, change["sys_id"])
    assert not any(line.startswith("Step 'Install certificate'") for line in lines)
    assert lines[-1] == "Closed by Prefect: Unsuccessful."
    assert not (stack.sandbox / "wiki-01" / "certs" / "live" / name).exists()
    (run,) = dispatched_runs(change["number"])
    assert wait_run(run.id).state.type.value == "FAILED"


def _restarts(stack) -> int:
    path = stack.sandbox / "wiki-01" / "services" / "wiki.json"
    return json.loads(path.read_text()).get("restarts", 0) if path.exists() else 0
