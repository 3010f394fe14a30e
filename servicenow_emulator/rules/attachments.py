"""Attachments follow their record: deleting a record deletes its attachments and their content."""

from __future__ import annotations

from ..platform import Change, RuleSet


def delete_record_attachments(change: Change) -> None:
    store = change.platform.store
    rows = store.execute(
        "SELECT sys_id FROM sys_attachment WHERE table_sys_id = ?", [change.current["sys_id"]]
    ).fetchall()
    for (attachment_id,) in rows:
        store.delete("sys_attachment", attachment_id)
        store.delete_content(attachment_id)


def delete_content(change: Change) -> None:
    change.platform.store.delete_content(change.current["sys_id"])


def register(rules: RuleSet) -> None:
    rules.add("after", ["task", "cmdb_ci"], ["delete"], delete_record_attachments)
    rules.add("after", ["sys_attachment"], ["delete"], delete_content)
