"""The Aggregate API (reference §5.1) over real HTTP: count, group-by, having, order, avg/min/max/sum, display."""

from __future__ import annotations

from urllib.parse import urlsplit

import pysnow
import pytest
from sn_support import NOROLE, READONLY, assert_error, create, sys_id_of, tag

# (group, impact, urgency, reassignment_count): priority follows the impact x urgency matrix.
ROWS = [
    ("Database Operations", 1, 1, 1),  # priority 1
    ("Database Operations", 2, 2, 2),  # priority 3
    ("Database Operations", 2, 3, 4),  # priority 4
    ("Web Platform", 1, 2, 0),  # priority 2
    ("Web Platform", 3, 3, 3),  # priority 5
    (None, 3, 2, 5),  # priority 4
]


@pytest.fixture(scope="module")
def estate(emulator):
    """Six incidents sharing a correlation_id, spread over two groups and none."""
    marker = tag("agg")
    with emulator.client() as admin:
        groups = {
            name: sys_id_of(admin, "sys_user_group", f"name={name}") for name in ("Database Operations", "Web Platform")
        }
        for group, impact, urgency, reassignments in ROWS:
            values = {
                "short_description": f"aggregate {marker}",
                "correlation_id": marker,
                "impact": impact,
                "urgency": urgency,
                "reassignment_count": reassignments,
            }
            if group:
                values["assignment_group"] = groups[group]
            create(admin, "incident", values)
    return marker, groups


def stats(client, table="incident", **params):
    r = client.get(f"/api/now/stats/{table}", params=params)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    return r.json()["result"]


def test_count_without_grouping(admin, estate):
    marker, _ = estate
    result = stats(admin, sysparm_query=f"correlation_id={marker}", sysparm_count="true")
    assert result == {"stats": {"count": "6"}}
    # the count agrees with the Table API's X-Total-Count for the same query
    r = admin.get("/api/now/table/incident", params={"sysparm_query": f"correlation_id={marker}", "sysparm_limit": 1})
    assert r.headers["X-Total-Count"] == "6"


def test_legacy_python_boolean_and_name_value_filter(admin, estate):
    marker, _ = estate
    # pysnow sends sysparm_count=True; name=value pairs filter like sysparm_query
    assert stats(admin, correlation_id=marker, sysparm_count="True") == {"stats": {"count": "6"}}
    assert stats(admin, correlation_id=marker, impact="1", sysparm_count="True") == {"stats": {"count": "2"}}
    # display values work in the shorthand for choice fields
    assert stats(admin, correlation_id=marker, urgency="3 - Low", sysparm_count="true") == {"stats": {"count": "2"}}


def test_pysnow_legacy_count(emulator, estate):
    marker, _ = estate
    client = pysnow.Client(host=urlsplit(emulator.url).netloc, user="admin", password="admin", use_ssl=False)
    try:
        assert client.query(table="incident", query={"correlation_id": marker}).count == 6
    finally:
        client.session.close()


def test_versioned_url_and_no_aggregate(admin, estate):
    marker, _ = estate
    r = admin.get(
        "/api/now/v1/stats/incident", params={"sysparm_query": f"correlation_id={marker}", "sysparm_count": "true"}
    )
    assert r.status_code == 200 and r.json()["result"]["stats"]["count"] == "6"
    # no sysparm_count and no aggregate field: nothing is computed
    assert stats(admin, sysparm_query=f"correlation_id={marker}") == {"stats": {}}
    # a query matching nothing counts zero
    assert stats(admin, sysparm_query="correlation_id=nothing-matches-this", sysparm_count="true") == {
        "stats": {"count": "0"}
    }


def test_avg_min_max_sum(admin, estate):
    marker, _ = estate
    result = stats(
        admin,
        sysparm_query=f"correlation_id={marker}",
        sysparm_count="true",
        sysparm_avg_fields="reassignment_count,impact",
        sysparm_min_fields="priority",
        sysparm_max_fields="priority,short_description",
        sysparm_sum_fields="reassignment_count",
    )
    assert result["stats"] == {
        "count": "6",
        "avg": {"reassignment_count": "2.5000", "impact": "2.0000"},
        "min": {"priority": "1"},
        "max": {"priority": "5", "short_description": f"aggregate {marker}"},
        "sum": {"reassignment_count": "15"},
    }


def test_group_by_reference_with_raw_and_display_values(admin, estate):
    marker, groups = estate
    query = f"correlation_id={marker}"
    raw = stats(admin, sysparm_query=query, sysparm_count="true", sysparm_group_by="assignment_group")
    # empty group first, then the groups in display-value order; values are sys_ids
    assert raw == [
        {"stats": {"count": "1"}, "groupby_fields": [{"field": "assignment_group", "value": ""}]},
        {
            "stats": {"count": "3"},
            "groupby_fields": [{"field": "assignment_group", "value": groups["Database Operations"]}],
        },
        {"stats": {"count": "2"}, "groupby_fields": [{"field": "assignment_group", "value": groups["Web Platform"]}]},
    ]
    shown = stats(
        admin,
        sysparm_query=query,
        sysparm_count="true",
        sysparm_group_by="assignment_group",
        sysparm_display_value="true",
    )
    assert [g["groupby_fields"][0]["value"] for g in shown] == ["", "Database Operations", "Web Platform"]
    both = stats(
        admin,
        sysparm_query=query,
        sysparm_count="true",
        sysparm_group_by="assignment_group",
        sysparm_display_value="all",
    )
    assert both[1]["groupby_fields"] == [
        {"field": "assignment_group", "value": groups["Database Operations"], "display_value": "Database Operations"}
    ]


