"""The CMDB Instance API (reference §5.4) over real HTTP: list, read with relations, identify-and-create,
update, relations both ways, and the errors and permissions."""

from __future__ import annotations

import re

import pytest
from sn_support import NOROLE, READONLY, assert_error, create, delete, get, rows, sys_id_of, tag

RUNS_ON = "60bc4e22c0a8010e01f074cbe6bd73c3"  # Runs on::Runs
DEPENDS_ON = "1a9cb166f1571100a92eb60da2bce5c5"  # Depends on::Used by
SYS_ID = re.compile(r"^[0-9a-f]{32}$")
GLIDE_DT = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
BASE = "/api/now/cmdb/instance"


def post_ci(client, class_name: str, attributes: dict, source: str | None = "ServiceNow", **extra):
    body = {"attributes": attributes, **extra}
    if source is not None:
        body["source"] = source
    return client.post(f"{BASE}/{class_name}", json=body)


def created(response) -> dict:
    assert response.status_code == 201, response.text
    return response.json()["result"]


def relations_in_table(admin, sys_id: str) -> list[dict]:
    return rows(admin, "cmdb_rel_ci", f"parent={sys_id}^ORchild={sys_id}", "sys_id,parent,child,type")


# --- reads ---------------------------------------------------------------------------------------------
def test_list_returns_sys_id_and_name_only(admin):
    r = admin.get(f"{BASE}/cmdb_ci_linux_server", params={"sysparm_query": "nameSTARTSWITHportal-web-^ORDERBYname"})
    assert r.status_code == 200
    result = r.json()["result"]
    assert [row["name"] for row in result] == ["portal-web-01", "portal-web-02", "portal-web-03"]
    assert all(set(row) == {"sys_id", "name"} and SYS_ID.match(row["sys_id"]) for row in result)


def test_list_limit_offset_hierarchy_and_version(admin):
    query = {"sysparm_query": "nameSTARTSWITHportal-web-^ORDERBYname"}
    page = admin.get(f"{BASE}/cmdb_ci_linux_server", params={**query, "sysparm_limit": 1, "sysparm_offset": 1})
    assert [row["name"] for row in page.json()["result"]] == ["portal-web-02"]
    # a parent class lists its children's CIs; another branch does not
    assert len(admin.get(f"{BASE}/cmdb_ci_hardware", params=query).json()["result"]) == 3
    assert admin.get(f"{BASE}/cmdb_ci_appl", params=query).json()["result"] == []
    # the versioned URL is the same API
    versioned = admin.get("/api/now/v1/cmdb/instance/cmdb_ci_linux_server", params=query)
    assert versioned.status_code == 200 and len(versioned.json()["result"]) == 3
    # an unknown query field is ignored (the Table API's rule): the class's CIs come back
    everything = admin.get(f"{BASE}/cmdb_ci_win_server", params={"sysparm_query": "no_such_field=1"}).json()["result"]
    assert [row["name"] for row in everything] == ["rpt-win-01"]


def test_get_one_attributes_and_relations(admin, emulator):
    app = sys_id_of(admin, "cmdb_ci_appl", "name=payments-api")
    service = sys_id_of(admin, "cmdb_ci_service", "name=Payments")
    host = sys_id_of(admin, "cmdb_ci_linux_server", "name=pay-app-01")
    group = sys_id_of(admin, "sys_user_group", "name=Payments Engineering")
    r = admin.get(f"{BASE}/cmdb_ci_appl/{app}")
    assert r.status_code == 200
    result = r.json()["result"]
    assert set(result) == {"attributes", "outbound_relations", "inbound_relations"}
    attributes = result["attributes"]
    # every field of the class, scalars as strings
    assert attributes["name"] == "payments-api"
    assert attributes["tcp_port"] == "8443" and attributes["version"] == "1.4.2"
    assert attributes["sys_class_name"] == "cmdb_ci_appl"
    assert attributes["sys_id"] == app and attributes["sys_tags"] == ""
    assert attributes["operational_status"] == "1" and attributes["unverified"] == "false"
    assert "running_process_command" in attributes and "kernel_release" not in attributes
    # references: {display_value, link, value}; an empty reference is ""
    assert attributes["support_group"] == {
        "display_value": "Payments Engineering",
        "link": f"{emulator.url}/api/now/table/sys_user_group/{group}",
        "value": group,
    }
    assert attributes["assigned_to"] == ""
    # outbound: this CI is the parent; inbound: it is the child
    outbound = {(rel["type"]["display_value"], rel["target"]["display_value"]) for rel in result["outbound_relations"]}
    assert outbound == {
        ("Runs on::Runs", "pay-app-01"),
        ("Runs on::Runs", "pay-app-02"),
        ("Depends on::Used by", "pay-db-01"),
    }
    inbound = result["inbound_relations"]
    assert [(rel["type"]["display_value"], rel["target"]["display_value"]) for rel in inbound] == [
        ("Depends on::Used by", "Payments")
    ]
    runs_on = next(rel for rel in result["outbound_relations"] if rel["target"]["value"] == host)
    assert set(runs_on) == {"sys_id", "type", "target"} and SYS_ID.match(runs_on["sys_id"])
    assert runs_on["type"] == {
        "display_value": "Runs on::Runs",
        "link": f"{emulator.url}/api/now/table/cmdb_rel_type/{RUNS_ON}",
        "value": RUNS_ON,
    }
    assert runs_on["target"] == {
        "display_value": "pay-app-01",
        "link": f"{emulator.url}/api/now/cmdb/instance/cmdb_ci/{host}",
        "value": host,
    }
    assert inbound[0]["target"]["value"] == service
    # the relation is the cmdb_rel_ci row the Table API shows
    rel = get(admin, "cmdb_rel_ci", runs_on["sys_id"])
    assert (rel["parent"], rel["child"], rel["type"]) == (app, host, RUNS_ON)


