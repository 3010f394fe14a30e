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
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from flows.local_stack import ROOT, ManagedProcess, PrefectServer, free_port, start_emulator, start_prefect_server, wait_http

INTEGRATION_USER = ("prefect.integration", "prefect")
ADMIN = ("admin", "admin")
BOLD, GREEN, RED, DIM, RESET = ("\033[1m", "\033[32m", "\033[31m", "\033[2m", "\033[0m") if sys.stdout.isatty() else ("",) * 5


def say(text: str) -> None:
    print(text, flush=True)


@dataclass
class Outcome:
    scenario: str
    number: str
    state: str
    close_code: str
    expected: str
    ok: bool
    run_url: str = ""


class DemoStack:
    """Starts and stops everything; knows the URLs."""

    def __init__(self, workdir: Path, keep: bool):
        self.workdir = workdir
        self.keep = keep
        self.processes: list[ManagedProcess] = []
        self.secret = secrets.token_urlsafe(32)
        self.sandbox = workdir / "hosts"

    def start(self) -> None:
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        self.workdir.mkdir(parents=True)
        say(f"{BOLD}Starting the ServiceNow emulator and a Prefect server{RESET} {DIM}(workdir {self.workdir}){RESET}")
        self.emulator = start_emulator(self.workdir, port=_port(8080))
        self.processes.append(self.emulator)
        self.prefect: PrefectServer = start_prefect_server(self.workdir / "prefect", port=_port(4200), ui=self.keep)
        self.processes.append(self.prefect)
        os.environ.update(self.prefect.env())
        say(f"  emulator  {self.emulator.url}  (admin/admin; see servicenow_emulator/README.md)")
        say(f"  prefect   {self.prefect.url}")
        self._blocks()
        self.receiver_port = _port(8787)
        env = {**os.environ, **self.prefect.env()}
        self.receiver = self._spawn(
            "webhook-receiver",
            [sys.executable, "-m", "servicenow_blocks.cli", "webhook", "--port", str(self.receiver_port), "--log-level", "warning"],
            env,
            f"http://127.0.0.1:{self.receiver_port}/health",
        )
        self.serve = self._spawn(
            "serve",
            [sys.executable, "-m", "flows.serve", "--executor-root", str(self.sandbox), "--poll-interval-s", "3600"],
            {**env, "PREFECT_RUNNER_POLL_FREQUENCY": "1"},
            None,
        )
        self._wait_for_deployments()
        say(f"  receiver  http://127.0.0.1:{self.receiver_port}/servicenow/webhook")
        self.rules = self._business_rules()

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], health: str | None) -> ManagedProcess:
        log = self.workdir / f"{name}.log"
        process = subprocess.Popen(
            argv, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True  # noqa: SIM115
        )
        managed = ManagedProcess(name, process, log, health or "")
        self.processes.append(managed)
        if health:
            wait_http(health, process, log, 60)
        return managed

    def _blocks(self) -> None:
        from prefect.blocks.system import Secret

        from servicenow_blocks import ServiceNowCredentials

        ServiceNowCredentials(
            instance=self.emulator.url, username=INTEGRATION_USER[0], password=INTEGRATION_USER[1]
        ).save("servicenow", overwrite=True)
        Secret(value=self.secret).save("servicenow-webhook-secret", overwrite=True)

    def _wait_for_deployments(self) -> None:
        from prefect.client.orchestration import get_client

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with get_client(sync_client=True) as client:
                names = {d.name for d in client.read_deployments()}
            if {"run-change-request", "poll-change-requests"} <= names:
                return
            if self.serve.process.poll() is not None:
                raise RuntimeError(f"serve exited:\n{self.serve.log.read_text()[-3000:]}")
            time.sleep(0.5)
        raise RuntimeError("the deployments did not appear within 90 s")

    def sn(self, auth: tuple[str, str] = ADMIN) -> httpx.Client:
        return httpx.Client(base_url=self.emulator.url, auth=auth, timeout=30)

    def _business_rules(self) -> dict[str, str]:
        """The emulator's outbound Business Rules, as deployments/servicenow/ installs them on an instance."""
        url = f"http://127.0.0.1:{self.receiver_port}/servicenow/webhook"
        rules = {
            "change approved": {
                "name": "Prefect webhook: change approved",
                "collection": "change_request",
                "condition": "current.approval.changesTo('approved')",
            },
            "gate decided": {
                "name": "Prefect webhook: approval gate decided",
                "collection": "change_task",
                "condition": "current.approval.changesTo('approved') || current.approval.changesTo('rejected')",
                "filter_condition": "correlation_idSTARTSWITHprefect-gate:",
            },
        }
        ids = {}
        with self.sn() as sn:
            for key, rule in rules.items():
                body = {**rule, "when": "after", "action_update": "true", "action_insert": "false",
                        "x_webhook_url": url, "x_webhook_secret": self.secret, "x_webhook_max_attempts": "5"}
                ids[key] = sn.post("/api/now/table/sys_script", json=body).raise_for_status().json()["result"]["sys_id"]
        return ids

    def stop(self) -> None:
        for managed in reversed(self.processes):
            managed.stop()


