"""Bad input gets ServiceNow's status and envelope, never a traceback, and never changes the store."""

from __future__ import annotations

import pytest
from sn_support import assert_error, create, get, make_user, rows, tag

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
        ({"sysparm_limit": "1_000"}, "Invalid sysparm_limit value"),
        ({"sysparm_limit": "-99999999999999999999999"}, "Invalid sysparm_limit value"),
        ({"sysparm_offset": "-" + "9" * 5000}, "Invalid sysparm_offset value"),
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


# Values no term can be read with: numbers too large for their unit, dates outside years 1-9999,
# GlideSystem helpers whose answer is out of range. Each is an invalid term (reference §1.4), never an error.
OUT_OF_RANGE_QUERIES = [
    "sys_updated_onMORETHANsys_created_on@hour@after@abc",
    "sys_updated_onMORETHANsys_created_on@hour@after@" + "9" * 400,
    "sys_updated_onLESSTHANsys_created_on@day@before@1.5",
    "sys_created_onRELATIVEGT@day@ago@99999999999",
    "sys_created_onRELATIVELT@year@ahead@99999999999",
    "sys_created_onRELATIVEEE@second@ago@" + "9" * 5000,
    "sys_created_on>javascript:gs.daysAgo(999999999)",
    "sys_created_on>javascript:gs.daysAgoStart(99999999999)",
    "sys_created_on<javascript:gs.monthsAgoStart(99999999)",
    "sys_created_on<javascript:gs.monthsAgoEnd(-99999999)",
    "sys_created_on<javascript:gs.yearsAgo(5000)",
    "sys_created_on<javascript:gs.yearsAgo(-9000)",
    "sys_created_on<javascript:gs.hoursAgoStart(999999999999)",
    "sys_created_onBETWEENjavascript:gs.yearsAgo(5000)@javascript:gs.daysAgo(999999999)",
    "sys_created_onONx@javascript:gs.yearsAgo(5000)@javascript:gs.endOfToday()",
    "sys_created_onDATEPARTgs.datePart('year', '" + "9" * 5000 + "', 'EE')",
]
# Numbers beyond 64-bit integers where a term binds them as they are: compared as numbers, never an error.
HUGE_NUMBERS = [
    "sys_created_onDATEPARTgs.datePart('year', '99999999999999999999', 'LT')",
    "sys_created_onDATEPARTgs.datePart('month', '-99999999999999999999', 'GT')",
]
# Date literals whose UTC form falls outside years 1-9999: not dates, so compared as the text they are.
OUT_OF_RANGE_DATES = [
    "sys_created_on>0001-01-01T00:00:00+01:00",
    "sys_created_on<9999-12-31T23:00:00-05:00",
    "sys_created_on=0001-01-01 00:00:00^ORsys_created_on=0001-01-01T00:30:00+01:00",
    "sys_created_onBETWEEN0001-01-01T00:00:00+14:00@9999-12-31T23:59:59-14:00",
]


