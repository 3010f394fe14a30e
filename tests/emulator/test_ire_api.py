"""The Identification and Reconciliation API (reference §5.5) over real HTTP: identification per class
hierarchy, INSERT / UPDATE / NO_CHANGE / reclassification, relations, dry runs, per-item errors, roles."""

from __future__ import annotations

import re

import pytest
from sn_support import NOROLE, READONLY, assert_error, create, get, make_user, rows, tag

IRE = "/api/now/identifyreconcile"
RUNS_ON = "60bc4e22c0a8010e01f074cbe6bd73c3"
SYS_ID = re.compile(r"^[0-9a-f]{32}$")
GLIDE_DT = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
ITEM_KEYS = {
    "className",
    "operation",
    "sysId",
    "identifierEntrySysId",
    "identificationAttempts",
    "inputIndices",
    "errorCount",
    "errors",
    "markers",
    "mergedPayloadIds",
    "relatedItems",
}


def ire(client, payload: dict, *, source: str | None = "ServiceNow", path: str = "", **params) -> dict:
    if source is not None:
        params["sysparm_data_source"] = source
    r = client.post(IRE + path, params=params, json=payload)
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    assert set(result) == {"items", "relations", "additionalCommittedItems", "additionalCommittedRelations"}
    for item in result["items"]:
        assert set(item) >= ITEM_KEYS, item
        assert item["errorCount"] == len(item["errors"])
    return result


def item(class_name: str, **values) -> dict:
    return {"className": class_name, "values": values}


def attempts(result_item: dict) -> list[tuple[str, list[str], str]]:
    return [(a["attemptResult"], a["attributes"], a["searchOnTable"]) for a in result_item["identificationAttempts"]]


def ci(admin, sys_id: str) -> dict:
    return get(
        admin,
        "cmdb_ci",
        sys_id,
        sysparm_fields="sys_id,name,sys_class_name,serial_number,ip_address,"
        "discovery_source,first_discovered,last_discovered,object_id,duplicate_of",
    )


# --- identification and operations -------------------------------------------------------------------------
def test_insert_then_no_change_then_update(admin):
    name = tag("ire-srv")
    payload = {"items": [item("cmdb_ci_linux_server", name=name, serial_number=f"SN-{name}", ip_address="10.1.1.1")]}
    first = ire(admin, payload)["items"][0]
    assert first["operation"] == "INSERT" and first["className"] == "cmdb_ci_linux_server"
    assert SYS_ID.match(first["sysId"]) and SYS_ID.match(first["identifierEntrySysId"])
    assert first["inputIndices"] == [0] and first["errorCount"] == 0 and first["errors"] == []
    assert attempts(first) == [
        ("SKIPPED", ["serial_number", "serial_number_type"], "cmdb_serial_number"),
        ("NO_MATCH", ["serial_number"], "cmdb_ci_hardware"),
        ("NO_MATCH", ["name"], "cmdb_ci_hardware"),
    ]
    assert all(a["identifierName"] == "Hardware Rule" for a in first["identificationAttempts"])
    record = ci(admin, first["sysId"])
    assert record["sys_class_name"] == "cmdb_ci_linux_server" and record["ip_address"] == "10.1.1.1"
    assert record["discovery_source"] == "ServiceNow"
    assert GLIDE_DT.match(record["first_discovered"]) and GLIDE_DT.match(record["last_discovered"])

    second = ire(admin, payload, source="SCCM")["items"][0]
    assert (second["operation"], second["sysId"]) == ("NO_CHANGE", first["sysId"])
    assert attempts(second) == [
        ("SKIPPED", ["serial_number", "serial_number_type"], "cmdb_serial_number"),
        ("MATCHED", ["serial_number"], "cmdb_ci_hardware"),
    ]
    assert ci(admin, first["sysId"])["discovery_source"] == "ServiceNow"  # the creating source stays

    payload["items"][0]["values"]["ip_address"] = "10.1.1.2"
    third = ire(admin, payload)["items"][0]
    assert (third["operation"], third["sysId"]) == ("UPDATE", first["sysId"])
    record = ci(admin, first["sysId"])
    assert record["ip_address"] == "10.1.1.2"
    assert record["first_discovered"] <= record["last_discovered"]
    assert len(rows(admin, "cmdb_ci", f"name={name}")) == 1