def _port(preferred: int) -> int:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            return free_port()


# --- helpers over the emulator ------------------------------------------------------------------------
def find(sn: httpx.Client, table: str, query: str, fields: str) -> list[dict[str, Any]]:
    return sn.get(f"/api/now/table/{table}", params={"sysparm_query": query, "sysparm_fields": fields}).raise_for_status().json()["result"]


def wait_for(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def change_by_description(sn: httpx.Client, text: str) -> dict[str, Any]:
    rows = find(sn, "change_request", f"short_description={text}", "sys_id,number,state,approval")
    if not rows:
        raise LookupError(f"no change {text!r} in the demo seed")
    return rows[0]


def new_standard_change(stack: DemoStack, template: str, ci_name: str, short: str, variables: dict[str, str]) -> dict[str, Any]:
    """A standard change from a template, with its variables (what a requester's form submission creates)."""
    with stack.sn() as sn:
        version = find(sn, "std_change_producer_version", f"name={template} - 1", "sys_id")[0]["sys_id"]
        ci = find(sn, "cmdb_ci", f"name={ci_name}", "sys_id")[0]["sys_id"]
        group = find(sn, "sys_user_group", "name=Linux Operations", "sys_id")[0]["sys_id"]
        change = sn.post(
            "/api/now/table/change_request",
            json={"type": "standard", "short_description": short, "std_change_producer_version": version,
                  "cmdb_ci": ci, "assignment_group": group, "category": "Software", "approval": "requested"},
        ).raise_for_status().json()["result"]
        for order, (name, value) in enumerate(variables.items()):
            question = find(sn, "item_option_new", f"name={name}", "sys_id")[0]["sys_id"]
            sn.post("/api/now/table/question_answer", json={"table_name": "change_request", "table_sys_id": change["sys_id"],
                                                               "question": question, "value": value, "order": order})
    return change


def approve(stack: DemoStack, sys_id: str, table: str = "change_request", decision: str = "approved") -> None:
    with stack.sn(("erin.change", "erin.change") if table == "change_request" else ADMIN) as sn:
        sn.patch(f"/api/now/table/{table}/{sys_id}", json={"approval": decision}).raise_for_status()


def ticket(stack: DemoStack, sys_id: str) -> dict[str, Any]:
    with stack.sn() as sn:
        return sn.get(
            f"/api/now/table/change_request/{sys_id}",
            params={"sysparm_fields": "number,state,close_code,close_notes,correlation_id,approval", "sysparm_display_value": "all"},
        ).raise_for_status().json()["result"]


def journal(stack: DemoStack, sys_id: str) -> list[str]:
    with stack.sn() as sn:
        rows = find(sn, "sys_journal_field", f"element_id={sys_id}^element=work_notes^ORDERBYsys_created_on", "value,sys_created_on")
    return [f"{r['sys_created_on']}  {r['value'].splitlines()[0]}" for r in rows]


def attachments(stack: DemoStack, sys_id: str) -> list[str]:
    with stack.sn() as sn:
        rows = sn.get("/api/now/attachment", params={"sysparm_query": f"table_sys_id={sys_id}"}).json()["result"]
    return [f"{r['file_name']} ({r['size_bytes']} bytes)" for r in rows]


def wait_state(stack: DemoStack, sys_id: str, states: set[str], timeout_s: float = 90) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        record = ticket(stack, sys_id)
        return record if record["state"]["value"] in states else None

    return wait_for(check, timeout_s, f"state in {states}")


def run_url(stack: DemoStack, record: dict[str, Any]) -> str:
    run_id = record.get("correlation_id", {}).get("value", "")
    return f"{stack.prefect.url}/runs/flow-run/{run_id}" if run_id else ""


def show(stack: DemoStack, sys_id: str) -> None:
    record = ticket(stack, sys_id)
    say(f"    {record['number']['value']}: {record['state']['display_value']}, close code {record['close_code']['display_value'] or '-'}")
    for line in journal(stack, sys_id):
        say(f"      {DIM}{line}{RESET}")
    for item in attachments(stack, sys_id):
        say(f"      attachment: {item}")
    if run_url(stack, record):
        say(f"      run: {run_url(stack, record)}")


# --- scenarios ------------------------------------------------------------------------------------------
def scenario_client(stack: DemoStack) -> Outcome:
    from servicenow_blocks import Query, ServiceNowCredentials

    credentials = ServiceNowCredentials(instance=stack.emulator.url, username=INTEGRATION_USER[0], password=INTEGRATION_USER[1])
    with credentials.get_client() as client:
        servers = client.count("cmdb_ci_server")
        change = client.first("change_request", Query().eq("short_description", "Migrate payments database to new storage"),
                              fields=["sys_id", "number", "state"])
        client.update("change_request", change["sys_id"], {"work_notes": "Reviewed by the demo client walk-through."})
        notes = client.get_records("sys_journal_field", Query().eq("element_id", change["sys_id"]), fields=["value"])
    say(f"    {servers} servers in the CMDB; {change['number']} is in state {change['state']}; it has {len(notes)} work note(s)")
    return Outcome("client walk-through", change["number"], "Assess", "-", "a work note written through the client", len(notes) >= 1)


def scenario_webhook(stack: DemoStack) -> Outcome:
    change = change_by_description(stack.sn(), "Restart payments-api after config rollout")
    started = time.monotonic()
    approve(stack, change["sys_id"])
    wait_for(lambda: any("Started by Prefect" in line for line in journal(stack, change["sys_id"])), 60, "the Started note")
    say(f"    approval -> 'Started by Prefect' note in {time.monotonic() - started:.1f} s")
    record = wait_state(stack, change["sys_id"], {"3"})
    show(stack, change["sys_id"])
    ok = record["close_code"]["value"] == "successful" and attachments(stack, change["sys_id"])
    return Outcome("webhook: approve -> run -> closed", change["number"], record["state"]["display_value"],
                   record["close_code"]["value"], "successful", bool(ok), run_url(stack, record))


def scenario_poll(stack: DemoStack) -> Outcome:
    from prefect.deployments import run_deployment

    with stack.sn() as sn:
        sn.patch(f"/api/now/table/sys_script/{stack.rules['change approved']}", json={"active": "false"}).raise_for_status()
    try:
        change = change_by_description(stack.sn(), "Restart portal-web to pick up new TLS bundle")
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
    return Outcome("poll: scheduled dispatch", change["number"], record["state"]["display_value"],
                   record["close_code"]["value"], "successful", record["close_code"]["value"] == "successful", run_url(stack, record))


def scenario_failure(stack: DemoStack) -> Outcome:
    host = stack.sandbox / "wiki-01"
    host.mkdir(parents=True, exist_ok=True)
    (host / "faults.json").write_text(json.dumps({"unhealthy": ["wiki"]}))
    change = new_standard_change(stack, "Restart application service", "wiki", "Restart wiki (demo: it stays unhealthy)",
                                 {"service_name": "wiki", "restart_timeout_s": "5"})
    approve(stack, change["sys_id"])
    record = wait_state(stack, change["sys_id"], {"3"})
    show(stack, change["sys_id"])
    return Outcome("failure: closed unsuccessful", change["number"], record["state"]["display_value"],
                   record["close_code"]["value"], "unsuccessful", record["close_code"]["value"] == "unsuccessful", run_url(stack, record))


def scenario_gate(stack: DemoStack) -> Outcome:
    change = new_standard_change(stack, "Rotate TLS certificate", "portal-web", "Rotate portal TLS certificate",
                                 {"common_name": "portal.example.com", "validity_days": "90"})
    approve(stack, change["sys_id"])
    gate = wait_for(lambda: find(stack.sn(), "change_task", f"change_request={change['sys_id']}^correlation_idSTARTSWITHprefect-gate:",
                                 "sys_id,number,approval"), 90, "the approval gate task")[0]
    say(f"    waiting at the gate {gate['number']}; approving it in ServiceNow")
    time.sleep(1)
    approve(stack, gate["sys_id"], table="change_task")
    record = wait_state(stack, change["sys_id"], {"3"}, timeout_s=120)
    show(stack, change["sys_id"])
    return Outcome("gate: approve a destructive step", change["number"], record["state"]["display_value"],
                   record["close_code"]["value"], "successful", record["close_code"]["value"] == "successful", run_url(stack, record))


def scenario_bad_input(stack: DemoStack) -> Outcome:
    change = new_standard_change(stack, "Restart application service", "payments-api", "Restart with no service name",
                                 {"restart_timeout_s": "3"})
    approve(stack, change["sys_id"])
    note = wait_for(lambda: [line for line in journal(stack, change["sys_id"]) if "cannot run" in line], 60, "the input note")
    record = ticket(stack, change["sys_id"])
    say(f"    {note[0]}")
    unclaimed = not record["correlation_id"]["value"]
    return Outcome("bad input: note, no run", change["number"], record["state"]["display_value"], "-",
                   "unclaimed, work note", unclaimed)


def scenario_cancel(stack: DemoStack) -> Outcome:
    host = stack.sandbox / "pay-wrk-01"
    host.mkdir(parents=True, exist_ok=True)
    (host / "faults.json").write_text(json.dumps({"slow_start_s": 4}))
    change = new_standard_change(stack, "Restart application service", "payments-worker", "Restart payments-worker (cancelled)",
                                 {"service_name": "payments-worker"})
    approve(stack, change["sys_id"])
    wait_for(lambda: any("Started by Prefect" in line for line in journal(stack, change["sys_id"])), 60, "the Started note")
    with stack.sn(("erin.change", "erin.change")) as sn:
        sn.patch(f"/api/now/table/change_request/{change['sys_id']}", json={"state": "4"}).raise_for_status()
    say("    cancelled in ServiceNow while the restart runs")
    wait_for(lambda: any("stopped" in line for line in journal(stack, change["sys_id"])), 60, "the stop note")
    record = ticket(stack, change["sys_id"])
    show(stack, change["sys_id"])
    return Outcome("cancel: stop at the step boundary", change["number"], record["state"]["display_value"], "-",
                   "Canceled, stop note", record["state"]["value"] == "4", run_url(stack, record))


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
    stack = DemoStack(Path(args.workdir), args.keep)
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
            say(f"\nEverything keeps running: Prefect UI {stack.prefect.url}, emulator {stack.emulator.url}. Ctrl-C stops.")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
