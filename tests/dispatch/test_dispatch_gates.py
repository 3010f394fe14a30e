"""Approval gates: the certificate rotation stages its key and certificate, then waits before installing,
with a change task to approve and a work note saying so; the flow run suspends, and resumes on the
ServiceNow decision (webhook or poll) or on Prefect's own resume. A rejection closes the change
unsuccessful. The host ends with a live key matching the live certificate; the key is nowhere else."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from dispatch_support import dispatched_runs, read_run, rotate_change, wait_run
from prefect.flow_runs import resume_flow_run

from flows.change_dispatch import poll_change_requests
from flows.local_stack import LocalStack
from flows.stack_ops import (
    approve,
    attachment_text,
    attachments,
    gate_tasks,
    rule_off,
    set_emulator_faults,
    ticket,
    update,
    wait_for,
    wait_state,
    work_notes,
)
from servicenow_blocks.dispatch import ready_changes_query


def waiting_at_gate(stack: LocalStack, change: dict) -> tuple[str, dict]:
    """Approve the change; return the run id and the gate task once the run is suspended at the gate."""
    approve(stack, change["sys_id"])
    task = wait_for(lambda: gate_tasks(stack, change["sys_id"]), 60, "the approval gate task")[0]
    runs = wait_for(lambda: dispatched_runs(change["number"]), 30, "the flow run")
    run = wait_run(runs[0].id, {"PAUSED"}, timeout_s=60)
    assert run.state.name == "Suspended"  # the process has exited; nothing holds a slot while it waits
    return str(run.id), task


def certs(stack: LocalStack, common_name: str, host: str = "wiki-01") -> tuple[Path, Path]:
    """(the staged, the live) key + certificate directory of ``common_name`` on a sandboxed host."""
    store = stack.sandbox / host / "certs"
    return store / "staged" / common_name, store / "live" / common_name


def check_staged_only(stack: LocalStack, common_name: str) -> None:
    """Before the gate: the new pair is staged (key 0600), nothing live changed."""
    staged, live = certs(stack, common_name)
    assert (staged / "cert.pem").read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert (staged / "key.pem").stat().st_mode & 0o777 == 0o600
    assert not live.exists()


def key_body(pem: bytes) -> list[str]:
    """The base64 lines of a private key PEM (long enough not to match anything by chance)."""
    return [line for line in pem.decode().splitlines() if len(line) >= 40 and not line.startswith("-----")]


def first_lines(stack: LocalStack, sys_id: str) -> list[str]:
    return [n["value"].splitlines()[0] for n in work_notes(stack, sys_id)]


def check_waiting(stack: LocalStack, change: dict, run_id: str, task: dict, common_name: str) -> None:
    assert task["approval"] == "requested" and task["state"] == "1" and task["active"] == "true"
    assert task["correlation_id"] == f"prefect-gate:{run_id}:install-certificate"
    record = ticket(stack, change["sys_id"])
    assert record["state"]["display_value"] == "Implement" and record["correlation_id"]["value"] == run_id
    notes = [n["value"] for n in work_notes(stack, change["sys_id"])]
    assert [n.split(":")[0] for n in notes] == [
        "Started by Prefect",
        "Step 'Resolve hosts from the CMDB'",
        "Step 'Stage certificate'",
        "Waiting for approval before 'Install certificate'",
    ]
    assert f"Staged on 1 host(s), not live yet: certificate for {common_name}, sha256:" in notes[2]
    waiting = notes[3]
    assert f"Replace the live certificate for {common_name} on 1 host(s): wiki-01 with the staged sha256:" in waiting
    assert f"Approve change task {task['number']} (set Approval to Approved) to continue" in waiting
    assert f"reject it to stop and close {change['number']} unsuccessful" in waiting
    assert f"Prefect: resume {stack.prefect.url}/runs/flow-run/{run_id} with approved=true" in waiting


def check_completed(stack: LocalStack, change: dict, run_id: str, common_name: str) -> None:
    record = wait_state(stack, change["sys_id"], {"3"})
    assert record["close_code"]["value"] == "successful"
    assert f"Rotated the certificate for {common_name} on 1 host(s)." in record["close_notes"]["value"]
    # Resumed runs re-execute from the top: finished steps are cached, each note is written once.
    assert [line.split(":")[0] for line in first_lines(stack, change["sys_id"])] == [
        "Started by Prefect",
        "Step 'Resolve hosts from the CMDB'",
        "Step 'Stage certificate'",
        "Waiting for approval before 'Install certificate'",
        "Step 'Install certificate'",
        "Step 'Verify certificate'",
        "Closed by Prefect",
    ]
    assert wait_run(run_id).state.type.value == "COMPLETED"
    assert [str(r.id) for r in dispatched_runs(change["number"])] == [run_id]  # the same run, resumed
    check_live_pair(stack, change, common_name)


def check_live_pair(stack: LocalStack, change: dict, common_name: str) -> None:
    """The host's live key matches its live certificate (the one the notes name); the key's PEM is in no work
    note and not in the attached log."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    staged, live = certs(stack, common_name)
    assert live.is_symlink() and not staged.exists()  # promoted, not copied
    key_pem = (live / "key.pem").read_bytes()
    assert (live / "key.pem").stat().st_mode & 0o777 == 0o600
    key = serialization.load_pem_private_key(key_pem, password=None)
    cert = x509.load_pem_x509_certificate((live / "cert.pem").read_bytes())
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki)
    fingerprint = f"sha256:{cert.fingerprint(hashes.SHA256()).hex()}"
    record = ticket(stack, change["sys_id"])
    assert f"Live: {fingerprint}, expires {cert.not_valid_after_utc:%Y-%m-%d}" in record["close_notes"]["value"]

    key_lines = key_body(key_pem)
    (log,) = attachments(stack, change["sys_id"])
    texts = [n["value"] for n in work_notes(stack, change["sys_id"])]
    texts += [attachment_text(stack, log["sys_id"]), record["close_notes"]["value"]]
    for text in texts:
        assert "PRIVATE KEY" not in text and not any(line in text for line in key_lines)
    assert fingerprint in texts[-2]  # the attached log names the certificate, not the key