def test_get_through_a_parent_class_and_missing(admin):
    host = sys_id_of(admin, "cmdb_ci_linux_server", "name=pay-app-01")
    via_parent = admin.get(f"{BASE}/cmdb_ci/{host}")
    assert via_parent.status_code == 200
    # the attributes are those of the CI's own class
    assert via_parent.json()["result"]["attributes"]["sys_class_name"] == "cmdb_ci_linux_server"
    assert "kernel_release" in via_parent.json()["result"]["attributes"]
    # another branch of the hierarchy does not hold it
    assert_error(admin.get(f"{BASE}/cmdb_ci_appl/{host}"), 404, "No Record found")
    assert_error(admin.get(f"{BASE}/cmdb_ci/0123456789abcdef0123456789abcdef"), 404, "No Record found")


# --- create through identification ----------------------------------------------------------------------
def test_create_with_relations_both_ways(admin):
    name = tag("cmdb-srv")
    app = sys_id_of(admin, "cmdb_ci_appl", "name=portal-web")
    service = sys_id_of(admin, "cmdb_ci_service", "name=Customer Portal")
    r = post_ci(
        admin,
        "cmdb_ci_linux_server",
        {"name": name, "ip_address": "10.99.0.1", "serial_number": f"SN-{name}", "discovery_source": "SCCM"},
        outbound_relations=[{"type": DEPENDS_ON, "target": service}],
        inbound_relations=[{"type": RUNS_ON, "target": app}],
    )
    result = created(r)
    attributes = result["attributes"]
    sys_id = attributes["sys_id"]
    assert attributes["name"] == name and attributes["sys_class_name"] == "cmdb_ci_linux_server"
    # source wins over a discovery_source attribute; discovery dates are set
    assert attributes["discovery_source"] == "ServiceNow"
    assert GLIDE_DT.match(attributes["first_discovered"]) and GLIDE_DT.match(attributes["last_discovered"])
    assert [(x["type"]["value"], x["target"]["value"]) for x in result["outbound_relations"]] == [(DEPENDS_ON, service)]
    assert [(x["type"]["value"], x["target"]["value"]) for x in result["inbound_relations"]] == [(RUNS_ON, app)]
    # read back through the Table API: the CI and the two cmdb_rel_ci rows, in the right direction
    record = get(admin, "cmdb_ci_linux_server", sys_id)
    assert record["ip_address"] == "10.99.0.1" and record["discovery_source"] == "ServiceNow"
    table_rels = {(x["parent"], x["child"], x["type"]) for x in relations_in_table(admin, sys_id)}
    assert table_rels == {(sys_id, service, DEPENDS_ON), (app, sys_id, RUNS_ON)}
    # GET answers the same shape
    again = admin.get(f"{BASE}/cmdb_ci_linux_server/{sys_id}").json()["result"]
    assert again["outbound_relations"] == result["outbound_relations"]
    assert again["inbound_relations"] == result["inbound_relations"]


