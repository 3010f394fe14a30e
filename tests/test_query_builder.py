"""The encoded-query builder: encodings, composition, and refusal of injected terms."""

from __future__ import annotations

import copy
import pickle
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import Enum, IntEnum

import pytest
from pydantic import BaseModel

from servicenow_blocks.choices import ChangeState, ChangeType, Impact
from servicenow_blocks.query import (
    OPERATORS,
    Operator,
    Query,
    QueryError,
    QueryValueError,
    beginning_of_today,
    date_generate,
    days_ago_end,
    days_ago_start,
    end_of_today,
    field,
    hours_ago_start,
    js,
    minutes_ago_start,
    raw,
)

# --------------------------------------------------------------------------------------------------
# operators


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("=", "standard", "f=standard"),
        ("!=", "standard", "f!=standard"),
        (">", 5, "f>5"),
        (">=", 5, "f>=5"),
        ("<", 5, "f<5"),
        ("<=", 5, "f<=5"),
        ("IN", ["1", "2"], "fIN1,2"),
        ("NOT IN", ["db2", "sql server", "oracle"], "fNOT INdb2,sql server,oracle"),
        ("LIKE", "em", "fLIKEem"),
        ("NOT LIKE", "em", "fNOT LIKEem"),
        ("STARTSWITH", "em", "fSTARTSWITHem"),
        ("ENDSWITH", "outage", "fENDSWITHoutage"),
        ("BETWEEN", (1, 2), "fBETWEEN1@2"),
        ("SAMEAS", "description", "fSAMEASdescription"),
        ("NSAMEAS", field("made_sla"), "fNSAMEASmade_sla"),
        ("GT_FIELD", "reopen_count", "fGT_FIELDreopen_count"),
        ("LT_FIELD", "reopen_count", "fLT_FIELDreopen_count"),
        ("GT_OR_EQUALS_FIELD", "reopen_count", "fGT_OR_EQUALS_FIELDreopen_count"),
        ("LT_OR_EQUALS_FIELD", "reopen_count", "fLT_OR_EQUALS_FIELDreopen_count"),
        ("DYNAMIC", "54635e965f510100a9ad2572f2b4774c", "fDYNAMIC54635e965f510100a9ad2572f2b4774c"),
        ("IN_HIERARCHY", "a" * 32, "fIN_HIERARCHY" + "a" * 32),
        ("INSTANCEOF", "cmdb_ci_server", "fINSTANCEOFcmdb_ci_server"),
        ("RELATIVEGT", ("hour", "ago", 1), "fRELATIVEGT@hour@ago@1"),
        ("RELATIVELT", ("minute", "ahead", 30), "fRELATIVELT@minute@ahead@30"),
        ("RELATIVEGE", "@hour@ago@1", "fRELATIVEGE@hour@ago@1"),
        ("RELATIVELE", ("week", "ago", 2), "fRELATIVELE@week@ago@2"),
        ("RELATIVEEE", ("day", "ago", 0), "fRELATIVEEE@dayofweek@ago@0"),
        ("MORETHAN", ("activity_due", "day", "before", 1), "fMORETHANactivity_due@day@before@1"),
        ("LESSTHAN", (field("activity_due"), "hour", "after", 3), "fLESSTHANactivity_due@hour@after@3"),
        (
            "ON",
            ("Today", days_ago_start(0), days_ago_end(0)),
            "fONToday@javascript:gs.daysAgoStart(0)@javascript:gs.daysAgoEnd(0)",
        ),
        (
            "NOTON",
            ("Today", beginning_of_today(), end_of_today()),
            "fNOTONToday@javascript:gs.beginningOfToday()@javascript:gs.endOfToday()",
        ),
        (
            "DATEPART",
            ("Monday", js("gs.datePart('dayofweek','monday','EE')")),
            "fDATEPARTMonday@javascript:gs.datePart('dayofweek','monday','EE')",
        ),
    ],
)
def test_where_encodes_each_valued_operator(op, value, expected):
    assert str(Query().where("f", op, value)) == expected


@pytest.mark.parametrize("op", ["ISEMPTY", "ISNOTEMPTY", "EMPTYSTRING", "ANYTHING"])
def test_valueless_operators_take_no_value(op):
    assert str(Query().where("caller_id", op)) == f"caller_id{op}"
    with pytest.raises(QueryError, match="takes no value"):
        Query().where("caller_id", op, "x")


