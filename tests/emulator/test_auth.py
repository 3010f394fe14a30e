"""Authentication and access control (reference §6, §1.7): basic auth, API keys, sessions, ACL answers."""

from __future__ import annotations

import httpx
import pytest
from sn_support import API_KEY, INTEGRATION, NOROLE, READONLY, assert_error, create, get, make_user, rows, tag


def _unauthenticated(r: httpx.Response) -> None:
    assert_error(r, 401, "User Not Authenticated", "Required to provide Auth information")


@pytest.mark.parametrize("user", [("admin", "admin"), ("itil", "itil"), READONLY, INTEGRATION])
def test_basic_auth_for_each_seeded_user(emulator, user):
    with emulator.client(user) as client:
        r = client.get("/api/now/table/incident", params={"sysparm_limit": 1})
    assert r.status_code == 200 and len(r.json()["result"]) == 1


@pytest.mark.parametrize(
    "auth",
    [("admin", "wrong"), ("nobody", "admin"), ("", "")],
)
def test_bad_credentials_are_401(emulator, auth):
    with httpx.Client(base_url=emulator.url, auth=auth) as client:
        r = client.get("/api/now/table/incident")
    _unauthenticated(r)
    assert "WWW-Authenticate" in r.headers


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic not-base64!!"},
        {"Authorization": "Bearer no-such-token"},
        {"Authorization": "Digest abc"},
        {"x-sn-apikey": "wrong-key"},
        {"Cookie": "JSESSIONID=FORGED"},
    ],
)
def test_missing_or_invalid_credentials_are_401(emulator, headers):
    r = httpx.get(f"{emulator.url}/api/now/table/incident", headers=headers)
    _unauthenticated(r)


def test_every_api_needs_authentication(emulator):
    for path in ("/api/now/table/incident/0123456789abcdef0123456789abcdef", "/api/now/v2/table/sys_user"):
        _unauthenticated(httpx.get(f"{emulator.url}{path}"))
    _unauthenticated(httpx.post(f"{emulator.url}/api/now/table/incident", json={"short_description": "anon"}))


def test_api_key_header_and_query_parameter(emulator):
    r = httpx.post(
        f"{emulator.url}/api/now/table/incident",
        json={"short_description": "by api key"},
        headers={"x-sn-apikey": API_KEY},
    )
    assert r.status_code == 201 and r.json()["result"]["sys_created_by"] == "prefect.integration"
    r = httpx.get(f"{emulator.url}/api/now/table/incident", params={"x-sn-apikey": API_KEY, "sysparm_limit": 1})
    assert r.status_code == 200
    # the key is not mistaken for a filter
    assert len(r.json()["result"]) == 1 and r.headers["X-Total-Count"] != "0"
    _unauthenticated(httpx.get(f"{emulator.url}/api/now/table/incident", params={"x-sn-apikey": "nope"}))


def test_session_cookie_binds_later_calls(emulator):
    with httpx.Client(base_url=emulator.url, auth=("itil", "itil")) as client:
        r = client.get("/api/now/table/incident", params={"sysparm_limit": 1})
        cookie = r.cookies.get("JSESSIONID")
    assert cookie
    r = httpx.post(
        f"{emulator.url}/api/now/table/incident",
        json={"short_description": "by cookie"},
        cookies={"JSESSIONID": cookie},
    )
    assert r.status_code == 201 and r.json()["result"]["sys_created_by"] == "itil"


def test_locked_out_and_inactive_users_cannot_authenticate(emulator, admin):
    name = tag("lock")
    user_id = make_user(admin, name, "pw-1", ["itil"])
    with emulator.client((name, "pw-1")) as client:
        assert client.get("/api/now/table/incident", params={"sysparm_limit": 1}).status_code == 200
        admin.patch(f"/api/now/table/sys_user/{user_id}", json={"locked_out": "true"}).raise_for_status()
        _unauthenticated(client.get("/api/now/table/incident", params={"sysparm_limit": 1}))
        admin.patch(f"/api/now/table/sys_user/{user_id}", json={"locked_out": "false", "active": "false"})
        _unauthenticated(client.get("/api/now/table/incident", params={"sysparm_limit": 1}))
        admin.patch(f"/api/now/table/sys_user/{user_id}", json={"active": "true"})
        assert client.get("/api/now/table/incident", params={"sysparm_limit": 1}).status_code == 200


