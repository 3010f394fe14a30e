"""The Batch API over real HTTP: items run through the real APIs with the outer request's session."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from sn_support import ITIL, READONLY, assert_error, create, tag

BATCH = "/api/now/v1/batch"


def item(id_: str, method: str, url: str, body: Any = None, headers: dict | None = None, **extra: Any) -> dict:
    entry: dict[str, Any] = {"id": id_, "method": method, "url": url, **extra}
    entry["headers"] = [{"name": k, "value": v} for k, v in (headers or {}).items()]
    if body is not None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        entry["body"] = base64.b64encode(raw).decode()
    return entry


def run(client: httpx.Client, items: list[dict], batch_id: Any = "b1", path: str = BATCH) -> dict:
    r = client.post(path, json={"batch_request_id": batch_id, "rest_requests": items})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    data = r.json()
    assert set(data) == {"batch_request_id", "serviced_requests", "unserviced_requests"}
    return data


def by_id(data: dict) -> dict[str, dict]:
    return {s["id"]: s for s in data["serviced_requests"]}


def body_of(served: dict) -> Any:
    raw = base64.b64decode(served["body"])
    return json.loads(raw) if raw else None


def headers_of(served: dict) -> dict[str, str]:
    return {h["name"].lower(): h["value"] for h in served["headers"]}


def test_mixed_items_run_in_order_with_real_effects(admin):
    marker = tag("batch")
    target = create(admin, "incident", {"short_description": marker + "-target"})
    doomed = create(admin, "incident", {"short_description": marker + "-doomed"})
    items = [
        item("post", "POST", "/api/now/table/incident?sysparm_exclude_reference_link=true",
             {"short_description": marker + "-new", "impact": 2},
             {"Content-Type": "application/json", "Accept": "application/json"}),
        item("patch", "PATCH", f"/api/now/table/incident/{target['sys_id']}",
             {"short_description": marker + "-patched"}),
        item("delete", "DELETE", f"/api/now/table/incident/{doomed['sys_id']}", headers={"Content-Length": "0"}),
        item("list", "GET",
             f"/api/now/table/incident?sysparm_query=short_descriptionSTARTSWITH{marker}%5EORDERBYshort_description"
             "&sysparm_fields=short_description&sysparm_limit=2"),
        item("missing", "GET", "/api/now/table/incident/" + "0" * 32),
    ]  # fmt: skip
    data = run(admin, items, batch_id="b-42")
    assert data["batch_request_id"] == "b-42"
    assert data["unserviced_requests"] == []
    assert [s["id"] for s in data["serviced_requests"]] == ["post", "patch", "delete", "list", "missing"]
    served = by_id(data)
    for s in served.values():
        assert isinstance(s["status_code"], int)
        assert isinstance(s["execution_time"], int) and s["execution_time"] >= 0

    assert (served["post"]["status_code"], served["post"]["status_text"]) == (201, "Created")
    created = body_of(served["post"])["result"]
    assert created["impact"] == "2"  # an int in the body, a string back
    assert headers_of(served["post"])["location"].endswith(f"/api/now/table/incident/{created['sys_id']}")

    assert served["patch"]["status_code"] == 200
    assert body_of(served["patch"])["result"]["short_description"] == marker + "-patched"

    assert served["delete"]["status_code"] == 204
    assert served["delete"]["body"] == ""

    # The list ran after the writes: it sees the new and the patched record, not the deleted one.
    listed = served["list"]
    assert listed["status_code"] == 200
    assert headers_of(listed)["x-total-count"] == "2"
    assert any(h["name"] == "X-Total-Count" for h in listed["headers"])
    assert headers_of(listed)["content-type"].startswith("application/json")
    assert [r["short_description"] for r in body_of(listed)["result"]] == [marker + "-new", marker + "-patched"]

    assert served["missing"]["status_code"] == 404
    assert body_of(served["missing"])["error"]["message"] == "No Record found"

    # The effects are real, seen from outside the batch.
    assert admin.get(f"/api/now/table/incident/{doomed['sys_id']}").status_code == 404
    got = admin.get(f"/api/now/table/incident/{target['sys_id']}").json()["result"]
    assert got["short_description"] == marker + "-patched"


def test_int_batch_id_is_echoed_as_string_and_unversioned_alias(admin):
    data = run(admin, [item("1", "GET", "/api/now/table/incident?sysparm_limit=1")], batch_id=7, path="/api/now/batch")
    assert data["batch_request_id"] == "7"
    assert data["serviced_requests"][0]["status_code"] == 200


def test_exclude_response_headers(admin):
    items = [
        item("bare", "GET", "/api/now/table/incident?sysparm_limit=1", exclude_response_headers=True),
        item("full", "GET", "/api/now/table/incident?sysparm_limit=1", exclude_response_headers=False),
    ]
    served = by_id(run(admin, items))
    assert served["bare"]["headers"] == []
    assert body_of(served["bare"])["result"]
    assert "x-total-count" in headers_of(served["full"])


def test_empty_request(admin):
    data = run(admin, [], batch_id=1)
    assert data == {"batch_request_id": "1", "serviced_requests": [], "unserviced_requests": []}


def test_oversized_item_is_unserviced_others_run(emulator, admin):
    emulator.set_properties(**{"glide.rest.batch.max.inputSize": "0.001"})  # 1048 bytes
    try:
        marker = tag("big")
        items = [
            item("big", "POST", "/api/now/table/incident", {"short_description": marker, "description": "x" * 4000}),
            item("small", "POST", "/api/now/table/incident", {"short_description": marker + "-small"}),
        ]
        data = run(admin, items)
    finally:
        emulator.set_properties(**{"glide.rest.batch.max.inputSize": "5"})
    assert data["unserviced_requests"] == ["big"]
    assert [s["id"] for s in data["serviced_requests"]] == ["small"]
    assert data["serviced_requests"][0]["status_code"] == 201
    found = admin.get("/api/now/table/incident", params={"sysparm_query": f"short_descriptionSTARTSWITH{marker}"})
    assert [r["short_description"] for r in found.json()["result"]] == [marker + "-small"]


def test_time_budget_exhausted_items_are_unserviced(emulator, admin):
    emulator.set_properties(**{"emulator.rest.batch.max_execution_seconds": "0"})
    try:
        data = run(admin, [item("a", "GET", "/api/now/table/incident?sysparm_limit=1"), item("b", "DELETE", "/x")])
    finally:
        emulator.set_properties(**{"emulator.rest.batch.max_execution_seconds": "30"})
    assert data["serviced_requests"] == []
    assert data["unserviced_requests"] == ["a", "b"]


@pytest.mark.parametrize("field", ["id", "method", "url"])
def test_missing_item_field_is_400(admin, field):
    entry = item("x", "GET", "/api/now/table/incident")
    del entry[field]
    r = admin.post(BATCH, json={"batch_request_id": "1", "rest_requests": [entry]})
    body = assert_error(r, 400, f"Missing field: {field}")
    assert field in body["error"]["detail"]


def test_malformed_json_and_wrong_content_type(admin):
    bad = admin.post(
        BATCH, content=b'{"batch_request_id": 1, "rest_requests": [', headers={"Content-Type": "application/json"}
    )
    assert_error(bad, 400, "Exception while reading request")
    wrong = admin.post(BATCH, content=b"{}", headers={"Content-Type": "text/plain"})
    assert_error(wrong, 415, "Unsupported Media Type")
    not_a_list = admin.post(BATCH, json={"batch_request_id": 1, "rest_requests": {"id": "1"}})
    assert not_a_list.status_code == 400


def test_unauthenticated_batch_is_401(emulator):
    r = httpx.post(f"{emulator.url}{BATCH}", json={"batch_request_id": 1, "rest_requests": []})
    assert_error(r, 401, "User Not Authenticated")


def test_item_credentials_are_the_outer_session(emulator, admin):
    """A read-only user's write item is refused inside a 200 batch; its reads succeed. Credentials an
    item carries itself are ignored."""
    marker = tag("ro")
    admin_auth = "Basic " + base64.b64encode(b"admin:admin").decode()
    items = [
        item("write", "POST", "/api/now/table/incident", {"short_description": marker},
             {"Authorization": admin_auth}),
        item("read", "GET", "/api/now/table/incident?sysparm_limit=1"),
    ]  # fmt: skip
    with emulator.client(READONLY) as readonly:
        served = by_id(run(readonly, items))
    assert served["write"]["status_code"] == 403
    assert body_of(served["write"])["error"]["detail"] == "ACL Exception Insert Failed due to security constraints"
    assert served["read"]["status_code"] == 200
    found = admin.get("/api/now/table/incident", params={"sysparm_query": f"short_description={marker}"})
    assert found.json()["result"] == []


def test_items_reach_other_apis(admin):
    """Attachments and unknown URIs go through the same routing as top-level requests."""
    incident = create(admin, "incident", {"short_description": tag("batch-att")})
    url = f"/api/now/attachment/file?table_name=incident&table_sys_id={incident['sys_id']}&file_name=b.txt"
    items = [
        item("att", "POST", url, b"batched bytes", {"Content-Type": "text/plain"}),
        item("nowhere", "GET", "/api/now/no/such/thing"),
        item("badbody", "POST", "/api/now/table/incident", exclude_response_headers=True),
    ]
    items[2]["body"] = "!!! not base64 !!!"
    served = by_id(run(admin, items))
    assert served["att"]["status_code"] == 201
    meta = body_of(served["att"])["result"]
    assert meta["size_bytes"] == str(len(b"batched bytes"))
    assert admin.get(f"/api/now/attachment/{meta['sys_id']}/file").content == b"batched bytes"
    assert served["nowhere"]["status_code"] == 400
    assert body_of(served["nowhere"])["error"]["message"] == "Requested URI does not represent any resource"
    assert served["badbody"]["status_code"] == 400


def test_items_are_not_counted_as_requests(emulator, admin):
    emulator.stats(reset=True)
    run(admin, [item(str(i), "GET", "/api/now/table/incident?sysparm_limit=1") for i in range(5)])
    stats = emulator.stats()
    assert stats["by_route"].get("POST /api/now/v1/batch") == 1
    assert not any(route.startswith("GET /api/now/table") for route in stats["by_route"])


def test_rate_limits_count_only_the_outer_request(emulator, admin):
    itil_id = admin.get("/api/now/table/sys_user", params={"sysparm_query": "user_name=itil"}).json()["result"][0]
    rule = create(admin, "sys_rate_limit_rules", {"name": tag("rl"), "resource": "table", "type": "user",
                                                  "user": itil_id["sys_id"], "rate": 2})  # fmt: skip
    try:
        with emulator.client(ITIL) as itil:
            items = [item(str(i), "GET", "/api/now/table/incident?sysparm_limit=1") for i in range(5)]
            served = run(itil, items)["serviced_requests"]
            assert [s["status_code"] for s in served] == [200] * 5
            # The table rule still has its whole budget: two direct calls pass, the third is refused.
            codes = [itil.get("/api/now/table/incident", params={"sysparm_limit": 1}).status_code for _ in range(3)]
            assert codes == [200, 200, 429]
    finally:
        admin.delete(f"/api/now/table/sys_rate_limit_rules/{rule['sys_id']}")