def test_serial_number_from_a_lookup_item(admin):
    name = tag("ire-lookup")
    serial = f"SN-{name}"
    lookup = [
        {
            "className": "cmdb_serial_number",
            "values": {"serial_number": serial, "serial_number_type": "uuid", "valid": "true"},
        }
    ]
    payload = {"items": [{"className": "cmdb_ci_linux_server", "values": {"name": name}, "lookup": lookup}]}
    first = ire(admin, payload)["items"][0]
    assert first["operation"] == "INSERT"
    assert first["relatedItems"] == [
        {
            "markers": [],
            "inputIndices": [{"mainIndex": 0, "subIndex": 0}],
            "mergedPayloadIds": [],
            "className": "cmdb_serial_number",
        }
    ]
    assert ci(admin, first["sysId"])["serial_number"] == serial
    # renamed on the next scan: the lookup still identifies it
    payload["items"][0]["values"]["name"] = f"{name}-renamed"
    second = ire(admin, payload)["items"][0]
    assert (second["operation"], second["sysId"]) == ("UPDATE", first["sysId"])
    assert attempts(second) == [("MATCHED", ["serial_number", "serial_number_type"], "cmdb_serial_number")]
    assert ci(admin, first["sysId"])["name"] == f"{name}-renamed"
    # an invalid lookup entry is not used
    lookup[0]["values"]["valid"] = "false"
    payload["items"][0]["values"] = {"name": tag("ire-other")}
    third = ire(admin, payload)["items"][0]
    assert third["operation"] == "INSERT" and attempts(third)[0][0] == "SKIPPED"


def test_hardware_falls_back_to_name(admin):
    name = tag("ire-name")
    first = ire(admin, {"items": [item("cmdb_ci_win_server", name=name)]})["items"][0]
    assert first["operation"] == "INSERT"
    assert [a[0] for a in attempts(first)] == ["SKIPPED", "SKIPPED", "NO_MATCH"]
    second = ire(admin, {"items": [item("cmdb_ci_win_server", name=name, serial_number=f"SN-{name}")]})["items"][0]
    assert (second["operation"], second["sysId"]) == ("UPDATE", first["sysId"])
    assert [a[0] for a in attempts(second)] == ["SKIPPED", "NO_MATCH", "MATCHED"]
    assert ci(admin, first["sysId"])["serial_number"] == f"SN-{name}"


def test_cloud_vm_by_object_id(admin):
    instance_id = tag("i")
    first = ire(admin, {"items": [item("cmdb_ci_vm_instance", name=f"vm-{instance_id}", object_id=instance_id)]})[
        "items"
    ][0]
    assert first["operation"] == "INSERT"
    assert attempts(first)[0] == ("NO_MATCH", ["object_id"], "cmdb_ci_vm_instance")
    assert first["identificationAttempts"][0]["identifierName"] == "Virtual Machine Instance Rule"
    # the name is not an identifier for cloud VMs: a new name is an update of the same VM
    second = ire(admin, {"items": [item("cmdb_ci_vm_instance", name="renamed", object_id=instance_id)]})["items"][0]
    assert (second["operation"], second["sysId"]) == ("UPDATE", first["sysId"])
    # vm_inst_id is the second entry
    vm_inst = tag("vm")
    third = ire(admin, {"items": [item("cmdb_ci_vm_instance", name="x", vm_inst_id=vm_inst)]})["items"][0]
    fourth = ire(admin, {"items": [item("cmdb_ci_vm_instance", vm_inst_id=vm_inst, state="on")]})["items"][0]
    assert third["operation"] == "INSERT" and (fourth["operation"], fourth["sysId"]) == ("UPDATE", third["sysId"])
    # neither: the identifying attributes are missing
    failed = ire(admin, {"items": [item("cmdb_ci_vm_instance", name=f"vm-{instance_id}")]})["items"][0]
    assert failed["errorCount"] == 1 and failed["errors"][0]["error"] == "MISSING_MATCHING_ATTRIBUTES"
    assert "[cmdb_ci_vm_instance]" in failed["errors"][0]["message"]
    assert failed["sysId"] == "Unknown" and failed["identifierEntrySysId"] == "Unknown"
    assert [a[0] for a in attempts(failed)] == ["SKIPPED", "SKIPPED"]