def test_every_listed_operator_is_known_and_spelled_as_the_instance_expects():
    required = {
        "=", "!=", ">", ">=", "<", "<=", "IN", "NOT IN", "LIKE", "NOT LIKE", "STARTSWITH", "ENDSWITH",
        "ISEMPTY", "ISNOTEMPTY", "EMPTYSTRING", "ANYTHING", "BETWEEN", "SAMEAS", "NSAMEAS", "ON",
        "DATEPART", "RELATIVEGT", "RELATIVELT", "MORETHAN", "LESSTHAN", "GT_FIELD", "LT_FIELD",
        "GT_OR_EQUALS_FIELD", "LT_OR_EQUALS_FIELD", "DYNAMIC", "IN_HIERARCHY", "INSTANCEOF",
    }  # fmt: skip
    assert required <= set(OPERATORS)


def test_convenience_methods_match_where():
    dt = datetime(2024, 3, 1, 8, 30, 0)
    q = (
        Query()
        .eq("a", 1)
        .ne("b", 2)
        .gt("c", 3)
        .gte("d", 4)
        .lt("e", 5)
        .lte("f", 6)
        .in_("g", ["x", "y"])
        .not_in("h", ("x",))
        .like("i", "net")
        .not_like("j", "net")
        .starts_with("k", "web")
        .ends_with("l", "01")
        .is_empty("m")
        .is_not_empty("n")
        .empty_string("o")
        .anything("p")
        .between("q", dt, dt + timedelta(hours=1))
        .same_as("r", "s")
        .not_same_as("t", field("u"))
        .relative_gt("v", 1, "hour")
        .relative_lt("w", 2, "day", "ahead")
        .instance_of("cmdb_ci_server")
    )
    assert str(q) == (
        "a=1^b!=2^c>3^d>=4^e<5^f<=6^gINx,y^hNOT INx^iLIKEnet^jNOT LIKEnet^kSTARTSWITHweb"
        "^lENDSWITH01^mISEMPTY^nISNOTEMPTY^oEMPTYSTRING^pANYTHING"
        "^qBETWEEN2024-03-01 08:30:00@2024-03-01 09:30:00^rSAMEASs^tNSAMEASu"
        "^vRELATIVEGT@hour@ago@1^wRELATIVELT@dayofweek@ahead@2^sys_class_nameINSTANCEOFcmdb_ci_server"
    )


def test_instance_of_can_target_another_field():
    assert str(Query().instance_of("cmdb_ci_appl", field="child.sys_class_name")) == (
        "child.sys_class_nameINSTANCEOFcmdb_ci_appl"
    )


def test_on_a_date_covers_the_whole_day():
    assert str(Query().on("sla_due", date(2024, 1, 15))) == (
        "sla_dueON2024-01-15@javascript:gs.dateGenerate('2024-01-15','00:00:00')"
        "@javascript:gs.dateGenerate('2024-01-15','23:59:59')"
    )


def test_operator_is_validated_with_a_clear_error():
    with pytest.raises(QueryError) as err:
        Query().where("state", "EQUALS", "1")
    message = str(err.value)
    assert "'EQUALS'" in message
    assert "NOT IN" in message and "INSTANCEOF" in message and "STARTSWITH" in message


def test_operator_accepts_enum_and_case_insensitive_words():
    assert str(Query().where("state", Operator.NOT_IN, [1, 2])) == "stateNOT IN1,2"
    assert str(Query().where("state", "not in", [1, 2])) == "stateNOT IN1,2"


def test_missing_value_is_an_error():
    with pytest.raises(QueryError, match="needs a value"):
        Query().where("state", "=")
    with pytest.raises(QueryValueError, match="is_empty"):
        Query().eq("state", None)


# --------------------------------------------------------------------------------------------------
# AND / OR / NQ / ORDER


def test_brief_example():
    q = (
        Query()
        .where("type", "=", "standard")
        .where("state", "IN", ["-5", "-2"])
        .or_where("state", "=", "-1")
        .is_empty("correlation_id")
        .order_by("number")
        .order_by_desc("sys_created_on")
    )
    assert str(q) == (
        "type=standard^stateIN-5,-2^ORstate=-1^correlation_idISEMPTY^ORDERBYnumber^ORDERBYDESCsys_created_on"
    )
    assert q.encoded == str(q)


