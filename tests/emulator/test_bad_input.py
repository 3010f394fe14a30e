"""Bad input gets ServiceNow's status and envelope, never a traceback, and never changes the store."""

from __future__ import annotations

import pytest
from sn_support import assert_error, create, get, rows, tag

GHOST = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def target(admin) -> dict:
    """A record to aim bad writes at, and its state before them."""
    rec = create(admin, "incident", {"short_description": "target", "description": "untouched", "impact": "2"})
    return get(admin, "incident", rec["sys_id"])


def unchanged(admin, target: dict) -> None:
    assert get(admin, "incident", target["sys_id"]) == target


# --- bodies -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [b"{bad json", b'{"short_description": "x",}', b"\xff\xfe\x00garbage", b"[" * 5000 + b"]" * 5000, b'{"a": 1'],
)
def test_malformed_json(admin, target, body):
    for method, url in (("POST", "/api/now/table/incident"), ("PATCH", f"/api/now/table/incident/{target['sys_id']}")):
        r = admin.request(method, url, content=body, headers={"Content-Type": "application/json"})
        assert_error(r, 400, "Exception while reading request", "The payload is not valid JSON.")
    unchanged(admin, target)


@pytest.mark.parametrize("body", [b'"a string"', b"42", b"null", b"[1, 2]", b"true"])
def test_json_that_is_not_a_record(admin, target, body):
    r = admin.patch(
        f"/api/now/table/incident/{target['sys_id']}", content=body, headers={"Content-Type": "application/json"}
    )
    assert_error(r, 400, "Exception while reading request")
    unchanged(admin, target)


def test_empty_body_creates_a_default_record_and_changes_nothing_on_update(admin, target):
    r = admin.post("/api/now/table/incident", content=b"", headers={"Content-Type": "application/json"})
    assert r.status_code == 201 and r.json()["result"]["number"].startswith("INC")
    r = admin.patch(
        f"/api/now/table/incident/{target['sys_id']}", content=b"", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 200
    unchanged(admin, target)


@pytest.mark.parametrize(
    ("content_type", "status", "message"),
    [
        (None, 400, "Content-Type header is required"),
        ("text/plain", 415, "Unsupported Media Type"),
        ("application/x-www-form-urlencoded", 415, "Unsupported Media Type"),
        ("application/xml", 415, "Unsupported Media Type"),
    ],
)
def test_wrong_or_missing_content_type(admin, target, content_type, status, message):
    headers = {"Content-Type": content_type} if content_type else {}
    marker = tag("ct")
    body = f'{{"short_description": "ct", "correlation_id": "{marker}"}}'.encode()
    r = admin.post("/api/now/table/incident", content=body, headers=headers)
    assert_error(r, status, message)
    r = admin.put(f"/api/now/table/incident/{target['sys_id']}", content=body, headers=headers)
    assert_error(r, status, message)
    assert rows(admin, "incident", f"correlation_id={marker}") == []
    unchanged(admin, target)


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "APPLICATION/JSON", "application/json"])
def test_json_content_type_variants(admin, content_type):
    r = admin.post(
        "/api/now/table/incident", content=b'{"short_description": "ok"}', headers={"Content-Type": content_type}
    )
    assert r.status_code == 201


def test_oversized_bodies(emulator, admin, target):
    emulator.set_properties(**{"glide.rest.max_content_length": "0.01"})  # about 10 KB
    try:
        big = {"short_description": "big", "description": "x" * 20000}
        r = admin.patch(f"/api/now/table/incident/{target['sys_id']}", json=big)
        assert_error(r, 400, "Request entity too large")
        marker = tag("big")
        r = admin.post("/api/now/table/incident", json={**big, "correlation_id": marker})
        assert_error(r, 400, "Request entity too large")
        # without a Content-Length (chunked), the limit still holds

        def chunks():
            yield b'{"correlation_id": "' + marker.encode() + b'", "description": "'
            for _ in range(30):
                yield b"y" * 1000
            yield b'"}'

        with emulator.client() as client:
            r = client.post("/api/now/table/incident", content=chunks(), headers={"Content-Type": "application/json"})
        assert_error(r, 400, "Request entity too large")
        assert rows(admin, "incident", f"correlation_id={marker}") == []
        small = admin.patch(f"/api/now/table/incident/{target['sys_id']}", json={"description": "small"})
        assert small.status_code == 200
    finally:
        emulator.set_properties(**{"glide.rest.max_content_length": "10"})
    admin.patch(f"/api/now/table/incident/{target['sys_id']}", json={"description": "x" * 20000}).raise_for_status()


