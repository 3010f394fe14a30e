"""Platform rules (reference §2, §7) as a REST client sees them: numbers, priority, journals, data policies,
the change state model, lifecycle timestamps, approvals and CI status synchronisation."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sn_support import ITIL, assert_error, create, get, patch, rows, sys_id_of, tag

NOW_SLACK_S = 120


def _recent(value: str) -> bool:
    moment = datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    return abs((datetime.now(UTC) - moment).total_seconds()) < NOW_SLACK_S


# --- numbers ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("table", "prefix"),
    [("change_request", "CHG"), ("incident", "INC"), ("change_task", "CTASK"), ("problem", "PRB")],
)
def test_task_numbers(admin, table, prefix):
    first = create(admin, table, {"short_description": "numbered"})["number"]
    second = create(admin, table, {"short_description": "numbered"})["number"]
    assert re.fullmatch(rf"{prefix}\d{{7}}", first) and re.fullmatch(rf"{prefix}\d{{7}}", second)
    assert int(second[len(prefix) :]) > int(first[len(prefix) :])
    # the number stays when other fields change
    sys_id = rows(admin, table, f"number={second}", "sys_id")[0]["sys_id"]
    assert patch(admin, table, sys_id, {"description": "x"}).json()["result"]["number"] == second


# --- incident priority --------------------------------------------------------------------------
MATRIX = {(1, 1): 1, (1, 2): 2, (1, 3): 3, (2, 1): 2, (2, 2): 3, (2, 3): 4, (3, 1): 3, (3, 2): 4, (3, 3): 5}


@pytest.mark.parametrize(("impact", "urgency"), sorted(MATRIX))
def test_priority_from_impact_and_urgency(admin, impact, urgency):
    rec = create(
        admin,
        "incident",
        {"short_description": "prio", "impact": str(impact), "urgency": str(urgency), "priority": "1"},
    )
    assert rec["priority"] == str(MATRIX[(impact, urgency)])  # a client-supplied priority does not win


def test_priority_recomputed_on_update(admin):
    rec = create(admin, "incident", {"short_description": "prio", "impact": "3", "urgency": "3"})
    assert rec["priority"] == "5"
    r = patch(admin, "incident", rec["sys_id"], {"urgency": "1"})
    assert r.json()["result"]["priority"] == "3"
    r = patch(admin, "incident", rec["sys_id"], {"impact": "1"})
    assert r.json()["result"]["priority"] == "1"
    # the documented example: impact 1, urgency set to 1 -> priority "1"
    assert get(admin, "incident", rec["sys_id"])["priority"] == "1"


def test_default_priority(admin):
    rec = create(admin, "incident", {"short_description": "defaults"})
    assert (rec["impact"], rec["urgency"], rec["priority"]) == ("3", "3", "5")


# --- journal fields -------------------------------------------------------------------------------
def _journal(admin, sys_id: str) -> list[dict]:
    return rows(
        admin,
        "sys_journal_field",
        f"element_id={sys_id}^ORDERBYsys_created_on",
        "element,element_id,name,value,sys_created_by,sys_created_on",
    )


def test_journal_entries_are_rows_and_read_back_empty(admin, emulator):
    rec = create(admin, "incident", {"short_description": "journal", "work_notes": "first note"})
    sys_id = rec["sys_id"]
    assert rec["work_notes"] == "" and rec["sys_mod_count"] == "0"
    with emulator.client(ITIL) as itil:
        r = patch(itil, "incident", sys_id, {"work_notes": "second note"})
        assert r.json()["result"]["sys_mod_count"] == "1"  # a journal-only write is an update
        r = patch(itil, "incident", sys_id, {"comments": "customer visible"})
        assert r.json()["result"]["sys_mod_count"] == "2"
    entries = _journal(admin, sys_id)
    assert [(e["element"], e["value"], e["sys_created_by"]) for e in entries] == [
        ("work_notes", "first note", "admin"),
        ("work_notes", "second note", "itil"),
        ("comments", "customer visible", "itil"),
    ]
    assert all(e["element_id"] == sys_id and e["name"] == "incident" for e in entries)
    # never overwritten: the raw value reads back "" whatever was written
    record = get(admin, "incident", sys_id, sysparm_fields="work_notes,comments,comments_and_work_notes")
    assert record == {"work_notes": "", "comments": "", "comments_and_work_notes": ""}


def test_writing_an_empty_journal_adds_nothing(admin):
    rec = create(admin, "incident", {"short_description": "journal empty"})
    r = patch(admin, "incident", rec["sys_id"], {"work_notes": "", "comments": ""})
    assert r.status_code == 200
    assert r.json()["result"]["sys_mod_count"] == "0"
    assert _journal(admin, rec["sys_id"]) == []


def test_journal_display_value_is_the_rendered_history(admin, emulator):
    rec = create(admin, "incident", {"short_description": "history", "work_notes": "older note"})
    with emulator.client(ITIL) as itil:
        patch(itil, "incident", rec["sys_id"], {"work_notes": "newer note", "comments": "a comment"})
    shown = get(
        admin,
        "incident",
        rec["sys_id"],
        sysparm_display_value="true",
        sysparm_fields="work_notes,comments,comments_and_work_notes",
    )
    entry = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} - "
    assert re.fullmatch(
        rf"{entry}Ivy Tilson \(Work notes\)\nnewer note\n\n{entry}System Administrator \(Work notes\)\nolder note\n",
        shown["work_notes"],
    ), shown["work_notes"]
    assert re.fullmatch(rf"{entry}Ivy Tilson \(Additional comments\)\na comment\n", shown["comments"])
    merged = shown["comments_and_work_notes"]
    assert merged.count("(Work notes)") == 2 and merged.count("(Additional comments)") == 1
    both = get(admin, "incident", rec["sys_id"], sysparm_display_value="all", sysparm_fields="work_notes")
    assert both["work_notes"]["value"] == "" and "newer note" in both["work_notes"]["display_value"]


def test_journal_entries_go_with_their_record(admin):
    rec = create(admin, "incident", {"short_description": "journal delete", "work_notes": "bye"})
    assert len(_journal(admin, rec["sys_id"])) == 1
    assert admin.delete(f"/api/now/table/incident/{rec['sys_id']}").status_code == 204
    assert _journal(admin, rec["sys_id"]) == []


# --- incident data policy and lifecycle ---------------------------------------------------------------
@pytest.mark.parametrize("state", ["6", "7"])
def test_resolving_without_close_fields_is_a_data_policy_exception(admin, state):
    rec = create(admin, "incident", {"short_description": "unresolved"})
    before = get(admin, "incident", rec["sys_id"])
    r = patch(admin, "incident", rec["sys_id"], {"state": state, "close_notes": "only notes", "work_notes": "x"})
    body = assert_error(r, 403, "Operation Failed")
    assert "Data Policy Exception" in body["error"]["detail"]
    assert "Resolution code" in body["error"]["detail"]
    r = patch(admin, "incident", rec["sys_id"], {"state": state})
    detail = assert_error(r, 403, "Operation Failed")["error"]["detail"]
    assert "Resolution code" in detail and "Resolution notes" in detail
    # nothing was written: not the state, not the notes, not the journal, not the counter
    after = get(admin, "incident", rec["sys_id"])
    assert after == before
    assert _journal(admin, rec["sys_id"]) == []


def test_inserting_a_resolved_incident_without_close_fields_creates_nothing(admin):
    marker = tag("dp")
    r = admin.post("/api/now/table/incident", json={"short_description": "x", "state": "6", "correlation_id": marker})
    assert_error(r, 403, "Operation Failed")
    assert rows(admin, "incident", f"correlation_id={marker}") == []


def test_incident_lifecycle_fields(admin, emulator):
    with emulator.client(ITIL) as itil:
        itil_id = sys_id_of(admin, "sys_user", "user_name=itil")
        rec = create(itil, "incident", {"short_description": "lifecycle"})
        assert _recent(rec["opened_at"]) and rec["opened_by"] == itil_id
        assert rec["active"] == "true" and rec["resolved_at"] == "" and rec["closed_at"] == ""
        r = patch(
            itil, "incident", rec["sys_id"], {"state": "6", "close_code": "Solution provided", "close_notes": "fixed"}
        )
        resolved = r.json()["result"]
        assert r.status_code == 200
        assert _recent(resolved["resolved_at"]) and resolved["resolved_by"] == itil_id
        assert resolved["incident_state"] == "6" and resolved["active"] == "true"
    r = patch(admin, "incident", rec["sys_id"], {"state": "7"})
    closed = r.json()["result"]
    assert _recent(closed["closed_at"]) and closed["closed_by"] == sys_id_of(admin, "sys_user", "user_name=admin")
    assert closed["active"] == "false" and closed["resolved_by"] == itil_id
    # client-supplied opened_at is kept
    kept = create(admin, "incident", {"short_description": "old", "opened_at": "2020-02-02 02:02:02"})
    assert kept["opened_at"] == "2020-02-02 02:02:02"


# --- change state model -----------------------------------------------------------------------------
PATHS = {
    "normal": ["-5", "-4", "-3", "-2", "-1", "0", "3"],
    "standard": ["-5", "-2", "-1", "0", "3"],
    "emergency": ["-5", "-3", "-2", "-1", "0", "3"],
}
CLOSE = {"close_code": "successful", "close_notes": "went fine"}


def _change(admin, change_type: str, **values) -> str:
    return create(
        admin, "change_request", {"short_description": f"{change_type} change", "type": change_type, **values}
    )["sys_id"]


def _move(client, sys_id: str, state: str, **extra):
    return patch(client, "change_request", sys_id, {"state": state, **extra})


@pytest.mark.parametrize("change_type", sorted(PATHS))
def test_each_model_walks_its_progression(admin, change_type):
    sys_id = _change(admin, change_type)
    for state in PATHS[change_type][1:]:
        extra = CLOSE if state == "3" else {}
        r = _move(admin, sys_id, state, **extra)
        assert r.status_code == 200, (change_type, state, r.text)
        assert r.json()["result"]["state"] == state
    final = get(admin, "change_request", sys_id)
    assert final["active"] == "false" and _recent(final["closed_at"])
    assert final["closed_by"] == sys_id_of(admin, "sys_user", "user_name=admin")
    assert _recent(final["work_start"]) and _recent(final["work_end"])


@pytest.mark.parametrize(
    ("change_type", "start", "target"),
    [
        ("normal", "-5", "-3"),  # skipping Assess
        ("normal", "-5", "-2"),
        ("normal", "-4", "-5"),  # backwards
        ("standard", "-5", "-4"),  # Assess is not in the standard model
        ("standard", "-5", "-3"),
        ("emergency", "-5", "-4"),
        ("emergency", "-3", "-1"),
        ("normal", "0", "4"),  # Review cannot be canceled
        ("normal", "0", "-1"),
    ],
)
def test_invalid_transitions_are_rejected(admin, change_type, start, target):
    path = PATHS[change_type]
    sys_id = _change(admin, change_type)
    for state in path[1 : path.index(start) + 1]:
        assert _move(admin, sys_id, state).status_code == 200
    before = get(admin, "change_request", sys_id)
    r = _move(admin, sys_id, target)
    body = assert_error(r, 403, "Operation Failed")
    assert "state" in body["error"]["detail"].lower()
    assert get(admin, "change_request", sys_id) == before


@pytest.mark.parametrize("state", ["-5", "-4", "-3", "-2", "-1"])
def test_cancel_is_allowed_up_to_implement(admin, state):
    sys_id = _change(admin, "normal")
    path = PATHS["normal"]
    for step in path[1 : path.index(state) + 1]:
        assert _move(admin, sys_id, step).status_code == 200
    r = _move(admin, sys_id, "4")
    assert r.status_code == 200 and r.json()["result"]["state"] == "4"
    canceled = get(admin, "change_request", sys_id)
    assert canceled["active"] == "false" and _recent(canceled["closed_at"])
    # terminal: nothing moves on from Canceled
    assert_error(_move(admin, sys_id, "-5"), 403, "Operation Failed")


def test_closed_is_terminal(admin):
    sys_id = _change(admin, "standard")
    for state in PATHS["standard"][1:]:
        assert _move(admin, sys_id, state, **(CLOSE if state == "3" else {})).status_code == 200
    for target in ("4", "0", "-5"):
        assert_error(_move(admin, sys_id, target), 403, "Operation Failed")


def test_on_hold_only_moves_to_canceled(admin):
    sys_id = _change(admin, "normal")
    assert _move(admin, sys_id, "-4").status_code == 200
    r = patch(admin, "change_request", sys_id, {"on_hold": "true", "on_hold_reason": "awaiting_info"})
    assert r.status_code == 200 and r.json()["result"]["on_hold"] == "true"
    assert_error(_move(admin, sys_id, "-3"), 403, "Operation Failed")
    r = _move(admin, sys_id, "4")
    assert r.status_code == 200
    assert (r.json()["result"]["state"], r.json()["result"]["on_hold"], r.json()["result"]["on_hold_reason"]) == (
        "4",
        "false",
        "",
    )


def test_strict_transitions_can_be_switched_off(emulator, admin):
    sys_id = _change(admin, "normal")
    emulator.set_properties(**{"emulator.change.strict_state_transitions": "false"})
    try:
        assert _move(admin, sys_id, "0").status_code == 200  # New -> Review, skipping the model
        assert _move(admin, sys_id, "-4").status_code == 200
    finally:
        emulator.set_properties(**{"emulator.change.strict_state_transitions": "true"})
    assert_error(_move(admin, sys_id, "0"), 403, "Operation Failed")


def test_closing_needs_close_code_and_notes(emulator, admin):
    sys_id = _change(admin, "standard")
    for state in ("-2", "-1", "0"):
        assert _move(admin, sys_id, state).status_code == 200
    before = get(admin, "change_request", sys_id)
    r = _move(admin, sys_id, "3", close_notes="notes only")
    detail = assert_error(r, 403, "Operation Failed")["error"]["detail"]
    assert "Data Policy Exception" in detail and "Close code" in detail
    assert get(admin, "change_request", sys_id) == before
    emulator.set_properties(**{"emulator.change.close_requires_close_fields": "false"})
    try:
        r = _move(admin, sys_id, "3")
        assert r.status_code == 200 and r.json()["result"]["state"] == "3"
    finally:
        emulator.set_properties(**{"emulator.change.close_requires_close_fields": "true"})


def test_change_task_close_needs_close_fields(admin):
    task = create(admin, "change_task", {"short_description": "ctask"})
    assert_error(patch(admin, "change_task", task["sys_id"], {"state": "3"}), 403, "Operation Failed")
    r = patch(admin, "change_task", task["sys_id"], {"state": "3", **CLOSE})
    assert r.status_code == 200 and r.json()["result"]["active"] == "false"


def test_approval_set(admin):
    sys_id = _change(admin, "normal", approval="requested")
    assert get(admin, "change_request", sys_id)["approval_set"] == ""
    r = patch(admin, "change_request", sys_id, {"approval": "approved"})
    assert _recent(r.json()["result"]["approval_set"])
    other = _change(admin, "normal", approval="requested")
    r = patch(admin, "change_request", other, {"approval": "rejected"})
    assert _recent(r.json()["result"]["approval_set"])
    third = _change(admin, "normal", approval="not requested")
    r = patch(admin, "change_request", third, {"approval": "requested"})
    assert r.json()["result"]["approval_set"] == ""


# --- CMDB status synchronisation ------------------------------------------------------------------------
def test_ci_retired_status_sync(admin):
    ci = create(admin, "cmdb_ci_linux_server", {"name": tag("retire")})
    assert (ci["install_status"], ci["operational_status"]) == ("1", "1")
    r = patch(admin, "cmdb_ci_linux_server", ci["sys_id"], {"install_status": "7"})
    assert (r.json()["result"]["install_status"], r.json()["result"]["operational_status"]) == ("7", "6")
    # leaving Retired on install_status: operational_status becomes Non-Operational
    r = patch(admin, "cmdb_ci_linux_server", ci["sys_id"], {"install_status": "1"})
    assert (r.json()["result"]["install_status"], r.json()["result"]["operational_status"]) == ("1", "2")
    r = patch(admin, "cmdb_ci", ci["sys_id"], {"operational_status": "6"})
    assert (r.json()["result"]["install_status"], r.json()["result"]["operational_status"]) == ("7", "6")
    # leaving Retired on operational_status: install_status becomes Installed
    r = patch(admin, "cmdb_ci", ci["sys_id"], {"operational_status": "1"})
    assert (r.json()["result"]["install_status"], r.json()["result"]["operational_status"]) == ("1", "1")
    # by display value too
    r = patch(admin, "cmdb_ci", ci["sys_id"], {"install_status": "Retired"})
    assert r.json()["result"]["operational_status"] == "6"


def test_ci_inserted_retired_is_synchronised(admin):
    ci = create(admin, "cmdb_ci_linux_server", {"name": tag("retired"), "install_status": "7"})
    assert (ci["install_status"], ci["operational_status"]) == ("7", "6")
    ci = create(admin, "cmdb_ci_linux_server", {"name": tag("retired"), "operational_status": "Retired"})
    assert (ci["install_status"], ci["operational_status"]) == ("7", "6")
