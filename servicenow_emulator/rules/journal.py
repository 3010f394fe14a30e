"""Journal fields: writing work_notes or comments appends a sys_journal_field row; nothing is overwritten."""

from __future__ import annotations

from ..platform import Change, RuleSet, new_sys_id
from ..timeutil import glide_now


def write_entries(change: Change) -> None:
    if not change.journal:
        return
    store = change.platform.store
    now = glide_now()
    for element, value in change.journal:
        store.insert(
            "sys_journal_field",
            {
                "sys_id": new_sys_id(),
                "element": element,
                "element_id": change.current["sys_id"],
                "name": change.table,
                "value": value,
                "sys_created_on": now,
                "sys_created_by": change.session.user_name,
                "sys_updated_on": now,
                "sys_updated_by": change.session.user_name,
                "sys_mod_count": 0,
                "sys_class_name": "sys_journal_field",
            },
        )


def delete_entries(change: Change) -> None:
    change.platform.store.execute("DELETE FROM sys_journal_field WHERE element_id = ?", [change.current["sys_id"]])


def register(rules: RuleSet) -> None:
    rules.add("after", ["task", "sysapproval_approver"], ["insert", "update"], write_entries)
    rules.add("after", ["task"], ["delete"], delete_entries)