def test_posting_the_same_ci_twice_updates_it(admin):
    name = tag("cmdb-dup")
    service = sys_id_of(admin, "cmdb_ci_service", "name=Reporting")
    relation = [{"type": DEPENDS_ON, "target": service}]
    first = created(
        post_ci(
            admin,
            "cmdb_ci_linux_server",
            {"name": name, "serial_number": f"SN-{name}", "ram": 1024},
            outbound_relations=relation,
        )
    )
    sys_id = first["attributes"]["sys_id"]
    # identified by serial number: same CI, attribute updated, relation not duplicated
    second = created(
        post_ci(
            admin, "cmdb_ci_linux_server", {"serial_number": f"SN-{name}", "ram": 2048}, outbound_relations=relation
        )
    )
    assert second["attributes"]["sys_id"] == sys_id
    assert second["attributes"]["ram"] == "2048" and second["attributes"]["name"] == name
    assert second["attributes"]["first_discovered"] == first["attributes"]["first_discovered"]
    assert int(second["attributes"]["sys_mod_count"]) >= 1
    assert len(rows(admin, "cmdb_ci", f"name={name}")) == 1
    assert len(relations_in_table(admin, sys_id)) == 1
    # identified by name when no serial number is given
    third = created(post_ci(admin, "cmdb_ci_server", {"name": name, "os_version": "9.5"}))
    assert third["attributes"]["sys_id"] == sys_id
    assert third["attributes"]["sys_class_name"] == "cmdb_ci_linux_server"  # the more specific class stays
    assert len(rows(admin, "cmdb_ci", f"name={name}")) == 1


def test_object_id_identifies_cloud_resources(admin):
    instance_id = tag("i")
    first = created(post_ci(admin, "cmdb_ci_vm_instance", {"name": f"vm-{instance_id}", "object_id": instance_id}))
    renamed = created(
        post_ci(admin, "cmdb_ci_vm_instance", {"name": f"vm-{instance_id}-renamed", "object_id": instance_id})
    )
    assert renamed["attributes"]["sys_id"] == first["attributes"]["sys_id"]
    assert renamed["attributes"]["name"] == f"vm-{instance_id}-renamed"


def test_posting_a_more_specific_class_upgrades_the_ci(admin):
    name = tag("cmdb-up")
    server = create(admin, "cmdb_ci_server", {"name": name, "serial_number": f"SN-{name}"})
    result = created(post_ci(admin, "cmdb_ci_linux_server", {"serial_number": f"SN-{name}", "kernel_release": "6.1"}))
    assert result["attributes"]["sys_id"] == server["sys_id"]
    assert result["attributes"]["sys_class_name"] == "cmdb_ci_linux_server"
    assert result["attributes"]["kernel_release"] == "6.1"
    assert get(admin, "cmdb_ci", server["sys_id"])["sys_class_name"] == "cmdb_ci_linux_server"
    # an existing CI without discovery data gets it from its first identified write
    assert result["attributes"]["discovery_source"] == "ServiceNow"


def test_create_without_identifying_attributes_is_rejected(admin):
    r = post_ci(admin, "cmdb_ci_linux_server", {"ip_address": "10.99.9.9"})
    body = assert_error(r, 400, "Identification failed: MISSING_MATCHING_ATTRIBUTES")
    assert "cmdb_ci_hardware" in body["error"]["detail"]


# --- update --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_update_attributes(admin, method):
    name = tag("cmdb-upd")
    ci = created(post_ci(admin, "cmdb_ci_appl", {"name": name, "version": "1.0"}, source="SCCM"))["attributes"]
    r = admin.request(
        method,
        f"{BASE}/cmdb_ci_appl/{ci['sys_id']}",
        json={
            "attributes": {"version": "2.0", "no_such_field": "x", "discovery_source": "Nope"},
            "source": "ServiceNow",
        },
    )
    assert r.status_code == 200, r.text
    attributes = r.json()["result"]["attributes"]
    assert attributes["version"] == "2.0" and attributes["name"] == name
    assert attributes["discovery_source"] == "SCCM"  # the creating source is kept
    assert attributes["last_discovered"] >= ci["last_discovered"]
    assert get(admin, "cmdb_ci_appl", ci["sys_id"])["version"] == "2.0"
    assert set(r.json()["result"]) == {"attributes", "outbound_relations", "inbound_relations"}