@pytest.mark.parametrize(
    "values",
    [
        {"reassignment_count": 99999999999999999999999},
        {"reassignment_count": "99999999999999999999999"},
        {"reassignment_count": "nan"},
        {"reassignment_count": "inf"},
        {"reassignment_count": "abc"},
        {"impact": {"nested": "object"}},
        {"opened_at": 12345},
        {"opened_at": "2026-13-45 99:99:99"},
        {"active": "maybe"},
        {"made_sla": [1, 2]},
    ],
)
def test_invalid_field_values_are_ignored(admin, target, values):
    r = admin.patch(f"/api/now/table/incident/{target['sys_id']}", json=values)
    assert r.status_code == 200, r.text
    unchanged(admin, target)


def test_values_of_other_json_types_are_stored_as_strings(admin):
    rec = create(
        admin,
        "incident",
        {"short_description": 12.5, "reassignment_count": 3.0, "knowledge": True, "impact": 1, "description": None},
    )
    assert (rec["short_description"], rec["reassignment_count"], rec["knowledge"], rec["impact"]) == (
        "12.5",
        "3",
        "true",
        "1",
    )
    assert rec["description"] == ""
    unicode = create(admin, "incident", {"short_description": "snow \u2603 and \U0001f600 'quotes' \"dq\" ; --"})
    assert unicode["short_description"] == "snow \u2603 and \U0001f600 'quotes' \"dq\" ; --"


# --- resources -------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_unknown_table(admin, method):
    r = admin.request(method, "/api/now/table/sys_nonexistent", json={"a": 1} if method == "POST" else None)
    assert_error(r, 400, "Invalid table sys_nonexistent", "Table sys_nonexistent does not exist")


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_unknown_table_by_sys_id(admin, method):
    r = admin.request(
        method, f"/api/now/table/no_such_table/{GHOST}", json={"a": 1} if method in ("PUT", "PATCH") else None
    )
    assert_error(r, 400, "Invalid table no_such_table", "Table no_such_table does not exist")


@pytest.mark.parametrize("sys_id", [GHOST, "abc", "not-a-sys-id", "ZZZZ", "0" * 33, "%27%20OR%201%3D1"])
@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_bad_sys_ids(admin, sys_id, method):
    r = admin.request(
        method,
        f"/api/now/table/incident/{sys_id}",
        json={"short_description": "x"} if method in ("PUT", "PATCH") else None,
    )
    assert_error(r, 404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")


@pytest.mark.parametrize(
    "path",
    [
        "/api/now/nothing",
        "/api/now/tablex/incident",
        "/api/x/table/incident",
        "/api/now/table/incident/" + GHOST + "/extra",
        "/api",
        "/",
        "/api/now/v9/table/incident",
        "/api/now/table",
    ],
)
def test_unknown_api_path(admin, path):
    assert_error(admin.get(path), 400, "Requested URI does not represent any resource", None)


def test_unsupported_methods(admin):
    r = admin.delete("/api/now/table/incident")
    assert_error(r, 405, "Method not Supported")
    r = admin.put("/api/now/table/incident", json={})
    assert_error(r, 405, "Method not Supported")
    r = admin.request("OPTIONS", "/api/now/table/incident")
    assert_error(r, 405, "Method not Supported")
    r = admin.request("BREW", "/api/now/table/incident")
    assert_error(r, 405, "Method not Supported")


# --- parameters ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"sysparm_limit": "abc"}, "Invalid sysparm_limit value"),
        ({"sysparm_limit": "-1"}, "Invalid sysparm_limit value"),
        ({"sysparm_limit": "1.5"}, "Invalid sysparm_limit value"),
        ({"sysparm_offset": "-1"}, "Invalid sysparm_offset value"),
        ({"sysparm_offset": "x"}, "Invalid sysparm_offset value"),
        ({"sysparm_display_value": "maybe"}, "Invalid sysparm_display_value value"),
        ({"sysparm_exclude_reference_link": "perhaps"}, "Invalid sysparm_exclude_reference_link value"),
        ({"sysparm_no_count": "2"}, "Invalid sysparm_no_count value"),
    ],
)
def test_invalid_sysparm_values(admin, params, message):
    assert_error(admin.get("/api/now/table/incident", params=params), 400, message)


