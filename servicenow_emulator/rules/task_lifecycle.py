"""Timestamps and flags the platform maintains on tasks: opened, resolved, closed, active, approval set."""

from __future__ import annotations

from ..platform import Change, RuleSet
from ..timeutil import glide_now

INCIDENT_RESOLVED, INCIDENT_CLOSED, INCIDENT_CANCELED = 6, 7, 8
CHANGE_CLOSED, CHANGE_CANCELED = 3, 4
TASK_INACTIVE_STATES = {3, 4, 7}


def _terminal(change: Change, state: int | None) -> bool:
    if state is None:
        return False
    if change.is_a("incident"):
        return state in (INCIDENT_CLOSED, INCIDENT_CANCELED)
    if change.is_a("change_request") or change.is_a("change_task"):
        return state in (CHANGE_CLOSED, CHANGE_CANCELED)
    if change.is_a("problem"):
        return state == 107
    return state in TASK_INACTIVE_STATES


def lifecycle(change: Change) -> None:
    now = glide_now()
    user = change.session.user_sys_id
    if change.operation == "insert":
        change.current.setdefault("opened_at", None)
        if not change.value("opened_at"):
            change.current["opened_at"] = now
        if not change.value("opened_by"):
            change.current["opened_by"] = user
    state = change.value("state")
    state = int(state) if state is not None else None
    if change.is_a("incident"):
        # The legacy incident_state mirrors state.
        change.current["incident_state"] = state
        if change.changes("state") and state == INCIDENT_RESOLVED:
            change.current["resolved_at"] = now
            change.current["resolved_by"] = user
        if change.changes("state") and state in (INCIDENT_CLOSED,) and not change.value("resolved_at"):
            change.current["resolved_at"] = now
            change.current["resolved_by"] = user
    if change.changes("state") and _terminal(change, state):
        change.current["closed_at"] = now
        change.current["closed_by"] = user
        change.current["active"] = 0
    elif change.changes("state") and not _terminal(change, state):
        change.current["active"] = 1
        if change.operation == "update" and change.old("closed_at"):
            change.current["closed_at"] = None
            change.current["closed_by"] = None
    if change.changes("approval") and change.value("approval") in ("approved", "rejected"):
        change.current["approval_set"] = now
    if change.is_a("change_request") and change.changes("state"):
        if state == -1 and not change.value("work_start"):
            change.current["work_start"] = now
        if state in (0, CHANGE_CLOSED) and not change.value("work_end"):
            change.current["work_end"] = now


def register(rules: RuleSet) -> None:
    rules.add("before", ["task"], ["insert", "update"], lifecycle)
