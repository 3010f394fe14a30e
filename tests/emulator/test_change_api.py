"""The Change Management API subset (reference §7.1) over real HTTP: a change as value/display_value pairs, and
``nextstates`` for every state of each change model, on hold included."""

from __future__ import annotations

import re

import pytest
from sn_support import NOROLE, READONLY, assert_error, create, make_user, patch, rows, sys_id_of, tag

CHANGE = "/api/sn_chg_rest/change"
SYS_ID = re.compile(r"^[0-9a-f]{32}$")
LABELS = {
    "-5": "New",
    "-4": "Assess",
    "-3": "Authorize",
    "-2": "Scheduled",
    "-1": "Implement",
    "0": "Review",
    "3": "Closed",
    "4": "Canceled",
}
MODELS = {
    "normal": ["-5", "-4", "-3", "-2", "-1", "0", "3"],
    "standard": ["-5", "-2", "-1", "0", "3"],
    "emergency": ["-5", "-3", "-2", "-1", "0", "3"],
}
CANCELABLE = {"-5", "-4", "-3", "-2", "-1"}
NOT_ON_HOLD = {"name": "Not On hold", "description": None, "sys_id": "2132deb6c303101035ae3f52c1d3ae8c"}


def new_change(admin, change_type: str, **values) -> str:
    return create(admin, "change_request", {"type": change_type, "short_description": tag("chg-api"), **values})[
        "sys_id"
    ]


def next_states(client, sys_id: str) -> dict:
    r = client.get(f"{CHANGE}/{sys_id}/nextstates")
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    assert set(result) == {"available_states", "state_label", "state_transitions"}
    return result


def move(admin, sys_id: str, state: str, **extra) -> None:
    r = patch(admin, "change_request", sys_id, {"state": state, **extra})
    assert r.status_code == 200, r.text


def expected_targets(model: list[str], state: str) -> list[str]:
    targets = []
    position = model.index(state)
    if position + 1 < len(model):
        targets.append(model[position + 1])
    if state in CANCELABLE:
        targets.append("4")
    return targets


def test_nextstates_shape_for_a_new_normal_change(admin):
    sys_id = new_change(admin, "normal")
    result = next_states(admin, sys_id)
    assert result["available_states"] == ["-4", "4", "-5"]  # the reachable states, then the current one
    assert result["state_label"] == {"-4": "Assess", "4": "Canceled", "-5": "New"}
    to_assess, to_cancel = result["state_transitions"]
    assert len(to_assess) == 1 and len(to_cancel) == 1
    assess = to_assess[0]
    assert SYS_ID.match(assess.pop("sys_id"))
    assert assess == {
        "display_value": "New to Assess",
        "from_state": "-5",
        "to_state": "-4",
        "transition_available": True,
        "automatic_transition": False,
        "conditions": [{"passed": True, "condition": NOT_ON_HOLD}],
    }
    cancel = to_cancel[0]
    assert (cancel["display_value"], cancel["from_state"], cancel["to_state"], cancel["conditions"]) == (
        "New to Canceled",
        "-5",
        "4",
        [],
    )
    # versioned URL: the same answer
    assert admin.get(f"/api/sn_chg_rest/v1/change/{sys_id}/nextstates").json()["result"]["available_states"] == [
        "-4",
        "4",
        "-5",
    ]


@pytest.mark.parametrize("change_type", ["normal", "standard", "emergency"])
def test_nextstates_along_each_model(admin, change_type):
    model = MODELS[change_type]
    group = sys_id_of(admin, "sys_user_group", "name=Change Management")
    sys_id = new_change(admin, change_type, assignment_group=group)
    for position, state in enumerate(model):
        result = next_states(admin, sys_id)
        targets = expected_targets(model, state)
        assert result["available_states"] == [*targets, state], (change_type, state)
        assert result["state_label"] == {s: LABELS[s] for s in [*targets, state]}
        transitions = result["state_transitions"]
        assert len(transitions) == len(targets)
        for target, inner in zip(targets, transitions, strict=True):
            assert len(inner) == 1
            assert (inner[0]["from_state"], inner[0]["to_state"]) == (state, target)
            assert inner[0]["display_value"] == f"{LABELS[state]} to {LABELS[target]}"
            assert inner[0]["conditions"] == ([] if target == "4" else [{"passed": True, "condition": NOT_ON_HOLD}])
        if position + 1 < len(model):
            extra = {"close_code": "successful", "close_notes": "done"} if model[position + 1] == "3" else {}
            move(admin, sys_id, model[position + 1], **extra)
    # Closed is terminal: only the current state
    assert next_states(admin, sys_id) == {
        "available_states": ["3"],
        "state_label": {"3": "Closed"},
        "state_transitions": [],
    }