def test_or_binds_to_the_previous_condition_only():
    q = Query().eq("a", 1).eq("b", 2).or_where("b", "=", 3).or_where("c", "ISEMPTY").eq("d", 4)
    assert str(q) == "a=1^b=2^ORb=3^ORcISEMPTY^d=4"


def test_or_without_a_previous_condition_is_refused():
    with pytest.raises(QueryError, match="previous condition"):
        Query().or_where("a", "=", 1)
    with pytest.raises(QueryError, match="previous condition"):
        Query().eq("a", 1).new_query().or_where("b", "=", 2)


def test_any_of_and_new_query_join_blocks_with_nq():
    q1 = Query().is_empty("short_description")
    q2 = Query().is_not_empty("description").eq("active", True)
    expected = "short_descriptionISEMPTY^NQdescriptionISNOTEMPTY^active=true"
    assert str(Query.any_of(q1, q2)) == expected
    assert str(q1.new_query(q2)) == expected
    assert str(q1 | q2) == expected
    # an empty operand contributes no block rather than an empty "^NQ"
    assert str(Query.any_of(Query(), q1, Query())) == "short_descriptionISEMPTY"


def test_conditions_after_new_query_fill_the_new_block():
    q = Query().eq("a", 1).new_query().eq("b", 2).or_where("b", "=", 3)
    assert str(q) == "a=1^NQb=2^ORb=3"
    assert str(Query().new_query().eq("a", 1)) == "a=1"


def test_order_terms_go_last_in_the_order_given_even_when_added_early():
    q = Query().order_by("priority").eq("active", True).order_by_desc("opened_at", "number").eq("x", 1)
    assert str(q) == "active=true^x=1^ORDERBYpriority^ORDERBYDESCopened_at^ORDERBYDESCnumber"
    assert str(Query.any_of(Query().eq("a", 1).order_by("n"), Query().eq("b", 2))) == "a=1^NQb=2^ORDERBYn"
    assert str(Query().order_by("number")) == "ORDERBYnumber"


def test_has_order_and_order_fields():
    assert not Query().eq("a", 1).has_order()
    assert Query().eq("a", 1).order_fields() == []
    q = Query().order_by("number").order_by_desc("sys_created_on")
    assert q.has_order()
    assert q.order_fields() == [("number", False), ("sys_created_on", True)]
    assert Query.from_raw("a=1^ORDERBYDESCb^ORDERBYc").order_fields() == [("b", True), ("c", False)]


def test_order_by_validates_field_names():
    with pytest.raises(QueryValueError, match="'\\^'"):
        Query().order_by("number^active=false")
    with pytest.raises(QueryError, match="at least one"):
        Query().order_by()


def test_and_distributes_over_nq_blocks():
    either = Query().eq("a", 1) | Query().eq("b", 2)
    assert str(either & Query().eq("c", 3)) == "a=1^c=3^NQb=2^c=3"
    assert str(Query().eq("c", 3).and_(either)) == "c=3^a=1^NQc=3^b=2"
    assert str(Query() & either) == str(either)


def test_empty_query():
    assert str(Query()) == ""
    assert Query().encoded == ""
    assert not Query().has_order()


# --------------------------------------------------------------------------------------------------
# values


def test_bools_ints_floats_decimals():
    assert str(Query().eq("active", True).eq("on_hold", False)) == "active=true^on_hold=false"
    assert str(Query().eq("n", 0).eq("m", -5)) == "n=0^m=-5"
    assert str(Query().eq("f", 0.1).eq("g", 1e20).eq("h", Decimal("2.50"))) == ("f=0.1^g=100000000000000000000^h=2.50")
    with pytest.raises(QueryValueError, match="finite"):
        Query().eq("f", float("nan"))


def test_aware_datetime_is_converted_to_utc():
    cet = timezone(timedelta(hours=2))
    q = Query().gt("sys_updated_on", datetime(2024, 6, 1, 1, 30, 15, 999999, tzinfo=cet))
    assert str(q) == "sys_updated_on>2024-05-31 23:30:15"


def test_naive_datetime_is_taken_as_utc_and_date_is_iso():
    assert str(Query().lt("d", datetime(2024, 1, 2, 3, 4, 5))) == "d<2024-01-02 03:04:05"
    assert str(Query().eq("d", datetime(2024, 1, 2, tzinfo=UTC))) == "d=2024-01-02 00:00:00"
    assert str(Query().eq("d", date(2024, 1, 2))) == "d=2024-01-02"


