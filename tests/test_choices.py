"""Choice codes and the pure helpers over them."""

from __future__ import annotations

import json

import pytest

from servicenow_blocks.choices import (
    BUSINESS_CRITICALITY_FIELD,
    CHANGE_STATE_MODEL,
    CRITICALITY_TO_IMPACT,
    CRITICALITY_TO_SEVERITY,
    DEFAULT_SEVERITY,
    PRIORITY_MATRIX,
    Approval,
    BusinessCriticality,
    ChangeCloseCode,
    ChangeState,
    ChangeTaskState,
    ChangeType,
    CIInstallStatus,
    CIOperationalStatus,
    Environment,
    Impact,
    IncidentCloseCode,
    IncidentHoldReason,
    IncidentState,
    Priority,
    Urgency,
    UsedFor,
    change_path,
    change_transitions,
    incident_severity_for_criticality,
    priority_for,
)

S = ChangeState

# --------------------------------------------------------------------------------------------------
# codes are the exact Table API strings


@pytest.mark.parametrize(
    ("enum", "expected"),
    [
        (ChangeState, {"-5": "New", "-4": "Assess", "-3": "Authorize", "-2": "Scheduled",
                       "-1": "Implement", "0": "Review", "3": "Closed", "4": "Canceled"}),
        (ChangeTaskState, {"-5": "Pending", "1": "Open", "2": "Work in Progress", "3": "Closed",
                           "4": "Canceled"}),
        (IncidentState, {"1": "New", "2": "In Progress", "3": "On Hold", "6": "Resolved", "7": "Closed",
                         "8": "Canceled"}),
        (CIOperationalStatus, {"1": "Operational", "2": "Non-Operational", "3": "Repair in Progress",
                               "4": "DR Standby", "5": "Ready", "6": "Retired", "7": "Pipeline",
                               "8": "Catalog"}),
        (CIInstallStatus, {"0": "Implementing", "1": "Installed", "2": "On Order", "3": "In Maintenance",
                           "4": "Pending Install", "5": "Pending Repair", "6": "In Stock", "7": "Retired",
                           "8": "Stolen", "100": "Absent"}),
    ],
)  # fmt: skip
def test_numeric_codes_and_labels(enum, expected):
    assert {m.value: m.label for m in enum} == expected


def test_string_codes():
    assert [m.value for m in ChangeType] == ["normal", "standard", "emergency"]
    assert {"not requested", "requested", "approved", "rejected"} <= {m.value for m in Approval}
    assert Approval.NOT_REQUESTED == "not requested"
    assert [m.value for m in ChangeCloseCode] == ["successful", "successful_issues", "unsuccessful"]
    assert [m.value for m in IncidentHoldReason] == ["1", "3", "4", "5"]
    assert [m.value for m in Impact] == [m.value for m in Urgency] == ["1", "2", "3"]
    assert [m.value for m in Priority] == ["1", "2", "3", "4", "5"]
    assert [m.value for m in Environment] == ["Production", "Test", "Development"]
    assert "Disaster Recovery" in {m.value for m in UsedFor}
    assert BUSINESS_CRITICALITY_FIELD == "busines_criticality"
    assert [m.value for m in BusinessCriticality] == [
        "1 - most critical",
        "2 - somewhat critical",
        "3 - less critical",
        "4 - not critical",
    ]
    assert [m.tier for m in BusinessCriticality] == [1, 2, 3, 4]


def test_incident_close_codes_are_value_equals_label():
    assert {m.value for m in IncidentCloseCode} == {
        "Duplicate",
        "Known error",
        "Resolved by caller",
        "Resolved by change",
        "Resolved by problem",
        "Solution provided",
        "Workaround provided",
        "User error",
        "No resolution provided",
        "Resolved by request",
    }
    assert all(m.value == m.label for m in IncidentCloseCode)


def test_members_are_the_raw_strings():
    record = json.loads('{"state": "-1", "approval": "approved"}')
    assert record["state"] == ChangeState.IMPLEMENT
    assert ChangeState(record["state"]) is ChangeState.IMPLEMENT
    assert json.dumps({"state": ChangeState.CLOSED}) == '{"state": "3"}'
    assert f"{ChangeState.NEW}" == "-5"


def test_numeric_codes_accept_ints_and_change_api_floats():
    assert ChangeState(3.0) is ChangeState.CLOSED
    assert ChangeState(-5) is ChangeState.NEW
    assert ChangeState("3.0") is ChangeState.CLOSED
    assert Priority(4) is Priority.LOW
    with pytest.raises(ValueError):
        ChangeState(3.5)
    with pytest.raises(ValueError):
        ChangeState(True)
    with pytest.raises(ValueError):
        ChangeState("1")  # legacy Open is not a current state


