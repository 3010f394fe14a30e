"""CI status synchronisation: Retired in one status field retires the other; leaving Retired restores it."""

from __future__ import annotations

from ..platform import Change, RuleSet

OPERATIONAL_RETIRED, INSTALL_RETIRED = 6, 7
INSTALLED, NON_OPERATIONAL = 1, 2


def sync_status(change: Change) -> None:
    if change.operation == "insert":
        # Both fields have defaults, so on insert "changes" says nothing: a Retired one wins.
        if change.value("install_status") == INSTALL_RETIRED:
            change.current["operational_status"] = OPERATIONAL_RETIRED
        elif change.value("operational_status") == OPERATIONAL_RETIRED:
            change.current["install_status"] = INSTALL_RETIRED
        return
    if change.changes("install_status"):
        if change.value("install_status") == INSTALL_RETIRED:
            change.current["operational_status"] = OPERATIONAL_RETIRED
        elif (
            change.old("install_status") == INSTALL_RETIRED
            and change.value("operational_status") == OPERATIONAL_RETIRED
        ):
            change.current["operational_status"] = NON_OPERATIONAL
    elif change.changes("operational_status"):
        if change.value("operational_status") == OPERATIONAL_RETIRED:
            change.current["install_status"] = INSTALL_RETIRED
        elif (
            change.old("operational_status") == OPERATIONAL_RETIRED
            and change.value("install_status") == INSTALL_RETIRED
        ):
            change.current["install_status"] = INSTALLED


def register(rules: RuleSet) -> None:
    rules.add("before", ["cmdb_ci"], ["insert", "update"], sync_status)
