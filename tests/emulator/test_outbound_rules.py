"""Outbound Business Rules: a sys_script row with webhook fields POSTs a signed payload after a matching
write, retries 5xx with backoff, and logs every attempt in sys_outbound_http_log."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sn_support import create, get, patch, rows, sys_id_of, tag

from servicenow_blocks import signing
from servicenow_emulator.dictionary import DICTIONARY

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "tests" / "js" / "run_business_rule.js"
NODE = shutil.which("node")
# The Business Rule script's RULE_NAME (deployments/servicenow/prefect_webhook_business_rule.js).
SCRIPT_RULE_NAME = "Prefect webhook: change approved"

SECRET = "s3cr3t-shared-with-the-receiver"


class Receiver:
    """A tiny local webhook receiver: records each request; answers from a scripted list of statuses."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body, "at": time.monotonic()}
                )
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}')

            def log_message(self, *args) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/servicenow/webhook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, count: int, timeout: float = 10.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.requests

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def rule(admin, receiver) -> Iterator[dict]:
    """An after-update rule on change_request, firing when approval changes to approved."""
    values = {
        "name": tag("Prefect webhook"),
        "collection": "change_request",
        "when": "after",
        "action_update": "true",
        "action_insert": "false",
        "active": "true",
        "condition": "current.approval.changesTo('approved')",
        "filter_condition": "type=standard",
        "x_webhook_url": receiver.url,
        "x_webhook_secret": SECRET,
        "x_webhook_headers": json.dumps({"X-Extra": "extra-value"}),
        "x_webhook_max_attempts": "3",
    }
    created = create(admin, "sys_script", values)
    yield {**values, "sys_id": created["sys_id"]}
    admin.delete(f"/api/now/table/sys_script/{created['sys_id']}")


def _settle(emulator, timeout: float = 10.0) -> None:
    """Wait until the emulator has no delivery in flight."""
    deadline = time.monotonic() + timeout
    while emulator.stats()["outbound_pending"] and time.monotonic() < deadline:
        time.sleep(0.02)


def _standard_change(admin, **values) -> dict:
    return create(
        admin, "change_request", {"short_description": "webhook", "type": "standard", "approval": "requested", **values}
    )


def test_approving_a_change_sends_one_signed_post(emulator, admin, receiver, rule):
    change = _standard_change(admin)
    r = patch(admin, "change_request", change["sys_id"], {"approval": "approved"})
    assert r.status_code == 200
    [request] = receiver.wait(1)
    _settle(emulator)
    time.sleep(0.2)
    assert len(receiver.requests) == 1  # exactly one
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert request["path"] == "/servicenow/webhook"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == "ServiceNow/1.0"
    assert headers["x-extra"] == "extra-value"
    assert headers["x-sn-webhook-id"]
    signing.verify(SECRET, headers["x-sn-webhook-timestamp"], headers["x-sn-webhook-signature"], request["body"])
    with pytest.raises(signing.SignatureError):
        signing.verify(
            "other-secret", headers["x-sn-webhook-timestamp"], headers["x-sn-webhook-signature"], request["body"]
        )
    payload = json.loads(request["body"])
    assert set(payload) == {
        "table",
        "sys_id",
        "number",
        "operation",
        "sys_updated_on",
        "sys_mod_count",
        "changed",
        "rule",
    }
    record = r.json()["result"]
    assert payload["table"] == "change_request"
    assert payload["sys_id"] == change["sys_id"]
    assert payload["number"] == change["number"]
    assert payload["operation"] == "update"
    assert payload["sys_updated_on"] == record["sys_updated_on"]
    assert payload["sys_mod_count"] == record["sys_mod_count"] == "1"
    assert payload["rule"] == rule["name"]
    assert payload["changed"]["approval"] == "approved"
    assert all(isinstance(v, str) for v in payload["changed"].values())
    assert "short_description" not in payload["changed"]  # only what this write changed
    # as GlideElement.changes() sees them in an after rule: the system fields the update set changed too
    assert payload["changed"]["sys_mod_count"] == "1"
    if record["sys_updated_on"] != change["sys_updated_on"]:  # not when created and approved in one second
        assert payload["changed"]["sys_updated_on"] == record["sys_updated_on"]
    else:
        assert "sys_updated_on" not in payload["changed"]
    assert "sys_updated_by" not in payload["changed"]  # the same user created and updated it
    assert "sys_created_on" not in payload["changed"] and "sys_id" not in payload["changed"]


def _harness_record(table: str, before: dict, after: dict, operation: str) -> dict:
    """The emulator's record as the JS harness's GlideRecord shim takes it: every field of the table, in the
    dictionary's order, with its previous value, its current value and its internal type."""
    fields = {}
    for name, f in DICTIONARY.fields(table).items():
        entry = {"value": after.get(name, ""), "type": f.type}
        if operation == "update":
            entry["previous"] = before.get(name, "")
        fields[name] = entry
    return {"table": table, "operation": operation, "fields": fields}


