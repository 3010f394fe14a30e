"""Access control: which roles may read, create, write and delete which tables (one place).

A simplified version of the base system's ACLs. ``admin`` passes everything. ``snc_read_only`` makes a
user read-only whatever other roles it has. Denials produce ServiceNow's messages: 403 ACL Exception on
writes, 403 "Insufficient rights to query records" on list reads, and 404 on reads by sys_id.
"""

from __future__ import annotations

from .dictionary import Dictionary
from .errors import acl_denied, read_denied, record_not_found
from .platform import Session

READ_ONLY_ROLE = "snc_read_only"
ITIL_ROLES = frozenset({"itil", "itil_admin", "change_manager", "sn_change_write"})
READ_ROLES = ITIL_ROLES | {READ_ONLY_ROLE, "sn_change_read", "cmdb_read", "asset"}

# root or table -> (roles that read, roles that write); admin is implicit everywhere.
_ADMIN_ONLY = (frozenset(), frozenset())
_OPERATIONAL = (READ_ROLES, ITIL_ROLES | {"asset"})
_REFERENCE_DATA = (READ_ROLES, frozenset())
TABLE_ACCESS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "task": _OPERATIONAL,
    "cmdb_ci": _OPERATIONAL,
    "cmdb_rel_ci": _OPERATIONAL,
    "sys_attachment": _OPERATIONAL,
    "question_answer": _OPERATIONAL,
    "sysapproval_approver": _OPERATIONAL,
    "sys_journal_field": _REFERENCE_DATA,
    "sys_user": _REFERENCE_DATA,
    "sys_user_group": _REFERENCE_DATA,
    "sys_user_grmember": _REFERENCE_DATA,
    "core_company": _REFERENCE_DATA,
    "sys_choice": _REFERENCE_DATA,
    "sys_db_object": _REFERENCE_DATA,
    "cmdb_rel_type": _REFERENCE_DATA,
    "std_change_record_producer": _REFERENCE_DATA,
    "std_change_producer_version": _REFERENCE_DATA,
    "item_option_new": _REFERENCE_DATA,
}
_OPERATION_WORD = {"create": "Insert", "write": "Update", "delete": "Delete"}


def allowed(dictionary: Dictionary, session: Session, table: str, operation: str) -> bool:
    """operation is read, create, write or delete."""
    if session.is_admin:
        return True
    if operation != "read" and READ_ONLY_ROLE in session.roles:
        return False
    access = None
    for name in dictionary.ancestors(table):
        if name in TABLE_ACCESS:
            access = TABLE_ACCESS[name]
            break
    readers, writers = access or _ADMIN_ONLY
    roles = readers if operation == "read" else writers
    return bool(session.roles & roles)


def check_write(dictionary: Dictionary, session: Session, table: str, operation: str) -> None:
    if not allowed(dictionary, session, table, operation):
        raise acl_denied(_OPERATION_WORD[operation])


def check_list(dictionary: Dictionary, session: Session, table: str) -> None:
    if not allowed(dictionary, session, table, "read"):
        raise read_denied()


def check_read_one(dictionary: Dictionary, session: Session, table: str) -> None:
    if not allowed(dictionary, session, table, "read"):
        raise record_not_found()