def test_enums_are_encoded_by_value():
    class Color(Enum):
        RED = "red"

    class Level(IntEnum):
        TWO = 2

    q = Query().eq("type", ChangeType.STANDARD).in_("state", [ChangeState.NEW, ChangeState.IMPLEMENT])
    assert str(q) == "type=standard^stateIN-5,-1"
    assert str(Query().eq("c", Color.RED).eq("l", Level.TWO).eq("i", Impact.HIGH)) == "c=red^l=2^i=1"


def test_in_accepts_tuples_sets_and_a_single_value():
    assert str(Query().in_("s", ("a", "b"))) == "sINa,b"
    assert str(Query().in_("s", {"b", "c", "a"})) == "sINa,b,c"  # sorted, so the string is stable
    assert str(Query().in_("s", "a")) == "sINa"
    assert str(Query().in_("assignment_group", js("getMyGroups()"))) == ("assignment_groupINjavascript:getMyGroups()")


def test_in_refuses_empty_lists_and_nested_values():
    with pytest.raises(QueryValueError, match="at least one"):
        Query().in_("s", [])
    with pytest.raises(QueryValueError, match="plain values"):
        Query().in_("s", [["a"]])
    with pytest.raises(QueryValueError, match="plain values"):
        Query().in_("s", [js("x()")])


def test_scalar_operators_refuse_lists():
    with pytest.raises(QueryValueError, match="takes one value"):
        Query().eq("state", ["1", "2"])


def test_at_sign_is_fine_where_it_means_nothing():
    assert str(Query().eq("caller_id.email", "a@b.example")) == "caller_id.email=a@b.example"
    assert str(Query().in_("email", ["a@b", "c@d"])) == "emailINa@b,c@d"


def test_unsupported_value_types_are_refused():
    with pytest.raises(TypeError, match="unsupported value type"):
        Query().eq("a", object())
    with pytest.raises(TypeError, match="unsupported value type"):
        Query().eq("a", b"bytes")


def test_field_references_only_go_with_field_comparisons():
    with pytest.raises(QueryValueError, match="SAMEAS"):
        Query().eq("a", field("b"))
    with pytest.raises(QueryValueError, match="invalid SAMEAS field name"):
        Query().same_as("a", "b c")


@pytest.mark.parametrize(
    ("op", "value"),
    [
        ("BETWEEN", (1, 2, 3)),
        ("BETWEEN", "1@2"),
        ("ON", "Today"),
        ("ON", datetime(2024, 1, 1)),
        ("DATEPART", "Monday@javascript:gs.datePart('dayofweek','monday','EE')"),
        ("RELATIVEGT", ("fortnight", "ago", 1)),
        ("RELATIVEGT", ("hour", "before", 1)),
        ("RELATIVEGT", ("hour", "ago", -1)),
        ("RELATIVEGT", ("hour", "ago", True)),
        ("RELATIVEGT", "@day@ago@1"),
        ("MORETHAN", ("activity_due", "day", "ago", 1)),
        ("MORETHAN", ("bad field", "day", "before", 1)),
        ("INSTANCEOF", "cmdb_ci.server"),
    ],
)
def test_structured_operators_refuse_malformed_values(op, value):
    with pytest.raises(QueryValueError):
        Query().where("f", op, value)


# --------------------------------------------------------------------------------------------------
# injection


@pytest.mark.parametrize(
    ("value", "char"),
    [
        ("x^ORactive=false", "'^'"),
        ("x^NQactive=false", "'^'"),
        ("x^active=false", "'^'"),
        ("x\nactive=false", "newline"),
        ("x\ractive=false", "carriage return"),
    ],
)
def test_injected_terms_in_values_are_refused(value, char):
    with pytest.raises(QueryValueError) as err:
        Query().eq("short_description", value)
    message = str(err.value)
    assert "short_description" in message
    assert repr(value) in message
    assert char in message
    assert "would inject encoded-query terms" in message and "raw(" in message


