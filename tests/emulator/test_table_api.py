"""The Table API (reference §1.1, §1.2, §1.6, §1.8) over real HTTP: verbs, versions, parameters, paging."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from sn_support import assert_error, create, get, patch, rows, tag

SYS_ID = re.compile(r"^[0-9a-f]{32}$")
GLIDE_DT = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


@pytest.fixture(scope="module")
def batch(emulator):
    """Seven incidents sharing a correlation_id, for paging."""
    marker = tag("tbl")
    with emulator.client() as admin:
        ids = [
            create(admin, "incident", {"short_description": f"paging {i}", "correlation_id": marker})["sys_id"]
            for i in range(7)
        ]
    return marker, ids


# --- verbs -------------------------------------------------------------------------------------------
def test_create_returns_201_location_and_the_record(admin, emulator):
    r = admin.post("/api/now/table/incident", json={"short_description": "created", "impact": 2, "urgency": 2})
    assert r.status_code == 201
    result = r.json()["result"]
    assert SYS_ID.match(result["sys_id"])
    assert r.headers["Location"] == f"{emulator.url}/api/now/table/incident/{result['sys_id']}"
    assert re.fullmatch(r"INC\d{7}", result["number"])
    assert result["priority"] == "3" and result["impact"] == "2"  # numbers in, strings out
    again = admin.get(r.headers["Location"])
    assert again.status_code == 200 and again.json()["result"]["number"] == result["number"]


def test_get_one_and_missing(admin):
    created = create(admin, "incident", {"short_description": "get one"})
    assert get(admin, "incident", created["sys_id"])["short_description"] == "get one"
    missing = admin.get("/api/now/table/incident/0123456789abcdef0123456789abcdef")
    assert_error(missing, 404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
    # a record of another class is not found through a sibling table
    assert admin.get(f"/api/now/table/change_request/{created['sys_id']}").status_code == 404
    # but is through its parent
    assert admin.get(f"/api/now/table/task/{created['sys_id']}").status_code == 200


def test_put_and_patch_update_only_the_fields_given(admin):
    created = create(admin, "incident", {"short_description": "before", "description": "keep me"})
    sys_id = created["sys_id"]
    r = admin.put(f"/api/now/table/incident/{sys_id}", json={"short_description": "after put"})
    assert r.status_code == 200
    assert r.json()["result"]["short_description"] == "after put"
    assert r.json()["result"]["description"] == "keep me"
    r = admin.patch(f"/api/now/table/incident/{sys_id}", json={"description": "patched"})
    assert r.status_code == 200
    record = get(admin, "incident", sys_id)
    assert (record["short_description"], record["description"], record["sys_mod_count"]) == (
        "after put",
        "patched",
        "2",
    )
    # clearing a field with ""
    patch(admin, "incident", sys_id, {"description": ""})
    assert get(admin, "incident", sys_id)["description"] == ""


def test_put_and_patch_never_insert(admin):
    ghost = "fedcba9876543210fedcba9876543210"
    for method in ("PUT", "PATCH"):
        r = admin.request(method, f"/api/now/table/incident/{ghost}", json={"short_description": "ghost"})
        assert_error(r, 404, "No Record found")
    assert rows(admin, "incident", f"sys_id={ghost}") == []


def test_delete_returns_204_with_no_body(admin):
    created = create(admin, "incident", {"short_description": "to delete"})
    r = admin.delete(f"/api/now/table/incident/{created['sys_id']}")
    assert r.status_code == 204
    assert r.content == b""
    assert admin.get(f"/api/now/table/incident/{created['sys_id']}").status_code == 404
    assert_error(admin.delete(f"/api/now/table/incident/{created['sys_id']}"), 404, "No Record found")


def test_head_has_the_headers_and_no_body(admin, batch):
    marker, _ = batch
    params = {"sysparm_query": f"correlation_id={marker}", "sysparm_limit": "2"}
    head = admin.head("/api/now/table/incident", params=params)
    got = admin.get("/api/now/table/incident", params=params)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["X-Total-Count"] == got.headers["X-Total-Count"] == "7"
    assert head.headers["Link"] == got.headers["Link"]
    one = admin.head(f"/api/now/table/incident/{batch[1][0]}")
    assert one.status_code == 200 and one.content == b""
    assert admin.head("/api/now/table/incident/0123456789abcdef0123456789abcdef").status_code == 404


def test_only_the_first_record_of_a_list_body_is_processed(admin):
    marker = tag("first")
    r = admin.post(
        "/api/now/table/incident",
        json=[{"short_description": "first", "correlation_id": marker}, {"short_description": "second"}],
    )
    assert r.status_code == 201
    assert r.json()["result"]["short_description"] == "first"
    assert len(rows(admin, "incident", f"correlation_id={marker}")) == 1


# --- versions --------------------------------------------------------------------------------------
def test_v1_empty_list_is_404_with_the_field_envelope(admin):
    r = admin.get("/api/now/v1/table/incident", params={"sysparm_query": "number=NOPE0000000"})
    assert_error(
        r, 404, "No Record found", "Records matching query not found. Check query parameter or offset parameter"
    )


def test_v2_and_unversioned_empty_list_is_200(admin):
    for path in ("/api/now/v2/table/incident", "/api/now/table/incident"):
        r = admin.get(path, params={"sysparm_query": "number=NOPE0000000"})
        assert r.status_code == 200
        assert r.json() == {"result": []}
        assert r.headers["X-Total-Count"] == "0"


def test_versioned_paths_serve_every_verb(admin, batch):
    marker, ids = batch
    for version in ("v1", "v2"):
        base = f"/api/now/{version}/table/incident"
        listed = admin.get(base, params={"sysparm_query": f"correlation_id={marker}", "sysparm_fields": "sys_id"})
        assert listed.status_code == 200 and len(listed.json()["result"]) == 7
        assert admin.get(f"{base}/{ids[0]}").status_code == 200
        created = admin.post(base, json={"short_description": f"via {version}"})
        assert created.status_code == 201
        sys_id = created.json()["result"]["sys_id"]
        assert admin.patch(f"{base}/{sys_id}", json={"description": "x"}).status_code == 200
        assert admin.put(f"{base}/{sys_id}", json={"description": "y"}).status_code == 200
        assert admin.delete(f"{base}/{sys_id}").status_code == 204
    assert_error(admin.get("/api/now/v9/table/incident"), 400, "Requested URI does not represent any resource")


# --- paging ------------------------------------------------------------------------------------------
def _links(header: str) -> dict[str, str]:
    out = {}
    for part in header.split(","):
        m = re.fullmatch(r'<([^>]+)>;rel="(\w+)"', part)
        assert m, f"malformed Link entry {part!r} in {header!r}"
        out[m.group(2)] = m.group(1)
    return out


def _offset(url: str) -> int:
    return int(parse_qs(urlsplit(url).query)["sysparm_offset"][0])


def test_total_count_and_link_on_each_page(admin, batch, emulator):
    marker, _ = batch
    query = f"correlation_id={marker}"
    params = {"sysparm_query": query, "sysparm_limit": "3", "sysparm_fields": "number", "custom": "kept"}
    first = admin.get("/api/now/table/incident", params={**params, "sysparm_offset": "0"})
    assert first.headers["X-Total-Count"] == "7"
    assert len(first.json()["result"]) == 3
    assert " " not in first.headers["Link"]  # comma-separated, no spaces
    links = _links(first.headers["Link"])
    assert list(links) == ["first", "prev", "next", "last"]
    assert {rel: _offset(url) for rel, url in links.items()} == {"first": 0, "prev": -3, "next": 3, "last": 6}
    for url in links.values():
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}" == emulator.url  # absolute, the caller's host
        assert parts.path == "/api/now/table/incident"
        q = parse_qs(parts.query)
        assert q["sysparm_query"] == [query] and q["sysparm_fields"] == ["number"] and q["custom"] == ["kept"]
        assert q["sysparm_limit"] == ["3"]
    middle = admin.get("/api/now/table/incident", params={**params, "sysparm_offset": "3"})
    assert {rel: _offset(url) for rel, url in _links(middle.headers["Link"]).items()} == {
        "first": 0,
        "prev": 0,
        "next": 6,
        "last": 6,
    }
    last = admin.get("/api/now/table/incident", params={**params, "sysparm_offset": "6"})
    assert len(last.json()["result"]) == 1
    last_links = _links(last.headers["Link"])
    assert "next" not in last_links  # omitted on the final page
    assert {rel: _offset(url) for rel, url in last_links.items()} == {"first": 0, "prev": 3, "last": 6}
    # following the links from the first page visits every row exactly once
    seen, url = [], f"/api/now/table/incident?sysparm_query={query}&sysparm_limit=2&sysparm_fields=sys_id"
    while url:
        page = admin.get(url)
        seen += [r["sys_id"] for r in page.json()["result"]]
        url = _links(page.headers["Link"]).get("next")
    assert sorted(seen) == sorted(batch[1])


def test_offset_past_the_end(admin, batch):
    marker, _ = batch
    r = admin.get("/api/now/table/incident", params={"sysparm_query": f"correlation_id={marker}", "sysparm_offset": 50})
    assert r.status_code == 200 and r.json() == {"result": []}
    assert r.headers["X-Total-Count"] == "7"


def test_default_limit_in_links_is_10000(admin, batch):
    marker, _ = batch
    r = admin.get("/api/now/table/incident", params={"sysparm_query": f"correlation_id={marker}"})
    assert len(r.json()["result"]) == 7
    for url in _links(r.headers["Link"]).values():
        assert parse_qs(urlsplit(url).query)["sysparm_limit"] == ["10000"]


def test_suppress_pagination_header_keeps_total_count(admin, batch):
    marker, _ = batch
    for value in ("true", "True"):  # pysnow sends Python booleans
        r = admin.get(
            "/api/now/table/incident",
            params={"sysparm_query": f"correlation_id={marker}", "sysparm_suppress_pagination_header": value},
        )
        assert "Link" not in r.headers
        assert r.headers["X-Total-Count"] == "7"
    r = admin.get(
        "/api/now/table/incident",
        params={"sysparm_query": f"correlation_id={marker}", "sysparm_suppress_pagination_header": "False"},
    )
    assert "Link" in r.headers


def test_no_count_drops_total_count(admin, batch, emulator):
    marker, _ = batch
    emulator.stats(reset=True)
    r = admin.get(
        "/api/now/table/incident",
        params={"sysparm_query": f"correlation_id={marker}", "sysparm_no_count": "true", "sysparm_limit": "2"},
    )
    assert r.status_code == 200 and len(r.json()["result"]) == 2
    assert "X-Total-Count" not in r.headers
    assert emulator.stats()["count_queries"] == 0  # the count(*) is skipped, not just hidden
    # Link stays (only sysparm_suppress_pagination_header drops it); without a count there is no last page,
    # and next is offered while pages come back full
    links = _links(r.headers["Link"])
    assert {rel: _offset(url) for rel, url in links.items()} == {"first": 0, "prev": -2, "next": 2}
    seen, url = [], r.request.url
    while url:
        page = admin.get(url)
        assert "X-Total-Count" not in page.headers
        seen += page.json()["result"]
        url = _links(page.headers["Link"]).get("next")
    assert len(seen) == 7
    r = admin.get(
        "/api/now/table/incident",
        params={"sysparm_query": f"correlation_id={marker}", "sysparm_no_count": "true", "sysparm_offset": "6"},
    )
    assert list(_links(r.headers["Link"])) == ["first", "prev"]
    r = admin.get(
        "/api/now/table/incident",
        params={
            "sysparm_query": f"correlation_id={marker}",
            "sysparm_no_count": "true",
            "sysparm_suppress_pagination_header": "true",
        },
    )
    assert "Link" not in r.headers and "X-Total-Count" not in r.headers
    assert emulator.stats()["count_queries"] == 0


# --- parameters ------------------------------------------------------------------------------------
def test_fields_with_invalid_names_are_ignored(admin, batch):
    marker, _ = batch
    found = rows(admin, "incident", f"correlation_id={marker}", "number, no_such_field,short_description,,")
    assert all(set(r) == {"number", "short_description"} for r in found)
    found = rows(admin, "incident", f"correlation_id={marker}", "no_such_field")
    assert found == [{}] * 7


def test_empty_fields_and_view_mean_defaults(admin, batch):
    _, ids = batch
    r = admin.get(
        f"/api/now/table/incident/{ids[0]}",
        params={"sysparm_fields": "", "sysparm_view": "", "sysparm_query": "", "sysparm_limit": ""},
    )
    assert r.status_code == 200
    assert {"number", "caller_id", "sys_tags", "sys_class_name"} <= set(r.json()["result"])


@pytest.mark.parametrize("view", ["desktop", "mobile", "both"])
def test_view_is_accepted_and_fields_wins(admin, batch, view):
    marker, _ = batch
    r = admin.get(
        "/api/now/table/incident",
        params={"sysparm_query": f"correlation_id={marker}", "sysparm_view": view, "sysparm_fields": "number"},
    )
    assert r.status_code == 200
    assert all(list(row) == ["number"] for row in r.json()["result"])


@pytest.mark.parametrize(
    "extra",
    [
        {"sysparm_view": "mobile"},
        {"sysparm_query_no_domain": "true"},
        {"sysparm_query_no_domain": "not-a-boolean"},
        {"sysparm_query_category": "any category"},
    ],
)
def test_accepted_and_ignored_parameters(admin, batch, extra):
    """sysparm_view, sysparm_query_no_domain and sysparm_query_category change nothing (README)."""
    marker, ids = batch
    params = {"sysparm_query": f"correlation_id={marker}^ORDERBYnumber", "sysparm_limit": "3"}
    plain = admin.get("/api/now/table/incident", params=params)
    r = admin.get("/api/now/table/incident", params={**params, **extra})
    assert r.status_code == 200 and r.json() == plain.json()
    assert r.headers["X-Total-Count"] == plain.headers["X-Total-Count"] == "7"
    one = admin.get(f"/api/now/table/incident/{ids[0]}", params=extra)
    assert one.status_code == 200 and one.json()["result"]["sys_id"] == ids[0]


def test_single_record_endpoints_ignore_leaked_list_parameters(admin, batch):
    _, ids = batch
    # pysnow leaks the last list query's sysparm_query/limit/offset into later calls
    r = admin.get(
        f"/api/now/table/incident/{ids[2]}",
        params={"sysparm_query": f"sys_id={ids[1]}", "sysparm_limit": "1", "sysparm_offset": "5"},
    )
    assert r.status_code == 200 and r.json()["result"]["sys_id"] == ids[2]
    r = admin.post(
        "/api/now/table/incident",
        params={"sysparm_query": "number=NOPE", "sysparm_offset": "3", "table_name": "x", "sysparm_fields": "number"},
        json={"short_description": "leaky"},
    )
    assert r.status_code == 201 and list(r.json()["result"]) == ["number"]


def test_name_value_shorthand_filters(admin, batch):
    marker, ids = batch
    sid = ids[3]
    r = admin.get(
        "/api/now/table/incident", params={"correlation_id": marker, "sys_id": sid, "sysparm_fields": "sys_id"}
    )
    assert r.json()["result"] == [{"sys_id": sid}]
    # a choice field by display value
    closed_marker = tag("short")
    created = create(
        admin,
        "incident",
        {"short_description": "shorthand", "correlation_id": closed_marker, "state": "6", "close_code": "Duplicate",
         "close_notes": "dup"},
    )  # fmt: skip
    for state in ("Resolved", "6", "resolved"):
        r = admin.get("/api/now/table/incident", params={"correlation_id": closed_marker, "state": state})
        assert [row["sys_id"] for row in r.json()["result"]] == [created["sys_id"]], state
    r = admin.get("/api/now/table/incident", params={"correlation_id": closed_marker, "state": "New"})
    assert r.json()["result"] == []
    # a caret in a shorthand value is a literal caret, not a query separator
    caret = create(admin, "incident", {"short_description": "a^ORactive=true", "correlation_id": closed_marker})
    r = admin.get(
        "/api/now/table/incident",
        params={"correlation_id": closed_marker, "short_description": "a^ORactive=true", "sysparm_fields": "sys_id"},
    )
    assert r.json()["result"] == [{"sys_id": caret["sys_id"]}]
    # unknown parameters are not filters
    r = admin.get("/api/now/table/incident", params={"correlation_id": marker, "no_such_field": "1"})
    assert len(r.json()["result"]) == 7
    # sysparm_query wins: the shorthand does not combine with it
    r = admin.get(
        "/api/now/table/incident",
        params={"sysparm_query": f"correlation_id={marker}", "short_description": "nothing like this"},
    )
    assert len(r.json()["result"]) == 7


# --- writes --------------------------------------------------------------------------------------------
def test_x_no_response_body(admin):
    r = admin.post(
        "/api/now/table/incident", json={"short_description": "silent"}, headers={"X-no-response-body": "true"}
    )
    assert r.status_code == 201 and r.content == b""
    sys_id = r.headers["Location"].rsplit("/", 1)[1]
    for method in ("PATCH", "PUT"):
        r = admin.request(
            method,
            f"/api/now/table/incident/{sys_id}",
            json={"description": method},
            headers={"X-no-response-body": "true"},
        )
        assert r.status_code == 200 and r.content == b""
    assert get(admin, "incident", sys_id)["description"] == "PUT"


def test_x_http_method_override(admin):
    created = create(admin, "incident", {"short_description": "override"})
    url = f"/api/now/table/incident/{created['sys_id']}"
    r = admin.post(url, json={"description": "via override"}, headers={"X-http-method-override": "PATCH"})
    assert r.status_code == 200 and r.json()["result"]["description"] == "via override"
    r = admin.post(url, headers={"X-HTTP-Method-Override": "delete"})
    assert r.status_code == 204
    assert admin.get(url).status_code == 404


def test_sys_fields_are_platform_maintained(admin, emulator):
    r = admin.post(
        "/api/now/table/incident",
        json={
            "short_description": "sys fields",
            "sys_created_on": "2001-01-01 00:00:00",
            "sys_created_by": "mallory",
            "sys_updated_by": "mallory",
            "sys_mod_count": "41",
            "sys_class_name": "problem",
            "no_such_field": "ignored",
        },
    )
    assert r.status_code == 201
    rec = r.json()["result"]
    assert rec["sys_created_by"] == rec["sys_updated_by"] == "admin"
    assert rec["sys_mod_count"] == "0"
    assert rec["sys_created_on"] != "2001-01-01 00:00:00" and GLIDE_DT.match(rec["sys_created_on"])
    assert rec["sys_class_name"] == "incident"
    assert "no_such_field" not in rec
    sys_id = rec["sys_id"]
    with emulator.client(("itil", "itil")) as itil:
        for expected in ("1", "2", "3"):
            r = patch(itil, "incident", sys_id, {"description": f"edit {expected}", "sys_mod_count": "99"})
            assert r.json()["result"]["sys_mod_count"] == expected
            assert r.json()["result"]["sys_updated_by"] == "itil"
            assert r.json()["result"]["sys_created_by"] == "admin"
    # an update that changes nothing is not an update
    r = patch(admin, "incident", sys_id, {"description": "edit 3", "no_such_field": "x"})
    assert r.status_code == 200 and r.json()["result"]["sys_mod_count"] == "3"
    r = patch(admin, "incident", sys_id, {"sys_created_on": "2001-01-01 00:00:00", "sys_id": "0" * 32})
    assert r.json()["result"]["sys_created_on"] == rec["sys_created_on"]
    assert r.json()["result"]["sys_id"] == sys_id


def test_client_supplied_sys_id_on_insert_is_honoured_once(admin):
    wanted = tag("x").replace("x-", "").ljust(32, "0")[:32]
    r = admin.post("/api/now/table/incident", json={"short_description": "mine", "sys_id": wanted})
    assert r.json()["result"]["sys_id"] == wanted
    again = admin.post("/api/now/table/incident", json={"short_description": "clash", "sys_id": wanted})
    assert again.status_code == 201 and again.json()["result"]["sys_id"] != wanted
    bad = admin.post("/api/now/table/incident", json={"short_description": "bad", "sys_id": "not-a-guid"})
    assert SYS_ID.match(bad.json()["result"]["sys_id"])


def test_every_scalar_is_a_string(admin, batch):
    marker, _ = batch
    for display in ("false", "true", "all"):
        for excl in ("false", "true"):
            found = rows(
                admin,
                "incident",
                f"correlation_id={marker}",
                sysparm_display_value=display,
                sysparm_exclude_reference_link=excl,
            )
            for row in found:
                for name, value in row.items():
                    if isinstance(value, dict):
                        assert all(isinstance(v, str) for v in value.values()), (name, value)
                    else:
                        assert isinstance(value, str), (name, value)


def test_json_content_type_and_platform_headers(admin, batch):
    r = admin.get(f"/api/now/table/incident/{batch[1][0]}")
    assert r.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert r.headers["Server"] == "ServiceNow"
    assert re.fullmatch(r"[0-9a-f]{12}", r.headers["X-Transaction-ID"])
    assert r.headers["X-Is-Logged-In"] == "true"


# --- representations -----------------------------------------------------------------------------------
def test_xml_accept(admin, batch):
    marker, ids = batch
    r = admin.get(
        "/api/now/table/incident",
        params={"sysparm_query": f"correlation_id={marker}", "sysparm_limit": 2, "sysparm_fields": "number,caller_id"},
        headers={"Accept": "application/xml"},
    )
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/xml")
    assert r.headers["X-Total-Count"] == "7"
    import xml.etree.ElementTree as ET

    root = ET.fromstring(r.content)
    assert root.tag == "response"
    results = root.findall("result")
    assert len(results) == 2
    assert results[0].find("number").text.startswith("INC")
    one = admin.get(f"/api/now/table/incident/{ids[0]}", headers={"Accept": "application/xml"})
    assert ET.fromstring(one.content).find("result/sys_id").text == ids[0]


@pytest.mark.parametrize("accept", ["text/plain", "image/png", "text/html"])
def test_unsupported_accept_is_406(admin, accept):
    r = admin.get("/api/now/table/incident", params={"sysparm_limit": 1}, headers={"Accept": accept})
    assert_error(r, 406, "Not Acceptable")


@pytest.mark.parametrize("accept", ["*/*", "application/json", "application/json, text/plain, */*", "application/*"])
def test_acceptable_accept_headers(admin, accept):
    r = admin.get("/api/now/table/incident", params={"sysparm_limit": 1}, headers={"Accept": accept})
    assert r.status_code == 200 and "result" in r.json()


@pytest.mark.parametrize("order", ["", "^ORDERBYsys_id", "^ORDERBYDESCsys_id", "^ORDERBYshort_description"])
def test_sequential_pages_match_the_full_listing(admin, order):
    """Sequential offset pages (served by seeking from the previous page's last key) equal the full list."""
    marker = tag("pages")
    for i in range(11):
        create(admin, "incident", {"short_description": f"p{i % 4}", "correlation_id": marker})
    query = f"correlation_id={marker}{order}"
    full = [r["sys_id"] for r in rows(admin, "incident", query, "sys_id")]
    assert len(full) == 11
    if "sys_id" in order:
        assert full == sorted(full, reverse="DESC" in order)
    paged: list[str] = []
    for offset in range(0, 12, 3):
        paged += [r["sys_id"] for r in rows(admin, "incident", query, "sys_id", sysparm_limit=3, sysparm_offset=offset)]
    assert paged == full
    # the same pages again, out of order
    for offset in (6, 0, 9, 3):
        page = rows(admin, "incident", query, "sys_id", sysparm_limit=3, sysparm_offset=offset)
        assert [r["sys_id"] for r in page] == full[offset : offset + 3]


def test_pages_follow_offset_semantics_after_a_write(admin):
    """A write between two pages shifts later pages exactly as an SQL OFFSET over the new data would."""
    marker = tag("shift")
    for i in range(9):
        create(admin, "incident", {"short_description": f"s{i}", "correlation_id": marker})
    query = f"correlation_id={marker}"
    first = rows(admin, "incident", query, "sys_id", sysparm_limit=3, sysparm_offset=0)
    assert admin.delete(f"/api/now/table/incident/{first[0]['sys_id']}").status_code == 204
    remaining = [r["sys_id"] for r in rows(admin, "incident", query, "sys_id")]
    second = rows(admin, "incident", query, "sys_id", sysparm_limit=3, sysparm_offset=3)
    assert [r["sys_id"] for r in second] == remaining[3:6]
    r = admin.get("/api/now/table/incident", params={"sysparm_query": query, "sysparm_limit": 3, "sysparm_offset": 3})
    assert r.headers["X-Total-Count"] == "8"  # the count follows the write too
    create(admin, "incident", {"short_description": "late", "correlation_id": marker})
    r = admin.get("/api/now/table/incident", params={"sysparm_query": query, "sysparm_limit": 3, "sysparm_offset": 6})
    assert r.headers["X-Total-Count"] == "9" and len(r.json()["result"]) == 3
