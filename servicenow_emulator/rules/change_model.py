"""The change state model (normal / standard / emergency) and on-hold rules, reference §7.1."""

from __future__ import annotations

from ..errors import PlatformError
from ..platform import Change, RuleSet

NEW, ASSESS, AUTHORIZE, SCHEDULED, IMPLEMENT, REVIEW, CLOSED, CANCELED = -5, -4, -3, -2, -1, 0, 3, 4
LABELS = {
    NEW: "New", ASSESS: "Assess", AUTHORIZE: "Authorize", SCHEDULED: "Scheduled",
    IMPLEMENT: "Implement", REVIEW: "Review", CLOSED: "Closed", CANCELED: "Canceled",
}  # fmt: skip
PROGRESSIONS = {
    "normal": [NEW, ASSESS, AUTHORIZE, SCHEDULED, IMPLEMENT, REVIEW, CLOSED],
    "standard": [NEW, SCHEDULED, IMPLEMENT, REVIEW, CLOSED],
    "emergency": [NEW, AUTHORIZE, SCHEDULED, IMPLEMENT, REVIEW, CLOSED],
}
CANCELABLE = {NEW, ASSESS, AUTHORIZE, SCHEDULED, IMPLEMENT}


def next_states(change_type: str, state: int, on_hold: bool = False) -> list[int]:
    """States reachable in one move, the current one included (the Change API's ``nextstates``)."""
    path = PROGRESSIONS.get(change_type or "normal", PROGRESSIONS["normal"])
    if on_hold:
        return [state, CANCELED] if state in CANCELABLE else [state]
    allowed = [state]
    if state in path and path.index(state) + 1 < len(path):
        allowed.append(path[path.index(state) + 1])
    if state in CANCELABLE:
        allowed.append(CANCELED)
    return allowed


def enforce_transitions(change: Change) -> None:
    if change.operation != "update" or not change.changes("state"):
        return
    if not change.platform.settings.flag("emulator.change.strict_state_transitions"):
        return
    old, new = change.old("state"), change.value("state")
    if old is None or new is None:
        return
    on_hold = bool(change.old("on_hold")) and bool(change.value("on_hold"))
    if int(new) not in next_states(change.value("type") or "normal", int(old), on_hold):
        raise PlatformError(
            403,
            "Operation Failed",
            f"Invalid state transition: a {change.value('type') or 'normal'} change cannot move from "
            f"{LABELS.get(int(old), old)} to {LABELS.get(int(new), new)}" + (" while on hold" if on_hold else ""),
        )


def on_hold(change: Change) -> None:
    if change.changes("state") and change.value("state") == CANCELED and change.value("on_hold"):
        change.current["on_hold"] = 0
        change.current["on_hold_reason"] = None


def register(rules: RuleSet) -> None:
    rules.add("before", ["change_request"], ["update"], enforce_transitions)
    rules.add("before", ["change_request"], ["update"], on_hold)
