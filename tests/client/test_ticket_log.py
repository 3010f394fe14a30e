"""TicketLog against the emulator: claim and Implement at start, a note per step, the close code the steps
earn (successful_issues when one was skipped), and no secret in any note, close note or attached log."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

from client_support import Instance, tag

from servicenow_blocks.choices import ChangeCloseCode
from servicenow_blocks.tickets import Redactor, StepRecord, TicketLog, close_code_for

RUN_URL = "http://127.0.0.1:4200/runs/flow-run/run-1"


async def new_change(aclient: Any) -> dict[str, Any]:
    change = await aclient.create(
        "change_request",
        {"type": "standard", "short_description": tag("ticketlog"), "approval": "approved"},
        fields=["sys_id", "number", "state", "type", "on_hold", "approval", "correlation_id", "active"],
    )
    assert change["state"] == "-5"  # New
    return change


def work_notes(sn: Instance, sys_id: str) -> list[str]:
    rows = sn.rows(
        "sys_journal_field", f"element_id={sys_id}^element=work_notes^ORDERBYsys_created_on", "value,sys_created_on"
    )
    return [row["value"] for row in rows]


def attached_logs(sn: Instance, sys_id: str) -> list[str]:
    with sn.live.client() as admin:
        files = sn.rows("sys_attachment", f"table_sys_id={sys_id}", "sys_id,file_name")
        return [admin.get(f"/api/now/attachment/{f['sys_id']}/file").text for f in files]


def closed(sn: Instance, sys_id: str) -> dict[str, Any]:
    (row,) = sn.rows("change_request", f"sys_id={sys_id}", "state,close_code,close_notes,correlation_id")
    return row


async def test_a_skipped_step_closes_successful_with_issues(sn: Instance, aclient: Any) -> None:
    change = await new_change(aclient)
    tl = TicketLog(aclient, change, run_id="run-1", run_url=RUN_URL)
    assert await tl.start() is True
    assert tl.state.value == "-1" and tl.claimed_by_us  # Implement, claimed, from the write's own answer
    assert await tl.start() is False  # a resumed run does not claim twice
    await tl.step(StepRecord("Drain node", "succeeded", 1.5))
    await tl.step(StepRecord("Restart", "skipped", 0.0, "already running the new version"))
    code = close_code_for(tl.steps, failed=False)
    assert code == ChangeCloseCode.SUCCESSFUL_ISSUES
    await tl.attach_log(tl.log_text(["header"]))
    await tl.close(code, "Restarted; one step skipped")

    row = closed(sn, change["sys_id"])
    assert row["state"] == "3" and row["close_code"] == "successful_issues" and row["correlation_id"] == "run-1"
    assert row["close_notes"] == f"Restarted; one step skipped\n\nExecution: {RUN_URL}"
    notes = [n.splitlines()[0] for n in work_notes(sn, change["sys_id"])]
    assert notes == [
        "Started by Prefect: flow run run-1",
        "Step 'Drain node': succeeded in 1.5 s",
        "Step 'Restart': skipped in 0.0 s",
        "Closed by Prefect: Successful with issues.",
    ], notes
    (log,) = attached_logs(sn, change["sys_id"])
    assert "== Restart: skipped (0.00 s, 1 attempt(s))\nalready running the new version" in log


async def test_secrets_never_reach_the_ticket(sn: Instance, aclient: Any) -> None:
    user, password = sn.create_user(roles=("itil",))
    credentials = sn.credentials(username=user, password=password)
    redact = Redactor.for_credentials(credentials)
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    leaky = f"pw={password} url=https://x/?p={quote(password, safe='')} header=Basic {basic}"

    change = await new_change(aclient)
    tl = TicketLog(aclient, change, run_id="run-2", run_url=RUN_URL, redact=redact)
    await tl.start()
    await tl.step(StepRecord("Login", "failed", 0.1, leaky, log=[leaky]))
    await tl.attach_log(tl.log_text([leaky]))
    await tl.close(ChangeCloseCode.UNSUCCESSFUL, f"Step 'Login' failed: {leaky}")

    texts = [*work_notes(sn, change["sys_id"]), closed(sn, change["sys_id"])["close_notes"]]
    texts += attached_logs(sn, change["sys_id"])
    assert len(texts) == 5
    for text in texts:
        assert password not in text and quote(password, safe="") not in text and basic not in text, text
    assert "pw=[REDACTED] url=https://x/?p=[REDACTED] header=Basic [REDACTED]" in texts[1]
