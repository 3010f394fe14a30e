"""Data policies: mandatory fields for resolving or closing incidents and for closing changes."""

from __future__ import annotations

from ..errors import data_policy
from ..platform import Change, RuleSet


def _missing(change: Change, names: list[str]) -> list[str]:
    fields = change.platform.dictionary.fields(change.table)
    return [fields[name].display_label for name in names if not change.value(name)]


def incident_resolution(change: Change) -> None:
    if not change.platform.settings.flag("emulator.incident.resolve_requires_close_fields"):
        return
    state = change.value("state")
    if state in (6, 7) and (change.changes("state") or change.operation == "insert"):
        missing = _missing(change, ["close_code", "close_notes"])
        if missing:
            raise data_policy(missing)


def change_closure(change: Change) -> None:
    if not change.platform.settings.flag("emulator.change.close_requires_close_fields"):
        return
    if change.value("state") == 3 and change.changes("state"):
        missing = _missing(change, ["close_code", "close_notes"])
        if missing:
            raise data_policy(missing)


def register(rules: RuleSet) -> None:
    rules.add("before", ["incident"], ["insert", "update"], incident_resolution)
    rules.add("before", ["change_request", "change_task"], ["insert", "update"], change_closure)
