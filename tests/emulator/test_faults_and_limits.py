"""Rate-limit rules (reference §3) and the emulator's fault injection (``/emulator/admin/faults``)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from sn_support import assert_error, create, make_user, rows, sys_id_of, tag

RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Reset", "X-RateLimit-Rule")


# --- rate limits --------------------------------------------------------------------------------------
@pytest.fixture
def rules(admin) -> Iterator[list[str]]:
    """Rule sys_ids created by a test, deleted afterwards."""
    created: list[str] = []
    yield created
    for sys_id in created:
        admin.delete(f"/api/now/table/sys_rate_limit_rules/{sys_id}")


def add_rule(admin, created: list[str], **values) -> str:
    values.setdefault("name", tag("rule"))
    sys_id = create(admin, "sys_rate_limit_rules", values)["sys_id"]
    created.append(sys_id)
    return sys_id


def role_id(admin, name: str) -> str:
    return sys_id_of(admin, "sys_user_role", f"name={name}")


def test_no_rate_limit_headers_without_a_matching_rule(admin):
    r = admin.get("/api/now/table/incident", params={"sysparm_limit": 1})
    assert r.status_code == 200
    assert not any(h in r.headers for h in (*RATE_HEADERS, "Retry-After", "X-RateLimit-Remaining"))


def test_user_rule_counts_per_hour_then_429(emulator, admin, rules):
    name = tag("rl")
    user = make_user(admin, name, "pw", ["itil"])
    rule = add_rule(admin, rules, resource="table", type="user", user=user, rate="3")
    with emulator.client((name, "pw")) as client:
        answers = [client.get("/api/now/table/incident", params={"sysparm_limit": 1}) for _ in range(3)]
        for r in answers:
            assert r.status_code == 200
            assert r.headers["X-RateLimit-Limit"] == "3"
            assert r.headers["X-RateLimit-Rule"] == rule
            reset = int(r.headers["X-RateLimit-Reset"])
            assert time.time() < reset <= time.time() + 3600 and reset % 3600 == 0
            assert "X-RateLimit-Remaining" not in r.headers
        # the family "table" covers every table
        r = client.get("/api/now/table/change_request", params={"sysparm_limit": 1})
        body = assert_error(r, 429, "Rate limit exceeded", "Rate limit of 3 requests per hour for Table API exceeded")
        assert body
        retry_after = int(r.headers["Retry-After"])
        assert 0 < retry_after <= 3600
        assert r.headers["X-RateLimit-Rule"] == rule and r.headers["X-RateLimit-Limit"] == "3"
        # nothing is written while limited
        marker = tag("limited")
        r = client.post("/api/now/table/incident", json={"short_description": "x", "correlation_id": marker})
        assert r.status_code == 429
        assert rows(admin, "incident", f"correlation_id={marker}") == []
        # another resource family is not counted by a table rule
        assert client.get("/emulator/health").status_code == 200
    # other users are not affected
    r = admin.get("/api/now/table/incident", params={"sysparm_limit": 1})
    assert r.status_code == 200 and "X-RateLimit-Rule" not in r.headers


def test_precedence_user_then_lowest_role_then_all(emulator, admin, rules):
    resource = "/api/now/table/core_company"
    all_rule = add_rule(admin, rules, resource=resource, type="all", rate="50")
    itil_rule = add_rule(admin, rules, resource=resource, type="role", role=role_id(admin, "itil"), rate="40")
    asset_rule = add_rule(admin, rules, resource=resource, type="role", role=role_id(admin, "asset"), rate="30")
    people = {
        "itil": (tag("p-itil"), ["itil"]),
        "both": (tag("p-both"), ["itil", "asset"]),
        "single": (tag("p-single"), ["itil", "asset"]),
        "none": (tag("p-none"), ["cmdb_read"]),
    }
    ids = {key: make_user(admin, name, "pw", roles) for key, (name, roles) in people.items()}
    user_rule = add_rule(admin, rules, resource=resource, type="user", user=ids["single"], rate="45")
    expected = {
        "itil": (itil_rule, "40"),
        "both": (asset_rule, "30"),  # several role rules: the lowest limit applies
        "single": (user_rule, "45"),  # a rule for the user beats its role rules, even a lower one
        "none": (all_rule, "50"),
    }
    for key, (name, _) in people.items():
        with emulator.client((name, "pw")) as client:
            r = client.get(resource, params={"sysparm_limit": 1})
            assert r.status_code == 200, key
            assert (r.headers["X-RateLimit-Rule"], r.headers["X-RateLimit-Limit"]) == expected[key], key
            # a path outside the rule's resource carries no rate-limit headers
            r = client.get("/api/now/table/sys_user_group", params={"sysparm_limit": 1})
            assert "X-RateLimit-Rule" not in r.headers


def test_counts_are_per_user_and_per_method(emulator, admin, rules):
    resource = "/api/now/table/cmdb_rel_type"
    names = [tag("pu"), tag("pu")]
    for name in names:
        make_user(admin, name, "pw", ["cmdb_read"])
    add_rule(
        admin, rules, resource=resource, type="role", role=role_id(admin, "cmdb_read"), rate="2", http_method="GET"
    )
    for name in names:  # each user has its own budget
        with emulator.client((name, "pw")) as client:
            assert [client.get(resource, params={"sysparm_limit": 1}).status_code for _ in range(3)] == [200, 200, 429]
            # a GET-only rule does not count (or stop) other methods
            r = client.post(resource, json={"name": "x"})
            assert r.status_code == 403 and "X-RateLimit-Rule" not in r.headers


def _counted(client, method: str, path: str, **kw) -> bool:
    """Whether a request was counted by a rule (it carries the rule's headers, or was refused by it)."""
    r = client.request(method, path, **kw)
    return "X-RateLimit-Rule" in r.headers


def test_a_versioned_resource_also_counts_the_unversioned_path(emulator, admin, rules):
    """Without a version the latest is used (reference §1.1): v2 for the Table API."""
    name = tag("rv")
    user = make_user(admin, name, "pw", ["itil"])
    rule = add_rule(admin, rules, resource="GET /now/v2/table/cmdb_ci", type="user", user=user, rate="4")
    with emulator.client((name, "pw")) as client:
        one = {"params": {"sysparm_limit": 1}}
        assert _counted(client, "GET", "/api/now/table/cmdb_ci", **one)
        assert _counted(client, "GET", "/api/now/v2/table/cmdb_ci", **one)
        ci = client.get("/api/now/table/cmdb_ci", **one).json()["result"][0]["sys_id"]  # the third counted
        assert _counted(client, "GET", f"/api/now/table/cmdb_ci/{ci}")  # a record is under its table
        assert not _counted(client, "GET", "/api/now/v1/table/cmdb_ci", **one)  # another version
        assert not _counted(client, "GET", "/api/now/table/cmdb_ci_server", **one)  # another table
        assert not _counted(client, "GET", "/api/now/stats/cmdb_ci")  # another API
        r = client.get("/api/now/table/cmdb_ci", **one)
        assert r.status_code == 429 and r.headers["X-RateLimit-Rule"] == rule
        assert client.get("/api/now/v1/table/cmdb_ci", **one).status_code == 200


def test_the_method_in_a_resource_is_honoured(emulator, admin, rules):
    name = tag("rm")
    user = make_user(admin, name, "pw", ["itil"])
    marker = tag("rm")
    add_rule(admin, rules, resource="GET /now/v2/table/incident", type="user", user=user, rate="1")
    post_rule = add_rule(admin, rules, resource="POST /api/now/table/incident", type="user", user=user, rate="2")
    v1_rule = add_rule(admin, rules, resource="/now/v1/table/problem", type="user", user=user, rate="1")
    with emulator.client((name, "pw")) as client:
        assert client.get("/api/now/table/incident", params={"sysparm_limit": 1}).status_code == 200
        assert client.get("/api/now/table/incident", params={"sysparm_limit": 1}).status_code == 429
        # a GET rule neither counts nor stops POST; the POST rule counts POSTs, whatever the version
        for path in ("/api/now/table/incident", "/api/now/v2/table/incident"):
            r = client.post(path, json={"short_description": "rm", "correlation_id": marker})
            assert r.status_code == 201 and r.headers["X-RateLimit-Rule"] == post_rule
        r = client.post("/api/now/table/incident", json={"correlation_id": marker})
        assert r.status_code == 429 and r.headers["X-RateLimit-Rule"] == post_rule
        assert len(rows(admin, "incident", f"correlation_id={marker}")) == 2
        # a path without a method applies to every method, of its version only
        assert not _counted(client, "GET", "/api/now/table/problem", params={"sysparm_limit": 1})
        r = client.get("/api/now/v1/table/problem", params={"sysparm_limit": 1})
        assert r.headers["X-RateLimit-Rule"] == v1_rule
        assert client.post("/api/now/v1/table/problem", json={"short_description": "x"}).status_code == 429


def test_inactive_and_deleted_rules_stop_applying(emulator, admin, rules):
    name = tag("rd")
    user = make_user(admin, name, "pw", ["itil"])
    rule = add_rule(admin, rules, resource="table", type="user", user=user, rate="1")
    with emulator.client((name, "pw")) as client:
        assert [client.get("/api/now/table/incident", params={"sysparm_limit": 1}).status_code for _ in range(2)] == [
            200,
            429,
        ]
        admin.patch(f"/api/now/table/sys_rate_limit_rules/{rule}", json={"active": "false"}).raise_for_status()
        r = client.get("/api/now/table/incident", params={"sysparm_limit": 1})
        assert r.status_code == 200 and "X-RateLimit-Rule" not in r.headers
        admin.patch(f"/api/now/table/sys_rate_limit_rules/{rule}", json={"active": "true"}).raise_for_status()
        assert client.get("/api/now/table/incident", params={"sysparm_limit": 1}).status_code == 429
        assert admin.delete(f"/api/now/table/sys_rate_limit_rules/{rule}").status_code == 204
        assert client.get("/api/now/table/incident", params={"sysparm_limit": 1}).status_code == 200


def test_window_property_shortens_the_hour(emulator, admin, rules):
    name = tag("rw")
    user = make_user(admin, name, "pw", ["itil"])
    add_rule(admin, rules, resource="table", type="user", user=user, rate="2")
    emulator.set_properties(**{"emulator.rate_limit.window_seconds": "2"})
    try:
        with emulator.client((name, "pw")) as client:
            probe = client.get("/api/now/table/incident", params={"sysparm_limit": 1})
            time.sleep(max(0.0, int(probe.headers["X-RateLimit-Reset"]) - time.time()) + 0.05)  # a fresh window
            codes = [client.get("/api/now/table/incident", params={"sysparm_limit": 1}) for _ in range(3)]
            assert [r.status_code for r in codes] == [200, 200, 429]
            retry_after = int(codes[-1].headers["Retry-After"])
            assert 1 <= retry_after <= 2
            time.sleep(max(0.0, int(codes[-1].headers["X-RateLimit-Reset"]) - time.time()) + 0.05)
            assert client.get("/api/now/table/incident", params={"sysparm_limit": 1}).status_code == 200
    finally:
        emulator.set_properties(**{"emulator.rate_limit.window_seconds": "3600"})


# --- fault injection ---------------------------------------------------------------------------------
@pytest.fixture
def faults(emulator) -> Iterator:
    emulator.set_faults()
    yield emulator.set_faults
    emulator.set_faults()


def _timed(client: httpx.Client, *args, **kw) -> tuple[httpx.Response, float]:
    started = time.perf_counter()
    r = client.get(*args, **kw)
    return r, time.perf_counter() - started


def test_latency_per_request(admin, faults):
    # 1 s of latency: far above what a local request takes even on a loaded machine, so the bounds hold
    faults(latency_ms=1000)
    r, elapsed = _timed(admin, "/api/now/table/incident", params={"sysparm_limit": 1})
    assert r.status_code == 200 and elapsed >= 1.0
    # the emulator's own admin API is exempt
    _, admin_elapsed = _timed(admin, "/emulator/admin/stats")
    assert admin_elapsed < 1.0
    faults()
    _, after = _timed(admin, "/api/now/table/incident", params={"sysparm_limit": 1})
    assert after < 1.0


def test_latency_per_row(admin, faults):
    marker = tag("rows")
    for i in range(30):
        create(admin, "incident", {"short_description": f"row {i}", "correlation_id": marker})
    faults(latency_per_row_ms=10)
    params = {"sysparm_query": f"correlation_id={marker}", "sysparm_fields": "sys_id"}
    r, thirty = _timed(admin, "/api/now/table/incident", params=params)
    assert len(r.json()["result"]) == 30 and thirty >= 0.3
    r, one = _timed(admin, "/api/now/table/incident", params={**params, "sysparm_limit": 1})
    assert len(r.json()["result"]) == 1 and one < 0.2


def _statuses(admin, n: int = 30) -> list[int]:
    return [admin.get("/api/now/table/sys_user_group", params={"sysparm_limit": 1}).status_code for _ in range(n)]


def test_error_rates_are_seeded_and_deterministic(admin, faults):
    faults(error_rates={"500": 0.3, "503": 0.2}, seed=42)
    first = _statuses(admin)
    faults(error_rates={"500": 0.3, "503": 0.2}, seed=42)
    second = _statuses(admin)
    assert first == second
    assert {500, 503, 200} <= set(first) and set(first) <= {200, 500, 503}
    faults(error_rates={"500": 0.3, "503": 0.2}, seed=7)
    assert _statuses(admin) != first


def test_error_fault_answers(admin, faults):
    faults(script=[{"status": 500, "times": 1}])
    assert_error(admin.get("/api/now/table/incident"), 500, "Internal Server Error")
    faults(script=[{"status": 429, "times": 1, "retry_after": 7}])
    r = admin.get("/api/now/table/incident")
    assert_error(r, 429, "Rate limit exceeded")
    assert r.headers["Retry-After"] == "7"
    faults(script=[{"status": 503, "times": 1}])
    r = admin.get("/api/now/table/incident")
    assert r.status_code == 503 and r.headers["Content-Type"].startswith("text/html")


def test_scripted_faults_hit_the_next_n_matching_requests(admin, faults):
    faults(script=[{"status": 502, "times": 2, "method": "GET", "path": "^/api/now/table/incident$"}])
    assert admin.get("/api/now/table/change_request", params={"sysparm_limit": 1}).status_code == 200
    assert admin.post("/api/now/table/incident", json={"short_description": "not a GET"}).status_code == 201
    assert [admin.get("/api/now/table/incident", params={"sysparm_limit": 1}).status_code for _ in range(3)] == [
        502,
        502,
        200,
    ]
    faults(script=[{"status": 500, "times": 1, "skip": 1, "path": "sys_user_group"}])
    assert _statuses(admin, 3) == [200, 500, 200]


def test_dropped_connection_before_processing_writes_nothing(emulator, admin, faults):
    marker = tag("drop")
    faults(script=[{"kind": "drop", "method": "POST", "path": "^/api/now/table/incident$"}])
    with emulator.client() as client, pytest.raises(httpx.TransportError):
        client.post("/api/now/table/incident", json={"short_description": "lost", "correlation_id": marker})
    assert rows(admin, "incident", f"correlation_id={marker}") == []
    # the next request is served
    assert admin.post("/api/now/table/incident", json={"correlation_id": marker}).status_code == 201


def test_drop_after_applies_the_write_but_loses_the_answer(emulator, admin, faults):
    marker = tag("dropafter")
    created = create(admin, "incident", {"short_description": "target", "correlation_id": marker})
    faults(script=[{"kind": "drop_after", "method": "PATCH"}])
    with emulator.client() as client, pytest.raises(httpx.TransportError):
        client.patch(f"/api/now/table/incident/{created['sys_id']}", json={"description": "applied"})
    rec = rows(admin, "incident", f"correlation_id={marker}", "description,sys_mod_count")
    assert rec == [{"description": "applied", "sys_mod_count": "1"}]


def test_quota_cancellation(admin, faults):
    faults(script=[{"kind": "quota", "path": "^/api/now/table/incident$"}])
    r = admin.get("/api/now/table/incident", params={"sysparm_limit": 5})
    assert r.status_code == 200
    assert "Transaction cancelled: maximum execution time exceeded" in r.text
    assert "X-Total-Count" not in r.headers
    assert admin.get("/api/now/table/incident", params={"sysparm_limit": 1}).status_code == 200


def test_hibernation_page(admin, faults):
    faults(hibernate=True)
    for path in ("/api/now/table/incident", "/api/now/table/incident/0123456789abcdef0123456789abcdef"):
        r = admin.get(path)
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/html")
        assert "<title>Instance Hibernating page</title>" in r.text
    r = admin.post("/api/now/table/incident", json={"short_description": "asleep"})
    assert r.status_code == 200 and "Hibernating" in r.text
    faults()
    assert (
        admin.get("/api/now/table/incident", params={"sysparm_limit": 1})
        .headers["Content-Type"]
        .startswith("application/json")
    )


def test_fault_settings_are_validated(admin):
    r = admin.put("/emulator/admin/faults", json={"no_such_setting": 1})
    assert_error(r, 400, "Invalid fault settings")
    r = admin.put("/emulator/admin/faults", json={"latency_ms": -5})
    assert_error(r, 400, "Invalid fault settings")
    r = admin.put("/emulator/admin/faults", json={"script": [{"bogus": 1}]})
    assert_error(r, 400, "Invalid fault settings")
    for bad in ({"kind": "explode"}, {"status": 200}, {"path": "(unclosed"}):
        assert_error(admin.put("/emulator/admin/faults", json={"script": [bad]}), 400, "Invalid fault settings")
    assert_error(admin.put("/emulator/admin/faults", json={"error_rates": {"200": 1}}), 400, "Invalid fault settings")
    assert_error(admin.put("/emulator/admin/faults", json={"error_rates": {"x": 1}}), 400, "Invalid fault settings")
    r = admin.put("/emulator/admin/faults", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert admin.get("/emulator/admin/faults").json()["result"]["latency_ms"] == 0
    for bad in ({"error_rates": [1]}, {"script": "x"}, {"script": [{"times": "2"}]}, {"seed": [1]}):
        assert_error(admin.put("/emulator/admin/faults", json=bad), 400, "Invalid fault settings")


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_an_invalid_fault_setting_changes_nothing(admin, faults, method):
    config = faults(
        latency_per_row_ms=1, error_rates={"503": 0.01}, script=[{"status": 500, "times": 3, "path": "^/nowhere$"}]
    )
    for bad in ({"latency_ms": -5}, {"error_rates": {"200": 1}}, {"script": [{"kind": "explode"}]}, {"bogus": 1}):
        r = admin.request(method, "/emulator/admin/faults", json={"hibernate": True, **bad})
        assert_error(r, 400, "Invalid fault settings")
        assert admin.get("/emulator/admin/faults").json()["result"] == config
    assert admin.get("/api/now/table/incident", params={"sysparm_limit": 1}).status_code in (200, 503)
