"""The encoded-query engine (reference §1.3, §1.4), exercised over HTTP against a tagged data set.

The data set is six change requests (A..F; numeric states -5..4 make the type-aware comparisons
visible), one incident and one change task sharing a unique correlation_id, a small group hierarchy
and a few CIs. Date expectations that depend on "now" are computed from the stored values.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sn_support import ITIL, create, rows, tag

FMT = "%Y-%m-%d %H:%M:%S"
DYNAMIC_ME = "90d1921e5f510100a9ad2572f2b477fe"


def _fmt(moment: datetime) -> str:
    return moment.strftime(FMT)


def _parse(value: str) -> datetime:
    return datetime.strptime(value, FMT).replace(tzinfo=UTC)


class Data:
    tag: str
    now: datetime
    ids: dict[str, str]  # letter -> sys_id
    start: dict[str, str]  # letter -> stored start_date ("" when empty)
    groups: dict[str, str]
    itil_id: str
    ci_prefix: str


@pytest.fixture(scope="module")
def data(emulator) -> Data:
    d = Data()
    d.tag = tag("qe")
    d.now = datetime.now(UTC).replace(microsecond=0)
    now = d.now
    yesterday_noon = (now - timedelta(days=1)).replace(hour=12, minute=0, second=0)
    with emulator.client() as admin:
        d.itil_id = rows(admin, "sys_user", "user_name=itil", "sys_id")[0]["sys_id"]
        root = create(admin, "sys_user_group", {"name": f"{d.tag} Root", "manager": d.itil_id})["sys_id"]
        child = create(admin, "sys_user_group", {"name": f"{d.tag} Child", "parent": root})["sys_id"]
        grand = create(admin, "sys_user_group", {"name": f"{d.tag} Grand", "parent": child})["sys_id"]
        other = create(admin, "sys_user_group", {"name": f"{d.tag} Other"})["sys_id"]
        d.groups = {"root": root, "child": child, "grand": grand, "other": other}
        spec: dict[str, dict[str, Any]] = {
            "A": {
                "state": "-5", "short_description": "Alpha router swap", "description": "Alpha router swap",
                "risk": "4", "priority": "1", "category": "Hardware", "assignment_group": root,
                "assigned_to": d.itil_id, "start_date": _fmt(now - timedelta(hours=2)),
                "end_date": _fmt(now + timedelta(hours=1)), "reassignment_count": "0",
            },
            "B": {
                "state": "-4", "short_description": "beta patch", "description": "different", "risk": "3",
                "priority": "2", "category": "Software", "assignment_group": child,
                "start_date": _fmt(now - timedelta(days=3)), "end_date": _fmt(now - timedelta(days=3, hours=-1)),
                "reassignment_count": "5", "justification": "because",
            },
            "C": {
                "state": "-1", "short_description": "Gamma^caret test", "risk": "2", "priority": "3",
                "category": "Software", "start_date": _fmt(now + timedelta(days=2)), "reassignment_count": "12",
                "cab_required": "true",
            },
            "D": {
                "state": "0", "short_description": "delta", "risk": "1", "priority": "4", "category": "Network",
                "assignment_group": grand, "start_date": "2026-01-10 08:00:00", "end_date": "2026-01-10 12:00:00",
                "reassignment_count": "0",
            },
            "E": {
                "state": "3", "short_description": "Epsilon 100% done_ok", "priority": "5", "category": "Hardware",
                "assignment_group": other, "close_code": "successful", "close_notes": "done",
            },
            "F": {
                "state": "4", "short_description": "zeta", "category": "Other", "priority": "4",
                "reassignment_count": "4", "start_date": _fmt(yesterday_noon),
            },
        }  # fmt: skip
        d.ids, d.start = {}, {}
        for letter, values in spec.items():
            record = create(admin, "change_request", {**values, "correlation_id": d.tag})
            d.ids[letter] = record["sys_id"]
            d.start[letter] = record["start_date"]
        create(admin, "incident", {"short_description": "qe incident", "correlation_id": d.tag})
        create(admin, "change_task", {"short_description": "qe task", "correlation_id": d.tag})
        d.ci_prefix = f"{d.tag}-ci"
        create(admin, "cmdb_ci_linux_server", {"name": f"{d.ci_prefix}-lnx", "kernel_release": "6.1"})
        create(admin, "cmdb_ci_win_server", {"name": f"{d.ci_prefix}-win"})
        create(admin, "cmdb_ci_appl", {"name": f"{d.ci_prefix}-app"})
    return d


def letters(client, data: Data, query: str, table: str = "change_request") -> list[str]:
    """The letters of the data-set rows a query returns, in the order returned."""
    by_id = {v: k for k, v in data.ids.items()}
    found = rows(
        client, table, f"correlation_id={data.tag}^{query}" if query else f"correlation_id={data.tag}", "sys_id"
    )
    return [by_id.get(r["sys_id"], "?") for r in found]


def lset(client, data: Data, query: str) -> set[str]:
    return set(letters(client, data, query))


ALL = set("ABCDEF")


# --- comparison operators ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("state=-5", {"A"}),
        ("state!=-5", ALL - {"A"}),
        ("state<-1", {"A", "B"}),  # numeric: -5 < -4 < -1; lexically "-5" > "-1"
        ("state<=-1", {"A", "B", "C"}),
        ("state>-1", {"D", "E", "F"}),  # 0, 3, 4
        ("state>=-1", {"C", "D", "E", "F"}),
        ("state>-5^state<3", {"B", "C", "D"}),
        ("priority<=2", {"A", "B"}),
        ("reassignment_count>4", {"B", "C"}),  # 5 and 12: numeric (lexically "12" < "4")
        ("reassignment_count<10", {"A", "B", "D", "E", "F"}),  # E has the default 0
        ("category<Network", {"A", "E"}),  # lexical on strings
        ("category>=Other", {"B", "C", "F"}),
        ("short_description=ALPHA ROUTER SWAP", {"A"}),  # string equality ignores case
        ("short_description=Gamma^^caret test", {"C"}),  # ^^ is a literal caret
        ("short_description=Gamma", set()),
        ("cab_required=true", {"C"}),
        ("cab_required=false", ALL - {"C"}),
    ],
)
def test_comparison_operators(admin, data, query, expected):
    assert lset(admin, data, query) == expected


def test_reference_equality_and_not_equal_includes_empty(admin, data):
    root = data.groups["root"]
    assert lset(admin, data, f"assignment_group={root}") == {"A"}
    # != also returns the rows where the field is empty (C and F have no group)
    assert lset(admin, data, f"assignment_group!={root}") == ALL - {"A"}
    # a reference compared with a display value matches on the referenced record's display field
    assert lset(admin, data, f"assignment_group={data.tag} Child") == {"B"}
    assert lset(admin, data, f"assignment_group!={data.tag} Child") == ALL - {"B"}
    # LIKE / STARTSWITH / ENDSWITH on a reference match its display value, as the UI offers
    assert lset(admin, data, "assignment_groupLIKEchild") == {"B"}
    assert lset(admin, data, f"assignment_groupSTARTSWITH{data.tag} G") == {"D"}
    assert lset(admin, data, "assignment_groupENDSWITHoot") == {"A"}
    assert lset(admin, data, "assigned_toSTARTSWITHIvy") == {"A"}
    assert lset(admin, data, f"assignment_groupIN{data.groups['root']},{data.groups['other']}") == {"A", "E"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("stateIN-5,0,4", {"A", "D", "F"}),
        ("stateIN-5", {"A"}),
        ("stateNOT IN-5,0,4", {"B", "C", "E"}),
        ("categoryNOT INHardware,Software", {"D", "F"}),
        ("categoryINhardware,NETWORK", {"A", "D", "E"}),  # case-insensitive for strings
        ("short_descriptionLIKEpatch", {"B"}),
        ("short_descriptionLIKEALPHA", {"A"}),  # contains, case-insensitive
        ("short_descriptionNOT LIKEa", {"E"}),
        ("short_descriptionLIKE100%", {"E"}),  # % is literal, not a wildcard
        ("short_descriptionLIKE_", {"E"}),  # _ is literal, not a wildcard
        ("short_descriptionSTARTSWITHbeta", {"B"}),
        ("short_descriptionSTARTSWITHeta", set()),
        ("short_descriptionENDSWITHta", {"D", "F"}),
        ("justificationISEMPTY", ALL - {"B"}),
        ("justificationISNOTEMPTY", {"B"}),
        ("justificationANYTHING", ALL),
        ("assignment_groupISEMPTY", {"C", "F"}),
        ("start_dateISEMPTY", {"E"}),
        ("reassignment_countBETWEEN1@12", {"B", "C", "F"}),
        ("stateBETWEEN-4@0", {"B", "C", "D"}),
        ("start_dateBETWEEN2026-01-10 00:00:00@2026-01-10 23:59:59", {"D"}),
        (
            "start_dateBETWEENjavascript:gs.dateGenerate('2026-01-10','start')"
            "@javascript:gs.dateGenerate('2026-01-10','end')",
            {"D"},
        ),
        ("start_date=2026-01-10 08:00:00", {"D"}),
        ("start_date>2026-01-10", ALL - {"E"}),  # a date-only literal is midnight
        ("start_date<2026-01-10 08:00:01", {"D"}),
        ("start_date<2026-01-10 08:00:00", set()),
        ("short_descriptionSAMEASdescription", {"A"}),
        ("short_descriptionNSAMEASdescription", ALL - {"A"}),
        ("reassignment_countGT_FIELDpriority", {"B", "C"}),
        ("reassignment_countLT_FIELDpriority", {"A", "D", "E"}),
        ("reassignment_countGT_OR_EQUALS_FIELDpriority", {"B", "C", "F"}),
        ("reassignment_countLT_OR_EQUALS_FIELDpriority", {"A", "D", "E", "F"}),
        ("end_dateMORETHANstart_date@hour@after@2", {"A", "D"}),  # 3 h and 4 h after
        ("end_dateLESSTHANstart_date@hour@after@2", {"B"}),  # 1 h after
        ("start_dateMORETHANend_date@hour@before@2", {"A", "D"}),
    ],
)
def test_operators(admin, data, query, expected):
    assert lset(admin, data, query) == expected


def test_emptystring_is_a_subset_of_isempty(admin, data):
    # Cleared and never-set values are stored alike; EMPTYSTRING never matches a row that has a value.
    found = lset(admin, data, "justificationEMPTYSTRING")
    assert found <= ALL - {"B"}


# --- boolean structure ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # ^OR binds tighter than ^: (A or B) and Software
        ("state=-5^ORstate=-4^category=Software", {"B"}),
        ("category=Software^state=-5^ORstate=-4", {"B"}),
        ("state=-5^ORstate=0^category=Hardware", {"A"}),
        ("state=-5^ORstate=0^ORstate=4", {"A", "D", "F"}),
        # ^NQ ORs whole blocks
        ("state=-5^NQcorrelation_id={tag}^category=Network", {"A", "D"}),
        ("state=-5^category=Network^NQcorrelation_id={tag}^state=4", {"F"}),
        # a trailing ^EQ (copied from the UI) is an end marker
        ("state=-5^EQ", {"A"}),
        ("state=-5^ORDERBYnumber^EQ", {"A"}),
    ],
)
def test_boolean_structure(admin, data, query, expected):
    assert lset(admin, data, query.replace("{tag}", data.tag)) == expected


def test_nq_applies_each_block_on_its_own(admin, data):
    # Without the tag in the second block, it would match every canceled change on the instance.
    found = rows(
        admin,
        "change_request",
        f"correlation_id={data.tag}^state=-5^NQcorrelation_id={data.tag}^state=4",
        "sys_id",
    )
    assert {r["sys_id"] for r in found} == {data.ids["A"], data.ids["F"]}


# --- ordering ------------------------------------------------------------------------------------
def test_orderby_numeric_and_desc(admin, data):
    assert letters(admin, data, "ORDERBYstate") == list("ABCDEF")
    assert letters(admin, data, "ORDERBYDESCstate") == list("FEDCBA")
    assert letters(admin, data, "ORDERBYreassignment_count^ORDERBYstate") == list("ADEFBC")


def test_orderby_multi_key_in_order_given(admin, data):
    # Hardware: A(-5), E(3); Network: D; Other: F; Software: B(-4), C(-1)
    assert letters(admin, data, "ORDERBYcategory^ORDERBYDESCstate") == list("EADFCB")
    assert letters(admin, data, "ORDERBYDESCcategory^ORDERBYstate") == list("BCFDAE")


def test_orderby_ties_are_stable_across_pages(admin, data):
    full = letters(admin, data, "ORDERBYcategory")
    assert full[:2] == ["A", "E"]  # the tie keeps creation order
    paged = []
    for offset in range(6):
        found = rows(
            admin,
            "change_request",
            f"correlation_id={data.tag}^ORDERBYcategory",
            "sys_id",
            sysparm_limit=1,
            sysparm_offset=offset,
        )
        paged.append({v: k for k, v in data.ids.items()}[found[0]["sys_id"]])
    assert paged == full
    assert letters(admin, data, "ORDERBYcategory") == full


def test_orderby_reference_sorts_by_display_value(admin, data):
    # Empty first, then the group names: Child < Grand < Other < Root
    assert letters(admin, data, "ORDERBYassignment_group^ORDERBYstate") == list("CFBDEA")


def test_default_order_is_deterministic(admin, data):
    assert letters(admin, data, "") == letters(admin, data, "") == list("ABCDEF")


# --- dates and javascript: helpers ------------------------------------------------------------------
def _expect(data: Data, predicate) -> set[str]:
    return {k for k, v in data.start.items() if v and predicate(_parse(v))}


def test_gs_days_ago_between(admin, data):
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    low, high = today - timedelta(days=1), today - timedelta(seconds=1)
    expected = _expect(data, lambda v: low <= v <= high)
    assert "F" in expected
    query = "start_dateBETWEENjavascript:gs.daysAgoStart(1)@javascript:gs.daysAgoEnd(1)"
    assert lset(admin, data, query) == expected


def test_gs_begin_of_today_and_days_ago_start(admin, data):
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert lset(admin, data, "start_date>=javascript:gs.beginningOfToday()") == _expect(data, lambda v: v >= today)
    two_days = today - timedelta(days=2)
    assert lset(admin, data, "start_date<javascript:gs.daysAgoStart(2)") == _expect(data, lambda v: v < two_days)
    assert "B" in _expect(data, lambda v: v < two_days)


def test_gs_hours_and_minutes_ago_start(admin, data):
    now = datetime.now(UTC).replace(microsecond=0)
    hour_start = (now - timedelta(hours=3)).replace(minute=0, second=0)
    assert lset(admin, data, "start_date>=javascript:gs.hoursAgoStart(3)") == _expect(data, lambda v: v >= hour_start)
    assert {"A", "C"} <= _expect(data, lambda v: v >= hour_start)
    minute_start = (now - timedelta(minutes=200)).replace(second=0)
    expected = _expect(data, lambda v: v >= minute_start)
    assert lset(admin, data, "start_date>=javascript:gs.minutesAgoStart(200)") == expected
    assert "A" in expected and "B" not in expected


def test_gs_date_generate_equality(admin, data):
    assert lset(admin, data, "start_date=javascript:gs.dateGenerate('2026-01-10','08:00:00')") == {"D"}


def test_on_and_noton_today(admin, data):
    today = datetime.now(UTC).date()
    query = "start_dateONToday@javascript:gs.beginningOfToday()@javascript:gs.endOfToday()"
    expected = _expect(data, lambda v: v.date() == today)
    assert lset(admin, data, query) == expected
    query = "start_dateONYesterday@javascript:gs.daysAgoStart(1)@javascript:gs.daysAgoEnd(1)"
    yesterday = _expect(data, lambda v: v.date() == today - timedelta(days=1))
    assert lset(admin, data, query) == yesterday
    assert "F" in yesterday
    # NOTON: everything else, including the rows without a date
    assert lset(admin, data, query.replace("ON", "NOTON", 1)) == ALL - yesterday


def test_datepart(admin, data):
    saturday = _expect(data, lambda v: v.weekday() == 5)
    assert "D" in saturday  # 2026-01-10 is a Saturday
    q = "start_dateDATEPARTSaturday@javascript:gs.datePart('dayofweek','saturday','EE')"
    assert lset(admin, data, q) == saturday
    january = _expect(data, lambda v: v.month == 1)
    q = "start_dateDATEPARTJanuary@javascript:gs.datePart('month','january','EE')"
    assert lset(admin, data, q) == january


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("start_dateRELATIVEGT@hour@ago@3", {"A", "C"}),
        ("start_dateRELATIVELT@hour@ago@3", {"B", "D", "F"}),
        # the client library (and the UI) encode a unit of days as "dayofweek"
        ("start_dateRELATIVELT@dayofweek@ago@2", {"B", "D"}),
        ("start_dateRELATIVEGT@dayofweek@ahead@1", {"C"}),
        ("start_dateRELATIVELT@week@ago@1", {"D"}),
        ("start_dateRELATIVEGT@minute@ahead@5", {"C"}),
    ],
)
def test_relative(admin, data, query, expected):
    assert lset(admin, data, query) == expected


# --- the session: DYNAMIC, getUserID -----------------------------------------------------------------
def test_dynamic_me_and_get_user_id(emulator, admin, data):
    with emulator.client(ITIL) as itil:
        assert lset(itil, data, f"assigned_toDYNAMIC{DYNAMIC_ME}") == {"A"}
        assert lset(itil, data, "assigned_to=javascript:gs.getUserID()") == {"A"}
        assert lset(itil, data, "assigned_to!=javascript:gs.getUserID()") == ALL - {"A"}
    assert lset(admin, data, f"assigned_toDYNAMIC{DYNAMIC_ME}") == set()
    assert lset(admin, data, "assigned_to=javascript:gs.getUserID()") == set()


def test_in_hierarchy(admin, data):
    # the referenced group and every group below it through "parent"
    assert lset(admin, data, f"assignment_groupIN_HIERARCHY{data.groups['child']}") == {"B", "D"}
    assert lset(admin, data, f"assignment_groupIN_HIERARCHY{data.groups['root']}") == {"A", "B", "D"}
    assert lset(admin, data, f"assignment_groupIN_HIERARCHY{data.groups['other']}") == {"E"}


def test_instanceof(admin, data):
    def classes(query: str) -> list[str]:
        found = rows(admin, "task", f"correlation_id={data.tag}^{query}", "sys_class_name")
        return sorted(r["sys_class_name"] for r in found)

    assert classes("sys_class_nameINSTANCEOFchange_request") == ["change_request"] * 6
    assert classes("sys_class_nameINSTANCEOFincident") == ["incident"]
    assert classes("sys_class_nameINSTANCEOFtask") == sorted(["change_request"] * 6 + ["change_task", "incident"])
    found = rows(admin, "cmdb_ci", f"nameSTARTSWITH{data.ci_prefix}^sys_class_nameINSTANCEOFcmdb_ci_server", "name")
    assert sorted(r["name"] for r in found) == [f"{data.ci_prefix}-lnx", f"{data.ci_prefix}-win"]
    found = rows(admin, "cmdb_ci", f"nameSTARTSWITH{data.ci_prefix}^sys_class_nameINSTANCEOFcmdb_ci_hardware", "name")
    assert len(found) == 2


# --- dot-walking ---------------------------------------------------------------------------------------
def test_dot_walking_in_queries(admin, data):
    assert lset(admin, data, f"assignment_group.name={data.tag} Child") == {"B"}
    assert lset(admin, data, f"assignment_group.nameSTARTSWITH{data.tag}") == {"A", "B", "D", "E"}
    # two levels deep: the group's parent's name
    assert lset(admin, data, f"assignment_group.parent.name={data.tag} Root") == {"B"}
    assert lset(admin, data, f"assignment_group.parent.parent.name={data.tag} Root") == {"D"}
    assert lset(admin, data, "assignment_group.manager.user_name=itil") == {"A"}
    assert lset(admin, data, f"assignment_group.name={data.tag} Root^ORassignment_group.name={data.tag} Other") == {
        "A",
        "E",
    }


def test_dot_walking_in_fields(admin, data):
    fields = "number,assignment_group.name,assignment_group.parent.name,assignment_group.manager.name"
    found = rows(admin, "change_request", f"correlation_id={data.tag}^ORDERBYstate", fields)
    by_letter = dict(zip("ABCDEF", found, strict=True))
    assert set(by_letter["B"]) == set(fields.split(","))
    assert by_letter["B"]["assignment_group.name"] == f"{data.tag} Child"
    assert by_letter["B"]["assignment_group.parent.name"] == f"{data.tag} Root"
    assert by_letter["A"]["assignment_group.manager.name"] == "Ivy Tilson"
    assert by_letter["A"]["assignment_group.parent.name"] == ""
    assert by_letter["C"]["assignment_group.name"] == ""  # no group: the walk yields ""


def test_dot_walked_reference_in_fields_renders_as_reference(admin, data, emulator):
    r = admin.get(
        "/api/now/table/change_request",
        params={"sysparm_query": f"correlation_id={data.tag}^state=-4", "sysparm_fields": "assignment_group.parent"},
    )
    value = r.json()["result"][0]["assignment_group.parent"]
    assert value == {
        "link": f"{emulator.url}/api/now/table/sys_user_group/{data.groups['root']}",
        "value": data.groups["root"],
    }


# --- invalid queries (§1.4) ------------------------------------------------------------------------
def test_invalid_conditions_are_ignored_by_default(admin, data):
    assert lset(admin, data, "no_such_field=1^state=-5") == {"A"}
    assert lset(admin, data, "no_such_field=1") == ALL
    assert lset(admin, data, "state=-5^ORno_such_field=1") == {"A"}
    assert lset(admin, data, "assignment_group.no_such=1^state=-4") == {"B"}
    assert lset(admin, data, "ORDERBYno_such_field^state=-5") == {"A"}
    assert lset(admin, data, "state=-5^junk without operator") == {"A"}


def test_invalid_query_returns_no_rows_when_switched_on(emulator, admin, data):
    emulator.set_properties(**{"glide.invalid_query.returns_no_rows": "true"})
    try:
        r = admin.get(
            "/api/now/table/change_request",
            params={"sysparm_query": f"correlation_id={data.tag}^no_such_field=1"},
        )
        assert r.status_code == 200
        assert r.json() == {"result": []}
        assert r.headers["X-Total-Count"] == "0"
        assert lset(admin, data, "state=-5") == {"A"}  # valid queries are unaffected
        assert lset(admin, data, "state=-5^ORno_such_field=1") == set()
    finally:
        emulator.set_properties(**{"glide.invalid_query.returns_no_rows": "false"})
    assert lset(admin, data, "no_such_field=1") == ALL


# --- parent tables ---------------------------------------------------------------------------------------
def test_parent_table_returns_child_rows_with_parent_fields_only(admin, data):
    found = rows(admin, "task", f"correlation_id={data.tag}")
    assert len(found) == 8
    assert sorted({r["sys_class_name"] for r in found}) == ["change_request", "change_task", "incident"]
    for row in found:
        assert "type" not in row and "caller_id" not in row and "change_task_type" not in row
        assert {"number", "state", "sys_class_name", "assignment_group"} <= set(row)
    prefixes = {r["sys_class_name"]: r["number"][:3] for r in found}
    assert prefixes == {"change_request": "CHG", "change_task": "CTA", "incident": "INC"}


def test_cmdb_parent_tables(admin, data):
    servers = rows(admin, "cmdb_ci_server", f"nameSTARTSWITH{data.ci_prefix}^ORDERBYname")
    assert [(r["name"], r["sys_class_name"]) for r in servers] == [
        (f"{data.ci_prefix}-lnx", "cmdb_ci_linux_server"),
        (f"{data.ci_prefix}-win", "cmdb_ci_win_server"),
    ]
    assert "kernel_release" not in servers[0] and "os" in servers[0]
    cis = rows(admin, "cmdb_ci", f"nameSTARTSWITH{data.ci_prefix}^ORDERBYname")
    assert [r["sys_class_name"] for r in cis] == ["cmdb_ci_appl", "cmdb_ci_linux_server", "cmdb_ci_win_server"]
    assert all("os" not in r and "version" not in r for r in cis)
    # a child table does not see its parent's or siblings' rows
    assert rows(admin, "cmdb_ci_linux_server", f"nameSTARTSWITH{data.ci_prefix}", "name") == [
        {"name": f"{data.ci_prefix}-lnx"}
    ]
    # and a child row is readable by sys_id through its parent table
    lnx = rows(admin, "cmdb_ci_linux_server", f"nameSTARTSWITH{data.ci_prefix}", "sys_id")[0]["sys_id"]
    r = admin.get(f"/api/now/table/cmdb_ci/{lnx}", params={"sysparm_fields": "sys_class_name,kernel_release"})
    assert r.json()["result"] == {"sys_class_name": "cmdb_ci_linux_server"}


def test_long_or_chains_and_in_lists(admin, data):
    found = rows(admin, "change_request", f"correlation_id={data.tag}", "number,sys_id")
    numbers = [r["number"] for r in found]
    decoys = [f"CHG9{i:06d}" for i in range(1500)]
    chain = "^OR".join(f"number={n}" for n in [*decoys[:700], numbers[0], *decoys[700:], numbers[3]])
    assert {r["number"] for r in rows(admin, "change_request", chain, "number")} == {numbers[0], numbers[3]}
    # mixed with other alternatives and with a value that can never match a number field
    chain = f"state=-5^ORstate=abc^ORstate=4^ORstate=-4^correlation_id={data.tag}"
    assert lset(admin, data, chain) == {"A", "B", "F"}
    in_list = "sys_idIN" + ",".join([*(f"{i:032x}" for i in range(1200)), found[1]["sys_id"]])
    assert [r["sys_id"] for r in rows(admin, "change_request", in_list, "sys_id")] == [found[1]["sys_id"]]
    # equality ORs on a string field keep ignoring case
    chain = "^OR".join(f"short_description={s}" for s in ("ALPHA ROUTER SWAP", "Beta Patch", "nothing"))
    assert lset(admin, data, chain) == {"A", "B"}