@pytest.mark.parametrize(
    ("class_name", "rule", "table"),
    [
        ("cmdb_ci_appl", "Application Rule", "cmdb_ci_appl"),
        ("cmdb_ci_service_discovered", "Service Rule", "cmdb_ci_service"),
        ("cmdb_ci_kubernetes_cluster", "Kubernetes Cluster Rule", "cmdb_ci_kubernetes_cluster"),
        ("cmdb_ci_kubernetes_namespace", "Kubernetes Namespace Rule", "cmdb_ci_kubernetes_namespace"),
        ("cmdb_ci", "Configuration Item Rule", "cmdb_ci"),
    ],
)
def test_named_classes_are_identified_by_name(admin, class_name, rule, table):
    name = tag("ire-named")
    first = ire(admin, {"items": [item(class_name, name=name)]})["items"][0]
    assert first["operation"] == "INSERT"
    assert first["identificationAttempts"] == [
        {
            "identifierName": rule,
            "attemptResult": "NO_MATCH",
            "attributes": ["name"],
            "searchOnTable": table,
            "hybridEntryCiAttributes": [],
        }
    ]
    # names match case-insensitively; the new spelling is an update
    again = ire(admin, {"items": [item(class_name, name=name.upper())]})["items"][0]
    assert (again["operation"], again["sysId"]) == ("UPDATE", first["sysId"])
    same = ire(admin, {"items": [item(class_name, name=name.upper())]})["items"][0]
    assert (same["operation"], same["sysId"]) == ("NO_CHANGE", first["sysId"])
    assert ci(admin, first["sysId"])["sys_class_name"] == class_name


def test_seeded_cis_are_found(admin):
    result = ire(admin, {"items": [item("cmdb_ci_appl", name="payments-api", version="1.4.2")]})["items"][0]
    assert result["operation"] == "NO_CHANGE"
    assert result["sysId"] == rows(admin, "cmdb_ci_appl", "name=payments-api")[0]["sys_id"]


# --- reclassification ------------------------------------------------------------------------------------------
def test_upgrade_switches_the_class(admin):
    name = tag("ire-up")
    base = ire(admin, {"items": [item("cmdb_ci_server", name=name, serial_number=f"SN-{name}")]})["items"][0]
    assert base["operation"] == "INSERT" and ci(admin, base["sysId"])["sys_class_name"] == "cmdb_ci_server"
    kept = ire(
        admin,
        {
            "items": [
                {**item("cmdb_ci_linux_server", serial_number=f"SN-{name}"), "settings": {"updateWithoutUpgrade": True}}
            ]
        },
    )["items"][0]
    assert (kept["operation"], kept["sysId"], kept["className"]) == ("NO_CHANGE", base["sysId"], "cmdb_ci_server")
    assert kept["info"][0]["code"] == "SKIPPED_CLASS_UPGRADE"
    assert ci(admin, base["sysId"])["sys_class_name"] == "cmdb_ci_server"
    upgraded = ire(admin, {"items": [item("cmdb_ci_linux_server", serial_number=f"SN-{name}", kernel_release="6.8")]})[
        "items"
    ][0]
    assert (upgraded["operation"], upgraded["sysId"]) == ("UPDATE_WITH_UPGRADE", base["sysId"])
    assert upgraded["className"] == "cmdb_ci_linux_server"
    assert ci(admin, base["sysId"])["sys_class_name"] == "cmdb_ci_linux_server"
    assert get(admin, "cmdb_ci_linux_server", base["sysId"])["kernel_release"] == "6.8"
    assert admin.get(f"/api/now/table/cmdb_ci_linux_server/{base['sysId']}").status_code == 200
    assert len(rows(admin, "cmdb_ci", f"name={name}")) == 1


def test_downgrade_and_switch(admin):
    name = tag("ire-down")
    serial = f"SN-{name}"
    linux = ire(admin, {"items": [item("cmdb_ci_linux_server", name=name, serial_number=serial, kernel_release="6.1")]})
    sys_id = linux["items"][0]["sysId"]
    # updateWithoutDowngrade keeps the specific class
    kept = ire(
        admin,
        {"items": [{**item("cmdb_ci_server", serial_number=serial), "settings": {"updateWithoutDowngrade": True}}]},
    )
    assert (
        kept["items"][0]["operation"] == "NO_CHANGE"
        and kept["items"][0]["info"][0]["code"] == "SKIPPED_CLASS_DOWNGRADE"
    )
    assert ci(admin, sys_id)["sys_class_name"] == "cmdb_ci_linux_server"
    # a sibling class switches
    switched = ire(admin, {"items": [item("cmdb_ci_win_server", serial_number=serial)]})["items"][0]
    assert (switched["operation"], switched["sysId"]) == ("UPDATE_WITH_SWITCH", sys_id)
    assert ci(admin, sys_id)["sys_class_name"] == "cmdb_ci_win_server"
    # switching back shows that the field the Windows class lacks was cleared
    back = ire(admin, {"items": [item("cmdb_ci_linux_server", serial_number=serial)]})["items"][0]
    assert back["operation"] == "UPDATE_WITH_SWITCH"
    assert get(admin, "cmdb_ci_linux_server", sys_id)["kernel_release"] == ""
    # an ancestor class downgrades (documented default: downgrade permitted)
    down = ire(admin, {"items": [item("cmdb_ci_computer", serial_number=serial)]})["items"][0]
    assert (down["operation"], down["sysId"]) == ("UPDATE_WITH_DOWNGRADE", sys_id)
    assert ci(admin, sys_id)["sys_class_name"] == "cmdb_ci_computer"