def _run_script(tmp_path: Path, record: dict, url: str) -> dict:
    spec = {
        "properties": {"x_prefect.webhook.url": url, "x_prefect.webhook.secret": SECRET},
        "record": record,
        "condition": "current.approval.changesTo('approved')",
    }
    path = tmp_path / f"input-{record['operation']}.json"
    path.write_text(json.dumps(spec))
    proc = subprocess.run([NODE, str(HARNESS), str(path)], capture_output=True, timeout=60, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    out = json.loads(proc.stdout)
    assert out["ran"] and out["error"] is None, out
    return out


@pytest.mark.skipif(NODE is None, reason="node is not on PATH: the Business Rule harness needs Node.js")
@pytest.mark.parametrize("operation", ["update", "insert"])
def test_the_payload_is_byte_for_byte_what_the_real_business_rule_sends(
    tmp_path, emulator, admin, receiver, rule, operation
):
    """The same write, seen by the emulator's rule and by the real script under Node: the same body."""
    patch(
        admin,
        "sys_script",
        rule["sys_id"],
        {"name": SCRIPT_RULE_NAME, "action_insert": "true", "filter_condition": ""},
    )
    raw = {"sysparm_display_value": "false", "sysparm_exclude_reference_link": "true"}
    if operation == "update":
        change = _standard_change(admin, description='line1\nline2 "q" \\ caf\u00e9 \U0001f680')
        before = get(admin, "change_request", change["sys_id"], **raw)
        itil = sys_id_of(admin, "sys_user", "user_name=itil")
        time.sleep(1.05 - time.time() % 1)  # the next second, so that sys_updated_on changes too
        r = patch(admin, "change_request", change["sys_id"], {"approval": "approved", "assigned_to": itil})
        assert r.status_code == 200
        after = get(admin, "change_request", change["sys_id"], **raw)
    else:
        before = {}
        after = get(
            admin,
            "change_request",
            _standard_change(admin, approval="approved", short_description="born approved")["sys_id"],
            **raw,
        )
    [delivered] = receiver.wait(1)
    _settle(emulator)
    emulator_body = delivered["body"]
    out = _run_script(tmp_path, _harness_record("change_request", before, after, operation), receiver.url)
    script_body = out["request"]["body"].encode()
    payload, script_payload = json.loads(emulator_body), json.loads(script_body)
    assert list(payload) == list(script_payload)
    assert payload["changed"] == script_payload["changed"]
    assert payload == script_payload
    assert emulator_body == script_body  # the same keys, in the same order, serialised the same way
    if operation == "update":
        assert {"approval", "assigned_to", "sys_updated_on", "sys_mod_count"} <= set(payload["changed"])
    else:
        assert {"sys_id", "number", "approval", "sys_created_on", "sys_mod_count"} <= set(payload["changed"])


def test_no_delivery_when_the_condition_is_false(emulator, admin, receiver, rule):
    change = _standard_change(admin)
    patch(admin, "change_request", change["sys_id"], {"approval": "rejected"})
    patch(admin, "change_request", change["sys_id"], {"short_description": "edited, approval unchanged"})
    approved = _standard_change(admin, approval="approved")  # an insert, and the rule is update-only
    patch(admin, "change_request", approved["sys_id"], {"description": "still approved, not a change to it"})
    _settle(emulator)
    time.sleep(0.3)
    assert receiver.requests == []


def test_no_delivery_when_the_filter_does_not_match(emulator, admin, receiver, rule):
    normal = create(admin, "change_request", {"short_description": "normal", "type": "normal", "approval": "requested"})
    patch(admin, "change_request", normal["sys_id"], {"approval": "approved"})
    incident = create(admin, "incident", {"short_description": "other table", "approval": "requested"})
    patch(admin, "incident", incident["sys_id"], {"approval": "approved"})
    _settle(emulator)
    time.sleep(0.3)
    assert receiver.requests == []


def test_inactive_rule_does_not_fire(emulator, admin, receiver, rule):
    patch(admin, "sys_script", rule["sys_id"], {"active": "false"})
    change = _standard_change(admin)
    patch(admin, "change_request", change["sys_id"], {"approval": "approved"})
    _settle(emulator)
    time.sleep(0.3)
    assert receiver.requests == []


def test_retries_with_backoff_then_success_and_every_attempt_is_logged(emulator, admin, receiver, rule):
    receiver.statuses = [503, 500]
    change = _standard_change(admin)
    patch(admin, "change_request", change["sys_id"], {"approval": "approved"})
    requests = receiver.wait(3)
    _settle(emulator)
    assert len(requests) == 3
    bodies = {r["body"] for r in requests}
    assert len(bodies) == 1  # the same payload each time
    ids = {r["headers"]["X-SN-Webhook-Id"] for r in requests}
    assert len(ids) == 1  # one delivery, three attempts
    stamps = [int(r["headers"]["X-SN-Webhook-Timestamp"]) for r in requests]
    assert stamps == sorted(stamps)
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(requests)]
    assert gaps[0] >= 0.4 and gaps[1] >= 1.5 * gaps[0] * 0.9  # exponential backoff
    logs = rows(
        admin,
        "sys_outbound_http_log",
        f"source_record={change['sys_id']}^ORDERBYattempt",
        "attempt,response_status,url,http_method,source_table,source_business_rule,delivery_id,request_body,"
        "request_headers,sys_created_on",
    )
    assert [(row["attempt"], row["response_status"]) for row in logs] == [("1", "503"), ("2", "500"), ("3", "200")]
    assert all(row["url"] == receiver.url and row["source_table"] == "change_request" for row in logs)
    assert all(row["source_business_rule"] == rule["name"] for row in logs)
    assert {row["delivery_id"] for row in logs} == ids
    assert logs[0]["request_body"] == requests[0]["body"].decode()
    assert SECRET not in json.dumps(logs)


