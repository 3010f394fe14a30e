"""Task numbers: the class prefix plus 7 zero-padded digits (CHG0010001, INC0010001, CTASK0010001)."""

from __future__ import annotations

from ..platform import Change, RuleSet


def assign_number(change: Change) -> None:
    if change.value("number"):
        return
    dictionary = change.platform.dictionary
    for table in dictionary.ancestors(change.table):
        prefix = dictionary.number_prefix(table)
        if prefix:
            change.current["number"] = f"{prefix}{change.platform.store.next_number(prefix):07d}"
            return


def register(rules: RuleSet) -> None:
    rules.add("before", ["task"], ["insert"], assign_number)
