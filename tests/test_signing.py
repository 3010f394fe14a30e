"""Webhook signing: the Python half, and the real Business Rule script run under Node against it."""

from __future__ import annotations

import base64
import http.server
import json
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from servicenow_blocks import signing
from servicenow_blocks.signing import (
    BadSignatureError,
    BadTimestampError,
    MissingSignatureError,
    MissingTimestampError,
    SignatureError,
    StaleTimestampError,
    build_headers,
    canonical_body,
    sign,
    verify,
)

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "deployments" / "servicenow" / "prefect_webhook_business_rule.js"
HARNESS = ROOT / "tests" / "js" / "run_business_rule.js"
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not on PATH: the Business Rule harness needs Node.js")

SECRET = "s3cr\u00e9t-\u2603-rotate-me-0123456789"  # non-ASCII on purpose: the key is its UTF-8 bytes
TS = 1_700_000_000
BODY = b'{"table":"change_request","sys_id":"0123456789abcdef0123456789abcdef"}'
SYS_ID = "0123456789abcdef0123456789abcdef"
PAYLOAD_KEYS = [
    "table",
    "sys_id",
    "number",
    "operation",
    "sys_updated_on",
    "sys_mod_count",
    "changed",
    "rule",
]


def _secret_forms(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [raw, base64.b64encode(raw), secret.encode("unicode_escape"), json.dumps(secret).encode()]


# ------------------------------------------------------------------------------------------ pure Python


def test_known_vector() -> None:
    # printf '%s' '1700000000.{"a":"b"}' | openssl dgst -sha256 -hmac topsecret -binary | base64
    assert sign("topsecret", 1700000000, '{"a":"b"}') == "v1=c0+eKH8ABUzYsDVgHBGZHrlSzoZR8WXh+AzJ9fnBDBo="
    assert sign("topsecret", "1700000000", b'{"a":"b"}') == sign("topsecret", 1700000000, '{"a":"b"}')


def test_round_trip() -> None:
    header = sign(SECRET, TS, BODY)
    assert header.startswith(f"{signing.SIGNATURE_VERSION}=")
    verify(SECRET, str(TS), header, BODY, now=TS)
    verify([SECRET], f" {TS} ", f"  {header} ", BODY, now=TS + 10)


def test_tampered_body_and_wrong_secret() -> None:
    header = sign(SECRET, TS, BODY)
    with pytest.raises(BadSignatureError) as e:
        verify(SECRET, str(TS), header, BODY + b" ", now=TS)
    assert e.value.reason == "bad_signature"
    with pytest.raises(BadSignatureError):
        verify("another secret", str(TS), header, BODY, now=TS)
    with pytest.raises(BadSignatureError):  # the timestamp is part of the signed message
        verify(SECRET, str(TS + 1), header, BODY, now=TS)


@pytest.mark.parametrize(("offset", "ok"), [(0, True), (300, True), (-300, True), (301, False), (-301, False)])
def test_timestamp_window(offset: int, ok: bool) -> None:
    ts = TS + offset  # positive offset: a timestamp from the future
    header = sign(SECRET, ts, BODY)
    if ok:
        verify(SECRET, str(ts), header, BODY, now=TS)
    else:
        with pytest.raises(StaleTimestampError) as e:
            verify(SECRET, str(ts), header, BODY, now=TS)
        assert e.value.reason == "stale_timestamp"
        assert ("future" in str(e.value)) == (offset > 0)


def test_tolerance_is_configurable() -> None:
    header = sign(SECRET, TS, BODY)
    verify(SECRET, str(TS), header, BODY, now=TS + 3600, tolerance_s=3600)
    with pytest.raises(StaleTimestampError):
        verify(SECRET, str(TS), header, BODY, now=TS + 61, tolerance_s=60)


@pytest.mark.parametrize(
    ("ts", "sig", "error", "reason"),
    [
        (None, "v1=x", MissingTimestampError, "missing_timestamp"),
        ("", "v1=x", MissingTimestampError, "missing_timestamp"),
        ("abc", "v1=x", BadTimestampError, "bad_timestamp"),
        ("-5", "v1=x", BadTimestampError, "bad_timestamp"),
        ("1.7e9", "v1=x", BadTimestampError, "bad_timestamp"),
        ("1700000000.5", "v1=x", BadTimestampError, "bad_timestamp"),
        ("9" * 40, "v1=x", BadTimestampError, "bad_timestamp"),
        (str(TS), None, MissingSignatureError, "missing_signature"),
        (str(TS), "  ", MissingSignatureError, "missing_signature"),
        (str(TS), "v0=abc,sha256=def", BadSignatureError, "bad_signature"),
        (str(TS), "v1=", BadSignatureError, "bad_signature"),
        (str(TS), "v1=not base64 \u00e9", BadSignatureError, "bad_signature"),
    ],
)
def test_bad_headers(ts: str | None, sig: str | None, error: type[SignatureError], reason: str) -> None:
    with pytest.raises(error) as e:
        verify(SECRET, ts, sig, BODY, now=TS)
    assert isinstance(e.value, SignatureError)
    assert e.value.reason == reason
    for text in (str(e.value), repr(e.value)):
        assert SECRET not in text
        assert base64.b64encode(SECRET.encode()).decode() not in text


def test_rotation_multiple_v1_entries() -> None:
    old, new = "old-secret", "new-secret"
    both = build_headers([old, new], BODY, timestamp=TS)[signing.SIGNATURE_HEADER]
    assert both == f"{sign(old, TS, BODY)},{sign(new, TS, BODY)}"
    verify(new, str(TS), both, BODY, now=TS)  # the receiver already moved on
    verify(old, str(TS), both, BODY, now=TS)  # the receiver has not yet
    # the sender still signs with the old secret, the receiver accepts both
    verify([new, old], str(TS), sign(old, TS, BODY), BODY, now=TS)
    # unknown versions and spacing are ignored, one good v1 suffices
    verify(new, str(TS), f"v0=zzz, v1=AAAA , {sign(new, TS, BODY)}", BODY, now=TS)
    with pytest.raises(BadSignatureError):
        verify(["third", "fourth"], str(TS), both, BODY, now=TS)


def test_secret_configuration_errors() -> None:
    with pytest.raises(ValueError):
        sign("", TS, BODY)
    with pytest.raises(ValueError):
        verify([], str(TS), "v1=x", BODY, now=TS)
    with pytest.raises(ValueError):
        verify(["ok", ""], str(TS), "v1=x", BODY, now=TS)
    with pytest.raises(TypeError):
        sign(["a", "b"], TS, BODY)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        sign(SECRET, "12ab", BODY)


def test_build_headers() -> None:
    headers = build_headers(SECRET, BODY.decode(), timestamp=TS, delivery_id="f" * 32)
    assert headers == {
        "Content-Type": "application/json",
        "User-Agent": "ServiceNow/1.0",
        "X-SN-Webhook-Id": "f" * 32,
        "X-SN-Webhook-Timestamp": str(TS),
        "X-SN-Webhook-Signature": sign(SECRET, TS, BODY),
    }
    fresh = build_headers(SECRET, BODY)
    assert re.fullmatch(r"[0-9a-f]{32}", fresh[signing.DELIVERY_ID_HEADER])
    verify(SECRET, fresh[signing.TIMESTAMP_HEADER], fresh[signing.SIGNATURE_HEADER], BODY)
    assert all(SECRET not in v for v in headers.values())


def test_canonical_body() -> None:
    payload = {
        "table": "change_request",
        "number": "CHG0010001",
        "changed": {"short_description": 'Caf\u00e9 "quoted" \\ back\nline\t\u0001 \u2028 \U0001f680'},
        "rule": "r",
    }
    body = canonical_body(payload)
    assert body.startswith(b'{"table":"change_request","number":"CHG0010001","changed":{')
    assert "Caf\u00e9".encode() in body and "\U0001f680".encode() in body  # literal UTF-8, not \\u escapes
    assert b"\\u0001" in body and b'\\"quoted\\"' in body and b"\\n" in body
    assert json.loads(body) == payload
    assert canonical_body({"a": "\ud800"}) == b'{"a":"\\ud800"}'  # lone surrogate, as ES2019 JSON.stringify
    with pytest.raises(TypeError):
        canonical_body({"a": 1.5})
    with pytest.raises(TypeError):
        canonical_body({"a": object()})


def test_business_rule_script_is_es5() -> None:
    # the global scope of a ServiceNow instance runs Rhino in ES5 mode
    code = re.sub(r"/\*.*?\*/|//[^\n]*", "", SCRIPT.read_text(), flags=re.S)
    for construct in ("=>", "`", "let ", "const ", "class "):
        assert construct not in code, construct
    assert code.strip().startswith("(function executeRule(current, previous")
    assert code.strip().endswith("})(current, previous);")


# ------------------------------------------------------------------------ the real JS, under Node


class _Capture(http.server.BaseHTTPRequestHandler):
    requests: list[dict] = []
    status = 202

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        type(self).requests.append(
            {
                "method": self.command,
                "path": self.path,
                "headers": dict(self.headers.items()),
                "raw_headers": bytes(str(self.headers), "latin-1"),
                "body": body,
            }
        )
        reply = b'{"accepted":true}'
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict]]]:
    handler = type("Handler", (_Capture,), {"requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/servicenow/webhook", handler.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _record(operation: str = "update", **extra: dict) -> dict:
    fields = {
        "sys_id": {"value": SYS_ID, "type": "GUID"},
        "number": {"value": "CHG0010001"},
        "short_description": {"value": "Patch web01 \u2013 caf\u00e9 \u201cquoted\u201d \U0001f680"},
        "state": {"value": "-2", "type": "integer"},
        "approval": {"value": "approved", "previous": "requested"},
        "assigned_to": {"value": "", "previous": "6816f79cc0a8016401c5a33be04be441", "type": "reference"},
        "description": {"value": 'line1\nline2 "q" \\ \t\u0001', "previous": "old", "type": "string"},
        "correlation_id": {"value": ""},
        "work_notes": {"value": "a journal entry", "previous": "", "type": "journal_input"},
        "comments": {"value": "customer visible", "previous": "", "type": "journal_input"},
        "approval_history": {"value": "approved by x", "previous": "", "type": "journal"},
        "watch_list": {"value": "a,b", "previous": "", "type": "glide_list"},
        "sys_updated_on": {"value": "2024-11-28 10:00:00", "previous": "2024-11-28 09:59:00"},
        "sys_mod_count": {"value": "5", "previous": "4", "type": "integer"},
    }
    fields.update(extra)
    return {"table": "change_request", "operation": operation, "fields": fields}


def _run(tmp_path: Path, spec: dict) -> tuple[dict, subprocess.CompletedProcess]:
    path = tmp_path / "input.json"
    path.write_text(json.dumps(spec))
    proc = subprocess.run([NODE, str(HARNESS), str(path)], capture_output=True, timeout=60, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    lines = proc.stdout.decode().strip().split("\n")
    assert len(lines) == 1, proc.stdout
    return json.loads(lines[0]), proc


def _props(url: str, secret: str = SECRET) -> dict:
    return {
        "x_prefect.webhook.url": url,
        "x_prefect.webhook.secret": secret,
        "x_prefect.webhook.timeout_ms": "5000",
    }


@needs_node
@pytest.mark.parametrize("elements_style", ["array", "java"])
def test_real_business_rule_is_verified_by_python(
    tmp_path: Path, receiver: tuple[str, list[dict]], elements_style: str
) -> None:
    url, captured = receiver
    now_ms = TS * 1000 + 999  # the script floors to seconds
    record = _record() | {"elements_style": elements_style}
    spec = {
        "properties": _props(url),
        "record": record,
        "condition": "current.approval.changesTo('approved')",
        "now_ms": now_ms,
    }
    out, proc = _run(tmp_path, spec)

    assert out["status"] == 202 and out["body"] == '{"accepted":true}'
    assert out["ran"] is True and out["error"] is None and out["http_error"] is None
    assert [log for log in out["logs"] if log["level"] == "error"] == []
    assert len(captured) == 1
    req = captured[0]
    headers = req["headers"]
    assert req["method"] == "POST" and req["path"] == "/servicenow/webhook"
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "ServiceNow/1.0"
    assert re.fullmatch(r"[0-9a-f]{32}", headers[signing.DELIVERY_ID_HEADER])
    assert headers[signing.TIMESTAMP_HEADER] == str(TS)

    # the key assertion: Python accepts exactly what the real script sent
    verify(SECRET, headers[signing.TIMESTAMP_HEADER], headers[signing.SIGNATURE_HEADER], req["body"], now=TS)
    verify(
        ["retired secret", SECRET],
        headers[signing.TIMESTAMP_HEADER],
        headers[signing.SIGNATURE_HEADER],
        req["body"],
        now=TS + 300,
    )
    with pytest.raises(BadSignatureError):
        verify("wrong", headers[signing.TIMESTAMP_HEADER], headers[signing.SIGNATURE_HEADER], req["body"], now=TS)
    assert headers[signing.SIGNATURE_HEADER] == sign(SECRET, TS, req["body"])
    # what the harness reports is what went over the wire
    assert out["request"]["body"].encode() == req["body"]
    assert out["request"]["headers"][signing.SIGNATURE_HEADER] == headers[signing.SIGNATURE_HEADER]

    payload = json.loads(req["body"])
    assert list(payload) == PAYLOAD_KEYS
    assert payload == {
        "table": "change_request",
        "sys_id": SYS_ID,
        "number": "CHG0010001",
        "operation": "update",
        "sys_updated_on": "2024-11-28 10:00:00",
        "sys_mod_count": "5",
        "changed": {
            "approval": "approved",
            "assigned_to": "",
            "description": 'line1\nline2 "q" \\ \t\u0001',
            "watch_list": "a,b",
            "sys_updated_on": "2024-11-28 10:00:00",
            "sys_mod_count": "5",
        },
        "rule": "Prefect webhook: change approved",
    }
    # Python's canonical form is byte-identical to the JS JSON.stringify output
    assert canonical_body(payload) == req["body"]

    # the secret appears nowhere: not on the wire, not in the harness output
    wire = req["raw_headers"] + req["body"]
    for form in _secret_forms(SECRET):
        assert form not in wire
        assert form not in proc.stdout and form not in proc.stderr


@needs_node
def test_real_business_rule_insert(tmp_path: Path, receiver: tuple[str, list[dict]]) -> None:
    url, captured = receiver
    out, _ = _run(tmp_path, {"properties": _props(url), "record": _record("insert")})
    assert out["status"] == 202
    req = captured[0]
    payload = json.loads(req["body"])
    assert payload["operation"] == "insert"
    # every non-empty, non-journal field of the new record
    assert list(payload["changed"]) == [
        "sys_id",
        "number",
        "short_description",
        "state",
        "approval",
        "description",
        "watch_list",
        "sys_updated_on",
        "sys_mod_count",
    ]
    assert canonical_body(payload) == req["body"]
    headers = req["headers"]
    verify(SECRET, headers[signing.TIMESTAMP_HEADER], headers[signing.SIGNATURE_HEADER], req["body"])


@needs_node
def test_real_business_rule_condition_false_sends_nothing(tmp_path: Path, receiver: tuple[str, list[dict]]) -> None:
    url, captured = receiver
    record = _record(approval={"value": "approved"})  # unchanged
    spec = {
        "properties": _props(url),
        "record": record,
        "condition": "current.approval.changesTo('approved')",
    }
    out, _ = _run(tmp_path, spec)
    assert out["ran"] is False and out["status"] is None and out["request"] is None
    assert captured == []


@needs_node
def test_real_business_rule_without_secret_logs_and_sends_nothing(
    tmp_path: Path, receiver: tuple[str, list[dict]]
) -> None:
    url, captured = receiver
    out, _ = _run(tmp_path, {"properties": {"x_prefect.webhook.url": url}, "record": _record()})
    assert out["request"] is None and captured == []
    errors = [log["message"] for log in out["logs"] if log["level"] == "error"]
    assert len(errors) == 1 and "x_prefect.webhook.secret" in errors[0] and "CHG0010001" in errors[0]


@needs_node
def test_js_stringify_matches_canonical_body_on_tricky_strings(
    tmp_path: Path, receiver: tuple[str, list[dict]]
) -> None:
    url, captured = receiver
    tricky = '"\\/\b\f\n\r\t\u0000\u001f\u007f\u00e9\u2028\u2029\ufeff\U0001f600\ud800 </script>'
    record = _record(short_description={"value": tricky, "previous": "x"})
    out, _ = _run(tmp_path, {"properties": _props(url), "record": record})
    assert out["status"] == 202
    body = captured[0]["body"]
    payload = json.loads(body)
    assert payload["changed"]["short_description"] == tricky
    assert canonical_body(payload) == body