# --- relations ------------------------------------------------------------------------------------------------
def test_relations_by_index_and_internal_id(admin):
    name = tag("ire-rel")
    payload = {
        "items": [item("cmdb_ci_appl", name=f"{name}-app"), item("cmdb_ci_linux_server", name=f"{name}-host")],
        "relations": [{"parent": 0, "child": 1, "type": "Runs on::Runs"}],
    }
    result = ire(admin, payload)
    app, host = (i["sysId"] for i in result["items"])
    assert result["relations"] == [
        {
            "className": "cmdb_rel_ci",
            "operation": "INSERT",
            "markers": [],
            "inputIndices": [0],
            "mergedPayloadIds": [],
            "errorCount": 0,
            "errors": [],
        }
    ]
    stored = rows(admin, "cmdb_rel_ci", f"parent={app}", "parent,child,type")
    assert stored == [{"parent": app, "child": host, "type": RUNS_ON}]
    # again: nothing new
    again = ire(admin, payload)
    assert [i["operation"] for i in again["items"]] == ["NO_CHANGE", "NO_CHANGE"]
    assert again["relations"][0]["operation"] == "NO_CHANGE"
    assert len(rows(admin, "cmdb_rel_ci", f"parent={app}")) == 1
    # internal ids name the ends too; the CMDB API shows the relation from both sides
    by_id = {
        "items": [
            {**item("cmdb_ci_service_discovered", name=f"{name}-svc"), "internal_id": "svc"},
            {**item("cmdb_ci_appl", name=f"{name}-app"), "internal_id": "app"},
        ],
        "relations": [{"parent_id": "svc", "child_id": "app", "type": "Depends on::Used by"}],
    }
    result = ire(admin, by_id)
    assert result["relations"][0]["operation"] == "INSERT"
    service = result["items"][0]["sysId"]
    inbound = admin.get(f"/api/now/cmdb/instance/cmdb_ci_appl/{app}").json()["result"]["inbound_relations"]
    assert [(r["type"]["display_value"], r["target"]["value"]) for r in inbound] == [("Depends on::Used by", service)]


def test_per_item_errors_skip_only_that_item(admin):
    name = tag("ire-err")
    payload = {
        "items": [
            item("cmdb_ci_appl", name=f"{name}-ok"),
            item("cmdb_ci_no_such_class", name=f"{name}-bad"),
            item("cmdb_ci_linux_server", ip_address="10.2.2.2"),
            item("cmdb_ci_linux_server", name=f"{name}-host"),
        ],
        "relations": [
            {"parent": 0, "child": 3, "type": "Runs on::Runs"},
            {"parent": 0, "child": 2, "type": "Runs on::Runs"},
            {"parent": 0, "child": 3, "type": "Flies over::Flown over by"},
            {"parent": 0, "child": 9, "type": "Runs on::Runs"},
        ],
    }
    result = ire(admin, payload)
    ok, bad_class, missing, host = result["items"]
    assert ok["operation"] == "INSERT" and ok["errorCount"] == 0
    assert host["operation"] == "INSERT"
    assert bad_class["errorCount"] == 1 and bad_class["errors"][0]["error"] == "INVALID_INPUT_DATA"
    assert "cmdb_ci_no_such_class" in bad_class["errors"][0]["message"]
    assert (bad_class["sysId"], bad_class["identifierEntrySysId"]) == ("Unknown", "Unknown")
    assert missing["errors"][0]["error"] == "MISSING_MATCHING_ATTRIBUTES" and missing["sysId"] == "Unknown"
    good, abandoned, bad_type, bad_index = result["relations"]
    assert good["operation"] == "INSERT" and good["errorCount"] == 0
    assert abandoned["errorCount"] == 1 and abandoned["errors"][0]["error"] == "ABANDONED"
    assert bad_type["errors"][0]["error"] == "INVALID_INPUT_DATA"
    assert "Flies over::Flown over by" in bad_type["errors"][0]["message"]
    assert bad_index["errorCount"] == 1 and bad_index["inputIndices"] == [3]
    # the clean items and relation are committed, nothing else
    assert len(rows(admin, "cmdb_ci", f"name={name}-ok")) == 1 and len(rows(admin, "cmdb_ci", f"name={name}-host")) == 1
    assert rows(admin, "cmdb_ci", f"name={name}-bad") == []
    assert rows(admin, "cmdb_ci", "ip_address=10.2.2.2") == []
    assert rows(admin, "cmdb_rel_ci", f"parent={ok['sysId']}", "child") == [{"child": host["sysId"]}]