def test_update_errors(admin):
    app = sys_id_of(admin, "cmdb_ci_appl", "name=wiki")
    assert_error(
        admin.patch(f"{BASE}/cmdb_ci_appl/{app}", json={"attributes": {"version": "9"}}),
        400,
        "Missing mandatory field: source",
    )
    assert_error(
        admin.put(
            f"{BASE}/cmdb_ci_appl/0123456789abcdef0123456789abcdef", json={"attributes": {}, "source": "ServiceNow"}
        ),
        404,
        "No Record found",
    )
    assert_error(
        admin.patch(f"{BASE}/cmdb_ci_appl/{app}", json={"source": "ServiceNow", "attributes": "x"}),
        400,
        "Invalid attributes",
    )
    assert get(admin, "cmdb_ci_appl", app)["version"] == "1.4.2"


# --- relations -----------------------------------------------------------------------------------------------
def test_add_and_delete_relations(admin):
    name = tag("cmdb-rel")
    ci = created(post_ci(admin, "cmdb_ci_appl", {"name": name}))["attributes"]["sys_id"]
    host = sys_id_of(admin, "cmdb_ci_linux_server", "name=wiki-01")
    service = sys_id_of(admin, "cmdb_ci_service", "name=Internal Wiki")
    r = admin.post(
        f"{BASE}/cmdb_ci_appl/{ci}/relation",
        json={
            "outbound_relations": [{"type": RUNS_ON, "target": host}],
            "inbound_relations": [{"type": DEPENDS_ON, "target": service}],
            "source": "ServiceNow",
        },
    )
    assert r.status_code == 201, r.text
    result = r.json()["result"]
    assert [(x["type"]["display_value"], x["target"]["value"]) for x in result["outbound_relations"]] == [
        ("Runs on::Runs", host)
    ]
    assert [(x["type"]["display_value"], x["target"]["value"]) for x in result["inbound_relations"]] == [
        ("Depends on::Used by", service)
    ]
    assert {(x["parent"], x["child"]) for x in relations_in_table(admin, ci)} == {(ci, host), (service, ci)}
    # the same relation again is not duplicated
    again = admin.post(
        f"{BASE}/cmdb_ci_appl/{ci}/relation",
        json={"outbound_relations": [{"type": RUNS_ON, "target": host}], "source": "ServiceNow"},
    )
    assert again.status_code == 201 and len(again.json()["result"]["outbound_relations"]) == 1
    # delete one (the inbound one, through the child)
    inbound_id = result["inbound_relations"][0]["sys_id"]
    deleted = admin.delete(f"{BASE}/cmdb_ci_appl/{ci}/relation/{inbound_id}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert admin.get(f"/api/now/table/cmdb_rel_ci/{inbound_id}").status_code == 404
    after = admin.get(f"{BASE}/cmdb_ci_appl/{ci}").json()["result"]
    assert after["inbound_relations"] == [] and len(after["outbound_relations"]) == 1
    # deleting it again, or a relation of another CI, is a 404
    assert_error(admin.delete(f"{BASE}/cmdb_ci_appl/{ci}/relation/{inbound_id}"), 404, "No Record found")
    other = rows(admin, "cmdb_rel_ci", f"parent!={ci}^child!={ci}", "sys_id", sysparm_limit=1)[0]["sys_id"]
    assert_error(admin.delete(f"{BASE}/cmdb_ci_appl/{ci}/relation/{other}"), 404, "No Record found")
    assert admin.get(f"/api/now/table/cmdb_rel_ci/{other}").status_code == 200


def test_relation_errors_name_the_culprit(admin):
    name = tag("cmdb-relerr")
    host = sys_id_of(admin, "cmdb_ci_linux_server", "name=wiki-01")
    bad_type = "0123456789abcdef0123456789abcdef"
    r = post_ci(admin, "cmdb_ci_appl", {"name": name}, outbound_relations=[{"type": bad_type, "target": host}])
    body = assert_error(r, 400, f"Invalid relation type: {bad_type}")
    assert "outbound_relations" in body["error"]["detail"]
    # nothing was created
    assert rows(admin, "cmdb_ci", f"name={name}") == []
    bad_target = "fedcba9876543210fedcba9876543210"
    r = post_ci(admin, "cmdb_ci_appl", {"name": name}, inbound_relations=[{"type": RUNS_ON, "target": bad_target}])
    assert_error(r, 400, f"Invalid relation target: {bad_target}")
    assert_error(
        post_ci(admin, "cmdb_ci_appl", {"name": name}, outbound_relations=[{"target": host}]),
        400,
        "Invalid outbound_relations",
    )
    ci = created(post_ci(admin, "cmdb_ci_appl", {"name": name}))["attributes"]["sys_id"]
    r = admin.post(
        f"{BASE}/cmdb_ci_appl/{ci}/relation",
        json={"outbound_relations": [{"type": "Runs on::Runs", "target": host}], "source": "ServiceNow"},
    )
    assert_error(r, 400, "Invalid relation type: Runs on::Runs")
    r = admin.post(
        f"{BASE}/cmdb_ci_appl/{ci}/relation", json={"outbound_relations": [{"type": RUNS_ON, "target": host}]}
    )
    assert_error(r, 400, "Missing mandatory field: source")
    assert relations_in_table(admin, ci) == []


# --- source, class and permissions -------------------------------------------------------------------------
def test_source_is_required_and_must_be_a_discovery_source_choice(admin):
    name = tag("cmdb-src")
    body = assert_error(
        post_ci(admin, "cmdb_ci_appl", {"name": name}, source=None), 400, "Missing mandatory field: source"
    )
    assert "discovery_source" in body["error"]["detail"]
    assert_error(post_ci(admin, "cmdb_ci_appl", {"name": name}, source="NotASource"), 400, "Invalid source: NotASource")
    assert rows(admin, "cmdb_ci", f"name={name}") == []
    # a source added as a sys_choice row (as an admin adds one) is accepted
    source = tag("Src")
    choice = create(
        admin, "sys_choice", {"name": "cmdb_ci", "element": "discovery_source", "value": source, "label": source}
    )
    try:
        result = created(post_ci(admin, "cmdb_ci_appl", {"name": name}, source=source))
        assert result["attributes"]["discovery_source"] == source
    finally:
        delete(admin, "sys_choice", choice["sys_id"])
    assert_error(
        post_ci(admin, "cmdb_ci_appl", {"name": tag("cmdb-src")}, source=source), 400, f"Invalid source: {source}"
    )


def test_unknown_or_non_cmdb_class(admin):
    assert_error(admin.get(f"{BASE}/cmdb_ci_nope"), 400, "Invalid table cmdb_ci_nope")
    assert_error(post_ci(admin, "cmdb_ci_nope", {"name": "x"}), 400, "Invalid table cmdb_ci_nope")
    incident = rows(admin, "incident", "", "sys_id", sysparm_limit=1)[0]["sys_id"]
    assert_error(
        admin.get(f"{BASE}/incident/{incident}"), 400, "Invalid table incident", "incident is not a CMDB class"
    )


def test_roles(emulator, admin):
    app = sys_id_of(admin, "cmdb_ci_appl", "name=wiki")
    host = sys_id_of(admin, "cmdb_ci_linux_server", "name=wiki-01")
    rel = rows(admin, "cmdb_rel_ci", f"parent={app}", "sys_id")[0]["sys_id"]
    with emulator.client(NOROLE) as norole:
        for response in (
            norole.get(f"{BASE}/cmdb_ci_appl"),
            norole.get(f"{BASE}/cmdb_ci_appl/{app}"),
            post_ci(norole, "cmdb_ci_appl", {"name": tag("norole")}),
        ):
            assert_error(response, 403, "User Not Authorized", "Failed API level ACL Validation")
    with emulator.client(READONLY) as readonly:
        # itil with snc_read_only: reads work, writes do not
        assert readonly.get(f"{BASE}/cmdb_ci_appl/{app}").status_code == 200
        assert (
            readonly.get(f"{BASE}/cmdb_ci_appl", params={"sysparm_query": "name=wiki"}).json()["result"][0]["sys_id"]
            == app
        )
        name = tag("readonly")
        for response in (
            post_ci(readonly, "cmdb_ci_appl", {"name": name}),
            readonly.patch(f"{BASE}/cmdb_ci_appl/{app}", json={"attributes": {"version": "0"}, "source": "ServiceNow"}),
            readonly.post(
                f"{BASE}/cmdb_ci_appl/{app}/relation",
                json={"outbound_relations": [{"type": DEPENDS_ON, "target": host}], "source": "ServiceNow"},
            ),
            readonly.delete(f"{BASE}/cmdb_ci_appl/{app}/relation/{rel}"),
        ):
            assert response.status_code == 403, response.text
            assert response.json()["error"]["message"] == "Operation Failed"
        assert rows(admin, "cmdb_ci", f"name={name}") == []
    assert admin.get(f"/api/now/table/cmdb_rel_ci/{rel}").status_code == 200
    assert get(admin, "cmdb_ci_appl", app)["version"] == "1.4.2"
    with emulator.client(("itil", "itil")) as itil:
        assert created(post_ci(itil, "cmdb_ci_appl", {"name": tag("itil")}))["attributes"]["sys_created_by"] == "itil"