@pytest.mark.parametrize(
    "build",
    [
        lambda: Query().in_("state", ["1", "2^ORstate=3"]),
        lambda: Query().not_in("state", ["1\n"]),
        lambda: Query().between("n", "1", "2^NQa=1"),
        lambda: Query().between("n", "1\r", "2"),
        lambda: Query().on("d", "Today^NQa=1", beginning_of_today(), end_of_today()),
        lambda: Query().where("d", "DATEPART", ("Mon^day", js("x()"))),
        lambda: Query().like("d", "\n"),
        lambda: Query().ne("d", "a^b"),
        lambda: Query().where("d", "DYNAMIC", "abc^ORa=1"),
        lambda: Query().instance_of("cmdb_ci^NQa=1"),
        lambda: Query().same_as("a", "b^ORc=1"),
    ],
)
def test_injected_terms_are_refused_in_every_value_position(build):
    with pytest.raises(QueryValueError, match="would inject"):
        build()


def test_long_offending_values_are_truncated_in_the_message():
    value = "x" * 500 + "^ORactive=false"
    with pytest.raises(QueryValueError) as err:
        Query().eq("short_description", value)
    assert len(str(err.value)) < 300
    assert "..." in str(err.value)


def test_separators_inside_list_and_range_parts_are_refused():
    with pytest.raises(QueryValueError, match="','"):
        Query().in_("state", ["1,2"])
    with pytest.raises(QueryValueError, match="','"):
        Query().in_("state", "1,2")
    with pytest.raises(QueryValueError, match="'@'"):
        Query().between("n", "1@3", "2")
    with pytest.raises(QueryValueError, match="'@'"):
        Query().on("d", "To@day", beginning_of_today(), end_of_today())


def test_equals_prefix_cannot_widen_a_strict_comparison():
    with pytest.raises(QueryValueError, match="'<='"):
        Query().lt("priority", "=5")
    with pytest.raises(QueryValueError, match="'>='"):
        Query().gt("priority", "=5")
    assert str(Query().eq("a", "=5")) == "a==5"


@pytest.mark.parametrize("value", ["javascript:gs.getUserID()", "  JavaScript:gs.getUserID()"])
def test_plain_strings_cannot_smuggle_in_server_script(value):
    with pytest.raises(QueryValueError, match="js\\("):
        Query().eq("assigned_to", value)
    with pytest.raises(QueryValueError, match="js\\("):
        Query().in_("assigned_to", ["a", value])


@pytest.mark.parametrize(
    "name", ["", "state^active", "state\n", "state=1", "a b", "a..b", ".a", "a.", "a-b", "stateIN1,2^"]
)
def test_bad_field_names_are_refused(name):
    with pytest.raises(QueryValueError) as err:
        Query().eq(name, "1")
    assert repr(name) in str(err.value)


def test_field_name_injection_names_the_reason():
    with pytest.raises(QueryValueError, match="would inject encoded-query terms"):
        Query().eq("active=true^ORstate", "1")


def test_dot_walked_field_names_are_fine():
    assert str(Query().eq("assignment_group.name", "Network")) == "assignment_group.name=Network"
    with pytest.raises(TypeError):
        Query().eq(5, "x")


# --------------------------------------------------------------------------------------------------
# raw and js


def test_raw_is_the_way_to_pass_encoded_terms():
    q = Query().eq("active", True).raw("stateIN1,2^ORpriority=1^EQ")
    assert str(q) == "active=true^stateIN1,2^ORpriority=1"
    assert str(Query.from_raw("a=1^ORb=2^c=3")) == "a=1^ORb=2^c=3"
    assert str(Query().eq("x", 1) & raw("a=1^ORb=2")) == "x=1^a=1^ORb=2"
    assert str(raw("a=1") & Query().eq("x", 1)) == "a=1^x=1"
    assert str(Query().eq("x", 1).and_(raw("a=1"))) == "x=1^a=1"


def test_raw_with_nq_is_anded_as_a_unit():
    q = Query().eq("active", True).raw("a=1^NQb=2")
    assert str(q) == "active=true^a=1^NQactive=true^b=2"
    assert str(Query.from_raw("a=1^NQb=2").eq("c", 3)) == "a=1^NQb=2^c=3"


def test_raw_order_terms_move_to_the_end():
    q = Query().raw("ORDERBYnumber^active=true").eq("x", 1).order_by_desc("sys_id")
    assert str(q) == "active=true^x=1^ORDERBYnumber^ORDERBYDESCsys_id"
    assert q.order_fields() == [("number", False), ("sys_id", True)]