def test_gate_approved_in_servicenow_continues_and_closes_successful(stack) -> None:
    name = "approved.wiki.example.com"
    change = rotate_change(stack, common_name=name)
    run_id, task = waiting_at_gate(stack, change)
    check_waiting(stack, change, run_id, task, name)
    check_staged_only(stack, name)  # nothing destructive yet

    approve(stack, task["sys_id"], table="change_task")  # the "gate decided" Business Rule -> receiver
    check_completed(stack, change, run_id, name)
    (closed,) = gate_tasks(stack, change["sys_id"])
    assert closed["state"] == "3" and closed["active"] == "false" and closed["close_code"] == "successful"
    assert closed["close_notes"].startswith("Gate approved by servicenow.")
    # Prefect's side: task results (cached steps), logs and parameters live under the server's home (the
    # SQLite database, the result storage); the key is in none of them.
    key_pem = (certs(stack, name)[1] / "key.pem").read_bytes()
    needles = [line.encode() for line in key_body(key_pem)]
    files = [f for f in Path(stack.prefect.home).rglob("*") if f.is_file()]
    assert any(f.name.endswith(".db") for f in files)
    for path in files:
        data = path.read_bytes()
        assert not any(needle in data for needle in needles), f"the private key is in {path}"


def test_gate_rejected_in_servicenow_closes_unsuccessful(stack) -> None:
    name = "rejected.wiki.example.com"
    change = rotate_change(stack, common_name=name)
    run_id, task = waiting_at_gate(stack, change)
    approve(stack, task["sys_id"], table="change_task", decision="rejected")
    record = wait_state(stack, change["sys_id"], {"3"})
    assert record["close_code"]["value"] == "unsuccessful"
    assert re.search(
        r"Rejected at the approval gate \(CTASK\d+\) by servicenow: CTASK\d+ rejected in ServiceNow",
        record["close_notes"]["value"],
    )
    # The resumed run replays the steps done before the gate: the close notes and the log list them.
    assert "- Resolve hosts from the CMDB: succeeded" in record["close_notes"]["value"]
    (log,) = attachments(stack, change["sys_id"])
    assert "== Resolve hosts from the CMDB: succeeded" in attachment_text(stack, log["sys_id"])
    lines = first_lines(stack, change["sys_id"])
    assert lines[-1] == "Closed by Prefect: Unsuccessful." and len(lines) == 5, lines
    assert not any(line.startswith("Step 'Install certificate'") for line in lines)
    assert not certs(stack, name)[1].exists()  # nothing live: the staged pair waits for the next rotation
    run = wait_run(run_id)
    assert run.state.type.value == "FAILED" and "Rejected at the approval gate" in run.state.message
    (closed,) = gate_tasks(stack, change["sys_id"])
    assert closed["state"] == "3" and closed["close_code"] == "unsuccessful"
    assert re.match(r"Gate rejected by servicenow\. CTASK\d+ rejected in ServiceNow", closed["close_notes"])