def test_attempts_stop_at_the_maximum(emulator, admin, receiver, rule):
    patch(admin, "sys_script", rule["sys_id"], {"x_webhook_max_attempts": "2"})
    receiver.statuses = [500, 500, 500, 500]
    change = _standard_change(admin)
    patch(admin, "change_request", change["sys_id"], {"approval": "approved"})
    receiver.wait(2)
    _settle(emulator)
    time.sleep(1.2)  # longer than the next backoff step
    assert len(receiver.requests) == 2
    logs = rows(admin, "sys_outbound_http_log", f"source_record={change['sys_id']}", "attempt,response_status")
    assert sorted((row["attempt"], row["response_status"]) for row in logs) == [("1", "500"), ("2", "500")]


def test_unreachable_receiver_is_logged_as_an_error(emulator, admin, rule):
    patch(
        admin,
        "sys_script",
        rule["sys_id"],
        {"x_webhook_url": "http://127.0.0.1:9/nowhere", "x_webhook_max_attempts": "1"},
    )
    change = _standard_change(admin)
    patch(admin, "change_request", change["sys_id"], {"approval": "approved"})
    _settle(emulator)
    [log] = rows(admin, "sys_outbound_http_log", f"source_record={change['sys_id']}", "attempt,response_status,error")
    assert log["response_status"] == "" and log["error"]


@pytest.mark.parametrize(
    ("broken", "value"),
    [
        ("filter_condition", "short_descriptionLIKE" + "x" * 50001),  # SQLite refuses the pattern
        ("condition", "current.approval.changesTo('approved') && gs.hasRole('admin')"),  # not evaluable
    ],
)
def test_a_broken_rule_is_skipped_and_logged_and_the_write_stands(emulator, admin, receiver, rule, broken, value):
    broken_rule = create(
        admin,
        "sys_script",
        {
            "name": tag("Broken webhook"),
            "collection": "change_request",
            "when": "after",
            "action_update": "true",
            "active": "true",
            "condition": "current.approval.changesTo('approved')",
            "x_webhook_url": receiver.url + "/broken",
            "x_webhook_secret": SECRET,
            broken: value,
        },
    )
    try:
        change = _standard_change(admin)
        r = patch(admin, "change_request", change["sys_id"], {"approval": "approved"})
        assert r.status_code == 200, r.text
        assert r.json()["result"]["approval"] == "approved"
        [request] = receiver.wait(1)  # the working rule still delivers
        _settle(emulator)
        time.sleep(0.2)
        assert request["path"] == "/servicenow/webhook" and len(receiver.requests) == 1
        assert get(admin, "change_request", change["sys_id"])["approval"] == "approved"
        logs = rows(
            admin,
            "sys_outbound_http_log",
            f"source_record={change['sys_id']}^source_business_rule={broken_rule['name']}",
            "attempt,response_status,error,url",
        )
        assert len(logs) == 1
        assert logs[0]["attempt"] == "0" and logs[0]["response_status"] == ""
        assert logs[0]["error"].startswith("business rule skipped: ")
        assert logs[0]["url"] == receiver.url + "/broken"
    finally:
        admin.delete(f"/api/now/table/sys_script/{broken_rule['sys_id']}")


def test_the_secret_is_never_readable(admin, rule):
    for display in ("false", "true", "all"):
        rec = get(admin, "sys_script", rule["sys_id"], sysparm_display_value=display, sysparm_fields="x_webhook_secret")
        assert rec["x_webhook_secret"] in ("", {"display_value": "", "value": ""})
    found = rows(admin, "sys_script", f"sys_id={rule['sys_id']}")
    assert SECRET not in json.dumps(found)
    assert rows(admin, "sys_script", f"x_webhook_secret={SECRET}") == []
    # and writing it again keeps it working (it is not replaced by "")
    patch(admin, "sys_script", rule["sys_id"], {"name": rule["name"]})