def test_from_label():
    assert ChangeState.from_label("implement") is ChangeState.IMPLEMENT
    assert ChangeTaskState.from_label("Work in Progress") is ChangeTaskState.IN_PROGRESS
    with pytest.raises(ValueError, match="valid labels"):
        ChangeState.from_label("Open")


# --------------------------------------------------------------------------------------------------
# change state model


def test_state_model_progressions():
    assert CHANGE_STATE_MODEL[ChangeType.NORMAL] == (
        S.NEW, S.ASSESS, S.AUTHORIZE, S.SCHEDULED, S.IMPLEMENT, S.REVIEW, S.CLOSED,
    )  # fmt: skip
    assert CHANGE_STATE_MODEL[ChangeType.STANDARD] == (S.NEW, S.SCHEDULED, S.IMPLEMENT, S.REVIEW, S.CLOSED)
    assert CHANGE_STATE_MODEL[ChangeType.EMERGENCY] == (
        S.NEW, S.AUTHORIZE, S.SCHEDULED, S.IMPLEMENT, S.REVIEW, S.CLOSED,
    )  # fmt: skip
    with pytest.raises(TypeError):
        CHANGE_STATE_MODEL[ChangeType.NORMAL] = ()  # type: ignore[index]


@pytest.mark.parametrize("ctype", list(ChangeType))
def test_transitions_cancel_up_to_implement_only(ctype):
    transitions = change_transitions(ctype)
    states = CHANGE_STATE_MODEL[ctype]
    assert set(transitions) == {*states, S.CANCELED}
    for i, state in enumerate(states):
        assert state in transitions[state]  # staying put is allowed
        if i + 1 < len(states):
            assert states[i + 1] in transitions[state]
        cancellable = states.index(state) <= states.index(S.IMPLEMENT)
        assert (S.CANCELED in transitions[state]) is cancellable
    assert S.CANCELED in transitions[S.IMPLEMENT]
    assert S.CANCELED not in transitions[S.REVIEW]
    assert transitions[S.CLOSED] == frozenset({S.CLOSED})
    assert transitions[S.CANCELED] == frozenset({S.CANCELED})


def test_transitions_allow_no_skipping():
    normal = change_transitions("normal")
    assert normal[S.NEW] == frozenset({S.NEW, S.ASSESS, S.CANCELED})
    assert normal[S.REVIEW] == frozenset({S.REVIEW, S.CLOSED})
    standard = change_transitions(ChangeType.STANDARD)
    assert standard[S.NEW] == frozenset({S.NEW, S.SCHEDULED, S.CANCELED})
    emergency = change_transitions(ChangeType.EMERGENCY)
    assert emergency[S.NEW] == frozenset({S.NEW, S.AUTHORIZE, S.CANCELED})


@pytest.mark.parametrize(
    ("ctype", "start", "goal", "path"),
    [
        ("standard", S.IMPLEMENT, S.CLOSED, [S.REVIEW, S.CLOSED]),
        ("standard", S.NEW, S.IMPLEMENT, [S.SCHEDULED, S.IMPLEMENT]),
        ("standard", S.SCHEDULED, S.SCHEDULED, []),
        ("standard", S.SCHEDULED, S.CANCELED, [S.CANCELED]),
        ("normal", S.NEW, S.CLOSED, [S.ASSESS, S.AUTHORIZE, S.SCHEDULED, S.IMPLEMENT, S.REVIEW, S.CLOSED]),
        ("normal", S.ASSESS, S.SCHEDULED, [S.AUTHORIZE, S.SCHEDULED]),
        ("normal", S.IMPLEMENT, S.CANCELED, [S.CANCELED]),
        ("emergency", S.NEW, S.IMPLEMENT, [S.AUTHORIZE, S.SCHEDULED, S.IMPLEMENT]),
        ("emergency", S.REVIEW, S.CLOSED, [S.CLOSED]),
        (ChangeType.EMERGENCY, "-3", "-1", [S.SCHEDULED, S.IMPLEMENT]),
    ],
)
def test_change_path(ctype, start, goal, path):
    assert change_path(ctype, start, goal) == path