def test_gate_resumed_through_prefect(stack) -> None:
    name = "resumed.wiki.example.com"  # not "prefect...": the demo integration user's password is redacted
    change = rotate_change(stack, common_name=name)
    run_id, _ = waiting_at_gate(stack, change)
    resume_flow_run(run_id, run_input={"approved": True})
    check_completed(stack, change, run_id, name)
    (closed,) = gate_tasks(stack, change["sys_id"])
    assert closed["state"] == "3" and closed["close_code"] == "successful"  # closed, so no poll resumes it again
    assert closed["approval"] == "requested"


def test_gate_decided_in_servicenow_reaches_the_run_through_the_poll(stack) -> None:
    name = "polled.wiki.example.com"
    change = rotate_change(stack, common_name=name)
    run_id, task = waiting_at_gate(stack, change)
    with rule_off(stack, "gate decided"):  # the gate webhook is lost
        approve(stack, task["sys_id"], table="change_task")
        assert read_run(run_id).state.type.value == "PAUSED"
        nothing = ready_changes_query().eq("sys_id", change["sys_id"]).encoded  # the change itself is claimed
        result = asyncio.run(poll_change_requests(query=nothing))
    assert result["dispatched"] == []
    assert f"flow run {run_id} resumed (approved)" in result["gates"]
    check_completed(stack, change, run_id, name)


def test_gate_approved_before_the_run_has_suspended(stack, no_emulator_faults) -> None:
    """An approval faster than the run (an auto-approval rule): the webhook waits for the run to suspend."""
    name = "early.wiki.example.com"
    change = rotate_change(stack, common_name=name)
    # Hold the run between creating the gate task and suspending: its 'Waiting for approval' note (the
    # third PATCH of the change after the approval) is rate limited for 3 s.
    path = f"/api/now/table/change_request/{change['sys_id']}"
    set_emulator_faults(
        stack, script=[{"status": 429, "times": 1, "method": "PATCH", "path": path, "retry_after": 3, "skip": 3}]
    )
    approve(stack, change["sys_id"])
    task = wait_for(lambda: gate_tasks(stack, change["sys_id"]), 60, "the approval gate task", interval_s=0.05)[0]
    (run,) = dispatched_runs(change["number"])
    assert read_run(run.id).state.type.value == "RUNNING"  # not suspended yet
    approve(stack, task["sys_id"], table="change_task")
    check_completed(stack, change, str(run.id), name)


def test_change_canceled_while_waiting_at_the_gate_ends_the_run_through_the_poll(stack) -> None:
    name = "canceled.wiki.example.com"
    change = rotate_change(stack, common_name=name)
    run_id, _ = waiting_at_gate(stack, change)
    update(stack, change["sys_id"], {"state": "4"})  # canceled in ServiceNow; the gate is never decided
    nothing = ready_changes_query().eq("sys_id", change["sys_id"]).encoded
    result = asyncio.run(poll_change_requests(query=nothing))
    assert f"flow run {run_id} resumed (rejected)" in result["gates"]
    assert wait_run(run_id).state.type.value == "COMPLETED"
    record = ticket(stack, change["sys_id"])
    assert record["state"]["display_value"] == "Canceled" and record["close_code"]["value"] == ""
    assert first_lines(stack, change["sys_id"])[-1].startswith(
        f"Prefect stopped at a step boundary: {change['number']} was canceled in ServiceNow."
    )
    assert not (stack.sandbox / "wiki-01" / "certs" / f"{name}.pem").exists()
    (closed,) = gate_tasks(stack, change["sys_id"])
    assert closed["state"] == "3" and closed["close_code"] == "unsuccessful"
    assert closed["close_notes"] == f"Gate rejected by servicenow (poll). {change['number']} was canceled while waiting"
    again = asyncio.run(poll_change_requests(query=nothing))  # a closed gate is not resumed twice
    assert again["gates"] == []