def test_nextstates_on_hold_offers_only_cancel(admin):
    sys_id = new_change(admin, "normal")
    move(admin, sys_id, "-4")
    r = patch(admin, "change_request", sys_id, {"on_hold": "true", "on_hold_reason": "awaiting_info"})
    assert r.status_code == 200
    result = next_states(admin, sys_id)
    assert result["available_states"] == ["4", "-4"]
    assert result["state_label"] == {"4": "Canceled", "-4": "Assess"}
    assert len(result["state_transitions"]) == 1
    assert result["state_transitions"][0][0]["to_state"] == "4"
    assert result["state_transitions"][0][0]["conditions"] == []
    # the platform agrees: moving on is refused, cancelling works (and clears on_hold)
    assert patch(admin, "change_request", sys_id, {"state": "-3"}).status_code == 403
    move(admin, sys_id, "4")
    assert next_states(admin, sys_id) == {
        "available_states": ["4"],
        "state_label": {"4": "Canceled"},
        "state_transitions": [],
    }


def test_review_cannot_be_canceled(admin):
    sys_id = new_change(admin, "standard")
    for state in ("-2", "-1", "0"):
        move(admin, sys_id, state)
    result = next_states(admin, sys_id)
    assert result["available_states"] == ["3", "0"]
    assert [inner[0]["display_value"] for inner in result["state_transitions"]] == ["Review to Closed"]


def test_get_change_as_value_display_value_pairs(admin):
    group = sys_id_of(admin, "sys_user_group", "name=Change Management")
    sys_id = new_change(admin, "emergency", assignment_group=group, risk="2")
    r = admin.get(f"{CHANGE}/{sys_id}")
    assert r.status_code == 200
    result = r.json()["result"]
    assert all(isinstance(v, dict) and set(v) == {"display_value", "value"} for v in result.values()), result
    assert result["sys_id"] == {"display_value": sys_id, "value": sys_id}
    assert result["state"] == {"display_value": "New", "value": "-5"}
    assert result["type"] == {"display_value": "Emergency", "value": "emergency"}
    assert result["risk"] == {"display_value": "High", "value": "2"}
    assert result["assignment_group"] == {"display_value": "Change Management", "value": group}
    assert result["sys_class_name"] == {"display_value": "Change Request", "value": "change_request"}
    assert re.fullmatch(r"CHG\d{7}", result["number"]["value"])
    assert result["number"]["display_value"] == result["number"]["value"]
    assert result["cmdb_ci"] == {"display_value": "", "value": ""}
    assert {"on_hold", "close_code", "start_date", "std_change_producer_version"} <= set(result)
    assert admin.get(f"/api/sn_chg_rest/v1/change/{sys_id}").json()["result"]["number"] == result["number"]


def test_missing_and_non_change_records(admin):
    assert_error(admin.get(f"{CHANGE}/0123456789abcdef0123456789abcdef"), 404, "No Record found")
    assert_error(admin.get(f"{CHANGE}/0123456789abcdef0123456789abcdef/nextstates"), 404, "No Record found")
    incident = rows(admin, "incident", "", "sys_id", sysparm_limit=1)[0]["sys_id"]
    assert_error(admin.get(f"{CHANGE}/{incident}"), 404, "No Record found")
    assert_error(admin.get(f"{CHANGE}/{incident}/nextstates"), 404, "No Record found")


def test_roles(emulator, admin):
    sys_id = new_change(admin, "normal")
    with emulator.client(NOROLE) as norole:
        for path in (f"{CHANGE}/{sys_id}", f"{CHANGE}/{sys_id}/nextstates"):
            assert_error(norole.get(path), 403, "User Not Authorized", "Failed API level ACL Validation")
    with emulator.client(READONLY) as readonly:
        assert next_states(readonly, sys_id)["available_states"] == ["-4", "4", "-5"]
        assert readonly.get(f"{CHANGE}/{sys_id}").status_code == 200
    reader = tag("chgread")
    make_user(admin, reader, "reader-pass", ["sn_change_read"])
    with emulator.client((reader, "reader-pass")) as client:
        assert next_states(client, sys_id)["available_states"] == ["-4", "4", "-5"]