def test_or_after_a_raw_term_binds_to_its_last_condition():
    assert str(Query.from_raw("a=1^ORa=2").or_where("a", "=", 3)) == "a=1^ORa=2^ORa=3"
    with pytest.raises(QueryError, match="'\\^OR'"):
        Query.from_raw("a=1^NQ^ORb=2")


def test_plain_strings_are_not_queries():
    with pytest.raises(TypeError, match="raw"):
        Query().and_("a=1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Query.any_of("a=1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        raw(5)  # type: ignore[arg-type]
    with pytest.raises(QueryValueError, match="encoded query cannot be a value"):
        Query().eq("a", raw("b=1"))


def test_js_values():
    assert str(Query().gt("opened_at", js("gs.daysAgoStart(1)"))) == "opened_at>javascript:gs.daysAgoStart(1)"
    assert str(js("javascript:gs.now()")) == "javascript:gs.now()"
    with pytest.raises(QueryValueError, match="would inject"):
        js("gs.daysAgoStart(1)^ORactive=false")
    with pytest.raises(QueryValueError, match="newline"):
        js("gs.daysAgoStart(1)\n")
    with pytest.raises(QueryValueError, match="empty"):
        js("javascript:")


def test_date_helpers():
    assert str(days_ago_start(1)) == "javascript:gs.daysAgoStart(1)"
    assert str(days_ago_end(0)) == "javascript:gs.daysAgoEnd(0)"
    assert str(beginning_of_today()) == "javascript:gs.beginningOfToday()"
    assert str(end_of_today()) == "javascript:gs.endOfToday()"
    assert str(minutes_ago_start(15)) == "javascript:gs.minutesAgoStart(15)"
    assert str(hours_ago_start(2)) == "javascript:gs.hoursAgoStart(2)"
    assert str(date_generate(date(2024, 1, 1), time(0, 0))) == "javascript:gs.dateGenerate('2024-01-01','00:00:00')"
    assert str(date_generate("2024-01-01", "end")) == "javascript:gs.dateGenerate('2024-01-01','end')"
    q = Query().between("sla_due", days_ago_start(1), days_ago_end(0))
    assert str(q) == "sla_dueBETWEENjavascript:gs.daysAgoStart(1)@javascript:gs.daysAgoEnd(0)"


def test_date_helpers_validate_what_goes_into_the_script():
    with pytest.raises(TypeError):
        days_ago_start("1); gs.log('x'")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        days_ago_start(True)
    with pytest.raises(QueryValueError):
        date_generate("2024-01-01','x')+('", "00:00:00")
    with pytest.raises(QueryValueError):
        date_generate("2024-01-01", "00:00:00')+('")
    with pytest.raises(TypeError):
        date_generate(datetime(2024, 1, 1), "00:00:00")


# --------------------------------------------------------------------------------------------------
# identity


def test_queries_are_immutable():
    base = Query().eq("a", 1)
    extended = base.eq("b", 2)
    base.order_by("x")
    base.or_where("a", "=", 3)
    base.new_query()
    assert str(base) == "a=1"
    assert str(extended) == "a=1^b=2"
    with pytest.raises(AttributeError, match="immutable"):
        base._encoded = "b=1"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        base.anything = 1  # type: ignore[method-assign]


def test_equality_and_hash_follow_the_encoding():
    a = Query().eq("a", 1).order_by("n")
    b = Query.from_raw("a=1^ORDERBYn")
    assert a == b and hash(a) == hash(b)
    assert len({a, b, Query().eq("a", 2)}) == 2
    assert a != Query().eq("a", 1)
    assert a != "a=1^ORDERBYn"


def test_pickle_copy_and_repr_round_trip():
    q = Query().eq("a", 1).or_where("b", "=", 2).new_query().eq("c", 3).order_by("n")
    assert pickle.loads(pickle.dumps(q)) == q
    assert copy.deepcopy(q) == q
    assert eval(repr(q), {"Query": Query}) == q


def test_query_as_a_pydantic_field():
    class Config(BaseModel):
        query: Query

    from_text = Config(query="active=true^ORDERBYnumber")
    assert isinstance(from_text.query, Query)
    assert from_text.query.order_fields() == [("number", False)]
    assert from_text.model_dump(mode="json") == {"query": "active=true^ORDERBYnumber"}
    built = Query().eq("a", 1)
    assert Config(query=built).query is built
    assert Config.model_json_schema()["properties"]["query"]["type"] == "string"
