"""Value encoding (reference §1.5): the six reference shapes, display values, ``all``, input display values
and the session time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sn_support import create, get, make_user, rows, sys_id_of, tag


@pytest.fixture(scope="module")
def record(emulator):
    """An incident with a caller, a group and an empty reference (assigned_to)."""
    with emulator.client() as admin:
        caller = sys_id_of(admin, "sys_user", "user_name=itil")
        group = sys_id_of(admin, "sys_user_group", "name=Web Platform")
        created = create(
            admin,
            "incident",
            {"short_description": "shapes", "caller_id": caller, "assignment_group": group, "impact": "2",
             "urgency": "1", "correlation_id": tag("dv")},
        )  # fmt: skip
    return {"sys_id": created["sys_id"], "caller": caller, "group": group}


@pytest.fixture(scope="module")
def paris(emulator):
    """An itil user whose session time zone is Europe/Paris (UTC+1 in winter, UTC+2 in summer)."""
    name = tag("paris")
    with emulator.client() as admin:
        make_user(admin, name, "paris-pw", ["itil"], first_name="Pierre", last_name="Paris", time_zone="Europe/Paris")
    with emulator.client((name, "paris-pw")) as client:
        yield client


def fetch(client, sys_id: str, fields: str, display: str, exclude: str) -> dict:
    r = client.get(
        f"/api/now/table/incident/{sys_id}",
        params={"sysparm_fields": fields, "sysparm_display_value": display, "sysparm_exclude_reference_link": exclude},
    )
    assert r.status_code == 200, r.text
    return r.json()["result"]


@pytest.mark.parametrize(
    ("display", "exclude", "shape"),
    [
        ("false", "false", {"link", "value"}),
        ("false", "true", str),
        ("true", "false", {"display_value", "link"}),
        ("true", "true", str),
        ("all", "false", {"display_value", "link", "value"}),
        ("all", "true", {"display_value", "value"}),
    ],
)
def test_the_six_reference_shapes(admin, emulator, record, display, exclude, shape):
    value = fetch(admin, record["sys_id"], "caller_id", display, exclude)["caller_id"]
    link = f"{emulator.url}/api/now/table/sys_user/{record['caller']}"
    if shape is str:
        assert value == (record["caller"] if display == "false" else "Ivy Tilson")
        return
    assert set(value) == shape
    assert list(value) == sorted(shape)  # display_value, link, value: the documented order
    if "link" in value:
        assert value["link"] == link
    if "value" in value:
        assert value["value"] == record["caller"]
    if "display_value" in value:
        assert value["display_value"] == "Ivy Tilson"


@pytest.mark.parametrize(
    ("display", "exclude", "expected"),
    [
        ("false", "false", ""),
        ("false", "true", ""),
        ("true", "false", ""),
        ("true", "true", ""),
        ("all", "false", {"display_value": "", "value": ""}),
        ("all", "true", {"display_value": "", "value": ""}),
    ],
)
def test_an_empty_reference(admin, record, display, exclude, expected):
    assert fetch(admin, record["sys_id"], "assigned_to", display, exclude)["assigned_to"] == expected


def test_links_point_at_the_referenced_table(admin, emulator, record):
    value = fetch(admin, record["sys_id"], "assignment_group", "false", "false")["assignment_group"]
    assert value["link"] == f"{emulator.url}/api/now/table/sys_user_group/{record['group']}"
    https = emulator.client(verify=str(emulator.ca_cert))
    https.base_url = emulator.https_url
    with https:
        value = fetch(https, record["sys_id"], "assignment_group", "false", "false")["assignment_group"]
    assert value["link"].startswith(f"{emulator.https_url}/api/now/table/sys_user_group/")


def test_display_true_gives_plain_display_strings(admin, record):
    rec = fetch(
        admin,
        record["sys_id"],
        "state,impact,urgency,priority,active,sys_class_name,approval,assignment_group,number,short_description",
        "true",
        "true",
    )
    assert rec == {
        "state": "New",
        "impact": "2 - Medium",
        "urgency": "1 - High",
        "priority": "2 - High",
        "active": "true",
        "sys_class_name": "Incident",
        "approval": "Not Yet Requested",
        "assignment_group": "Web Platform",
        "number": rec["number"],
        "short_description": "shapes",
    }


def test_display_all_gives_value_and_display_for_every_field(admin, record):
    rec = fetch(admin, record["sys_id"], "", "all", "true")
    assert len(rec) > 40
    for name, value in rec.items():
        assert isinstance(value, dict) and set(value) == {"display_value", "value"}, (name, value)
    assert rec["state"] == {"display_value": "New", "value": "1"}
    assert rec["priority"] == {"display_value": "2 - High", "value": "2"}
    assert rec["sys_class_name"] == {"display_value": "Incident", "value": "incident"}
    assert rec["caller_id"] == {"display_value": "Ivy Tilson", "value": record["caller"]}
    assert rec["sys_tags"] == {"display_value": "", "value": ""}
    assert rec["work_notes"] == {"display_value": "", "value": ""}


def test_integer_display_values_group_thousands(admin):
    name = tag("ram")
    create(admin, "cmdb_ci_linux_server", {"name": name, "ram": 32768, "cpu_count": 8})
    [row] = rows(admin, "cmdb_ci_linux_server", f"name={name}", "ram,cpu_count", sysparm_display_value="all")
    assert row["ram"] == {"display_value": "32,768", "value": "32768"}
    assert row["cpu_count"] == {"display_value": "8", "value": "8"}


def test_dot_walked_fields_with_display_values(admin, record):
    rec = fetch(admin, record["sys_id"], "caller_id.name,assignment_group.manager", "all", "true")
    assert rec["caller_id.name"] == {"display_value": "Ivy Tilson", "value": "Ivy Tilson"}
    assert rec["assignment_group.manager"]["display_value"] == "Carol Webster"


def test_write_responses_honour_display_parameters(admin, emulator):
    caller = sys_id_of(admin, "sys_user", "user_name=itil")
    r = admin.post(
        "/api/now/table/incident",
        params={
            "sysparm_display_value": "all",
            "sysparm_exclude_reference_link": "true",
            "sysparm_fields": "caller_id,state",
        },
        json={"short_description": "write shapes", "caller_id": caller},
    )
    assert r.json()["result"] == {
        "caller_id": {"display_value": "Ivy Tilson", "value": caller},
        "state": {"display_value": "New", "value": "1"},
    }
    sys_id = r.headers["Location"].rsplit("/", 1)[1]
    r = admin.patch(
        f"/api/now/table/incident/{sys_id}",
        params={"sysparm_display_value": "true", "sysparm_fields": "caller_id,state"},
        json={"state": "2"},
    )
    assert r.json()["result"] == {
        "caller_id": {"display_value": "Ivy Tilson", "link": f"{emulator.url}/api/now/table/sys_user/{caller}"},
        "state": "In Progress",
    }


# --- input display values -------------------------------------------------------------------------------
def test_input_display_value_resolves_references_and_choices(admin):
    r = admin.post(
        "/api/now/table/incident",
        params={"sysparm_input_display_value": "true", "sysparm_exclude_reference_link": "true"},
        json={"short_description": "by name", "caller_id": "Ivy Tilson", "assignment_group": "Web Platform",
              "state": "In Progress", "impact": "1 - High", "urgency": "2 - Medium"},
    )  # fmt: skip
    assert r.status_code == 201
    rec = r.json()["result"]
    assert rec["caller_id"] == sys_id_of(admin, "sys_user", "user_name=itil")
    assert rec["assignment_group"] == sys_id_of(admin, "sys_user_group", "name=Web Platform")
    assert (rec["state"], rec["impact"], rec["urgency"], rec["priority"]) == ("2", "1", "2", "2")


def test_dates_are_utc_on_raw_input_and_local_on_display_input(admin, paris):
    winter, summer = "2026-01-15 12:00:00", "2026-07-15 12:00:00"
    raw = create(paris, "incident", {"short_description": "raw dates", "opened_at": winter, "sla_due": summer})
    assert (raw["opened_at"], raw["sla_due"]) == (winter, summer)
    r = paris.post(
        "/api/now/table/incident",
        params={"sysparm_input_display_value": "true", "sysparm_exclude_reference_link": "true"},
        json={"short_description": "local dates", "opened_at": winter, "sla_due": summer},
    )
    local = r.json()["result"]
    assert local["opened_at"] == "2026-01-15 11:00:00"  # CET = UTC+1
    assert local["sla_due"] == "2026-07-15 10:00:00"  # CEST = UTC+2
    # the admin (UTC) sees the stored values; the Paris user sees them in its zone as display values
    assert get(admin, "incident", local["sys_id"])["opened_at"] == "2026-01-15 11:00:00"
    shown = get(paris, "incident", local["sys_id"], sysparm_display_value="all", sysparm_fields="opened_at,sla_due")
    assert shown["opened_at"] == {"display_value": "2026-01-15 12:00:00", "value": "2026-01-15 11:00:00"}
    assert shown["sla_due"] == {"display_value": "2026-07-15 12:00:00", "value": "2026-07-15 10:00:00"}
    assert get(admin, "incident", local["sys_id"], sysparm_display_value="true")["sla_due"] == "2026-07-15 10:00:00"
    # PATCH reads display input the same way
    r = paris.patch(
        f"/api/now/table/incident/{local['sys_id']}",
        params={"sysparm_input_display_value": "true", "sysparm_fields": "opened_at"},
        json={"opened_at": summer},
    )
    assert r.json()["result"]["opened_at"] == "2026-07-15 10:00:00"


def test_unresolvable_display_input_is_not_a_crash(admin):
    r = admin.post(
        "/api/now/table/incident",
        params={"sysparm_input_display_value": "true", "sysparm_exclude_reference_link": "true"},
        json={"short_description": "nobody", "caller_id": "No Such Person", "opened_at": "not a date"},
    )
    assert r.status_code == 201
    assert r.json()["result"]["opened_at"] != "not a date"


# --- the session time zone in queries --------------------------------------------------------------------
def test_date_generate_reads_the_session_time_zone(admin, paris):
    marker = tag("tzq")
    create(admin, "incident", {"short_description": "tz", "correlation_id": marker, "opened_at": "2026-01-10 08:00:00"})
    q = f"correlation_id={marker}^opened_at=javascript:gs.dateGenerate('2026-01-10','09:00:00')"
    assert len(rows(paris, "incident", q)) == 1  # 09:00 Paris = 08:00 UTC
    assert rows(admin, "incident", q) == []
    q = f"correlation_id={marker}^opened_at=javascript:gs.dateGenerate('2026-01-10','08:00:00')"
    assert len(rows(admin, "incident", q)) == 1
    # literal values are internal (UTC) values, whoever asks
    q = f"correlation_id={marker}^opened_at=2026-01-10 08:00:00"
    assert len(rows(paris, "incident", q)) == len(rows(admin, "incident", q)) == 1


def test_days_ago_start_is_midnight_in_the_session_zone(admin, paris):
    from zoneinfo import ZoneInfo

    marker = tag("tzd")
    local_midnight = datetime.now(ZoneInfo("Europe/Paris")).replace(hour=0, minute=0, second=0, microsecond=0)
    utc_midnight = local_midnight.astimezone(UTC)
    # a moment between Paris midnight and the following UTC midnight: "today" for Paris, not before UTC's today
    moment = utc_midnight + timedelta(minutes=30)
    create(
        admin,
        "incident",
        {"short_description": "tz", "correlation_id": marker, "opened_at": moment.strftime("%Y-%m-%d %H:%M:%S")},
    )
    q = f"correlation_id={marker}^opened_at>=javascript:gs.beginningOfToday()"
    assert len(rows(paris, "incident", q)) == 1
    q = f"correlation_id={marker}^opened_at<javascript:gs.daysAgoStart(0)"
    assert len(rows(paris, "incident", q)) == 0
    expected_utc = 1 if moment < datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) else 0
    assert len(rows(admin, "incident", q)) == expected_utc


def test_domain_fields_default_to_global(admin, emulator, record):
    rec = fetch(admin, record["sys_id"], "sys_domain,sys_domain_path", "false", "false")
    assert rec == {
        "sys_domain": {"link": f"{emulator.url}/api/now/table/sys_user_group/global", "value": "global"},
        "sys_domain_path": "/",
    }
    rec = fetch(admin, record["sys_id"], "sys_domain", "all", "true")
    assert rec["sys_domain"] == {"display_value": "global", "value": "global"}
    ci = create(admin, "cmdb_ci_appl", {"name": tag("dom"), "sys_domain_path": "/elsewhere/"})
    assert (ci["sys_domain"], ci["sys_domain_path"]) == ("global", "/")  # sys_* fields are the platform's