def test_password_change_takes_effect_and_is_never_readable(emulator, admin):
    name = tag("pw")
    user_id = make_user(admin, name, "old-pw", ["itil"])
    admin.patch(f"/api/now/table/sys_user/{user_id}", json={"user_password": "new-pw"}).raise_for_status()
    with emulator.client((name, "old-pw")) as client:
        _unauthenticated(client.get("/api/now/table/incident"))
    with emulator.client((name, "new-pw")) as client:
        assert client.get("/api/now/table/incident", params={"sysparm_limit": 1}).status_code == 200
    for display in ("false", "true", "all"):
        rec = get(admin, "sys_user", user_id, sysparm_display_value=display, sysparm_fields="user_password")
        assert rec["user_password"] in ("", {"display_value": "", "value": ""})
    # nor can a query probe it
    assert rows(admin, "sys_user", f"user_name={name}^user_passwordSTARTSWITHsha", "sys_id") == []
    assert rows(admin, "sys_user", f"user_name={name}^user_password=new-pw", "sys_id") == []
    assert len(rows(admin, "sys_user", f"user_name={name}^user_passwordISNOTEMPTY", "sys_id")) == 1


# --- ACLs -------------------------------------------------------------------------------------------------
def test_read_only_user_gets_acl_exceptions_and_nothing_changes(emulator, admin):
    rec = create(admin, "incident", {"short_description": "acl target"})
    before = get(admin, "incident", rec["sys_id"])
    marker = tag("ro")
    with emulator.client(READONLY) as ro:
        assert ro.get(f"/api/now/table/incident/{rec['sys_id']}").status_code == 200
        r = ro.post("/api/now/table/incident", json={"short_description": "ro", "correlation_id": marker})
        assert_error(r, 403, "Operation Failed", "ACL Exception Insert Failed due to security constraints")
        for method in ("PATCH", "PUT"):
            r = ro.request(method, f"/api/now/table/incident/{rec['sys_id']}", json={"short_description": "ro"})
            assert_error(r, 403, "Operation Failed", "ACL Exception Update Failed due to security constraints")
        r = ro.delete(f"/api/now/table/incident/{rec['sys_id']}")
        assert_error(r, 403, "Operation Failed", "ACL Exception Delete Failed due to security constraints")
    assert rows(admin, "incident", f"correlation_id={marker}") == []
    assert get(admin, "incident", rec["sys_id"]) == before


def test_user_without_roles(emulator, admin):
    rec = create(admin, "incident", {"short_description": "hidden"})
    with emulator.client(NOROLE) as nr:
        assert_error(nr.get("/api/now/table/incident"), 403, "Insufficient rights to query records", None)
        assert_error(nr.get("/api/now/v1/table/change_request"), 403, "Insufficient rights to query records", None)
        assert_error(
            nr.get(f"/api/now/table/incident/{rec['sys_id']}"),
            404,
            "No Record found",
            "Record doesn't exist or ACL restricts the record retrieval",
        )
        assert_error(
            nr.patch(f"/api/now/table/incident/{rec['sys_id']}", json={"description": "x"}), 404, "No Record found"
        )
        assert_error(nr.delete(f"/api/now/table/incident/{rec['sys_id']}"), 404, "No Record found")
        r = nr.post("/api/now/table/incident", json={"short_description": "nr"})
        assert_error(r, 403, "Operation Failed", "ACL Exception Insert Failed due to security constraints")
    assert get(admin, "incident", rec["sys_id"])["description"] == ""


def test_itil_cannot_touch_admin_tables(emulator):
    with emulator.client(("itil", "itil")) as itil:
        assert_error(itil.get("/api/now/table/sys_properties"), 403, "Insufficient rights to query records")
        assert_error(itil.get("/api/now/table/oauth_entity"), 403, "Insufficient rights to query records")
        r = itil.post("/api/now/table/sys_rate_limit_rules", json={"name": "sneaky", "rate": 1})
        assert_error(r, 403, "Operation Failed", "ACL Exception Insert Failed due to security constraints")
        r = itil.post("/api/now/table/sys_user_has_role", json={"user": "x", "role": "y"})
        assert r.status_code == 403
        # reference data is readable, not writable
        assert itil.get("/api/now/table/sys_user_group", params={"sysparm_limit": 1}).status_code == 200
        r = itil.post("/api/now/table/sys_user_group", json={"name": "nope"})
        assert_error(r, 403, "Operation Failed", "ACL Exception Insert Failed due to security constraints")
        # the emulator's own admin API is admin only
        assert itil.put("/emulator/admin/faults", json={"latency_ms": 1000}).status_code == 403
        assert itil.post("/emulator/admin/properties", json={"glide.sys.default.tz": "Asia/Tokyo"}).status_code == 403


def test_secrets_render_empty_for_everyone(admin):
    for table, column in (("oauth_entity", "client_secret"), ("api_key", "token"), ("sys_user", "user_password")):
        found = rows(admin, table, "", column, sysparm_limit=3)
        assert found and all(r[column] == "" for r in found), (table, found)