@pytest.mark.parametrize(
    ("ctype", "start", "goal", "message"),
    [
        ("standard", S.CLOSED, S.IMPLEMENT, "cannot go from Closed"),
        ("normal", S.REVIEW, S.SCHEDULED, "cannot go from Review"),
        ("normal", S.REVIEW, S.CANCELED, "Review cannot be canceled"),
        ("emergency", S.CLOSED, S.CANCELED, "Closed cannot be canceled"),
        ("standard", S.CANCELED, S.NEW, "cannot go from Canceled"),
        ("standard", S.NEW, S.ASSESS, "Assess .* is not a state of a standard change"),
        ("emergency", S.ASSESS, S.CLOSED, "Assess .* is not a state of a emergency change"),
        ("bogus", S.NEW, S.CLOSED, "'bogus' is not a valid ChangeType"),
        ("normal", "1", S.CLOSED, "from_state: '1' is not a valid ChangeState"),
    ],
)
def test_change_path_errors(ctype, start, goal, message):
    with pytest.raises(ValueError, match=message):
        change_path(ctype, start, goal)


# --------------------------------------------------------------------------------------------------
# priority and severity


@pytest.mark.parametrize(
    ("impact", "urgency", "priority"),
    [
        (Impact.HIGH, Urgency.HIGH, Priority.CRITICAL),
        (Impact.HIGH, Urgency.MEDIUM, Priority.HIGH),
        (Impact.HIGH, Urgency.LOW, Priority.MODERATE),
        (Impact.MEDIUM, Urgency.HIGH, Priority.HIGH),
        (Impact.MEDIUM, Urgency.MEDIUM, Priority.MODERATE),
        (Impact.MEDIUM, Urgency.LOW, Priority.LOW),
        (Impact.LOW, Urgency.HIGH, Priority.MODERATE),
        (Impact.LOW, Urgency.MEDIUM, Priority.LOW),
        (Impact.LOW, Urgency.LOW, Priority.PLANNING),
    ],
)
def test_priority_matrix_all_cells(impact, urgency, priority):
    assert priority_for(impact, urgency) is priority
    assert priority_for(impact.value, int(urgency.value)) is priority
    assert PRIORITY_MATRIX[impact, urgency] is priority


def test_priority_matrix_is_complete_and_read_only():
    assert len(PRIORITY_MATRIX) == 9
    with pytest.raises(TypeError):
        PRIORITY_MATRIX[Impact.LOW, Urgency.LOW] = Priority.CRITICAL  # type: ignore[index]


def test_priority_for_rejects_unknown_codes():
    with pytest.raises(ValueError, match="impact: '4' is not a valid Impact"):
        priority_for("4", "1")
    with pytest.raises(ValueError, match="urgency"):
        priority_for("1", 0)


@pytest.mark.parametrize(
    ("criticality", "severity"),
    [
        (BusinessCriticality.MOST_CRITICAL, (Impact.HIGH, Urgency.HIGH)),
        (BusinessCriticality.SOMEWHAT_CRITICAL, (Impact.MEDIUM, Urgency.HIGH)),
        (BusinessCriticality.LESS_CRITICAL, (Impact.MEDIUM, Urgency.MEDIUM)),
        (BusinessCriticality.NOT_CRITICAL, (Impact.LOW, Urgency.LOW)),
        ("1 - most critical", (Impact.HIGH, Urgency.HIGH)),
        ("3 - less critical", (Impact.MEDIUM, Urgency.MEDIUM)),
        (" 2 ", (Impact.MEDIUM, Urgency.HIGH)),
        (4, (Impact.LOW, Urgency.LOW)),
    ],
)
def test_severity_for_criticality(criticality, severity):
    assert incident_severity_for_criticality(criticality) == severity


@pytest.mark.parametrize("criticality", [None, "", "   ", "critical", "5 - whatever", "12", 0, 7, True])
def test_unknown_criticality_gets_the_documented_default(criticality):
    assert incident_severity_for_criticality(criticality) == DEFAULT_SEVERITY == (Impact.LOW, Urgency.LOW)


def test_criticality_tiers_map_to_decreasing_priority():
    priorities = [priority_for(*CRITICALITY_TO_SEVERITY[c]) for c in BusinessCriticality]
    assert priorities == [Priority.CRITICAL, Priority.HIGH, Priority.MODERATE, Priority.PLANNING]
    assert dict(CRITICALITY_TO_IMPACT) == {
        BusinessCriticality.MOST_CRITICAL: Impact.HIGH,
        BusinessCriticality.SOMEWHAT_CRITICAL: Impact.MEDIUM,
        BusinessCriticality.LESS_CRITICAL: Impact.MEDIUM,
        BusinessCriticality.NOT_CRITICAL: Impact.LOW,
    }