def test_invalid_sysparm_on_a_write_changes_nothing(admin, target):
    r = admin.patch(
        f"/api/now/table/incident/{target['sys_id']}",
        params={"sysparm_display_value": "maybe"},
        json={"description": "should not be written"},
    )
    assert_error(r, 400, "Invalid sysparm_display_value value")
    unchanged(admin, target)
    r = admin.patch(
        f"/api/now/table/incident/{target['sys_id']}",
        params={"sysparm_input_display_value": "sometimes"},
        json={"description": "should not be written"},
    )
    assert_error(r, 400, "Invalid sysparm_input_display_value value")
    unchanged(admin, target)


@pytest.mark.parametrize(
    "query",
    [
        "^^^",
        "ORDERBY",
        "ORDERBYDESC",
        "=",
        "NQ",
        "^OR",
        "^NQ^NQ",
        "short_description=x' OR 1=1 --",
        'a"b=1',
        "stateIN",
        "stateBETWEEN",
        "stateBETWEEN1",
        "opened_atON",
        "opened_atRELATIVEGT@x@y@z",
        "opened_atRELATIVEGT@hour@ago@zz",
        "opened_atDATEPARTx",
        "stateSAMEASnope",
        "opened_atMORETHANnope@hour@after@1",
        "opened_at>javascript:gs.evil()",
        "opened_at>javascript:gs.daysAgoStart('x')",
        "opened_at>javascript:java.lang.System.exit(1)",
        "caller_idIN_HIERARCHYx",
        "caller_idDYNAMICnot-a-filter",
        "sys_class_nameINSTANCEOFnope",
        "reassignment_count>99999999999999999999999",
        "reassignment_count=1e400",
        "state<abc",
        "opened_at>notadate",
        "opened_atBETWEENx@y",
        "active>x",
        "caller_id.name.x=1",
        "caller_id.=1",
        ".=1",
        "work_notesLIKEx",
        "x" * 20000,
        "state=1^" * 500,
    ],
)
def test_odd_queries_never_fail(admin, query):
    r = admin.get(
        "/api/now/table/incident", params={"sysparm_query": query, "sysparm_fields": "number", "sysparm_limit": 5}
    )
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["result"], list)
    assert int(r.headers["X-Total-Count"]) >= len(r.json()["result"])


def test_sql_injection_in_fields_and_order(admin):
    marker = tag("inj")
    create(admin, "incident", {"short_description": "inj", "correlation_id": marker})
    r = admin.get(
        "/api/now/table/incident",
        params={
            "sysparm_query": f"correlation_id={marker}^ORDERBYnumber; DROP TABLE task",
            "sysparm_fields": 'number,"; DROP TABLE task; --,sys_id) FROM task --',
        },
    )
    assert r.status_code == 200 and [list(row) for row in r.json()["result"]] == [["number"]]
    assert len(rows(admin, "incident", f"correlation_id={marker}")) == 1


def test_a_truncated_body_does_not_hurt_the_server(emulator):
    # a body shorter than its Content-Length, then the client goes away; the next request is served
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(emulator.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=2) as sock:
        sock.sendall(
            b"POST /api/now/table/incident HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWRtaW46YWRtaW4=\r\n"
            b'Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{"short_description": "x"}'
        )
    with emulator.client() as c:
        assert c.get("/api/now/table/incident", params={"sysparm_limit": 1}).status_code == 200


def test_writes_check_accept_before_writing(admin, target):
    r = admin.patch(
        f"/api/now/table/incident/{target['sys_id']}", json={"description": "nope"}, headers={"Accept": "text/csv"}
    )
    assert_error(r, 406, "Not Acceptable")
    unchanged(admin, target)
    r = admin.patch(
        f"/api/now/table/incident/{target['sys_id']}",
        json={"description": "xml"},
        headers={"Accept": "application/xml"},
        params={"sysparm_fields": "description"},
    )
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/xml")
    assert "<description>xml</description>" in r.text


@pytest.mark.parametrize("hops", [9, 10, 60, 400])
def test_deep_dot_walks_never_fail(admin, hops):
    path = ".".join(["parent"] * hops)
    r = admin.get(
        "/api/now/table/task",
        params={
            "sysparm_limit": 2,
            "sysparm_display_value": "all",
            "sysparm_fields": f"number,{path}.number,{path}.assignment_group",
            "sysparm_query": f"{path}.assignment_groupLIKEx^ORDERBY{path}.number^{path}.numberISEMPTY",
        },
    )
    assert r.status_code == 200, r.text
    rows_ = r.json()["result"]
    if hops <= 9:  # up to 9 references (10 names) a dot-walk is honoured
        assert rows_ == [] and r.headers["X-Total-Count"] == "0"
    else:  # longer paths are invalid fields: ignored in the query and in the field list
        assert rows_ and all(list(row) == ["number"] for row in rows_)