@pytest.mark.parametrize(
    "query",
    [
        *OUT_OF_RANGE_QUERIES,
        *OUT_OF_RANGE_DATES,
        *HUGE_NUMBERS,
        "reassignment_count>" + "9" * 400,
        "reassignment_countIN" + ",".join(["1e400", "-1e400", "nan", "inf"] * 60),
        "reassignment_count=1e400^ORreassignment_count=" + "9" * 400,
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


@pytest.mark.parametrize("query", OUT_OF_RANGE_QUERIES + OUT_OF_RANGE_DATES + HUGE_NUMBERS)
def test_odd_queries_never_fail_on_the_aggregate_and_attachment_apis(admin, query):
    r = admin.get("/api/now/stats/incident", params={"sysparm_query": query, "sysparm_count": "true"})
    assert r.status_code == 200, r.text
    assert int(r.json()["result"]["stats"]["count"]) >= 0
    r = admin.get("/api/now/attachment", params={"sysparm_query": query, "sysparm_limit": 5})
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["result"], list)


def test_an_out_of_range_term_is_invalid_like_an_unknown_field(emulator, admin):
    marker = tag("range")
    create(admin, "incident", {"short_description": "range", "correlation_id": marker})
    for query in OUT_OF_RANGE_QUERIES:
        # ignored: the valid part of the query decides
        assert len(rows(admin, "incident", f"correlation_id={marker}^{query}", "number")) == 1, query
    for query in HUGE_NUMBERS:  # valid terms, true of every record
        assert len(rows(admin, "incident", f"correlation_id={marker}^{query}", "number")) == 1, query
    emulator.set_properties(**{"glide.invalid_query.returns_no_rows": "true"})
    try:
        for query in OUT_OF_RANGE_QUERIES[:6]:
            assert rows(admin, "incident", f"correlation_id={marker}^{query}", "number") == [], query
        assert len(rows(admin, "incident", f"correlation_id={marker}", "number")) == 1
    finally:
        emulator.set_properties(**{"glide.invalid_query.returns_no_rows": "false"})


def test_a_like_value_beyond_sqlite_pattern_limit_is_an_invalid_query(admin):
    query = "short_descriptionLIKE" + "x" * 50001
    # SQLite refuses such a pattern when it meets a row, so the table must have rows (incident always has)
    for path, params in (("/api/now/table/incident", {}), ("/api/now/stats/incident", {"sysparm_count": "true"})):
        r = admin.get(path, params={**params, "sysparm_query": query})
        assert_error(r, 400, "Invalid query")


@pytest.mark.parametrize(
    "path",
    ["/api/now/table/incident", "/api/now/attachment", "/api/now/cmdb/instance/cmdb_ci_server"],
)
def test_limit_and_offset_beyond_64_bits(admin, path):
    """A limit larger than any table is no limit; an offset past the last row is an empty page."""
    base = {"sysparm_fields": "sys_id"} if "table" in path else {}
    everything = admin.get(path, params={**base, "sysparm_limit": 100000})
    assert everything.status_code == 200, everything.text
    for huge in ("9223372036854775807", "9223372036854775808", "99999999999999999999999", "9" * 5000):
        r = admin.get(path, params={**base, "sysparm_limit": huge})
        assert r.status_code == 200, (huge, r.text)
        assert len(r.json()["result"]) == len(everything.json()["result"])
        if "X-Total-Count" in everything.headers:
            assert r.headers["X-Total-Count"] == everything.headers["X-Total-Count"]
        for limit in ("5", huge):
            r = admin.get(path, params={**base, "sysparm_limit": limit, "sysparm_offset": huge})
            assert r.status_code in (200, 404), (huge, r.text)  # v1-style APIs answer 404 on an empty page
            if r.status_code == 200:
                assert r.json()["result"] == []


def test_aggregate_sums_beyond_64_bits(admin):
    marker = tag("ovf")
    for _ in range(3):
        create(admin, "incident", {"correlation_id": marker, "reassignment_count": str(2**63 - 1)})
    r = admin.get(
        "/api/now/stats/incident",
        params={
            "sysparm_query": f"correlation_id={marker}",
            "sysparm_sum_fields": "reassignment_count",
            "sysparm_avg_fields": "reassignment_count",
            "sysparm_count": "true",
        },
    )
    assert r.status_code == 200, r.text
    stats = r.json()["result"]["stats"]
    assert stats["count"] == "3"
    assert float(stats["sum"]["reassignment_count"]) == pytest.approx(3 * (2**63 - 1))
    r = admin.get(
        "/api/now/stats/incident",
        params={
            "sysparm_query": f"correlation_id={marker}",
            "sysparm_sum_fields": "reassignment_count",
            "sysparm_group_by": "correlation_id",
            "sysparm_having": "sum^reassignment_count^>^1",
        },
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["result"]) == 1


def test_dates_outside_years_1_to_9999_are_ignored_in_bodies(admin):
    marker = tag("years")
    rec = create(
        admin,
        "incident",
        {"short_description": "years", "correlation_id": marker, "work_start": "0001-01-01T00:00:00+01:00"},
    )
    assert rec["work_start"] == ""  # 31 Dec of year 0 in UTC: not a date, ignored like any invalid value
    r = admin.patch(
        f"/api/now/table/incident/{rec['sys_id']}",
        json={"work_start": "9999-12-31T23:00:00-05:00", "work_end": "0001-01-01T00:59:59+01:00"},
    )
    assert r.status_code == 200, r.text
    assert get(admin, "incident", rec["sys_id"])["work_start"] == ""
    assert get(admin, "incident", rec["sys_id"])["work_end"] == ""


@pytest.mark.parametrize("display_input", ["false", "true"])
def test_the_first_and_last_years_keep_four_digits(emulator, admin, display_input):
    marker = tag("y1")
    rec = create(
        admin,
        "incident",
        {"correlation_id": marker, "opened_at": "0001-01-01 00:00:00", "work_end": "9999-12-31 23:59:59"},
        sysparm_input_display_value=display_input,
    )
    assert (rec["opened_at"], rec["work_end"]) == ("0001-01-01 00:00:00", "9999-12-31 23:59:59")
    assert rows(admin, "incident", f"correlation_id={marker}^opened_at=0001-01-01 00:00:00", "number")
    assert rows(admin, "incident", f"correlation_id={marker}^opened_atBETWEEN0001-01-01@0001-01-02", "number")
    # shown in a zone west of UTC, year 1 would fall before year 1: the stored value is shown as it is
    name = tag("west")
    make_user(admin, name, "pw", ["itil"], time_zone="America/New_York")
    with emulator.client((name, "pw")) as west:
        shown = get(west, "incident", rec["sys_id"], sysparm_display_value="all", sysparm_fields="opened_at,work_end")
    assert shown["opened_at"]["value"] == "0001-01-01 00:00:00"
    assert shown["work_end"]["display_value"] == "9999-12-31 18:59:59"


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
