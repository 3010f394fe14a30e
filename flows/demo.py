"""``make demo``: the emulator, a real Prefect server, ``serve()`` and the webhook receiver, end to end.

Scenarios, each on the demo estate the emulator seeds:
1. client: walk a change record through the REST client (read, update, journal);
2. webhook: approving a standard change runs its runbook and closes it, journal and log attached;
3. poll: with the webhook rule off, the scheduled poll picks the approved change up instead;
4. failure: a restart that never gets healthy closes the change unsuccessful, with the error;
5. gate: a certificate rotation waits at an approval gate until its change task is approved;
6. bad input: a ticket missing a template variable gets a work note naming the field, and no run;
7. cancel: a change cancelled in ServiceNow mid-run stops at the next step boundary.

Ends with a summary (tickets, final states, run URLs) and exits 0 when every scenario did what it should.
``--keep`` (``make demo KEEP=1``) leaves everything running for exploration.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from flows.local_stack import INTEGRATION_USER, ROOT, LocalStack, say
from flows.stack_ops import (
    approve,
    attachments,
    change_by_description,
    gate_tasks,
    journal,
    new_standard_change,
    run_url,
    ticket,
    wait_for,
    wait_state,
)

BOLD, GREEN, RED, DIM, RESET = (
    ("\033[1m", "\033[32m", "\033[31m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("",) * 5
)


@dataclass
class Outcome:
    scenario: str
    number: str
    state: str
    close_code: str
    expected: str
    ok: bool
    run_url: str = ""


def closed_outcome(stack: LocalStack, scenario: str, record: dict, expected: str, ok: bool = True) -> Outcome:
    """The outcome of a scenario that ends with the change closed under the ``expected`` close code."""
    code = record["close_code"]["value"]
    return Outcome(
        scenario,
        record["number"]["value"],
        record["state"]["display_value"],
        code,
        expected,
        ok and code == expected,
        run_url(stack, record),
    )


# --- helpers over the emulator: flows/stack_ops.py ----------------------------------------------------------
def show(stack: LocalStack, sys_id: str) -> None:
    record = ticket(stack, sys_id)
    close_code = record["close_code"]["display_value"] or "-"
    say(f"    {record['number']['value']}: {record['state']['display_value']}, close code {close_code}")
    for line in journal(stack, sys_id):
        say(f"      {DIM}{line}{RESET}")
    for item in attachments(stack, sys_id):
        say(f"      attachment: {item['file_name']} ({item['size_bytes']} bytes)")
    if run_url(stack, record):
        say(f"      run: {run_url(stack, record)}")


# --- scenarios ------------------------------------------------------------------------------------------
def scenario_client(stack: LocalStack) -> Outcome:
    from servicenow_blocks import Query, ServiceNowCredentials

    credentials = ServiceNowCredentials(
        instance=stack.emulator.url, username=INTEGRATION_USER[0], password=INTEGRATION_USER[1]
    )
    with credentials.get_client() as client:
        servers = client.count("cmdb_ci_server")
        change = client.first(
            "change_request",
            Query().eq("short_description", "Migrate payments database to new storage"),
            fields=["sys_id", "number", "state"],
        )
        client.update("change_request", change["sys_id"], {"work_notes": "Reviewed by the demo client walk-through."})
        notes = client.get_records("sys_journal_field", Query().eq("element_id", change["sys_id"]), fields=["value"])
    say(
        f"    {servers} servers in the CMDB; {change['number']} is in state {change['state']}; "
        f"it has {len(notes)} work note(s)"
    )
    return Outcome(
        "client walk-through",
        change["number"],
        "Assess",
        "-",
        "a work note written through the client",
        len(notes) >= 1,
    )


def scenario_webhook(stack: LocalStack) -> Outcome:
    change = change_by_description(stack, "Restart payments-api after config rollout")
    started = time.monotonic()
    approve(stack, change["sys_id"])
    wait_for(
        lambda: any("Started by Prefect" in line for line in journal(stack, change["sys_id"])), 60, "the Started note"
    )
    say(f"    approval -> 'Started by Prefect' note in {time.monotonic() - started:.1f} s")
    record = wait_state(stack, change["sys_id"], {"3"})
    show(stack, change["sys_id"])
    has_log = bool(attachments(stack, change["sys_id"]))
    return closed_outcome(stack, "webhook: approve -> run -> closed", record, "successful", ok=has_log)


def scenario_poll(stack: LocalStack) -> Outcome:
    from prefect.deployments import run_deployment

    with stack.sn() as sn:
        sn.patch(
            f"/api/now/table/sys_script/{stack.rules['change approved']}", json={"active": "false"}
        ).raise_for_status()
    try:
        change = change_by_description(stack, "Restart portal-web to pick up new TLS bundle")
        approve(stack, change["sys_id"])
        time.sleep(1)
        say("    webhook rule off; the change is approved and waits for the poll")
        poll = run_deployment("poll-change-requests/poll-change-requests", timeout=120)
        say(f"    poll-change-requests ran: {poll.state_name}")
        record = wait_state(stack, change["sys_id"], {"3"})
        show(stack, change["sys_id"])
    finally:
        with stack.sn() as sn:
            sn.patch(f"/api/now/table/sys_script/{stack.rules['change approved']}", json={"active": "true"})
    return closed_outcome(stack, "poll: scheduled dispatch", record, "successful")


def scenario_failure(stack: LocalStack) -> Outcome:
    host = stack.sandbox / "wiki-01"
    host.mkdir(parents=True, exist_ok=True)
    (host / "faults.json").write_text(json.dumps({"unhealthy": ["wiki"]}))
    change = new_standard_change(
        stack,
        "Restart application service",
        "wiki",
        "Restart wiki (demo: it stays unhealthy)",
        {"service_name": "wiki", "restart_timeout_s": "5"},
    )
    approve(stack, change["sys_id"])
    record = wait_state(stack, change["sys_id"], {"3"})
    show(stack, change["sys_id"])
    return closed_outcome(stack, "failure: closed unsuccessful", record, "unsuccessful")


def scenario_gate(stack: LocalStack) -> Outcome:
    change = new_standard_change(
        stack,
        "Rotate TLS certificate",
        "portal-web",
        "Rotate portal TLS certificate",
        {"common_name": "portal.example.com", "validity_days": "90"},
    )
    approve(stack, change["sys_id"])
    gate = wait_for(lambda: gate_tasks(stack, change["sys_id"]), 90, "the approval gate task")[0]
    say(f"    waiting at the gate {gate['number']}; approving it in ServiceNow")
    time.sleep(1)
    approve(stack, gate["sys_id"], table="change_task")
    record = wait_state(stack, change["sys_id"], {"3"}, timeout_s=120)
    show(stack, change["sys_id"])
    return closed_outcome(stack, "gate: approve a destructive step", record, "successful")


def scenario_bad_input(stack: LocalStack) -> Outcome:
    change = new_standard_change(
        stack, "Restart application service", "payments-api", "Restart with no service name", {"restart_timeout_s": "3"}
    )
    approve(stack, change["sys_id"])
    note = wait_for(
        lambda: [line for line in journal(stack, change["sys_id"]) if "cannot run" in line], 60, "the input note"
    )
    record = ticket(stack, change["sys_id"])
    say(f"    {note[0]}")
    unclaimed = not record["correlation_id"]["value"]
    return Outcome(
        "bad input: note, no run",
        change["number"],
        record["state"]["display_value"],
        "-",
        "unclaimed, work note",
        unclaimed,
    )


def scenario_cancel(stack: LocalStack) -> Outcome:
    host = stack.sandbox / "pay-wrk-01"
    host.mkdir(parents=True, exist_ok=True)
    (host / "faults.json").write_text(json.dumps({"slow_start_s": 4}))
    change = new_standard_change(
        stack,
        "Restart application service",
        "payments-worker",
        "Restart payments-worker (cancelled)",
        {"service_name": "payments-worker"},
    )
    approve(stack, change["sys_id"])
    wait_for(
        lambda: any("Started by Prefect" in line for line in journal(stack, change["sys_id"])), 60, "the Started note"
    )
    with stack.sn(("erin.change", "erin.change")) as sn:
        sn.patch(f"/api/now/table/change_request/{change['sys_id']}", json={"state": "4"}).raise_for_status()
    say("    cancelled in ServiceNow while the restart runs")
    wait_for(lambda: any("stopped" in line for line in journal(stack, change["sys_id"])), 60, "the stop note")
    record = ticket(stack, change["sys_id"])
    show(stack, change["sys_id"])
    return Outcome(
        "cancel: stop at the step boundary",
        change["number"],
        record["state"]["display_value"],
        "-",
        "Canceled, stop note",
        record["state"]["value"] == "4",
        run_url(stack, record),
    )


SCENARIOS = [
    ("1. Client walk-through", scenario_client),
    ("2. Webhook path", scenario_webhook),
    ("3. Poll path", scenario_poll),
    ("4. A failing step", scenario_failure),
    ("5. Approval gate", scenario_gate),
    ("6. Bad ticket input", scenario_bad_input),
    ("7. Cancelled mid-run", scenario_cancel),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="keep everything running afterwards (Ctrl-C stops)")
    parser.add_argument("--workdir", default=str(ROOT / ".demo"))
    args = parser.parse_args(argv)
    stack = LocalStack(Path(args.workdir), args.keep)
    outcomes: list[Outcome] = []
    failures = 0
    try:
        stack.start()
        for title, scenario in SCENARIOS:
            say(f"\n{BOLD}{title}{RESET}")
            try:
                outcome = scenario(stack)
            except Exception as exc:  # one scenario's failure is reported, the others still run
                say(f"    {RED}failed: {exc}{RESET}")
                outcome = Outcome(title, "-", "-", "-", "-", False)
            outcomes.append(outcome)
            failures += not outcome.ok
        say(f"\n{BOLD}Summary{RESET}")
        say(f"  {'scenario':38} {'ticket':11} {'state':9} {'close code':18} result")
        for o in outcomes:
            mark = f"{GREEN}ok{RESET}" if o.ok else f"{RED}FAILED (expected {o.expected}){RESET}"
            say(f"  {o.scenario:38} {o.number:11} {o.state:9} {o.close_code:18} {mark}")
            if o.run_url:
                say(f"  {'':38} {DIM}{o.run_url}{RESET}")
        if args.keep:
            say(
                f"\nEverything keeps running: Prefect UI {stack.prefect.url}, emulator {stack.emulator.url}. "
                "Ctrl-C stops."
            )
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