@pytest.mark.parametrize("source", [None, "NotADiscoverySource"])
def test_missing_or_bad_data_source_fails_every_item(admin, source):
    name = tag("ire-src")
    payload = {
        "items": [item("cmdb_ci_appl", name=f"{name}-a"), item("cmdb_ci_appl", name=f"{name}-b")],
        "relations": [{"parent": 0, "child": 1, "type": "Depends on::Used by"}],
    }
    result = ire(admin, payload, source=source)
    for result_item in result["items"]:
        assert result_item["errorCount"] == 1 and result_item["errors"][0]["error"] == "INVALID_INPUT_DATA"
        assert (
            "data_source" in result_item["errors"][0]["message"]
            or "discovery source" in result_item["errors"][0]["message"]
        )
        assert result_item["sysId"] == "Unknown"
    assert result["relations"][0]["errors"][0]["error"] == "ABANDONED"
    assert rows(admin, "cmdb_ci", f"nameSTARTSWITH{name}") == []


def test_other_discovery_sources_are_recorded(admin):
    name = tag("ire-k8s")
    result = ire(admin, {"items": [item("cmdb_ci_kubernetes_namespace", name=name)]}, source="Kubernetes")["items"][0]
    assert ci(admin, result["sysId"])["discovery_source"] == "Kubernetes"


# --- dry runs ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/query", "/queryEnhanced"])
def test_dry_run_commits_nothing(admin, path):
    name = tag("ire-dry")
    payload = {
        "items": [item("cmdb_ci_appl", name=name), item("cmdb_ci_appl", name="wiki", version="9.9")],
        "relations": [{"parent": 0, "child": 1, "type": "Depends on::Used by"}],
    }
    result = ire(admin, payload, path=path)
    new, existing = result["items"]
    assert (new["operation"], new["sysId"]) == ("INSERT", "Unknown")
    wiki = rows(admin, "cmdb_ci_appl", "name=wiki", "sys_id,version")[0]
    assert (existing["operation"], existing["sysId"]) == ("UPDATE", wiki["sys_id"])
    assert result["relations"][0]["operation"] == "INSERT"
    assert rows(admin, "cmdb_ci", f"name={name}") == []
    assert wiki["version"] == "1.4.2"


# --- duplicates, enhanced options, references ---------------------------------------------------------------------
def test_duplicate_items_fail_on_the_plain_endpoint(admin):
    name = tag("ire-dup")
    payload = {"items": [item("cmdb_ci_appl", name=name, version="1"), item("cmdb_ci_appl", name=name, version="2")]}
    result = ire(admin, payload)
    assert [i["errors"][0]["error"] for i in result["items"]] == ["DUPLICATE_PAYLOAD_RECORDS"] * 2
    assert "index 0 and 1" in result["items"][0]["errors"][0]["message"]
    assert rows(admin, "cmdb_ci", f"name={name}") == []


def test_enhanced_merges_duplicates(admin):
    name = tag("ire-enh")
    payload = {
        "items": [
            item("cmdb_ci_appl", name=name, version="1"),
            item("cmdb_ci_appl", name=f"{name}-other"),
            item("cmdb_ci_appl", name=name, tcp_port="8080"),
        ],
        "relations": [{"parent": 2, "child": 1, "type": "Depends on::Used by"}],
    }
    result = ire(admin, payload, path="/enhanced")
    merged, other = result["items"]
    assert merged["inputIndices"] == [0, 2] and merged["operation"] == "INSERT"
    assert other["inputIndices"] == [1]
    record = get(admin, "cmdb_ci_appl", merged["sysId"], sysparm_fields="version,tcp_port")
    assert record == {"version": "1", "tcp_port": "8080"}
    assert rows(admin, "cmdb_rel_ci", f"parent={merged['sysId']}", "child") == [{"child": other["sysId"]}]
    # options: a well-formed list is accepted, a malformed one is the documented 500
    ok = ire(
        admin,
        {"items": [item("cmdb_ci_appl", name=name)]},
        path="/enhanced",
        options="partial_payloads:false,deduplicate_payloads:true",
    )
    assert ok["items"][0]["sysId"] == merged["sysId"]
    r = admin.post(
        f"{IRE}/enhanced", params={"sysparm_data_source": "ServiceNow", "options": "partial"}, json={"items": []}
    )
    assert_error(r, 500, "Chunk [partial] is not a valid entry")


