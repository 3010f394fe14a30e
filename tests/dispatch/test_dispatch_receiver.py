"""The live webhook receiver: what it refuses (400/401/413/422, a JSON error, no run), what it accepts
(202 with the flow run id), and that it accepts exactly what the real Business Rule script sends.

The refusals are sent for a change that is approved and ready (created approved, so no update rule
fired): had any of them got through, that change would have run. The last tests send the good request
and the real script's request, and the change does run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from dispatch_support import (
    RESTART,
    dispatched_runs,
    payload,
    post_webhook,
    receiver_url,
    signed_headers,
    unique,
    wait_run,
)

from flows.local_stack import free_port, wait_http
from flows.stack_ops import new_standard_change, rule_off, set_emulator_faults, ticket, update, wait_state
from servicenow_blocks import signing

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "tests" / "js" / "run_business_rule.js"
NODE = shutil.which("node")


@pytest.fixture(scope="module")
def ready(stack) -> dict[str, Any]:
    """An approved, unclaimed standard change that nothing has dispatched yet."""
    return new_standard_change(
        stack, RESTART, "wiki", unique("Receiver target"), {"service_name": "wiki"}, approval="approved"
    )


def assert_refused(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == error and body["detail"], body
    return body


def assert_not_run(stack, change: dict[str, Any]) -> None:
    assert dispatched_runs(change["number"]) == []
    assert ticket(stack, change["sys_id"])["correlation_id"]["value"] == ""


def test_health(stack) -> None:
    response = httpx.get(receiver_url(stack, "/health"), timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "deployment": "run-change-request/run-change-request"}


def test_forged_signature(stack, ready) -> None:
    body = assert_refused(post_webhook(stack, payload(ready), secret="not-the-secret"), 401, "bad_signature")
    assert "does not match" in body["detail"]
    assert_not_run(stack, ready)


def test_tampered_body(stack, ready) -> None:
    raw = signing.canonical_body(payload(ready))
    headers = signed_headers(stack.secret, raw)
    tampered = raw.replace(b'"update"', b'"insert"')
    response = httpx.post(receiver_url(stack), content=tampered, headers=headers, timeout=10)
    assert_refused(response, 401, "bad_signature")
    assert_not_run(stack, ready)


@pytest.mark.parametrize(
    ("drop", "error"),
    [(signing.TIMESTAMP_HEADER, "missing_timestamp"), (signing.SIGNATURE_HEADER, "missing_signature")],
)
def test_missing_headers(stack, ready, drop: str, error: str) -> None:
    raw = signing.canonical_body(payload(ready))
    headers = {k: v for k, v in signed_headers(stack.secret, raw).items() if k != drop}
    assert_refused(post_webhook(stack, raw, headers=headers), 401, error)
    assert_not_run(stack, ready)


@pytest.mark.parametrize("offset_s", [-301, -3600, 301])
def test_stale_or_future_timestamp(stack, ready, offset_s: int) -> None:
    """A captured request replayed after the 5-minute window is refused, even with its valid signature."""
    response = post_webhook(stack, payload(ready), timestamp=int(time.time()) + offset_s)
    body = assert_refused(response, 401, "stale_timestamp")
    assert "300s tolerance" in body["detail"]
    assert_not_run(stack, ready)


def test_malformed_json(stack, ready) -> None:
    raw = b'{"table": "change_request", "sys_id": ' + ready["sys_id"].encode()  # signed, but not JSON
    body = assert_refused(post_webhook(stack, raw), 400, "malformed_json")
    assert "not JSON" in body["detail"]
    assert_not_run(stack, ready)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sys_id": "not-a-sys-id"}, "sys_id"),
        ({"operation": "delete"}, "operation"),
        ({"table": "Change Request; DROP"}, "table"),
        ({"changed": ["approval"]}, "changed"),
    ],
)
def test_payload_schema(stack, ready, change: dict[str, Any], field: str) -> None:
    body = assert_refused(post_webhook(stack, {**payload(ready), **change}), 422, "invalid_payload")
    assert body["detail"].startswith(f"{field}:") or f"; {field}" in body["detail"], body
    assert_not_run(stack, ready)


def test_payload_that_is_not_an_object(stack, ready) -> None:
    assert_refused(post_webhook(stack, b'["change_request"]'), 422, "invalid_payload")
    assert_not_run(stack, ready)


def test_huge_body(stack, ready) -> None:
    big = {**payload(ready), "changed": {"description": "x" * 70_000}}
    body = assert_refused(post_webhook(stack, big), 413, "payload_too_large")
    assert "65536 bytes" in body["detail"]

    def chunks():  # no Content-Length: the receiver must stop reading, not buffer it all
        raw = signing.canonical_body(big)
        for start in range(0, len(raw), 8192):
            yield raw[start : start + 8192]

    headers = signed_headers(stack.secret, signing.canonical_body(big))
    response = httpx.post(receiver_url(stack), content=chunks(), headers=headers, timeout=10)
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert_refused(response, 413, "payload_too_large")
    assert_not_run(stack, ready)


def test_claimed_approval_of_a_change_that_is_not_approved(stack) -> None:
    """The body is a hint: the receiver re-reads the ticket, and ServiceNow says it is not approved."""
    change = new_standard_change(stack, RESTART, "wiki", unique("Not approved"), {"service_name": "wiki"})
    response = post_webhook(stack, payload(change, approval="approved"))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["dispatched"] is False and "flow_run_id" not in answer
    assert answer["reason"] == f"{change['number']} is not approved (approval='requested')"
    time.sleep(1)
    assert_not_run(stack, change)


def test_unknown_record_and_unsupported_table(stack) -> None:
    ghost = {"sys_id": "0" * 32, "number": "CHG9999999"}
    response = post_webhook(stack, payload(ghost))
    assert response.status_code == 200 and response.json()["dispatched"] is False
    assert "not found" in response.json()["reason"]
    assert dispatched_runs("CHG9999999") == []
    with stack.sn() as sn:
        incident = sn.get("/api/now/table/incident", params={"sysparm_limit": 1}).json()["result"][0]
    response = post_webhook(stack, payload(incident, table="incident", state="2"))
    assert_refused(response, 422, "unsupported_table")


def test_a_change_task_that_is_not_a_gate(stack, ready) -> None:
    with stack.sn() as sn:
        task = (
            sn.post(
                "/api/now/table/change_task",
                json={"change_request": ready["sys_id"], "short_description": "A plain task", "approval": "approved"},
            )
            .raise_for_status()
            .json()["result"]
        )
    response = post_webhook(stack, payload(task, table="change_task"))
    assert response.status_code == 200
    assert response.json() == {"resumed": False, "reason": f"{task['number']} is not a Prefect approval gate"}


def test_servicenow_unavailable_is_503_and_a_retry_is_processed_again(stack, no_emulator_faults) -> None:
    """A transient failure is not a decision: the same request sent again is handled anew, not replayed."""
    change = new_standard_change(
        stack, RESTART, "wiki", unique("Receiver retry"), {"service_name": "wiki"}, approval="approved"
    )
    path = f"/api/now/table/change_request/{change['sys_id']}"
    set_emulator_faults(stack, script=[{"status": 503, "times": 6, "method": "GET", "path": path, "retry_after": 0}])
    raw = signing.canonical_body(payload(change))
    headers = signed_headers(stack.secret, raw)
    first = httpx.post(receiver_url(stack), content=raw, headers=headers, timeout=60)
    assert_refused(first, 503, "servicenow_unavailable")
    assert dispatched_runs(change["number"]) == []
    again = httpx.post(receiver_url(stack), content=raw, headers=headers, timeout=60)  # e.g. a proxy's retry
    assert again.status_code == 202, again.text
    assert "replayed" not in again.json()
    wait_run(again.json()["flow_run_id"])
    assert wait_state(stack, change["sys_id"], {"3"})["close_code"]["value"] == "successful"


def test_prefect_refusing_the_run_is_a_json_503(stack, ready, tmp_path: Path) -> None:
    """A second receiver, pointed at a deployment Prefect does not have: a JSON 503 (ServiceNow retries)."""
    port = free_port()
    log = tmp_path / "receiver.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "servicenow_blocks.cli", "webhook", "--port", str(port), "--log-level", "warning",
         "--deployment", "no-such-flow/no-such-deployment"],
        stdout=log.open("w"), stderr=subprocess.STDOUT, env={**os.environ, **stack.prefect.env()}, cwd=ROOT,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/health", process, log, 60)
        raw = signing.canonical_body(payload(ready))
        response = httpx.post(
            f"http://127.0.0.1:{port}/servicenow/webhook", content=raw, headers=signed_headers(stack.secret, raw)
        )
        body = assert_refused(response, 503, "dispatch_failed")
        assert body["detail"].startswith("ObjectNotFound"), body
        assert_not_run(stack, ready)
    finally:
        process.terminate()
        process.wait(timeout=15)


# --- accepted ------------------------------------------------------------------------------------------------
def test_good_request_runs_once_and_its_replay_gets_the_first_answer(stack, ready) -> None:
    raw = signing.canonical_body(payload(ready))
    headers = signed_headers(stack.secret, raw)
    first = httpx.post(receiver_url(stack), content=raw, headers=headers, timeout=30)
    assert first.status_code == 202, first.text
    answer = first.json()
    assert answer["dispatched"] is True and answer["duplicate"] is False
    assert answer["number"] == ready["number"] and answer["reason"] == "dispatched by webhook"
    # The same request again (a replay inside the window): the first answer, marked, and no new run.
    again = httpx.post(receiver_url(stack), content=raw, headers=headers, timeout=30)
    assert again.status_code == 202
    assert again.json() == {**answer, "replayed": True}
    run = wait_run(answer["flow_run_id"])
    assert run.state.type.value == "COMPLETED"
    assert [str(r.id) for r in dispatched_runs(ready["number"])] == [answer["flow_run_id"]]
    assert wait_state(stack, ready["sys_id"], {"3"})["close_code"]["value"] == "successful"


@pytest.mark.skipif(NODE is None, reason="node is not on PATH: the Business Rule harness needs Node.js")
def test_the_real_business_rule_script_is_accepted(stack, tmp_path: Path) -> None:
    """deployments/servicenow/prefect_webhook_business_rule.js, unmodified, run under the Node harness with
    the stack's secret and pointed at the live receiver: it is verified, dispatched, and the change runs."""
    change = new_standard_change(stack, RESTART, "wiki", unique("Via the real script"), {"service_name": "wiki"})
    with rule_off(stack):  # the script's request is the only delivery
        approved = update(stack, change["sys_id"], {"approval": "approved"})
    spec = {
        "properties": {
            "x_prefect.webhook.url": receiver_url(stack),
            "x_prefect.webhook.secret": stack.secret,
            "x_prefect.webhook.timeout_ms": "20000",
        },
        "record": {
            "table": "change_request",
            "operation": "update",
            "fields": {
                "sys_id": {"value": change["sys_id"], "type": "GUID"},
                "number": {"value": change["number"]},
                "state": {"value": approved["state"], "type": "integer"},
                "approval": {"value": "approved", "previous": "requested"},
                "work_notes": {"value": "", "previous": "", "type": "journal_input"},
                "sys_updated_on": {"value": approved["sys_updated_on"], "previous": change["sys_updated_on"]},
                "sys_mod_count": {"value": approved["sys_mod_count"], "previous": change["sys_mod_count"]},
            },
        },
        "condition": "current.approval.changesTo('approved')",
    }
    spec_path = tmp_path / "input.json"
    spec_path.write_text(json.dumps(spec))
    proc = subprocess.run([NODE, str(HARNESS), str(spec_path)], capture_output=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr.decode()
    out = json.loads(proc.stdout)
    assert out["ran"] is True and out["error"] is None and out["http_error"] is None, out
    assert out["status"] == 202, out
    answer = json.loads(out["body"])
    assert answer["number"] == change["number"] and answer["dispatched"] is True, answer
    sent = json.loads(out["request"]["body"])
    assert sent["sys_id"] == change["sys_id"] and sent["changed"]["approval"] == "approved"
    assert out["request"]["headers"][signing.SIGNATURE_HEADER].startswith("v1=")
    record = wait_state(stack, change["sys_id"], {"3"})
    runs = dispatched_runs(change["number"])
    assert [str(r.id) for r in runs] == [answer["flow_run_id"]] == [record["correlation_id"]["value"]]