def test_group_by_choice_field_display_labels(admin, estate):
    marker, _ = estate
    result = stats(
        admin,
        sysparm_query=f"correlation_id={marker}",
        sysparm_count="true",
        sysparm_group_by="priority",
        sysparm_display_value="true",
    )
    assert [(g["groupby_fields"][0]["value"], g["stats"]["count"]) for g in result] == [
        ("1 - Critical", "1"),
        ("2 - High", "1"),
        ("3 - Moderate", "1"),
        ("4 - Low", "2"),
        ("5 - Planning", "1"),
    ]


def test_group_by_several_fields(admin, estate):
    marker, groups = estate
    result = stats(
        admin,
        sysparm_query=f"correlation_id={marker}",
        sysparm_count="true",
        sysparm_group_by="assignment_group,impact",
        sysparm_avg_fields="reassignment_count",
    )
    by_key = {tuple(f["value"] for f in g["groupby_fields"]): g["stats"] for g in result}
    assert [f["field"] for f in result[0]["groupby_fields"]] == ["assignment_group", "impact"]
    db = groups["Database Operations"]
    assert by_key[(db, "1")] == {"count": "1", "avg": {"reassignment_count": "1.0000"}}
    assert by_key[(db, "2")] == {"count": "2", "avg": {"reassignment_count": "3.0000"}}
    assert by_key[("", "3")] == {"count": "1", "avg": {"reassignment_count": "5.0000"}}
    assert len(result) == 5


def test_having(admin, estate):
    marker, groups = estate
    query = f"correlation_id={marker}"
    result = stats(
        admin,
        sysparm_query=query,
        sysparm_count="true",
        sysparm_group_by="assignment_group",
        sysparm_having="count^assignment_group^>^1",
    )
    assert [g["groupby_fields"][0]["value"] for g in result] == [groups["Database Operations"], groups["Web Platform"]]
    # several clauses (comma separated) all apply
    result = stats(
        admin,
        sysparm_query=query,
        sysparm_count="true",
        sysparm_group_by="assignment_group",
        sysparm_having="count^assignment_group^>=^2,avg^reassignment_count^<^2",
    )
    assert [g["groupby_fields"][0]["value"] for g in result] == [groups["Web Platform"]]
    assert result[0]["stats"] == {"count": "2"}


def test_order_by_count_aggregate_and_field(admin, estate):
    marker, _ = estate
    query = f"correlation_id={marker}"
    common = {"sysparm_query": query, "sysparm_count": "true", "sysparm_group_by": "assignment_group"}
    by_count = stats(admin, **common, sysparm_order_by="COUNT^DESC")
    assert [g["stats"]["count"] for g in by_count] == ["3", "2", "1"]
    by_count_asc = stats(admin, **common, sysparm_order_by="COUNT")
    assert [g["stats"]["count"] for g in by_count_asc] == ["1", "2", "3"]
    by_avg = stats(
        admin, **common, sysparm_avg_fields="reassignment_count", sysparm_order_by="AVG^reassignment_count^DESC"
    )
    assert [g["stats"]["avg"]["reassignment_count"] for g in by_avg] == ["5.0000", "2.3333", "1.5000"]
    by_field = stats(admin, **common, sysparm_order_by="assignment_group^DESC", sysparm_display_value="true")
    assert [g["groupby_fields"][0]["value"] for g in by_field] == ["Web Platform", "Database Operations", ""]


def test_group_by_class_over_a_hierarchy(admin):
    """A parent table counts its children's rows; sys_class_name groups by the concrete class."""
    result = stats(
        admin,
        "cmdb_ci_server",
        sysparm_count="true",
        sysparm_group_by="sys_class_name",
        sysparm_display_value="all",
        sysparm_query="nameSTARTSWITHpay-^ORnameSTARTSWITHrpt-",
    )
    classes = {
        g["groupby_fields"][0]["value"]: (g["groupby_fields"][0]["display_value"], g["stats"]["count"]) for g in result
    }
    assert classes["cmdb_ci_linux_server"] == ("Linux Server", "5")
    assert classes["cmdb_ci_win_server"] == ("Windows Server", "1")
    assert set(classes) == {"cmdb_ci_linux_server", "cmdb_ci_win_server"}


def test_unknown_fields_are_ignored(admin, estate):
    marker, _ = estate
    result = stats(
        admin,
        sysparm_query=f"correlation_id={marker}",
        sysparm_count="true",
        sysparm_avg_fields="no_such_field,impact",
        sysparm_group_by="no_such_field",
    )
    assert result == {"stats": {"count": "6", "avg": {"impact": "2.0000"}}}


def test_errors_and_permissions(emulator, estate):
    marker, _ = estate
    with emulator.client() as admin:
        assert_error(
            admin.get("/api/now/stats/no_such_table", params={"sysparm_count": "true"}),
            400,
            "Invalid table no_such_table",
        )
        r = admin.get("/api/now/stats/incident", params={"sysparm_count": "maybe"})
        assert r.status_code == 400
    with emulator.client(READONLY) as readonly:
        # read access is enough
        assert stats(readonly, sysparm_query=f"correlation_id={marker}", sysparm_count="true") == {
            "stats": {"count": "6"}
        }
    with emulator.client(NOROLE) as norole:
        assert_error(
            norole.get("/api/now/stats/incident", params={"sysparm_count": "true"}),
            403,
            "Insufficient rights to query records",
        )
    with emulator.client(("admin", "wrong")) as anonymous:
        assert anonymous.get("/api/now/stats/incident", params={"sysparm_count": "true"}).status_code == 401
