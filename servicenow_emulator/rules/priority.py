"""Incident priority from impact x urgency (the default data-lookup matrix, reference §7.3)."""

from __future__ import annotations

from ..platform import Change, RuleSet

PRIORITY_MATRIX = {
    (1, 1): 1, (1, 2): 2, (1, 3): 3,
    (2, 1): 2, (2, 2): 3, (2, 3): 4,
    (3, 1): 3, (3, 2): 4, (3, 3): 5,
}  # fmt: skip


def compute_priority(change: Change) -> None:
    impact = change.value("impact") or 3
    urgency = change.value("urgency") or 3
    change.current["priority"] = PRIORITY_MATRIX.get((int(impact), int(urgency)), 5)


def register(rules: RuleSet) -> None:
    rules.add("before", ["incident"], ["insert", "update"], compute_priority)