def test_reference_items_fill_a_reference_before_identification(admin):
    name = tag("ire-ref")
    payload = {
        "items": [
            {**item("cmdb_ci_appl", name=f"{name}-copy"), "internal_id": "copy"},
            {**item("cmdb_ci_appl", name=f"{name}-original"), "internal_id": "original"},
        ],
        "referenceItems": [{"referenced": "original", "referencedBy": "copy", "referenceField": "duplicate_of"}],
    }
    copy, original = ire(admin, payload)["items"]
    assert ci(admin, copy["sysId"])["duplicate_of"] == original["sysId"]
    # a reference to an item with errors abandons the referencing item
    payload["items"][1]["className"] = "cmdb_ci_no_such_class"
    payload["items"][0]["values"]["name"] = f"{name}-orphan"
    orphan, broken = ire(admin, payload)["items"]
    assert broken["errors"][0]["error"] == "INVALID_INPUT_DATA"
    assert orphan["errors"][0]["error"] == "ABANDONED" and orphan["sysId"] == "Unknown"
    assert rows(admin, "cmdb_ci", f"name={name}-orphan") == []


def test_multiple_matches_are_an_error(admin):
    name = tag("ire-multi")
    for _ in range(2):
        create(admin, "cmdb_ci_appl", {"name": name})
    result = ire(admin, {"items": [item("cmdb_ci_appl", name=name)]})["items"][0]
    assert result["errors"][0]["error"] == "MULTIPLE_DUPLICATE_RECORDS"
    assert attempts(result) == [("MULTI_MATCH", ["name"], "cmdb_ci_appl")]
    assert len(rows(admin, "cmdb_ci", f"name={name}")) == 2


# --- request handling and roles -----------------------------------------------------------------------------------
def test_versioned_url_and_malformed_bodies(admin):
    name = tag("ire-v1")
    r = admin.post(
        f"/api/now/v1{IRE[8:]}",
        params={"sysparm_data_source": "ServiceNow"},
        json={"items": [item("cmdb_ci_appl", name=name)]},
    )
    assert r.status_code == 200 and r.json()["result"]["items"][0]["operation"] == "INSERT"
    assert_error(
        admin.post(IRE, params={"sysparm_data_source": "ServiceNow"}, json={"nothing": []}), 400, "Invalid payload"
    )
    assert_error(admin.post(IRE, params={"sysparm_data_source": "ServiceNow"}, json=[1, 2]), 400, "Invalid payload")
    r = admin.post(
        IRE,
        params={"sysparm_data_source": "ServiceNow"},
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400


def test_roles(emulator, admin):
    name = tag("ire-role")
    payload = {"items": [item("cmdb_ci_appl", name=name)]}
    params = {"sysparm_data_source": "ServiceNow"}
    with emulator.client(NOROLE) as norole:
        for path in ("", "/query", "/enhanced", "/queryEnhanced"):
            assert_error(
                norole.post(IRE + path, params=params, json=payload),
                403,
                "User Not Authorized",
                "Failed API level ACL Validation",
            )
    with emulator.client(READONLY) as readonly:
        for path in ("", "/enhanced"):
            r = readonly.post(IRE + path, params=params, json=payload)
            assert r.status_code == 403 and r.json()["error"]["message"] == "Operation Failed"
        # a dry run writes nothing, so reading is enough
        assert ire(readonly, payload, path="/query")["items"][0]["operation"] == "INSERT"
    assert rows(admin, "cmdb_ci", f"name={name}") == []
    asset_user = tag("asset")
    make_user(admin, asset_user, "asset-pass", ["asset"])
    with emulator.client((asset_user, "asset-pass")) as asset:
        result = ire(asset, payload)["items"][0]
    assert result["operation"] == "INSERT"
    assert get(admin, "cmdb_ci_appl", result["sysId"], sysparm_fields="sys_created_by")["sys_created_by"] == asset_user
